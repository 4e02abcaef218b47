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
of a Dask array.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np

from bayesgmm.em._covariance import get_family
from bayesgmm.em._missing import (
    ConditionalGaussians,
    MissingnessPatterns,
    completed_rows,
    expected_second_moments,
    marginal_log_gaussian,
    pattern_chunks,
)
from bayesgmm.gaussian import normalize
from bayesgmm.noise import NoiseComponent

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


def _chunks(n_samples: int, chunk_size: int):
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


class _PatternBlock(NamedTuple):
    """The E-step of a chunk of rows that share one missingness pattern."""

    rows: np.ndarray
    values: np.ndarray
    conditionals: ConditionalGaussians
    log_norm: np.ndarray
    responsibilities: np.ndarray


def _marginal_e_steps(
    X, patterns: MissingnessPatterns, state: EMState, covariance_type: str, chunk_size: int
) -> Iterator[_PatternBlock]:
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
        yield _PatternBlock(chunk.rows, block, chunk.conditionals, log_norm, responsibilities)


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
    for block in _marginal_e_steps(X, patterns, state, covariance_type, DEFAULT_CHUNK_SIZE):
        log_norm[block.rows] = block.log_norm
        responsibilities[block.rows] = block.responsibilities
    return log_norm, responsibilities


class SufficientStatistics(NamedTuple):
    """Responsibility-weighted sums collected over the data.

    ``counts``, ``first_moments`` and ``second_moments`` are over the
    Gaussian components only.  ``second_moments`` are about the origin,
    except for components with a row in ``shift`` (see
    :func:`centre_far_components`), whose second moments are about that
    point.  ``noise_count`` is the summed responsibility of the noise
    component, ``None`` without one.  With frequency weights every sum is
    weighted.
    """

    counts: np.ndarray
    first_moments: np.ndarray
    second_moments: np.ndarray
    total_log_likelihood: float
    shift: np.ndarray | None = None
    noise_count: float | None = None


def add_statistics(first: SufficientStatistics, second: SufficientStatistics):
    """The statistics of two disjoint blocks of rows, collected under one state.

    Parameters
    ----------
    first, second : SufficientStatistics
        With the same ``shift`` (both ``None``, or both the state's means).

    Returns
    -------
    SufficientStatistics

    Examples
    --------
    >>> X = np.arange(12.0).reshape(6, 2)
    >>> state = state_from_responsibilities(X, np.full((6, 1), 1.0), "diag", 1e-6)
    >>> whole = sufficient_statistics(X, "diag", state=state)
    >>> parts = add_statistics(
    ...     sufficient_statistics(X[:4], "diag", state=state),
    ...     sufficient_statistics(X[4:], "diag", state=state),
    ... )
    >>> bool(np.allclose(whole.second_moments, parts.second_moments))
    True
    """
    return SufficientStatistics(
        first.counts + second.counts,
        first.first_moments + second.first_moments,
        first.second_moments + second.second_moments,
        first.total_log_likelihood + second.total_log_likelihood,
        first.shift,
        None if first.noise_count is None else first.noise_count + second.noise_count,
    )


def total_weight(n_samples: int, sample_weight: np.ndarray | None) -> float:
    """How many rows the data count as: ``n_samples``, or the sum of the weights."""
    return n_samples if sample_weight is None else float(sample_weight.sum())


def _weighted_sum(values: np.ndarray, weights: np.ndarray | None) -> float:
    return float(values.sum()) if weights is None else float(values @ weights)


