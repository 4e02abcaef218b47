"""The synthetic data of the scale issue: D = 5, K = 4 separated Gaussian clusters.

One generator shared by the scale benchmark, its reference run and the
large-data notebook, so every number in ``reports/benchmarks/scale.md`` is
about the same data.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["ScaleTruth", "SCALE_TRUTH", "synthetic_clusters"]


class ScaleTruth(NamedTuple):
    """The true mixture: weights (K,), means (K, D), covariances (K, D, D)."""

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray


def _truth() -> ScaleTruth:
    rng = np.random.default_rng(20261130)
    n_components, n_features = 4, 5
    weights = np.array([0.4, 0.3, 0.2, 0.1])
    means = 6.0 * np.eye(n_components, n_features) + rng.normal(0.0, 0.5,
                                                                (n_components, n_features))
    covariances = np.empty((n_components, n_features, n_features))
    for k in range(n_components):
        factor = rng.normal(0.0, 0.4, (n_features, n_features))
        covariances[k] = factor @ factor.T + np.diag(rng.uniform(0.5, 1.5, n_features))
    return ScaleTruth(weights, means, covariances)


SCALE_TRUTH = _truth()
"""Four clusters 6 units apart along the axes, correlated covariances, weights 0.4 to 0.1."""


def synthetic_clusters(n_samples: int, seed: int = 0,
                       dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Rows drawn from :data:`SCALE_TRUTH`.

    Parameters
    ----------
    n_samples : int
    seed : int
    dtype : numpy dtype

    Returns
    -------
    X : ndarray of shape (n_samples, 5)
    labels : ndarray of shape (n_samples,)

    Examples
    --------
    >>> X, labels = synthetic_clusters(1000)
    >>> X.shape, np.bincount(labels).argmax()
    ((1000, 5), np.int64(0))
    """
    rng = np.random.default_rng(seed)
    truth = SCALE_TRUTH
    labels = rng.choice(len(truth.weights), size=n_samples, p=truth.weights)
    chol = np.linalg.cholesky(truth.covariances)
    noise = rng.standard_normal((n_samples, truth.means.shape[1]))
    X = truth.means[labels] + np.einsum("nij,nj->ni", chol[labels], noise)
    return X.astype(dtype, copy=False), labels
