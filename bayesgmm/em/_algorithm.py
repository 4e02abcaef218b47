"""Expectation-maximisation for Gaussian mixtures as pure functions.

The algorithm is written as ``em_step(X, state) -> (state, info)`` and a
separate driver :func:`run_em` that loops, checks convergence and records the
trace.  One step makes a single pass over the data in row chunks: each chunk
is scored (E-step) and immediately folded into the sufficient statistics of
the M-step, so memory stays at ``O(chunk_size * n_components * n_features)``
beyond the data itself, and no ``(n_samples, n_components)`` matrix is kept.

A state may carry a uniform noise component (:class:`NoiseComponent`, R's
mclust ``noise``): one more column of the log joint matrix, a constant
``log(weight / V)``.  The E-step gives its responsibilities; the M-step sets
its weight to their mean and fits the Gaussian components from their own
columns only.  It is still EM, so the log-likelihood never decreases.

The arithmetic follows scikit-learn's ``GaussianMixture`` term by term (same
``nk`` guard of ``10 * eps``, same log-determinant from the Cholesky factor of
the precision), so that from identical parameters both produce the same
per-iteration log-likelihood to rounding error.

Missing values (``patterns`` from :func:`bayesgmm.em._missing.missingness_patterns`):
rows are scored by their components' marginals over their observed
coordinates, and the M-step uses the sufficient statistics expected given
those coordinates (see :mod:`bayesgmm.em._missing`), pattern by pattern.
The expected second moments are taken about the state's means (recorded as
``shift``), so they lose no digits however far a component lies from the
origin.  Complete data (``patterns=None``) take the ordinary path.

Frequency weights (``sample_weight``, see :mod:`bayesgmm.sample_weight`):
row ``i`` counts ``w_i`` times, so every statistic is a sum over rows of
``w_i`` times the row's term (its responsibilities are multiplied by
``w_i``), the log-likelihood is ``sum_i w_i log p(x_i)`` and its mean is per
unit of weight.  ``None`` runs the unweighted arithmetic, bit for bit.

The statistics of disjoint row blocks add (:func:`add_statistics`), which is
what lets :mod:`bayesgmm.em._distributed` run the same step over the chunks
of a Dask array, under the same driver (:func:`iterate`).

Layout: the state record and the E-step are in :mod:`bayesgmm.em._estep`,
the sufficient statistics in :mod:`bayesgmm.em._statistics`; this module
holds the M-step, the step and the driver, and re-exports the others' names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from bayesgmm.em._covariance import get_family
from bayesgmm.em._estep import (
    DEFAULT_CHUNK_SIZE,
    EMState,
    NoiseComponent,
    add_noise_component,
    log_prob_and_responsibilities,
    state_covariances,
    weighted_log_prob,
)
from bayesgmm.em._missing import MissingnessPatterns
from bayesgmm.em._statistics import (
    FarComponents,
    SufficientStatistics,
    add_statistics,
    centre_far_components,
    expected_sufficient_statistics,
    far_component_moments,
    far_components,
    sufficient_statistics,
    total_weight,
    with_far_moments,
)

__all__ = [
    "EMState",
    "NoiseComponent",
    "StepInfo",
    "EMRun",
    "DEFAULT_CHUNK_SIZE",
    "add_noise_component",
    "state_covariances",
    "weighted_log_prob",
    "log_prob_and_responsibilities",
    "SufficientStatistics",
    "sufficient_statistics",
    "expected_sufficient_statistics",
    "add_statistics",
    "total_weight",
    "FarComponents",
    "far_components",
    "far_component_moments",
    "with_far_moments",
    "centre_far_components",
    "maximization",
    "state_from_responsibilities",
    "em_step",
    "iterate",
    "run_em",
]

class StepInfo(NamedTuple):
    """What one EM step observed.

    Attributes
    ----------
    log_likelihood : float
        Mean per-sample log-likelihood of the data under the state *before*
        the step (the quantity scikit-learn calls the lower bound).
    """

    log_likelihood: float


class EMRun(NamedTuple):
    """Result of one EM run from one starting state.

    Attributes
    ----------
    state : EMState
        Parameters after the last M-step.
    log_likelihoods : ndarray of shape (n_iter,)
        Mean log-likelihood recorded at every iteration.
    converged : bool
        Whether the change fell below ``tol`` before ``max_iter``.
    n_iter : int
        Number of EM steps taken.
    """

    state: EMState
    log_likelihoods: np.ndarray
    converged: bool
    n_iter: int


def maximization(
    statistics: SufficientStatistics,
    covariance_type: str,
    reg_covar: float,
    *,
    noise: NoiseComponent | None = None,
) -> EMState:
    """M-step: parameters from sufficient statistics.

    Parameters
    ----------
    statistics : SufficientStatistics
    covariance_type : str
    reg_covar : float
        Added to the diagonal of every covariance.
    noise : NoiseComponent, optional
        The noise component of the state the statistics were collected
        under: its density is kept and its weight becomes its share of the
        responsibilities, ``noise_count / n_samples``.

    Returns
    -------
    EMState
    """
    family = get_family(covariance_type)
    nk = statistics.counts + 10 * np.finfo(np.float64).eps
    means = statistics.first_moments / nk[:, None]
    about = means if statistics.shift is None else means - statistics.shift
    covariances = family.covariances(statistics.second_moments, nk, about, reg_covar)
    precisions_cholesky = family.precisions_cholesky(covariances, reg_covar)
    if noise is None:
        return EMState(nk / nk.sum(), means, covariances, precisions_cholesky)
    total = nk.sum() + statistics.noise_count
    noise = noise._replace(weight=statistics.noise_count / total)
    return EMState(nk / total, means, covariances, precisions_cholesky, noise)


def state_from_responsibilities(
    X,
    responsibilities,
    covariance_type: str,
    reg_covar: float,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    *,
    sample_weight: np.ndarray | None = None,
) -> EMState:
    """Parameters implied by given responsibilities (used by initialisers).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    responsibilities : ndarray of shape (n_samples, n_components)
    covariance_type : str
    reg_covar : float
    chunk_size : int
    sample_weight : ndarray of shape (n_samples,), optional
        Frequency weights (module notes).

    Returns
    -------
    EMState
    """
    statistics = sufficient_statistics(
        X, covariance_type, responsibilities=responsibilities,
        sample_weight=sample_weight, chunk_size=chunk_size,
    )
    statistics = centre_far_components(
        X, statistics, covariance_type, reg_covar, responsibilities=responsibilities,
        sample_weight=sample_weight, chunk_size=chunk_size,
    )
    return maximization(statistics, covariance_type, reg_covar)


def em_step(
    X,
    state: EMState,
    *,
    covariance_type: str,
    reg_covar: float,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    patterns: MissingnessPatterns | None = None,
    sample_weight: np.ndarray | None = None,
) -> tuple[EMState, StepInfo]:
    """One EM iteration: E-step and M-step fused in one pass over ``X``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    state : EMState
    covariance_type : str
    reg_covar : float
    chunk_size : int
    patterns : MissingnessPatterns, optional
        Where ``X`` has missing values: the step then uses the marginal
        E-step and the expected statistics.
    sample_weight : ndarray of shape (n_samples,), optional
        Frequency weights (module notes).

    Returns
    -------
    new_state : EMState
    info : StepInfo
        Mean log-likelihood of ``X`` under the *input* ``state``, per unit
        of weight.
    """
    if patterns is None:
        statistics = sufficient_statistics(
            X, covariance_type, state=state, sample_weight=sample_weight,
            chunk_size=chunk_size,
        )
        statistics = centre_far_components(
            X, statistics, covariance_type, reg_covar, state=state,
            sample_weight=sample_weight, chunk_size=chunk_size,
        )
    else:
        statistics = expected_sufficient_statistics(
            X, patterns, state, covariance_type, sample_weight=sample_weight,
            chunk_size=chunk_size,
        )
    new_state = maximization(statistics, covariance_type, reg_covar, noise=state.noise)
    mean = statistics.total_log_likelihood / total_weight(X.shape[0], sample_weight)
    return new_state, StepInfo(mean)


def iterate(
    step: Callable[[EMState], tuple[EMState, StepInfo]],
    initial_state: EMState,
    *,
    tol: float,
    max_iter: int,
    previous: float = -np.inf,
    on_step: Callable[[int, float], None] | None = None,
) -> EMRun:
    """The EM driver: apply ``step`` until the mean log-likelihood changes by < ``tol``.

    Parameters
    ----------
    step : callable
        ``state -> (state, StepInfo)``: :func:`em_step` on in-memory data, or
        :func:`bayesgmm.em._distributed.distributed_em_step` on a Dask array.
    initial_state : EMState
    tol : float
        Convergence threshold on the change of the mean log-likelihood.
    max_iter : int
        Maximum number of EM steps; ``0`` returns the initial state.
    previous : float, default=-inf
        The mean log-likelihood the first step's change is measured from: a
        warm start passes the last value of the run it continues.
    on_step : callable, optional
        ``(n_iter, change) -> None``, called after every step (``n_iter``
        counted from 1) with the change of the mean log-likelihood.

    Returns
    -------
    EMRun
    """
    state = initial_state
    trace: list[float] = []
    converged = False
    for n_iter in range(1, max_iter + 1):
        state, info = step(state)
        trace.append(info.log_likelihood)
        change = info.log_likelihood - previous
        if on_step is not None:
            on_step(n_iter, change)
        if abs(change) < tol:
            converged = True
            break
        previous = info.log_likelihood
    return EMRun(state, np.asarray(trace), converged, len(trace))


def run_em(
    X,
    initial_state: EMState,
    *,
    covariance_type: str,
    reg_covar: float,
    tol: float,
    max_iter: int,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    patterns: MissingnessPatterns | None = None,
    sample_weight: np.ndarray | None = None,
) -> EMRun:
    """Iterate :func:`em_step` on in-memory data until it converges (:func:`iterate`).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    initial_state : EMState
    covariance_type : str
    reg_covar : float
    tol : float
        Convergence threshold on the change of the mean log-likelihood.
    max_iter : int
        Maximum number of EM steps; ``0`` returns the initial state.
    chunk_size : int
    patterns : MissingnessPatterns, optional
        Where ``X`` has missing values (see :func:`em_step`).
    sample_weight : ndarray of shape (n_samples,), optional
        Frequency weights (module notes).

    Returns
    -------
    EMRun
    """

    def step(state: EMState) -> tuple[EMState, StepInfo]:
        return em_step(
            X, state, covariance_type=covariance_type, reg_covar=reg_covar,
            chunk_size=chunk_size, patterns=patterns, sample_weight=sample_weight,
        )

    return iterate(step, initial_state, tol=tol, max_iter=max_iter)
