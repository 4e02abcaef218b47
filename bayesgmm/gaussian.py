"""The Gaussian log density and the responsibilities, shared by EM and the Bayesian side.

Numpy only.  Both functions are batched over leading axes, so EM (one
parameter set) and posterior summaries (one parameter set per draw) run the
same arithmetic.  The density follows scikit-learn's
``_estimate_log_gaussian_prob`` for full covariances term by term (one matrix
product of the data with the stacked precision Cholesky factors), so EM
reproduces scikit-learn's per-iteration log-likelihood to rounding error.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["LOG_2PI", "log_gaussian_full", "normalize"]

LOG_2PI = math.log(2.0 * math.pi)


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
    """
    *batch, n_components, n_features = means.shape
    stacked = np.swapaxes(precisions_cholesky, -3, -2).reshape(
        *batch, n_features, n_components * n_features
    )
    projected = X @ stacked
    projected -= np.einsum("...kd,...kde->...ke", means, precisions_cholesky).reshape(
        *batch, 1, n_components * n_features
    )
    np.square(projected, out=projected)
    mahalanobis = projected.reshape(*batch, X.shape[0], n_components, n_features).sum(axis=-1)
    log_det = np.log(np.diagonal(precisions_cholesky, axis1=-2, axis2=-1)).sum(axis=-1)
    return -0.5 * (n_features * LOG_2PI + mahalanobis) + log_det[..., None, :]


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

    Examples
    --------
    >>> import numpy as np
    >>> log_norm, responsibilities = normalize(np.log([[0.2, 0.6]]))
    >>> np.round(responsibilities, 3).tolist(), round(float(np.exp(log_norm[0])), 3)
    ([[0.25, 0.75]], 0.8)
    """
    top = joint.max(axis=-1, keepdims=True)
    top[~np.isfinite(top)] = 0.0
    responsibilities = np.exp(joint - top)
    total = responsibilities.sum(axis=-1, keepdims=True)
    responsibilities /= total
    return (top + np.log(total))[..., 0], responsibilities
