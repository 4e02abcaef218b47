"""Sufficient statistics of EM's M-step, collected in one chunked pass over the rows.

Part of the pure-function EM described in :mod:`bayesgmm.em._algorithm`.  One
pass scores a chunk of rows (the E-step of :mod:`bayesgmm.em._estep`) and
folds it into the sums at once, so no ``(n_samples, n_components)`` matrix is
kept.  The statistics of disjoint row blocks add (:func:`add_statistics`):
:mod:`bayesgmm.em._distributed` collects them chunk by chunk on Dask.

Missing values: each row contributes the statistics expected given its
observed coordinates (see :mod:`bayesgmm.em._missing`), the second moments
taken about the state's means (recorded as ``shift``), so they lose no digits
however far a component lies from the origin.

Frequency weights (``sample_weight``, see :mod:`bayesgmm.sample_weight`):
row ``i`` counts ``w_i`` times, so every statistic is a sum over rows of
``w_i`` times the row's term (its responsibilities are multiplied by
``w_i``) and the log-likelihood is ``sum_i w_i log p(x_i)``.  ``None`` runs
the unweighted arithmetic, bit for bit.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bayesgmm.em._covariance import get_family
from bayesgmm.em._estep import (
    DEFAULT_CHUNK_SIZE,
    EMState,
    log_prob_and_responsibilities,
    marginal_e_steps,
    row_chunks,
)
from bayesgmm.em._missing import (
    MissingnessPatterns,
    completed_rows,
    expected_second_moments,
)

__all__ = [
    "LOST_DIGITS_LIMIT",
    "FarComponents",
    "SufficientStatistics",
    "add_statistics",
    "centre_far_components",
    "expected_sufficient_statistics",
    "far_component_moments",
    "far_components",
    "sufficient_statistics",
    "total_weight",
    "with_far_moments",
]


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
    >>> from bayesgmm.em._algorithm import state_from_responsibilities
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
    for rows in row_chunks(X.shape[0], chunk_size):
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
    for rows in row_chunks(X.shape[0], chunk_size):
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
    for block in marginal_e_steps(X, patterns, state, covariance_type, chunk_size):
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
