"""EM on Dask collections: per-chunk sufficient statistics, added across chunks.

One EM step on a Dask array is the in-memory step split by row chunks: every
chunk's E-step and sufficient statistics come from the same functions
(:func:`bayesgmm.em._algorithm.sufficient_statistics`, or the expected
statistics with missing values), the statistics of the chunks are added in a
tree (:func:`bayesgmm.em._algorithm.add_statistics`), and the M-step runs
once on the client.  One ``dask.compute`` per iteration (two in the rare
iteration where a far component's second moments must be redone about its
mean); only ``K x D x D`` numbers travel back, and the rows never leave the
workers.  Whatever scheduler is active runs it: a ``distributed.Client``,
the threaded scheduler, or the synchronous one.

Decisions:

* **Data in worker memory.**  EM reads the data tens of times, so the fit
  persists the standardised rows (``dask.persist``) and every iteration reads
  them from worker memory: the cluster must hold the rows (float64) once,
  twice while the raw rows are standardised, and spills to disk beyond
  that.  The input's graph (a Parquet read, a DataFrame conversion) runs
  once, not per iteration.
* **Standardisation.**  The bulk rule of :func:`bayesgmm.scaling.standardization`
  (weighted mean and sd of each column inside its far-out fences) with the
  fences taken from the quartiles of the start sample (below), and the mean
  and sd inside them combined exactly over the chunks
  (:func:`bayesgmm.scaling.add_bulk_moments`).  With at most :data:`SAMPLE_ROWS` rows
  the sample is every row, so the standardisation is the in-memory one up to
  summation order; beyond, a value is classed differently only where the
  sample's quartiles put a fence on the other side of it, which for 1e5
  sampled rows moves a fence by ~1% of an IQR: only values ~5 IQRs out.
  Deterministic under ``random_state`` (and not random at all up to
  :data:`SAMPLE_ROWS` rows).
* **Start.**  The usual initialiser (and the noise start) runs on up to
  :data:`SAMPLE_ROWS` rows drawn without replacement with the estimator's
  generator (every row, in order, when there are no more), then EM iterates
  on all rows; each of the ``n_init`` restarts likewise, from the same
  sample.  With every row as the sample, a Dask fit starts where the
  in-memory fit starts.
* **Checks.**  Each chunk goes through :func:`bayesgmm._checks.check_X`
  (NaN, inf, empty rows) and its weights through
  :func:`bayesgmm.sample_weight.check_sample_weight`, in one pass that also
  collects the column ranges; constant columns and magnitudes are judged on
  those ranges, as ``check_X`` judges them.  Messages name the chunk's rows.
* **Speed.**  distributed starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536``,
  under which the many temporary arrays of the chunked E-step cost twice
  the CPU they cost in a plain process; at 1e6 rows on two workers EM took
  1.8-1.9x the in-memory time with that default and 1.3x without it
  (``reports/benchmarks/em_dask.md``, which shows how a cluster drops it).
* **Weights, noise, missing values** are supported as in memory: a Dask
  ``sample_weight`` (or a numpy one) is aligned with the rows; rows of
  weight 0 stay in the chunks with weight 0 (their terms are exact zeros)
  but set neither the standardisation nor the noise box; missing values use
  the expected statistics in every chunk as soon as one value in the data
  is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial, reduce
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from bayesgmm._checks import check_n_components, check_X
from bayesgmm._dask import as_dask_rows, require_dask
from bayesgmm.em._algorithm import (
    EMState,
    FarComponents,
    StepInfo,
    SufficientStatistics,
    add_statistics,
    expected_sufficient_statistics,
    far_component_moments,
    far_components,
    maximization,
    sufficient_statistics,
    with_far_moments,
)
from bayesgmm.em._missing import missingness_patterns, noise_log_sides
from bayesgmm.em._problem import FitProblem, FitSettings, start_rows
from bayesgmm.noise import noise_region
from bayesgmm.sample_weight import check_sample_weight
from bayesgmm.scaling import (
    SCALE_MODES,
    add_bulk_moments,
    bulk_fences,
    bulk_moments,
    centre_and_scale,
)

__all__ = [
    "SAMPLE_ROWS",
    "ChunkStep",
    "ChunkSummary",
    "DaskRows",
    "chunk_statistics",
    "chunk_summary",
    "dask_rows",
    "dask_weights",
    "distributed_em_step",
    "distributed_problem",
]

SAMPLE_ROWS = 100_000
"""Most rows the initialiser and the standardisation's fences see on Dask input."""

SPLIT_EVERY = 8
"""Chunk results added per task of the reduction tree."""


