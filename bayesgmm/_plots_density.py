"""Contours of the 2-D posterior-predictive density with its credible band.

:func:`density_grid` evaluates the density on a grid over two features (the
exact 2-D marginal when the model has more); :func:`plot_density_contours`
draws it.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from bayesgmm._checks import check_number
from bayesgmm._plots_common import padded_grid, plotted_data
from bayesgmm.density import predictive_density

__all__ = ["ENCLOSED", "DensityGrid", "density_grid", "feature_pair", "plot_density_contours"]

ENCLOSED = (0.99, 0.95, 0.75, 0.5, 0.25)
"""Shares of the points the default contours enclose, from the outermost in."""


class DensityGrid(NamedTuple):
    """Predictive log density over a grid of two features, with its band.

    ``x`` and ``y`` are of shape (grid_size,); the others (grid_size,
    grid_size), rows along ``y``, as :func:`matplotlib.pyplot.contour` takes
    them.  ``lower`` and ``upper`` bound the band of mass ``interval`` over
    posterior draws.
    """

    x: np.ndarray
    y: np.ndarray
    log_density: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    interval: float


def feature_pair(feature_names, features) -> tuple[int, int]:
    """Positions of the two features to draw, checked.

    Parameters
    ----------
    feature_names : sequence of str
        The model's features.
    features : pair of str or int, or None
        Names or positions; None is allowed only with exactly two features.

    Returns
    -------
    tuple of two int

    Examples
    --------
    >>> feature_pair(["a", "b", "c"], ("c", 0))
    (2, 0)
    """
    names = [str(name) for name in feature_names]
    if len(names) == 1:
        raise ValueError(f"The model has one feature ({names[0]}); draw its density with "
                         "bayesgmm.plots.plot_density_1d.")
    if features is None:
        if len(names) == 2:
            return 0, 1
        raise ValueError(f"The model has {len(names)} features ({', '.join(names)}); pass "
                         "features=(first, second), names or positions, to draw the 2-D "
                         "marginal density of two of them.")
    if isinstance(features, str) or len(features) != 2:
        raise ValueError(f"features must be a pair of feature names or positions, got "
                         f"{features!r}.")
    positions = []
    for feature in features:
        if isinstance(feature, numbers.Integral) and not isinstance(feature, bool):
            if not 0 <= feature < len(names):
                raise ValueError(f"Feature position {feature} is out of range: the model has "
                                 f"{len(names)} features ({', '.join(names)}).")
            positions.append(int(feature))
        elif str(feature) in names:
            positions.append(names.index(str(feature)))
        else:
            raise ValueError(f"The model has no feature {feature!r}; choose two of "
                             f"{', '.join(names)}.")
    if positions[0] == positions[1]:
        raise ValueError(f"features repeats {names[positions[0]]!r}; choose two different "
                         "features.")
    return positions[0], positions[1]


def _marginal_density(model, coordinates, pair, n_features, max_draws, interval):
    """Predictive density of points given along two features, the others left missing."""
    points = np.full((coordinates.shape[0], n_features), np.nan)
    points[:, list(pair)] = coordinates
    return predictive_density(points, model._draws(max_draws), interval=interval)


def density_grid(model, values, pair, grid_size=40, *, max_draws=None) -> DensityGrid:
    """Posterior-predictive log density on a grid over two features.

    The other features are left missing (NaN), so each grid point is
    scored by the components' marginals over the two features
    (:func:`bayesgmm.likelihood.log_joint`): the exact 2-D marginal of the
    predictive density, the same computation as
    :meth:`~bayesgmm.BayesianGMM.density_summary` when the model has
    exactly these two features.

    Parameters
    ----------
    model : BayesianGMM
        A fitted model.
    values : ndarray of shape (n_samples, n_features)
        Points whose range (plus 10% each side) the grid spans.
    pair : tuple of two int
        Positions of the features along ``x`` and ``y``.
    grid_size : int, default=40
        Grid points along each axis.
    max_draws : int, optional
        Use this many evenly spaced posterior draws.

    Returns
    -------
    DensityGrid
    """
    check_number("grid_size", grid_size, low=2, integer=True)
    x, y = (padded_grid(values[:, position], grid_size) for position in pair)
    x_mesh, y_mesh = np.meshgrid(x, y)
    density = _marginal_density(model, np.column_stack([x_mesh.ravel(), y_mesh.ravel()]), pair,
                                values.shape[1], max_draws, model.interval)
    shape = x_mesh.shape
    return DensityGrid(x, y, density.log_density.reshape(shape), density.lower.reshape(shape),
                       density.upper.reshape(shape), model.interval)


def _levels_enclosing(model, values, pair, max_draws):
    """Log-density levels whose contours enclose the shares ENCLOSED of the points.

    Returns the distinct levels, increasing, and the share of points at or
    above each (points of equal density, such as a noise component's, can
    make two levels one).
    """
    point_density = _marginal_density(model, values[:, list(pair)], pair, values.shape[1],
                                      max_draws, None).log_density
    levels = np.unique(np.quantile(point_density, 1.0 - np.asarray(ENCLOSED)))
    return levels, (point_density[:, None] >= levels).mean(axis=0)


def plot_density_contours(model, X=None, features=None, ax=None, *, grid_size=40, levels=None,
                          max_draws=None, cmap="viridis"):
    """Contours of the posterior-predictive density of two features, with its band.

    Solid contours are the predictive log density (the mean density over
    posterior draws); at each of the same levels two dashed contours, in the
    same colour, trace the lower and upper ends of the band of mass
    ``model.interval`` over draws: the lower end's contour lies inside the
    solid one and the upper end's outside, so the wider the gap between the
    dashed pair, the less certain the density there.  By default the levels
    are those of the points' own densities, so that the solid contours
    enclose about 99%, 95%, 75%, 50% and 25% of the points; the colorbar
    gives the share inside each (points of equal density, such as those a
    noise component takes, can merge two levels into one).
    The points are drawn on top; axes are in data units.

    With more than two features, ``features`` chooses two and the contours
    are of their 2-D marginal density, the other features integrated out
    (not a slice at fixed values of them); the points are projected onto
    the two features.

    Parameters
    ----------
    model : BayesianGMM
        A fitted model with two or more features.
    X : array-like or DataFrame of shape (n_samples, n_features), optional
        Points to draw, whose range the grid spans and whose densities set
        the default levels; defaults to the training data.
    features : pair of str or int, optional
        Names or positions of the features along x and y; required when the
        model has more than two.
    ax : matplotlib Axes, optional
    grid_size : int, default=40
        Grid points along each axis; the cost is ``draws x grid_size^2``.
    levels : int or sequence of float, optional
        Number of contour levels, or the log-density levels themselves;
        None gives the levels enclosing the shares :data:`ENCLOSED` of the
        points.
    max_draws : int, optional
        Use this many evenly spaced posterior draws.
    cmap : str or matplotlib Colormap, default="viridis"

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> from bayesgmm import BayesianGMM
    >>> from bayesgmm.datasets import load_faithful
    >>> model = BayesianGMM(2, random_state=0, progressbar=False).fit(load_faithful())
    >>> ax = plot_density_contours(model, grid_size=30)
    >>> ax.get_xlabel(), ax.get_ylabel()
    ('eruptions', 'waiting')
    """
    names = [str(name) for name in model.feature_names_in_]
    pair = feature_pair(names, features)
    values = plotted_data(model, X)
    grid = density_grid(model, values, pair, grid_size, max_draws=max_draws)
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 5))
    shares = None
    if levels is None:
        levels, shares = _levels_enclosing(model, values, pair, max_draws)
    solid = ax.contour(grid.x, grid.y, grid.log_density, levels=levels, cmap=cmap,
                       linewidths=1.4)
    for bound in (grid.lower, grid.upper):
        ax.contour(grid.x, grid.y, bound, levels=solid.levels, cmap=cmap, norm=solid.norm,
                   linewidths=0.8, linestyles="dashed")
    colorbar = ax.figure.colorbar(solid, ax=ax, label="log predictive density")
    if shares is not None:
        colorbar.set_ticks(solid.levels, labels=[f"{share:.0%} ({level:.1f})" for level, share
                                                 in zip(solid.levels, shares, strict=True)])
        colorbar.set_label("share of points inside (log predictive density)")
    ax.scatter(values[:, pair[0]], values[:, pair[1]], s=6, color="black", alpha=0.5,
               edgecolors="none")
    ax.legend([Line2D([], [], color="0.3", linewidth=1.4),
               Line2D([], [], color="0.3", linewidth=0.8, linestyle="dashed"),
               Line2D([], [], color="black", marker="o", markersize=3, linestyle="none")],
              ["posterior predictive", f"{grid.interval:.0%} band over draws (same levels)",
               "data"], fontsize=8, loc="best")
    ax.set_xlabel(names[pair[0]])
    ax.set_ylabel(names[pair[1]])
    others = len(names) - 2
    ax.set_title("predictive density" if not others else
                 f"2-D marginal predictive density ({others} other feature"
                 f"{'s' if others > 1 else ''} integrated out)")
    return ax
