"""The E-step of EM for Gaussian mixtures: the state record and the responsibilities.

Part of the pure-function EM described in :mod:`bayesgmm.em._algorithm`.  A
state may carry a uniform noise component (:class:`NoiseComponent`, R's
mclust ``noise``): one more column of the log joint matrix, a constant
``log(weight / V)``.  Rows with missing values
(``patterns`` from :func:`bayesgmm.em._missing.missingness_patterns`) are
scored by their components' marginals over their observed coordinates.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from bayesgmm.em._covariance import get_family
from bayesgmm.em._missing import (
    ConditionalGaussians,
    MissingnessPatterns,
    marginal_log_gaussian,
    pattern_chunks,
)
from bayesgmm.gaussian import normalize
from bayesgmm.noise import NoiseComponent

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "EMState",
    "NoiseComponent",
    "add_noise_component",
    "log_prob_and_responsibilities",
    "marginal_e_steps",
    "row_chunks",
    "state_covariances",
    "weighted_log_prob",
]

DEFAULT_CHUNK_SIZE = 2048


class EMState(NamedTuple):
    """Parameters of a Gaussian mixture, in scikit-learn's shapes.

    Attributes
    ----------
    weights : ndarray of shape (n_components,)
        Gaussian weights; they sum to ``1 - noise.weight`` beside a noise
        component, to one otherwise.
    means : ndarray of shape (n_components, n_features)
    covariances : ndarray or None
        Shape depends on the covariance family; ``None`` only when the state
        was built from user precisions and no M-step has run yet.
    precisions_cholesky : ndarray
        Shape depends on the covariance family.
    noise : NoiseComponent or None
        The uniform noise component, the last column of every responsibility
        matrix; ``None`` for a purely Gaussian mixture.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray | None
    precisions_cholesky: np.ndarray
    noise: NoiseComponent | None = None


def add_noise_component(state: EMState, weight: float, log_density: float) -> EMState:
    """Give a Gaussian mixture a noise component, shrinking the Gaussian weights.

    Parameters
    ----------
    state : EMState
        Without a noise component.
    weight : float
        Weight of the noise, in ``[0, 1)``; the Gaussian weights are scaled
        by ``1 - weight``.
    log_density : float
        ``log(1 / V)`` on the scale of the data EM runs on.

    Returns
    -------
    EMState
    """
    return state._replace(
        weights=state.weights * (1.0 - weight), noise=NoiseComponent(weight, log_density)
    )


def row_chunks(n_samples: int, chunk_size: int):
    for start in range(0, n_samples, chunk_size):
        yield slice(start, min(start + chunk_size, n_samples))


def weighted_log_prob(X, state: EMState, covariance_type: str) -> np.ndarray:
    """Log of ``weight_k * N(x | mean_k, cov_k)`` for every point and component.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    state : EMState
    covariance_type : str

    Returns
    -------
    ndarray of shape (n_samples, n_components), or (n_samples, n_components + 1)
        With a noise component, its ``log(weight / V)`` is the last column.
    """
    family = get_family(covariance_type)
    log_gaussian = family.log_gaussian(X, state.means, state.precisions_cholesky)
    return _mixture_log_prob(log_gaussian, state)


def _mixture_log_prob(log_gaussian, state: EMState, noise_log_extent: float = 0.0):
    """The log joint matrix from the Gaussian log densities: weights added, noise appended.

    ``noise_log_extent`` is added to the noise's log density (see
    :class:`bayesgmm.em._missing.MissingnessPatterns`).
    """
    with np.errstate(divide="ignore"):
        log_weights = np.log(state.weights)
    gaussian = log_gaussian + log_weights
    if state.noise is None:
        return gaussian
    with np.errstate(divide="ignore"):
        log_noise = np.log(state.noise.weight) + (state.noise.log_density + noise_log_extent)
    return np.column_stack([gaussian, np.full(gaussian.shape[0], log_noise)])


def state_covariances(state: EMState, covariance_type: str) -> np.ndarray:
    """The state's covariances, in its family's shape.

    A state started from user precisions has no covariances yet: they are
    the precisions inverted.
    """
    if state.covariances is not None:
        return state.covariances
    family = get_family(covariance_type)
    return family.invert(family.precisions(state.precisions_cholesky))


class PatternBlock(NamedTuple):
    """The E-step of a chunk of rows that share one missingness pattern."""

    rows: np.ndarray
    values: np.ndarray
    conditionals: ConditionalGaussians
    log_norm: np.ndarray
    responsibilities: np.ndarray


def marginal_e_steps(
    X, patterns: MissingnessPatterns, state: EMState, covariance_type: str, chunk_size: int
) -> Iterator[PatternBlock]:
    """E-steps on the observed coordinates, pattern by pattern, chunk by chunk."""
    covariances = get_family(covariance_type).dense(
        state_covariances(state, covariance_type), *state.means.shape
    )
    for chunk in pattern_chunks(patterns, covariances, chunk_size):
        block = X[chunk.rows]
        log_gaussian = marginal_log_gaussian(block, state.means, chunk.conditionals)
        log_norm, responsibilities = normalize(
            _mixture_log_prob(log_gaussian, state, chunk.noise_log_extent)
        )
        yield PatternBlock(chunk.rows, block, chunk.conditionals, log_norm, responsibilities)


def log_prob_and_responsibilities(
    X, state: EMState, covariance_type: str, patterns: MissingnessPatterns | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-point log-likelihood and responsibilities, by log-sum-exp.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    state : EMState
    covariance_type : str
    patterns : MissingnessPatterns, optional
        Where ``X`` has missing values (NaN): each row is then scored on
        its observed coordinates.

    Returns
    -------
    log_norm : ndarray of shape (n_samples,)
        ``log p(x_i)`` under the mixture.
    responsibilities : ndarray of shape (n_samples, n_components)
        Posterior component probabilities; each row sums to one.  With a
        noise component there are ``n_components + 1`` columns, the noise
        last.
    """
    if patterns is None:
        return normalize(weighted_log_prob(X, state, covariance_type))
    log_norm = np.empty(X.shape[0])
    responsibilities = np.empty((X.shape[0], len(state.weights) + (state.noise is not None)))
    for block in marginal_e_steps(X, patterns, state, covariance_type, DEFAULT_CHUNK_SIZE):
        log_norm[block.rows] = block.log_norm
        responsibilities[block.rows] = block.responsibilities
    return log_norm, responsibilities


