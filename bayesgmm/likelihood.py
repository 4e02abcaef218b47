"""Per-draw, per-point, per-component log densities, vectorised and streamed.

Every posterior summary (pointwise log-likelihood for LOO, memberships,
predictive densities, Stephens relabelling) is built on :func:`log_joint`,
``log w_k + log N(x_i | mu_k, Sigma_k)`` for a batch of draws.  The full
``(n_draws, n_obs, n_components)`` array is never materialised for large
inputs: :func:`iter_obs_chunks` yields it block by block over observations,
sized so that one block holds about :data:`DEFAULT_BUDGET` numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from bayesgmm.logdensity import ModelParameters

__all__ = [
    "DEFAULT_BUDGET",
    "flatten_draws",
    "log_joint",
    "iter_obs_chunks",
    "log_responsibilities",
    "pointwise_log_likelihood",
]

DEFAULT_BUDGET = 2**21
_LOG_2PI = math.log(2.0 * math.pi)


def flatten_draws(parameters: ModelParameters, n_sample_dims: int = 2) -> ModelParameters:
    """Merge the leading ``(chain, draw)`` axes into one draw axis."""
    return ModelParameters(
        *(
            np.reshape(a, (-1,) + a.shape[n_sample_dims:])
            for a in parameters
        )
    )


def _precompute(parameters: ModelParameters):
    chol = parameters.covariance_cholesky
    inverse_chol_t = np.swapaxes(np.linalg.inv(chol), -1, -2)
    log_det = np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(axis=-1)
    with np.errstate(divide="ignore"):
        log_weights = np.log(parameters.weights)
    n_features = parameters.means.shape[-1]
    constant = log_weights - 0.5 * n_features * _LOG_2PI - log_det
    return inverse_chol_t, constant


def log_joint(X: np.ndarray, parameters: ModelParameters) -> np.ndarray:
    """``log w_k + log N(x_i | mu_k, Sigma_k)`` for every draw, point and component.

    Parameters
    ----------
    X : ndarray of shape (n_obs, n_features)
    parameters : ModelParameters
        Batched over one leading draw axis of length ``n_draws``.

    Returns
    -------
    ndarray of shape (n_draws, n_obs, n_components)
    """
    inverse_chol_t, constant = _precompute(parameters)
    return _log_joint(X, parameters.means, inverse_chol_t, constant)


def _log_joint(X, means, inverse_chol_t, constant):
    difference = X[None, None, :, :] - means[:, :, None, :]
    standardized = difference @ inverse_chol_t
    mahalanobis = np.einsum("skni,skni->skn", standardized, standardized)
    return np.swapaxes(constant[:, :, None] - 0.5 * mahalanobis, 1, 2)


def iter_obs_chunks(
    X: np.ndarray, parameters: ModelParameters, budget: int = DEFAULT_BUDGET
) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield ``(rows, log_joint(X[rows], parameters))`` over blocks of observations.

    Parameters
    ----------
    X : ndarray of shape (n_obs, n_features)
    parameters : ModelParameters
        Batched over one draw axis.
    budget : int
        Approximate number of floats per block of the
        ``(n_draws, n_components, rows, n_features)`` intermediate.

    Yields
    ------
    rows : slice
    block : ndarray of shape (n_draws, rows, n_components)
    """
    n_draws, n_components, n_features = parameters.means.shape
    rows_per_block = max(1, budget // max(1, n_draws * n_components * n_features))
    inverse_chol_t, constant = _precompute(parameters)
    for start in range(0, X.shape[0], rows_per_block):
        rows = slice(start, min(start + rows_per_block, X.shape[0]))
        yield rows, _log_joint(X[rows], parameters.means, inverse_chol_t, constant)


def log_responsibilities(joint: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split log joint densities into log p(x) and log responsibilities.

    Parameters
    ----------
    joint : ndarray of shape (..., n_components)

    Returns
    -------
    log_norm : ndarray of shape (...)
    log_resp : ndarray of shape (..., n_components)
    """
    top = joint.max(axis=-1, keepdims=True)
    log_norm = top + np.log(np.exp(joint - top).sum(axis=-1, keepdims=True))
    return log_norm[..., 0], joint - log_norm


def pointwise_log_likelihood(
    X: np.ndarray, parameters: ModelParameters, budget: int = DEFAULT_BUDGET
) -> np.ndarray:
    """``log p(x_i | theta_s)`` under the mixture, for every draw and point.

    Parameters
    ----------
    X : ndarray of shape (n_obs, n_features)
    parameters : ModelParameters
        Batched over one draw axis.
    budget : int

    Returns
    -------
    ndarray of shape (n_draws, n_obs)
    """
    out = np.empty((parameters.weights.shape[0], X.shape[0]))
    for rows, joint in iter_obs_chunks(X, parameters, budget):
        out[:, rows] = log_responsibilities(joint)[0]
    return out