class DaskRows(NamedTuple):
    """Rows of a Dask fit, chunked along rows, and their blocks as delayed values.

    Attributes
    ----------
    values : dask.array.Array of shape (n_samples, n_features)
    weights : dask.array.Array of shape (n_samples,) or None
        Same row chunks as ``values``.
    """

    values: Any
    weights: Any

    @property
    def offsets(self) -> np.ndarray:
        """First row of every chunk, then the number of rows."""
        return np.concatenate([[0], np.cumsum(self.values.chunks[0])])

    def blocks(self) -> list[tuple[Any, Any]]:
        """``(values, weights)`` of every chunk as delayed values (weights None if unweighted)."""
        values = list(self.values.to_delayed().ravel())
        if self.weights is None:
            return [(block, None) for block in values]
        return list(zip(values, self.weights.to_delayed().ravel()))


def dask_weights(sample_weight, values) -> Any:
    """Frequency weights as a Dask array with the row chunks of ``values``, or None.

    Parameters
    ----------
    sample_weight : array-like, dask.array.Array or dask Series of shape (n_samples,), or None
        A numpy-like one is checked now
        (:func:`bayesgmm.sample_weight.check_sample_weight`); a Dask one is
        checked chunk by chunk in the first pass of the fit.
    values : dask.array.Array of shape (n_samples, n_features)

    Returns
    -------
    dask.array.Array of shape (n_samples,) or None
    """
    if sample_weight is None:
        return None
    da = require_dask()
    n_samples = values.shape[0]
    if hasattr(sample_weight, "to_dask_array"):  # a Dask Series: its partitions become chunks
        sample_weight = sample_weight.to_dask_array(lengths=True)
    if not isinstance(sample_weight, da.Array):
        weights = check_sample_weight(sample_weight, n_samples)
        return da.from_array(weights, chunks=(values.chunks[0],))
    if sample_weight.ndim != 1 or sample_weight.shape[0] != n_samples:
        # check_sample_weight's shape message, on a view of the shape (no data read).
        check_sample_weight(np.broadcast_to(1.0, sample_weight.shape), n_samples)
    return sample_weight.astype(np.float64).rechunk((values.chunks[0],))


def dask_rows(X, sample_weight) -> DaskRows:
    """The rows and weights of a Dask fit, not yet persisted.

    Parameters
    ----------
    X : dask.array.Array or dask.dataframe.DataFrame of shape (n_samples, n_features)
    sample_weight : array-like or dask.array.Array of shape (n_samples,), or None

    Returns
    -------
    DaskRows
    """
    values = as_dask_rows(X)
    return DaskRows(values, dask_weights(sample_weight, values))


def _tree_sum(parts: list, add: Callable) -> Any:
    """Add delayed chunk results pairwise up a tree of :data:`SPLIT_EVERY`-way tasks."""
    import dask

    while len(parts) > 1:
        parts = [
            dask.delayed(_add_all)(parts[start:start + SPLIT_EVERY], add)
            for start in range(0, len(parts), SPLIT_EVERY)
        ]
    return parts[0]


def _add_all(results: list, add: Callable) -> Any:
    """The sum of the chunk results that are not None (chunks without rows give None)."""
    present = [result for result in results if result is not None]
    return reduce(add, present) if present else None


def _named_rows(function: Callable, first_row: int, *args) -> Any:
    """Call ``function``; a ValueError it raises is raised again naming the chunk's rows."""
    try:
        return function(*args)
    except ValueError as error:
        stop = first_row + len(args[0]) - 1
        raise type(error)(
            f"In rows {first_row} to {stop} of the Dask data (the message numbers them from "
            f"0, so its row 0 is row {first_row}): {error}"
        ) from error


# ---------------------------------------------------------------- first pass
class ChunkSummary(NamedTuple):
    """What the first pass over the data learns, chunk by chunk (results add).

    Attributes
    ----------
    n_counted : int
        Rows of positive weight.
    total_weight : float
    low, high : ndarray of shape (n_features,)
        Smallest and largest observed value of each column over the rows
        that count (``+inf`` and ``-inf`` where there is none).
    observed_weight : ndarray of shape (n_features,)
        Weight of the observed values of each column.
    unit_weights : bool
        Every weight is 1 (or there are none).
    any_missing : bool
    """

    n_counted: int
    total_weight: float
    low: np.ndarray
    high: np.ndarray
    observed_weight: np.ndarray
    unit_weights: bool
    any_missing: bool


def _check_chunk(values: np.ndarray, weights: np.ndarray | None, missing: str) -> None:
    if len(values):
        check_X(values, reject_constant=False, missing=missing)
    if weights is not None and not (np.isfinite(weights) & (weights >= 0)).all():
        check_sample_weight(weights, len(weights))  # raises its NaN or negative message


