"""Matplotlib figures of fitted mixtures; every function takes results and returns axes.

* :func:`plot_clusters`: points shaded by membership uncertainty with
  posterior covariance ellipses (several faded draws per component); a grid
  of feature pairs when D > 2;
* :func:`plot_membership_intervals`: membership probability intervals of the
  most uncertain points;
* :func:`plot_k_selection`: elpd +/- SE by K beside EM's BIC (per structure when
  several are compared);
* :func:`plot_density_1d`: 1-D posterior-predictive density with a band;
* :func:`plot_density_contours`: contours of a 2-D posterior-predictive
  density (or the 2-D marginal of two features) with its band;
* :func:`plot_coclustering`: heatmap of the posterior probability that two
  points share a component, ordered by cluster;
* :func:`plot_occupied_components`: posterior of the number of non-empty
  components (sparse overfitted mixtures);
* :func:`plot_rank`, :func:`plot_trace`: arviz-plots on the relabelled draws.
"""

from __future__ import annotations

import itertools

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Ellipse

from bayesgmm._plots_clustering import plot_coclustering, plot_occupied_components
from bayesgmm._plots_common import COLOURS, NOISE_COLOUR, padded_grid, plotted_data
from bayesgmm._plots_density import plot_density_contours
from bayesgmm.noise import NOISE_LABEL
from bayesgmm.posterior import OBSERVED

__all__ = [
    "plot_clusters",
    "plot_membership_intervals",
    "plot_k_selection",
    "plot_density_1d",
    "plot_density_contours",
    "plot_coclustering",
    "plot_occupied_components",
    "plot_rank",
    "plot_trace",
]

def _ellipse(mean, covariance, colour, alpha, n_std=2.0):
    values, vectors = np.linalg.eigh(covariance)
    angle = np.degrees(np.arctan2(vectors[1, -1], vectors[0, -1]))
    width, height = 2 * n_std * np.sqrt(np.maximum(values[::-1], 0.0))
    return Ellipse(mean, width, height, angle=angle, facecolor="none", edgecolor=colour,
                   alpha=alpha, linewidth=1.0)


def _pair_axes(n_features, axes):
    pairs = list(itertools.combinations(range(n_features), 2))
    if axes is not None:
        return np.atleast_1d(axes).ravel(), pairs
    columns = min(3, len(pairs))
    rows = int(np.ceil(len(pairs) / columns))
    figure, grid = plt.subplots(rows, columns, figsize=(4.5 * columns, 4.0 * rows),
                                squeeze=False)
    for extra in grid.ravel()[len(pairs):]:
        extra.set_visible(False)
    return grid.ravel(), pairs


def plot_clusters(model, X=None, *, n_ellipse_draws=30, axes=None, random_state=0):
    """Scatter coloured by label, shaded by confidence, with posterior 2-sd ellipses.

    A one-feature model gets :func:`plot_density_1d` instead.

    Parameters
    ----------
    model : BayesianGMM
        A fitted model.
    X : array-like, optional
        Points to show; defaults to the training data.
    n_ellipse_draws : int
        Posterior draws whose covariance ellipses are drawn (faded) per
        component; the posterior-mean ellipse is drawn solid.
    axes : matplotlib Axes or array of Axes, optional
        One per feature pair.
    random_state : int
        Which draws are shown.

    Returns
    -------
    ndarray of matplotlib Axes
    """
    tree = model.idata_
    if tree.posterior.sizes["feature"] == 1:
        return np.array([plot_density_1d(model, ax=np.atleast_1d(axes)[0] if axes is not None
                                         else None)])
    values = plotted_data(model, X)
    names = list(tree.posterior["feature"].values)
    summary = model.membership_summary(values)
    labels = summary["label"].values
    confidence = summary["confidence"].values
    n_components = tree.posterior.sizes["component"]
    posterior = tree.posterior
    means = posterior["means"].values.reshape(-1, n_components, values.shape[1])
    covariances = posterior["covariances"].values.reshape(
        -1, n_components, values.shape[1], values.shape[1])
    rng = np.random.default_rng(random_state)
    chosen = rng.choice(means.shape[0], size=min(n_ellipse_draws, means.shape[0]), replace=False)
    grid, pairs = _pair_axes(values.shape[1], axes)
    for ax, (i, j) in zip(grid, pairs, strict=False):
        index = np.ix_([i, j], [i, j])
        colours = np.array([COLOURS[label % 10] if label != NOISE_LABEL else NOISE_COLOUR
                            for label in labels])
        ax.scatter(values[:, i], values[:, j], c=colours, s=14,
                   alpha=np.clip(confidence, 0.15, 1.0), edgecolors="none")
        uncertain = confidence < 0.9
        ax.scatter(values[uncertain, i], values[uncertain, j], s=40, facecolors="none",
                   edgecolors="black", linewidths=0.6, label="confidence < 0.9")
        for k in range(n_components):
            colour = COLOURS[k % 10]
            for s in chosen:
                ax.add_patch(_ellipse(means[s, k, [i, j]], covariances[s, k][index], colour, 0.12))
            ax.add_patch(_ellipse(means[:, k, [i, j]].mean(0),
                                  covariances[:, k][(slice(None),) + index].mean(0), colour, 1.0))
            ax.plot(*means[:, k, [i, j]].mean(0), marker="x", color="black", markersize=7)
        ax.set_xlabel(names[i])
        ax.set_ylabel(names[j])
        ax.set_title("clusters: faint = posterior draws, solid = mean (2 sd)", fontsize=9)
    grid[0].legend(loc="best", fontsize=8)
    return grid


