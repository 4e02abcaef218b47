"""Scoring Dask data with a fitted Bayesian mixture, lazily and chunk by chunk.

Each row chunk is checked like numpy input (:func:`bayesgmm._checks.match_features`)
and scored by the same array function as numpy input; the (thinned) posterior
draws enter the graph once (:func:`bayesgmm._dask.map_row_chunks`), so each
worker receives them once.  A function with several outputs (a
:class:`~bayesgmm.membership.MembershipArrays`, a
:class:`~bayesgmm.density.DensityArrays`) returns them side by side in one
block per chunk, unpacked into lazy columns afterwards.  Every row is scored
on its own, so the numbers equal the numpy path's.  Nothing here imports Dask
at module import.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import numpy as np

from bayesgmm._checks import match_features
from bayesgmm._dask import as_dask_rows, map_row_chunks
from bayesgmm.density import DensityArrays, predictive_density
from bayesgmm.membership import (
    MembershipArrays,
    mean_membership,
    membership_arrays,
    most_probable_labels,
)
from bayesgmm.parameters import ModelParameters

__all__ = ["dask_density", "dask_labels", "dask_mean_membership", "dask_membership", "dask_rows"]


def dask_rows(X: Any, feature_names) -> Any:
    """A Dask array of shape (n_samples, n_features) with known chunk sizes.

    A DataFrame's columns are matched to ``feature_names`` by name; an
    array must have as many columns.  Unknown chunk sizes are computed
    (one pass over the input), so results get an ``obs`` coordinate.
    """
    rows = as_dask_rows(X, feature_names)
    if rows.shape[1] != len(feature_names):
        raise ValueError(
            f"X has {rows.shape[1]} columns but the model was fitted on {len(feature_names)} "
            f"({', '.join(map(str, feature_names))}); pass those columns."
        )
    if any(np.isnan(size) for size in rows.chunks[0]):
        rows = rows.compute_chunk_sizes()
    return rows


def _checked(chunk: np.ndarray, parameters: ModelParameters, *, score, width: int, dtype,
             feature_names, missing: str, **options) -> np.ndarray:
    """``score`` of one checked chunk, with its outputs side by side."""
    if chunk.shape[0] == 0:
        return np.empty((0, width) if width else (0,), dtype=dtype)
    result = score(match_features(chunk, feature_names, missing), parameters, **options)
    if not isinstance(result, tuple):
        return result
    return np.column_stack([np.reshape(part, (chunk.shape[0], -1)) for part in result])


def _map(score, X, parameters: ModelParameters, feature_names, missing: str,
         widths: tuple[int, ...] | int = 0, dtype=np.float64, **options):
    """Lazy ``score`` over the row chunks; ``widths`` per output (an int: one output)."""
    width = widths if isinstance(widths, int) else sum(widths)
    function = partial(_checked, score=score, width=width, dtype=dtype,
                       feature_names=list(feature_names), missing=missing, **options)
    return map_row_chunks(function, dask_rows(X, feature_names), (width,) if width else (),
                          dtype, parameters=parameters)


def _unpack(packed, widths: tuple[int, ...], record: type[NamedTuple]) -> NamedTuple:
    """Split a lazy block of side-by-side outputs back into ``record``'s fields."""
    edges = np.cumsum((0,) + widths)
    parts = [packed[:, start] if stop - start == 1 else packed[:, start:stop]
             for start, stop in zip(edges[:-1], edges[1:])]
    return record(*parts)


def _n_columns(parameters: ModelParameters) -> int:
    return parameters.weights.shape[-1] + (parameters.noise is not None)


def dask_membership(X, parameters: ModelParameters, feature_names, missing: str,
                    interval: float = 0.94) -> MembershipArrays:
    """:func:`bayesgmm.membership.membership_arrays` of Dask rows, as lazy arrays."""
    widths = (_n_columns(parameters),) * 3 + (1,) * 5
    packed = _map(membership_arrays, X, parameters, feature_names, missing, widths,
                  interval=interval)
    arrays = _unpack(packed, widths, MembershipArrays)
    return arrays._replace(label=arrays.label.astype(np.int64))


def dask_mean_membership(X, parameters: ModelParameters, feature_names, missing: str):
    """:func:`bayesgmm.membership.mean_membership` of Dask rows, (n_samples, n_columns), lazy."""
    return _map(mean_membership, X, parameters, feature_names, missing, _n_columns(parameters))


def dask_labels(X, parameters: ModelParameters, feature_names, missing: str):
    """:func:`bayesgmm.membership.most_probable_labels` of Dask rows, lazy int array."""
    return _map(most_probable_labels, X, parameters, feature_names, missing, dtype=np.int64)


def _density(values: np.ndarray, parameters: ModelParameters, interval) -> tuple:
    density = predictive_density(values, parameters, interval)
    return density if interval is not None else (density.log_density,)


def dask_density(X, parameters: ModelParameters, feature_names, missing: str,
                 interval: float | None = 0.94) -> DensityArrays:
    """:func:`bayesgmm.density.predictive_density` of Dask rows, as lazy arrays."""
    widths = (1, 1, 1) if interval is not None else (1,)
    packed = _map(_density, X, parameters, feature_names, missing, widths, interval=interval)
    if interval is None:
        return DensityArrays(packed[:, 0], None, None)
    return _unpack(packed, widths, DensityArrays)