def chunk_summary(
    values: np.ndarray, weights: np.ndarray | None, first_row: int, missing: str
) -> ChunkSummary:
    """Check one chunk and summarise it.

    Parameters
    ----------
    values : ndarray of shape (n_rows, n_features)
    weights : ndarray of shape (n_rows,) or None
    first_row : int
        Row number of the chunk's first row, for messages.
    missing : {"reject", "marginalize"}

    Returns
    -------
    ChunkSummary
    """
    _named_rows(_check_chunk, first_row, values, weights, missing)
    observed = ~np.isnan(values)
    if weights is None:
        counted, weights = values, np.ones(len(values))
    else:
        counted = values[weights > 0]
    return ChunkSummary(
        len(counted),
        float(weights.sum()),
        np.fmin.reduce(counted, axis=0, initial=np.inf),
        np.fmax.reduce(counted, axis=0, initial=-np.inf),
        weights @ observed,
        bool((weights == 1.0).all()),
        not observed.all(),
    )


def _add_summaries(first: ChunkSummary, second: ChunkSummary) -> ChunkSummary:
    return ChunkSummary(
        first.n_counted + second.n_counted,
        first.total_weight + second.total_weight,
        np.minimum(first.low, second.low),
        np.maximum(first.high, second.high),
        first.observed_weight + second.observed_weight,
        first.unit_weights and second.unit_weights,
        first.any_missing or second.any_missing,
    )


def _check_summary(summary: ChunkSummary, feature_names, settings: FitSettings):
    """The checks of whole columns that ``check_X`` makes, on the columns' ranges."""
    if summary.total_weight == 0.0:
        check_sample_weight(np.zeros(1), 1)  # raises its all-zero message
    check_n_components(settings.n_components, summary.n_counted)
    low = np.where(np.isfinite(summary.low), summary.low, np.nan)
    high = np.where(np.isfinite(summary.high), summary.high, np.nan)
    ranges = np.vstack([low, high]) if summary.n_counted > 1 else low[None]
    # check_X judges constancy and magnitudes by each column's max and min only.
    named = ranges if feature_names is None else pd.DataFrame(ranges, columns=feature_names)
    check_X(named, missing="marginalize")


def _sample_rows(n_samples: int, rng: np.random.Generator) -> slice | np.ndarray:
    """Rows of the start sample: every row up to :data:`SAMPLE_ROWS`, else a sorted draw."""
    if n_samples <= SAMPLE_ROWS:
        return slice(None)
    return np.sort(rng.choice(n_samples, size=SAMPLE_ROWS, replace=False))


# ---------------------------------------------------------------- EM step
class ChunkStep(NamedTuple):
    """What every chunk needs for one EM step; sent to each worker once.

    Attributes
    ----------
    state : EMState
    covariance_type : str
    chunk_size : int
        Rows per block inside a chunk.
    noise_log_sides : ndarray of shape (n_features,) or None
    marginalize : bool
        The data have missing values: every chunk collects the expected
        statistics, so that all chunks' second moments share one ``shift``.
    """

    state: EMState
    covariance_type: str
    chunk_size: int
    noise_log_sides: np.ndarray | None
    marginalize: bool


def chunk_statistics(
    Z: np.ndarray, weights: np.ndarray | None, step: ChunkStep
) -> SufficientStatistics | None:
    """E-step and sufficient statistics of one chunk of standardised rows.

    Parameters
    ----------
    Z : ndarray of shape (n_rows, n_features)
    weights : ndarray of shape (n_rows,) or None
    step : ChunkStep

    Returns
    -------
    SufficientStatistics or None
        None for a chunk without rows.
    """
    if len(Z) == 0:
        return None
    if step.marginalize:
        patterns = missingness_patterns(Z, step.noise_log_sides, always=True)
        return expected_sufficient_statistics(
            Z, patterns, step.state, step.covariance_type, sample_weight=weights,
            chunk_size=step.chunk_size,
        )
    return sufficient_statistics(
        Z, step.covariance_type, state=step.state, sample_weight=weights,
        chunk_size=step.chunk_size,
    )


def _chunk_far_moments(
    Z: np.ndarray, weights: np.ndarray | None, step: ChunkStep, far: FarComponents
) -> np.ndarray | None:
    if len(Z) == 0:
        return None
    return far_component_moments(
        Z, far, step.covariance_type, state=step.state, sample_weight=weights,
        chunk_size=step.chunk_size,
    )