def plot_membership_intervals(model, X=None, *, n_points=15, ax=None):
    """Membership probability (mean and interval) of the most uncertain points.

    Parameters
    ----------
    model : BayesianGMM
    X : array-like, optional
        Defaults to the training data.
    n_points : int
        How many of the least confident points to show (fewer when fewer
        points have confidence below 0.999, but at least 5).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    values = plotted_data(model, X)
    summary = model.membership_summary(values)
    confidence = summary["confidence"].values
    shown = max(5, min(n_points, int((confidence < 0.999).sum())))
    order = np.argsort(confidence)[:shown]
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 0.28 * len(order) + 1.5))
    n_components = summary.sizes["component"]
    offsets = np.linspace(-0.25, 0.25, n_components) if n_components > 1 else [0.0]
    for k in range(n_components):
        prob = summary["prob"].values[order, k]
        lower = summary["prob_lower"].values[order, k]
        upper = summary["prob_upper"].values[order, k]
        rows = np.arange(len(order)) + offsets[k]
        # The mean can sit just outside a skewed equal-tailed interval.
        errors = [np.maximum(prob - lower, 0.0), np.maximum(upper - prob, 0.0)]
        ax.errorbar(prob, rows, xerr=errors, fmt="o", markersize=3,
                    color=COLOURS[k % 10], label=f"component {k}", capsize=2)
    ax.set_yticks(np.arange(len(order)))
    ax.set_yticklabels([f"row {i}" for i in order], fontsize=7)
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel(f"P(component) with {summary.attrs.get('interval', 0.94):.0%} interval")
    ax.set_title("least certain memberships")
    ax.invert_yaxis()
    ax.legend(fontsize=8, loc="lower right")
    return ax


def _mark_ineligible(ax, ks, rows, colour):
    """Hollow markers over the elpd of the rows that failed the label-invariant gates."""
    if "converged" not in rows or rows["converged"].astype(bool).all():
        return
    out = ~rows["converged"].astype(bool).to_numpy()
    ax.plot(ks[out], rows["elpd_loo"].to_numpy()[out], "o", markerfacecolor="white",
            markeredgecolor=colour, markersize=8, linestyle="none", zorder=4,
            label="not eligible (label-invariant gates failed)")


def _plot_structures(selection, ax):
    """Two panels: elpd +/- SE by K, one line per structure, and EM's BIC per structure."""
    table = selection.table
    if ax is None:
        _, ax = plt.subplots(1, 2, figsize=(11, 4))
    panels = np.ravel(ax)
    if panels.size != 2:
        raise ValueError("With several covariance structures the K plot has two panels (elpd "
                         "and BIC); pass ax=(elpd_ax, bic_ax), or no ax.")
    elpd_ax, bic_ax = panels
    structures = list(table.index.unique("covariance_type"))
    # Shift each structure's points a little so that their error bars do not overlap.
    shifts = 0.06 * (np.arange(len(structures)) - (len(structures) - 1) / 2)
    for position, structure in enumerate(structures):
        rows = table.xs(structure, level="covariance_type")
        ks = rows.index.to_numpy()
        colour = f"C{position % 10}"
        elpd_ax.errorbar(ks + shifts[position], rows["elpd_loo"], yerr=rows["se"], fmt="o-",
                         color=colour, capsize=3, label=structure)
        _mark_ineligible(elpd_ax, ks + shifts[position], rows, colour)
        bic_ax.plot(ks, rows["bic_lower_is_better"], "s--", color=colour, label=structure)
    if selection.best_k is not None:
        elpd_ax.axvline(selection.best_k, linestyle=":",
                        color=f"C{structures.index(selection.best_covariance_type) % 10}",
                        label=f"chosen: {selection.best_covariance_type}, K = {selection.best_k}")
    for panel, criterion, title in ((elpd_ax, "elpd (LOO)",
                                     "elpd LOO ± SE by structure (higher is better)"),
                                    (bic_ax, "BIC", "EM BIC by structure (lower is better)")):
        panel.set_xlabel("number of components K")
        panel.set_xticks(table.index.unique("K"))
        panel.set_ylabel(criterion)
        panel.set_title(title)
    handles, labels = elpd_ax.get_legend_handles_labels()
    distinct = dict(zip(labels, handles, strict=True))  # one hollow-marker entry for all
    shown = structures + [label for label in distinct if label not in structures]
    elpd_ax.legend([distinct[label] for label in shown], shown, fontsize=8, loc="upper center",
                   bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    bic_ax.legend(title="covariance_type", fontsize=8)
    return panels


def plot_k_selection(selection, ax=None):
    """Plot elpd (LOO) +/- SE by K beside EM's BIC; ineligible fits are drawn hollow.

    With one covariance structure, one elpd line with BIC on a twin axis.
    With several (a (covariance_type, K) table), two panels side by side,
    as mclust's BIC plot: elpd +/- SE by K with one line per structure
    (shifted a little along K so the error bars stay apart), and EM's BIC
    by K with one line per structure, in the same colours.

    Parameters
    ----------
    selection : KSelection
    ax : matplotlib Axes, or a pair of Axes with several structures, optional

    Returns
    -------
    matplotlib Axes or ndarray of two Axes
        One structure: the elpd axis (the BIC axis is its twin).  Several:
        the elpd panel and the BIC panel.
    """
    table = selection.table
    if table.index.nlevels > 1:
        return _plot_structures(selection, ax)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    ks = table.index.to_numpy()
    ax.errorbar(ks, table["elpd_loo"], yerr=table["se"], fmt="o-", color="C0", capsize=3,
                label="elpd LOO ± SE (higher is better)")
    _mark_ineligible(ax, ks, table, "C0")
    if selection.best_k is not None:
        ax.axvline(selection.best_k, color="C0", linestyle=":",
                   label=f"chosen K = {selection.best_k}")
    ax.set_xlabel("number of components K")
    ax.set_ylabel("elpd (LOO)", color="C0")
    ax.set_xticks(ks)
    twin = ax.twinx()
    twin.plot(ks, table["bic_lower_is_better"], "s--", color="C3", label="EM BIC (lower is better)")
    twin.set_ylabel("BIC", color="C3")
    handles = ax.get_legend_handles_labels()
    twin_handles = twin.get_legend_handles_labels()
    ax.legend(handles[0] + twin_handles[0], handles[1] + twin_handles[1], fontsize=8,
              loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    ax.set_title("choosing K")
    return ax


def plot_density_1d(model, *, grid=None, ax=None, bins=30):
    """Posterior-predictive density of a 1-D model with its credible band.

    Parameters
    ----------
    model : BayesianGMM
        Fitted on one feature.
    grid : array-like, optional
        Evaluation points; defaults to the data range plus 10%.
    ax : matplotlib Axes, optional
    bins : int
        Histogram bins of the data.

    Returns
    -------
    matplotlib Axes
    """
    values = model.idata_.observed_data[OBSERVED].values[:, 0]
    name = str(model.idata_.posterior["feature"].values[0])
    grid = padded_grid(values, 300) if grid is None else np.asarray(grid, dtype=float)
    density = model.density_summary(grid[:, None])
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    ax.hist(values, bins=bins, density=True, color="0.85", edgecolor="0.6", label="data")
    ax.fill_between(grid, np.exp(density["lower"]), np.exp(density["upper"]), color="C0",
                    alpha=0.3, label=f"{density.attrs['interval']:.0%} band over draws")
    ax.plot(grid, np.exp(density["log_density"]), color="C0", label="posterior predictive")
    ax.set_xlabel(name)
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    return ax


def _arviz_plot(function, model, var_names, **kwargs):
    collection = function(model.idata_, var_names=list(var_names), backend="matplotlib", **kwargs)
    figure = collection.viz["figure"].item()
    n_axes = len(figure.axes)
    width, _ = figure.get_size_inches()
    figure.set_size_inches(max(width, 11.0), max(2.2 * np.ceil(n_axes / 4), 2.6 * n_axes / 4))
    figure.tight_layout()
    return collection


def plot_rank(model, var_names=("weights", "means")):
    """Rank (ECDF difference) plots of relabelled draws; returns arviz-plots' PlotCollection."""
    import arviz_plots as azp

    return _arviz_plot(azp.plot_rank, model, var_names)


def plot_trace(model, var_names=("weights", "means")):
    """Trace and density of every relabelled parameter (one row each); a PlotCollection."""
    import arviz_plots as azp

    return _arviz_plot(azp.plot_trace_dist, model, var_names, compact=False)