def _weighted_rows(responsibilities: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    return responsibilities if weights is None else responsibilities * weights[:, None]


LOST_DIGITS_LIMIT = 1e6
"""Largest ratio of a raw second moment to the variance it yields.

Above it the one-pass formula ``E[x^2] - E[x]^2`` has lost more than six of
float64's sixteen digits, which happens only for a component far from the
data's centre with a tiny spread (a far outlier on a component of its own)."""


def _components_losing_digits(statistics, covariance_type: str, reg_covar: float):
    family = get_family(covariance_type)
    nk = statistics.counts + 10 * np.finfo(np.float64).eps
    means = statistics.first_moments / nk[:, None]
    raw = family.moment_diagonals(statistics.second_moments)
    if family.pooled:
        raw = raw / nk.sum()
        variance = raw - (nk @ means**2) / nk.sum()
    else:
        raw = raw / nk[:, None]
        variance = raw - means**2
    lossy = (raw > LOST_DIGITS_LIMIT * (np.maximum(variance, 0.0) + reg_covar)).any(axis=1)
    if family.pooled:
        return np.arange(len(nk)) if lossy.any() else np.empty(0, dtype=np.intp)
    return np.flatnonzero(lossy)


class FarComponents(NamedTuple):
    """Components whose one-pass second moments lost their digits.

    Attributes
    ----------
    indices : ndarray of int, shape (n_far,)
    means : ndarray of shape (n_far, n_features)
        Their means, the points their moments are redone about.
    """

    indices: np.ndarray
    means: np.ndarray


def far_components(
    statistics: SufficientStatistics, covariance_type: str, reg_covar: float
) -> FarComponents:
    """Which components need their second moments redone about their means.

    Parameters
    ----------
    statistics : SufficientStatistics
        One-pass statistics (no ``shift``).
    covariance_type : str
    reg_covar : float

    Returns
    -------
    FarComponents
        Empty on ordinary data.
    """
    far = _components_losing_digits(statistics, covariance_type, reg_covar)
    nk = statistics.counts[far] + 10 * np.finfo(np.float64).eps
    return FarComponents(far, statistics.first_moments[far] / nk[:, None])


def far_component_moments(
    X,
    far: FarComponents,
    covariance_type: str,
    *,
    state: EMState | None = None,
    responsibilities: np.ndarray | None = None,
    sample_weight: np.ndarray | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> np.ndarray:
    """Second moments of the far components about their own means, in one pass.

    Exactly one of ``state`` and ``responsibilities`` gives the
    responsibilities, as in :func:`sufficient_statistics`.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    far : FarComponents
    covariance_type : str
    state : EMState, optional
    responsibilities : ndarray of shape (n_samples, n_components), optional
    sample_weight : ndarray of shape (n_samples,), optional
    chunk_size : int

    Returns
    -------
    ndarray
        The family's second-moment statistic restricted to the far
        components, one entry per component in ``far`` (pooled into one
        matrix for tied); moments of disjoint row blocks add.
    """
    family = get_family(covariance_type)
    # A pooled statistic (tied) is the sum of the per-component scatters.
    scatter = get_family("full").second_moments if family.pooled else family.second_moments
    moments = None
    for rows in _chunks(X.shape[0], chunk_size):
        block = X[rows]
        if state is not None:
            resp = log_prob_and_responsibilities(block, state, covariance_type)[1]
        else:
            resp = responsibilities[rows]
        resp = _weighted_rows(resp, None if sample_weight is None else sample_weight[rows])
        for position, component in enumerate(far.indices):
            chunk = scatter(block - far.means[position], resp[:, [component]])[0]
            if moments is None:
                shape = chunk.shape if family.pooled else (len(far.indices), *chunk.shape)
                moments = np.zeros(shape)
            if family.pooled:
                moments += chunk
            else:
                moments[position] += chunk
    return moments


def with_far_moments(
    statistics: SufficientStatistics,
    far: FarComponents,
    moments: np.ndarray,
    covariance_type: str,
) -> SufficientStatistics:
    """Statistics with the far components' second moments replaced by centred ones.

    Parameters
    ----------
    statistics : SufficientStatistics
    far : FarComponents
        Not empty.
    moments : ndarray
        From :func:`far_component_moments`, summed over all rows.
    covariance_type : str

    Returns
    -------
    SufficientStatistics
        With ``shift`` holding the far components' means (zeros elsewhere).
    """
    if get_family(covariance_type).pooled:
        second = moments
    else:
        second = statistics.second_moments.copy()
        second[far.indices] = moments
    shift = np.zeros_like(statistics.first_moments)
    shift[far.indices] = far.means
    return statistics._replace(second_moments=second, shift=shift)


def centre_far_components(
    X,
    statistics: SufficientStatistics,
    covariance_type: str,
    reg_covar: float,
    *,
    state: EMState | None = None,
    responsibilities: np.ndarray | None = None,
    sample_weight: np.ndarray | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> SufficientStatistics:
    """Redo, about their own means, the second moments that lost their digits.

    The one-pass statistics are cheap but cancel catastrophically for a
    component whose mean is ~1e4 of its own sds or more from the origin.
    Such components (rare: none on ordinary data, so ordinary fits are
    unchanged bit for bit) get a second pass over the rows with centred
    data, and their mean is recorded in ``shift``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    statistics : SufficientStatistics
        From :func:`sufficient_statistics` with the same ``state`` or
        ``responsibilities``.
    covariance_type : str
    reg_covar : float
    state : EMState, optional
    responsibilities : ndarray of shape (n_samples, n_components), optional
    sample_weight : ndarray of shape (n_samples,), optional
        The frequency weights ``statistics`` were collected with.
    chunk_size : int

    Returns
    -------
    SufficientStatistics
    """
    far = far_components(statistics, covariance_type, reg_covar)
    if far.indices.size == 0:
        return statistics
    moments = far_component_moments(
        X, far, covariance_type, state=state, responsibilities=responsibilities,
        sample_weight=sample_weight, chunk_size=chunk_size,
    )
    return with_far_moments(statistics, far, moments, covariance_type)


def _gaussian_second_moments(family, block, responsibilities, unit_rows: bool):
    """The family's second-moment statistic of one chunk, over the Gaussian columns.

    The pooled (tied) statistic is ``X^T X`` when every row's Gaussian
    responsibilities sum to one (``unit_rows``); beside a noise component
    they sum to the row's Gaussian share, and with frequency weights to that
    times the row's weight, which then weights the row.
    """
    if family.pooled and not unit_rows:
        return block.T @ (block * responsibilities.sum(axis=1, keepdims=True))
    return family.second_moments(block, responsibilities)


def sufficient_statistics(
    X,
    covariance_type: str,
    *,
    state: EMState | None = None,
    responsibilities: np.ndarray | None = None,
    sample_weight: np.ndarray | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> SufficientStatistics:
    """Collect M-step statistics in one chunked pass over ``X``.

    Exactly one of ``state`` (responsibilities come from an E-step) and
    ``responsibilities`` (given, e.g. by an initialiser) must be passed.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    covariance_type : str
    state : EMState, optional
        With a noise component, the statistics of the Gaussian components
        use their own responsibility columns and ``noise_count`` sums the
        noise column.
    responsibilities : ndarray of shape (n_samples, n_components), optional
        Gaussian components only, each row summing to one.
    sample_weight : ndarray of shape (n_samples,), optional
        Frequency weights (module notes); ``None`` counts every row once.
    chunk_size : int
        Rows per chunk; trades Python overhead against cache use.

    Returns
    -------
    SufficientStatistics
        ``total_log_likelihood`` is ``nan`` when responsibilities were given.
    """
    family = get_family(covariance_type)
    beside_noise = state is not None and state.noise is not None
    unit_rows = not beside_noise and sample_weight is None
    counts = first = second = None
    noise_count = 0.0 if beside_noise else None
    total_log_likelihood = 0.0 if state is not None else np.nan
    for rows in _chunks(X.shape[0], chunk_size):
        block = X[rows]
        weights = None if sample_weight is None else sample_weight[rows]
        if state is not None:
            log_norm, resp = log_prob_and_responsibilities(block, state, covariance_type)
            total_log_likelihood += _weighted_sum(log_norm, weights)
        else:
            resp = responsibilities[rows]
        resp = _weighted_rows(resp, weights)
        if beside_noise:
            noise_count += float(resp[:, -1].sum())
            resp = resp[:, :-1]
        chunk_counts = resp.sum(axis=0)
        chunk_first = resp.T @ block
        chunk_second = _gaussian_second_moments(family, block, resp, unit_rows)
        if counts is None:
            counts, first, second = chunk_counts, chunk_first, chunk_second
        else:
            counts += chunk_counts
            first += chunk_first
            second += chunk_second
    return SufficientStatistics(
        counts, first, second, total_log_likelihood, noise_count=noise_count
    )


def expected_sufficient_statistics(
    X,
    patterns: MissingnessPatterns,
    state: EMState,
    covariance_type: str,
    *,
    sample_weight: np.ndarray | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> SufficientStatistics:
    """E-step and expected M-step statistics of data with missing values, in one pass.

    Each row contributes its completed values (:func:`completed_rows`) to
    the first moments, and their outer products plus the conditional
    covariance of its missing block to the second moments; tied pools
    these expected scatters over the components.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        NaN where a value is missing.
    patterns : MissingnessPatterns
        Of ``X``.
    state : EMState
    covariance_type : str
    sample_weight : ndarray of shape (n_samples,), optional
        Frequency weights (module notes).
    chunk_size : int

    Returns
    -------
    SufficientStatistics
        Second moments about the state's means (``shift``).
    """
    n_components, n_features = state.means.shape
    counts, first = np.zeros(n_components), np.zeros((n_components, n_features))
    second = np.zeros((n_components, n_features, n_features))
    noise_count = None if state.noise is None else 0.0
    total_log_likelihood = 0.0
    for block in _marginal_e_steps(X, patterns, state, covariance_type, chunk_size):
        weights = None if sample_weight is None else sample_weight[block.rows]
        total_log_likelihood += _weighted_sum(block.log_norm, weights)
        responsibilities = _weighted_rows(block.responsibilities, weights)
        if state.noise is not None:
            noise_count += float(responsibilities[:, -1].sum())
            responsibilities = responsibilities[:, :-1]
        completed = completed_rows(block.values, state.means, block.conditionals)
        counts += responsibilities.sum(axis=0)
        first += np.einsum("nk,knd->kd", responsibilities, completed)
        second += expected_second_moments(
            completed, responsibilities, block.conditionals, state.means
        )
    family = get_family(covariance_type)
    return SufficientStatistics(
        counts, first, family.second_moments_from_dense(second), total_log_likelihood,
        shift=state.means, noise_count=noise_count,
    )


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

    Returns
    -------
    EMRun
    """
    state = initial_state
    trace: list[float] = []
    previous = -np.inf
    converged = False
    for _ in range(max_iter):
        state, info = step(state)
        trace.append(info.log_likelihood)
        if abs(info.log_likelihood - previous) < tol:
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