def distributed_em_step(
    rows: DaskRows,
    state: EMState,
    *,
    covariance_type: str,
    reg_covar: float,
    chunk_size: int,
    noise_log_sides: np.ndarray | None,
    marginalize: bool,
    total_weight: float,
) -> tuple[EMState, StepInfo]:
    """One EM iteration over the chunks of a Dask array of standardised rows.

    Parameters
    ----------
    rows : DaskRows
        Standardised and persisted; holding them keeps the persisted chunks
        alive on the workers.
    state : EMState
    covariance_type : str
    reg_covar : float
    chunk_size : int
    noise_log_sides : ndarray of shape (n_features,) or None
    marginalize : bool
        See :class:`ChunkStep`.
    total_weight : float
        Number of rows, or the sum of their weights.

    Returns
    -------
    new_state : EMState
    info : StepInfo
        Mean log-likelihood under the input ``state``, per unit of weight.
    """
    import dask

    step = dask.delayed(
        ChunkStep(state, covariance_type, chunk_size, noise_log_sides, marginalize),
        traverse=False,
    )
    blocks = rows.blocks()
    parts = [dask.delayed(chunk_statistics)(Z, weights, step) for Z, weights in blocks]
    (statistics,) = dask.compute(_tree_sum(parts, add_statistics))
    if not marginalize:
        far = far_components(statistics, covariance_type, reg_covar)
        if far.indices.size:
            parts = [
                dask.delayed(_chunk_far_moments)(Z, weights, step, far) for Z, weights in blocks
            ]
            (moments,) = dask.compute(_tree_sum(parts, np.add))
            statistics = with_far_moments(statistics, far, moments, covariance_type)
    new_state = maximization(statistics, covariance_type, reg_covar, noise=state.noise)
    return new_state, StepInfo(statistics.total_log_likelihood / total_weight)


# ---------------------------------------------------------------- the problem
def _map_chunks(rows: DaskRows, function: Callable, *shared) -> list:
    """``function(values, weights, *shared)`` of every chunk, as delayed values."""
    import dask

    return [
        dask.delayed(function)(values, weights, *shared) for values, weights in rows.blocks()
    ]


def distributed_problem(
    X, sample_weight, settings: FitSettings, rng: np.random.Generator, feature_names
) -> FitProblem:
    """The problem of a fit on a Dask array or DataFrame (module notes).

    Four computes before EM: persisting the rows, checking and summarising
    them (gathering the start sample), the bulk moments of the standardisation,
    and persisting the standardised rows (the raw copy is released when this
    returns, unless the caller holds it).

    Parameters
    ----------
    X : dask.array.Array or dask.dataframe.DataFrame of shape (n_samples, n_features)
    sample_weight : array-like or dask.array.Array of shape (n_samples,), or None
    settings : FitSettings
    rng : numpy.random.Generator
        Draws the start sample (when there are more than :data:`SAMPLE_ROWS` rows).
    feature_names : array-like of str or None
        The DataFrame's columns, for messages; None for an array.

    Returns
    -------
    FitProblem
    """
    import dask

    rows = DaskRows(*dask.persist(*dask_rows(X, sample_weight)))
    offsets = rows.offsets
    summaries = [
        dask.delayed(chunk_summary)(values, weights, int(first), settings.missing)
        for (values, weights), first in zip(rows.blocks(), offsets)
    ]
    sample = _sample_rows(int(offsets[-1]), rng)
    sample_weights = None if rows.weights is None else rows.weights[sample]
    summary, sample_values, sample_weights = dask.compute(
        _tree_sum(summaries, _add_summaries), rows.values[sample], sample_weights
    )
    _check_summary(summary, feature_names, settings)
    if summary.unit_weights:
        rows, sample_weights = rows._replace(weights=None), None
    elif sample_weights is not None:
        sample_values = sample_values[sample_weights > 0]
        sample_weights = sample_weights[sample_weights > 0]
        check_n_components(settings.n_components, len(sample_values))

    fences = bulk_fences(sample_values, sample_weights)
    (moments,) = dask.compute(
        _tree_sum(_map_chunks(rows, bulk_moments, fences, fences.middle), add_bulk_moments)
    )
    centre, scale = centre_and_scale(moments, SCALE_MODES[settings.covariance_type])
    region = None
    if settings.noise:
        region = noise_region(np.vstack([summary.low, summary.high]), settings.noise_volume)

    standardized = rows._replace(values=(rows.values - centre) / scale)
    standardized = DaskRows(*dask.persist(*standardized))
    step = partial(
        distributed_em_step, standardized,
        covariance_type=settings.covariance_type, reg_covar=settings.reg_covar,
        chunk_size=settings.chunk_size, noise_log_sides=noise_log_sides(region, scale),
        marginalize=summary.any_missing, total_weight=summary.total_weight,
    )
    start_values, start = start_rows(
        (sample_values - centre) / scale, sample_weights, region, scale, settings.n_components
    )
    if summary.any_missing:
        log_jacobian = float(summary.observed_weight @ np.log(scale)) / summary.total_weight
    else:
        log_jacobian = float(np.log(scale).sum())
    return FitProblem(
        step, start_values, sample_weights, start, centre, scale, region, log_jacobian
    )
