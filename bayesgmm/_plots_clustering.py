"""Figures of the partition itself: co-clustering heatmap, number of occupied components.

* :func:`plot_coclustering`: the posterior probability that two points share
  a component, rows and columns ordered by cluster;
* :func:`plot_occupied_components`: the posterior of the number of non-empty
  components, read as the number of clusters in a sparse overfitted mixture.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from bayesgmm._plots_common import COLOURS, NOISE_COLOUR, plotted_data
from bayesgmm.noise import NOISE_LABEL

__all__ = ["coclustering_order", "plot_coclustering", "plot_occupied_components"]


def coclustering_order(labels, confidence) -> np.ndarray:
    """Order points by most probable component, then by falling confidence within each.

    Points the noise component takes (label -1) come last.

    Parameters
    ----------
    labels : array-like of int, shape (n_samples,)
        Most probable component of each point.
    confidence : array-like of float, shape (n_samples,)
        Posterior probability of that component.

    Returns
    -------
    ndarray of int, shape (n_samples,)
        Indices that put each cluster's points next to each other.

    Examples
    --------
    >>> coclustering_order([1, 0, -1, 1, 0], [0.9, 0.6, 0.99, 0.95, 0.8]).tolist()
    [4, 1, 3, 0, 2]
    """
    labels = np.asarray(labels)
    confidence = np.asarray(confidence, dtype=float)
    last = labels.max(initial=0) + 1
    cluster_key = np.where(labels == NOISE_LABEL, last, labels)
    return np.lexsort((-confidence, cluster_key))


def _cluster_blocks(sorted_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start of every run of equal labels, and the run's label."""
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    return starts, sorted_labels[starts]


def plot_coclustering(model, X=None, ax=None, *, max_draws=None, cmap="viridis"):
    """Heatmap of the posterior probability that two points share a component.

    Rows and columns are ordered by cluster (most probable component, the
    noise last), and within a cluster from the most to the least confident
    point, so that a clear cluster is a bright square on the diagonal whose
    edges fade where its uncertain points sit.  White lines mark the cluster
    boundaries; bright off-diagonal blocks are clusters the posterior does
    not keep apart.  Unlike a label, the co-clustering probability does not
    depend on how the components are numbered.

    Parameters
    ----------
    model : BayesianGMM
        A fitted model.
    X : array-like or DataFrame of shape (n_samples, n_features), optional
        Points to compare; defaults to the training data.  The cost is
        ``draws x n_samples^2``.
    ax : matplotlib Axes, optional
    max_draws : int, optional
        Use this many evenly spaced posterior draws (for large ``X``).
    cmap : str or matplotlib Colormap, default="viridis"

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> from bayesgmm import BayesianGMM
    >>> from bayesgmm.datasets import load_faithful
    >>> model = BayesianGMM(2, random_state=0, progressbar=False).fit(load_faithful())
    >>> ax = plot_coclustering(model, max_draws=200)
    >>> ax.images[0].get_array().shape, len(ax.lines)  # 272 points; one boundary each way
    ((272, 272), 2)
    """
    values = plotted_data(model, X)
    summary = model.membership_summary(values, max_draws=max_draws)
    labels = summary["label"].values
    order = coclustering_order(labels, summary["confidence"].values)
    matrix = model.coclustering(values, max_draws=max_draws)[np.ix_(order, order)]
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 5.5))
    image = ax.imshow(matrix, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.figure.colorbar(image, ax=ax, label="P(two points share a component)")
    starts, block_labels = _cluster_blocks(labels[order])
    for boundary in starts[1:] - 0.5:
        ax.axhline(boundary, color="white", linewidth=0.8)
        ax.axvline(boundary, color="white", linewidth=0.8)
    centres = (starts + np.r_[starts[1:], len(order)] - 1) / 2
    names = ["noise" if label == NOISE_LABEL else str(label) for label in block_labels]
    colours = [NOISE_COLOUR if label == NOISE_LABEL else COLOURS[label % 10]
               for label in block_labels]
    ax.set_xticks(centres, names)
    ax.set_yticks(centres, names)
    for text, colour in zip(ax.get_xticklabels() + ax.get_yticklabels(), colours * 2,
                            strict=True):
        text.set_color(colour)
    ax.set_xlabel("points by most probable component (most confident first)")
    ax.set_ylabel("points by most probable component")
    ax.set_title("posterior co-clustering")
    return ax


def plot_occupied_components(model, X=None, ax=None, *, random_state=0):
    """Bar chart of the posterior of the number of occupied (non-empty) components.

    How to read it: fit more components than you expect clusters, with a
    small Dirichlet concentration (a sparse overfitted mixture,
    ``GMMPriors(weight_concentration=0.01)``); the posterior then empties
    the components the data do not need, and the number still holding
    points estimates the number of clusters (Rousseau & Mengersen 2011;
    Malsiner-Walli, Fruehwirth-Schnatter & Gruen 2016).  It comes from one
    fit, without a prior over K or one fit per K, and complements
    :func:`bayesgmm.compare_k`.  With a concentration near 1 or above,
    superfluous components keep a few points each and the bars overstate
    the number of clusters; with ``n_components`` no larger than the number
    of clusters the chart only says that every component is used.

    Parameters
    ----------
    model : BayesianGMM
        A fitted model.
    X : array-like or DataFrame of shape (n_samples, n_features), optional
        Data to allocate; defaults to the training data.
    ax : matplotlib Axes, optional
    random_state : int, numpy.random.Generator or None, default=0
        For the allocations drawn in
        :meth:`~bayesgmm.BayesianGMM.occupied_components`.

    Returns
    -------
    matplotlib Axes
        One bar per possible count (1 to ``n_components``; from 0 with a
        noise component), heights summing to 1.

    Examples
    --------
    >>> from bayesgmm import BayesianGMM
    >>> from bayesgmm.datasets import load_faithful
    >>> model = BayesianGMM(2, random_state=0, progressbar=False).fit(load_faithful())
    >>> ax = plot_occupied_components(model)
    >>> [round(float(bar.get_height()), 2) for bar in ax.patches]  # both components always used
    [0.0, 1.0]
    """
    probabilities = model.occupied_components(
        None if X is None else plotted_data(model, X), random_state=random_state)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    counts = probabilities.index.to_numpy()
    bars = ax.bar(counts, probabilities.to_numpy(), color="C2", width=0.7)
    ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_xticks(counts)
    ax.set_ylim(0.0, 1.1)
    ax.set_xlabel(f"number of occupied components (of K = {model.n_components})")
    ax.set_ylabel("posterior probability")
    ax.set_title("posterior number of occupied components")
    return ax
