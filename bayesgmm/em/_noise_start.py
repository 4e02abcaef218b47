"""Where EM's noise component starts: the points sparser than the noise itself.

mclust's ``initialization = list(noise = ...)``, seeded as its documentation
advises from nearest-neighbour cleaning (Byers & Raftery 1998): a point
starts as noise when its k-nearest-neighbour density estimate is below
``1 / V``, the noise density at full weight.  The neighbours use no
randomness, so a fit stays deterministic under ``random_state``.

Frequency weights: a row of weight ``w`` is ``w`` copies of itself, so its
own ``w - 1`` other copies lie at distance 0 and each neighbour counts its
weight; the ``k``-th neighbour is at the distance where that weight reaches
``k``, and ``n`` is the total weight.  With integer weights this is the
estimate on the repeated rows exactly; with all weights 1 it is the
unweighted estimate, bit for bit.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from sklearn.neighbors import NearestNeighbors

__all__ = [
    "MIN_START_NOISE_WEIGHT",
    "NOISE_START_NEIGHBOURS",
    "NoiseStart",
    "neighbour_radius",
    "noise_start",
]

NOISE_START_NEIGHBOURS = 10
"""``k`` of the k-nearest-neighbour density that picks the points starting as noise."""

MIN_START_NOISE_WEIGHT = 0.01
"""Smallest starting noise weight: EM cannot raise a weight that starts at zero."""


class NoiseStart(NamedTuple):
    """How EM with a noise component starts.

    Attributes
    ----------
    log_density : float
        ``log(1 / V)`` on the scale EM runs on.
    points : ndarray of bool, shape (n_samples,)
        Points that start as noise; the Gaussian initialiser sees the others.
    weight : float
        Starting noise weight: the (weighted) share of ``points``, at least
        :data:`MIN_START_NOISE_WEIGHT`.
    """

    log_density: float
    points: np.ndarray
    weight: float


def neighbour_radius(Z: np.ndarray, weights: np.ndarray, neighbours: float) -> np.ndarray:
    """Distance from every point to where its neighbours' weight reaches ``neighbours``.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_features)
        At least two rows.
    weights : ndarray of shape (n_samples,)
        Positive frequency weights; a point's own ``max(w - 1, 0)`` other
        copies count as neighbours at distance 0.
    neighbours : float
        Positive, at most the total weight less one.

    Returns
    -------
    ndarray of shape (n_samples,)
        With unit weights, the distance to the ``neighbours``-th nearest
        other point.

    Examples
    --------
    >>> Z = np.array([[0.0], [1.0], [3.0]])
    >>> neighbour_radius(Z, np.ones(3), 2).tolist()
    [3.0, 2.0, 3.0]
    >>> neighbour_radius(Z, np.array([1.0, 2.0, 1.0]), 2).tolist()
    [1.0, 1.0, 2.0]
    """
    n_samples = Z.shape[0]
    own_copies = np.maximum(weights - 1.0, 0.0)
    n_queried = min(math.ceil(neighbours), n_samples - 1)
    while True:
        distances, indices = NearestNeighbors(n_neighbors=n_queried).fit(Z).kneighbors()
        reached = own_copies[:, None] + np.cumsum(weights[indices], axis=1) >= neighbours
        if reached[:, -1].all() or n_queried == n_samples - 1:
            break
        n_queried = min(2 * n_queried, n_samples - 1)
    # Where even every neighbour falls short (weights below one), the farthest counts.
    position = np.where(reached[:, -1], np.argmax(reached, axis=1), n_queried - 1)
    radius = distances[np.arange(n_samples), position]
    return np.where(own_copies >= neighbours, 0.0, radius)


def noise_start(
    Z: np.ndarray,
    log_density: float,
    n_components: int,
    sample_weight: np.ndarray | None = None,
) -> NoiseStart:
    """Pick the points that start as noise: sparser than the noise at full weight.

    The density at a point is estimated as ``k / (n * ball(r_k))``, with
    ``r_k`` the distance to its ``k``-th nearest neighbour
    (:data:`NOISE_START_NEIGHBOURS`; Loftsgaarden & Quesenberry 1965); the
    point starts as noise when that is below ``1 / V``.  Should fewer than
    ``n_components`` points (of weight) remain, none starts as noise.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_features)
        Data on the scale EM runs on.
    log_density : float
        ``log(1 / V)`` on that scale.
    n_components : int
    sample_weight : ndarray of shape (n_samples,), optional
        Positive frequency weights (module notes).

    Returns
    -------
    NoiseStart
    """
    n_samples, n_features = Z.shape
    weights = np.ones(n_samples) if sample_weight is None else sample_weight
    total = weights.sum()
    n_neighbours = min(NOISE_START_NEIGHBOURS, total - 1)
    points = np.zeros(n_samples, dtype=bool)
    if n_neighbours > 0 and n_samples > 1:
        radius = neighbour_radius(Z, weights, n_neighbours)
        log_unit_ball = 0.5 * n_features * math.log(math.pi) - math.lgamma(0.5 * n_features + 1)
        with np.errstate(divide="ignore"):
            log_radius = np.log(radius)
        log_estimate = math.log(n_neighbours / total) - log_unit_ball - n_features * log_radius
        points = log_estimate < log_density
    if total - weights[points].sum() < n_components:
        points[:] = False
    weight = max(weights[points].sum() / total, MIN_START_NOISE_WEIGHT)
    return NoiseStart(log_density, points, float(weight))
