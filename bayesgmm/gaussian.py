"""The Gaussian log density and the responsibilities, shared by EM and the Bayesian side.

Numpy only.  Both functions are batched over leading axes, so EM (one
parameter set) and posterior summaries (one parameter set per draw) run the
same arithmetic.  The density follows scikit-learn's
``_estimate_log_gaussian_prob`` for full covariances term by term (one matrix
product of the data with the stacked precision Cholesky factors), so EM
reproduces scikit-learn's per-iteration log-likelihood to rounding error.

Far points (a decision).  A point more than ``sqrt(MAX_MAHALANOBIS)`` (1e150)
standard deviations from a component has a log density below -5e299, and
beyond ~1e154 one that float64 cannot hold; squaring its projections
overflows and ``inf - inf`` used to give NaN probabilities.  Such entries are
recomputed from the log of the Mahalanobis term, found with the point and mean
divided by their size first (no overflow), and reported as a log density
compressed monotonically into ``[-MAX_MAHALANOBIS, -MAX_MAHALANOBIS / 2)``.
Every value is then finite and keeps its order, so the responsibilities of a
far point are the limit along its direction: the component with the smallest
Mahalanobis distance takes it (log weights and determinants, a few hundred
nats at most, cannot compete with differences of this size).  Read any log
density below -1e299 as "astronomically unlikely", not as a number.  Entries
within the limit are computed exactly as before, bit for bit.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["LOG_2PI", "MAX_MAHALANOBIS", "log_gaussian_full", "normalize"]

LOG_2PI = math.log(2.0 * math.pi)

MAX_MAHALANOBIS = 1e300
"""Largest squared Mahalanobis distance whose log density is reported as is."""

_LOG_MAX_MAHALANOBIS = math.log(MAX_MAHALANOBIS)
_FLOAT_MAX = float(np.finfo(np.float64).max)


def log_gaussian_full(
    X: np.ndarray, means: np.ndarray, precisions_cholesky: np.ndarray
) -> np.ndarray:
    """``log N(x_i | mean_k, (U_k U_k^T)^{-1})`` for every point and component.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    means : ndarray of shape (..., n_components, n_features)
    precisions_cholesky : ndarray of shape (..., n_components, n_features, n_features)
        Upper ``U_k`` with ``U_k U_k^T`` the precision matrix.

    Returns
    -------
    ndarray of shape (..., n_samples, n_components)
        Finite for finite parameters and any ``X`` (even ``+-inf``
        coordinates); below ``-MAX_MAHALANOBIS / 2`` the values are
        compressed (module docstring).

    Notes
    -----
    ``X @ U - mean @ U`` loses digits when the data sit far from the origin
    relative to their spread; callers working in the user's units centre
    ``X`` and ``means`` by the same vector first (the density is invariant).

    Examples
    --------
    >>> import numpy as np
    >>> float(log_gaussian_full(np.zeros((1, 1)), np.zeros((1, 1)), np.ones((1, 1, 1)))[0, 0])
    -0.9189385332046727
    >>> far = log_gaussian_full(np.array([[1e200], [-1e300]]), np.zeros((2, 1)),
    ...                         np.array([[[1.0]], [[2.0]]]))
    >>> bool(np.all(far > -1e300)), bool(np.all(far[:, 0] > far[:, 1]))
    (True, True)
    """
    *batch, n_components, n_features = means.shape
    stacked = np.swapaxes(precisions_cholesky, -3, -2).reshape(
        *batch, n_features, n_components * n_features
    )
    # Far points overflow here; those entries are recomputed below.
    with np.errstate(over="ignore", invalid="ignore"):
        projected = X @ stacked
        projected -= np.einsum("...kd,...kde->...ke", means, precisions_cholesky).reshape(
            *batch, 1, n_components * n_features
        )
        np.square(projected, out=projected)
        mahalanobis = projected.reshape(*batch, X.shape[0], n_components, n_features).sum(
            axis=-1
        )
    log_det = np.log(np.diagonal(precisions_cholesky, axis1=-2, axis2=-1)).sum(axis=-1)
    density = -0.5 * (n_features * LOG_2PI + mahalanobis) + log_det[..., None, :]
    far = ~(mahalanobis <= MAX_MAHALANOBIS)
    if far.any():
        density[far] = _far_log_density(X, means, precisions_cholesky, far, log_det)
    return density


def _log_mahalanobis(x: np.ndarray, mean: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """``log ||(x - mean) @ U||^2`` row by row, without overflow.

    Parameters
    ----------
    x, mean : ndarray of shape (n_entries, n_features)
        ``x`` may hold ``+-inf``: the point is then taken at the largest
        float along the direction of its infinite coordinates.
    factor : ndarray of shape (n_entries, n_features, n_features)

    Returns
    -------
    ndarray of shape (n_entries,)
    """
    size = np.minimum(np.maximum(np.abs(x).max(axis=-1), np.abs(mean).max(axis=-1)),
                      _FLOAT_MAX)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = np.where(np.isinf(x), np.sign(x), x / size) - mean / size
        projected = np.einsum("md,mde->me", unit, factor)
        length = np.abs(projected).max(axis=-1, keepdims=True)
        log_square = np.log(np.square(projected / length).sum(axis=-1))
        return np.where(length[:, 0] > 0.0,
                        2.0 * (np.log(size[:, 0]) + np.log(length[:, 0])) + log_square,
                        -np.inf)


def _far_log_density(X, means, precisions_cholesky, far, log_det) -> np.ndarray:
    """Log densities of the ``far`` entries: exact while representable, then compressed.

    Above ``MAX_MAHALANOBIS`` the value is
    ``-MAX_MAHALANOBIS / 2 * (2 - log(MAX_MAHALANOBIS) / log(mahalanobis))``:
    continuous with the exact value at the limit, decreasing, and never
    below ``-MAX_MAHALANOBIS``.  Determinants are absorbed at that size.
    """
    *where, rows, components = np.nonzero(far)
    parameters = (*where, components)
    log_mahalanobis = _log_mahalanobis(X[rows], means[parameters], precisions_cholesky[parameters])
    n_features = X.shape[1]
    within = log_mahalanobis <= _LOG_MAX_MAHALANOBIS
    exact = -0.5 * (n_features * LOG_2PI + np.exp(np.minimum(log_mahalanobis,
                                                             _LOG_MAX_MAHALANOBIS)))
    with np.errstate(invalid="ignore", divide="ignore"):
        compressed = -0.5 * MAX_MAHALANOBIS * (2.0 - _LOG_MAX_MAHALANOBIS / log_mahalanobis)
    return np.where(within, exact + log_det[parameters], compressed)


def normalize(joint: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split log joint densities into ``log p(x)`` and responsibilities.

    Parameters
    ----------
    joint : ndarray of shape (..., n_components)
        ``log w_k + log N(x | mean_k, cov_k)``.

    Returns
    -------
    log_norm : ndarray of shape (...)
        ``log p(x)`` by log-sum-exp.
    responsibilities : ndarray of shape (..., n_components)
        ``P(z = k | x)``; each row sums to one.

    Notes
    -----
    A row whose every entry is ``-inf`` (no component gives the point a
    density; :func:`log_gaussian_full` never produces one for a finite
    point with a positive weight) carries nothing to prefer one component:
    its ``log_norm`` is ``-inf`` and its responsibilities are uniform, where
    ``0 / 0`` used to give NaN.  NaN entries still give NaN: they are a bug
    upstream.

    Examples
    --------
    >>> import numpy as np
    >>> log_norm, responsibilities = normalize(np.log([[0.2, 0.6]]))
    >>> np.round(responsibilities, 3).tolist(), round(float(np.exp(log_norm[0])), 3)
    ([[0.25, 0.75]], 0.8)
    >>> log_norm, responsibilities = normalize(np.full((1, 2), -np.inf))
    >>> log_norm.tolist(), responsibilities.tolist()
    ([-inf], [[0.5, 0.5]])
    """
    top = joint.max(axis=-1, keepdims=True)
    empty = (top == -np.inf)[..., 0]
    top[~np.isfinite(top)] = 0.0
    responsibilities = np.exp(joint - top)
    responsibilities[empty] = 1.0
    total = responsibilities.sum(axis=-1, keepdims=True)
    responsibilities /= total
    log_norm = (top + np.log(total))[..., 0]
    log_norm[empty] = -np.inf
    return log_norm, responsibilities
