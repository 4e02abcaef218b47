"""Dask, imported lazily: recognising Dask input and mapping a row function over it.

Nothing here imports Dask at module import; numpy users never pay for it.
The ``[dask]`` extra installs ``dask[array,dataframe]`` and ``distributed``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["is_dask_collection", "require_dask", "as_dask_rows", "map_row_chunks"]

INSTALL_HINT = "pip install 'bayesgmm[dask]'"


def is_dask_collection(X: Any) -> bool:
    """True for a Dask array, DataFrame or Series, without importing Dask."""
    module = type(X).__module__
    return module.startswith("dask.") or module.startswith("dask_expr")


def require_dask():
    """Import ``dask.array``, or say how to install it."""
    try:
        import dask.array as da
    except ImportError:  # pragma: no cover - the [dask] extra is installed in CI
        raise ImportError(
            f"Dask input needs the optional Dask dependencies: {INSTALL_HINT}."
        ) from None
    return da


def as_dask_rows(X: Any, feature_names=None):
    """A Dask array of shape (n_samples, n_features), chunked along rows only.

    A Dask DataFrame is reduced to ``feature_names`` (in that order) when
    given, its columns checked; its partitions become row chunks (lengths
    computed once).  A Dask array is rechunked to whole rows.

    Parameters
    ----------
    X : dask.array.Array or dask.dataframe.DataFrame
    feature_names : sequence of str, optional

    Returns
    -------
    dask.array.Array of float64
    """
    da = require_dask()
    if hasattr(X, "columns"):
        if feature_names is not None:
            names = [str(name) for name in feature_names]
            missing = [name for name in names if name not in [str(c) for c in X.columns]]
            if missing:
                raise ValueError(
                    f"The Dask DataFrame lacks the fitted columns {missing}; it has "
                    f"{[str(c) for c in X.columns]}."
                )
            X = X[names]
        X = X.to_dask_array(lengths=True)
    if not isinstance(X, da.Array):
        raise TypeError(f"Expected a Dask array or DataFrame, got {type(X).__name__}.")
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (rows, features); the Dask array has shape {X.shape}.")
    if X.numblocks[1] != 1:
        X = X.rechunk({1: -1})
    return X.astype(np.float64)


def map_row_chunks(function, X, trailing_shape: tuple[int, ...] = (), dtype=np.float64,
                   **shared):
    """Apply ``function(chunk, **shared)`` to every row chunk of a Dask array, lazily.

    ``shared`` values (the posterior draws, say) are put in the graph once with
    ``dask.delayed`` so they travel to each worker once, not per chunk.

    Parameters
    ----------
    function : callable
        ``(ndarray of shape (rows, n_features), **shared) -> ndarray of shape (rows,
        *trailing_shape)``.
    X : dask.array.Array
        From :func:`as_dask_rows`.
    trailing_shape : tuple of int
        The per-row shape of ``function``'s output.
    dtype : numpy dtype

    Returns
    -------
    dask.array.Array of shape (n_samples, *trailing_shape)
    """
    da = require_dask()
    import dask

    handles = {name: dask.delayed(value) for name, value in shared.items()}
    out_index = (0, *range(2, 2 + len(trailing_shape)))
    new_axes = {axis + 2: size for axis, size in enumerate(trailing_shape)}
    return da.blockwise(_call, out_index, X, (0, 1), function=function, dtype=dtype,
                        new_axes=new_axes, concatenate=True, **handles)


def _call(chunk, function, **shared):
    return function(np.asarray(chunk, dtype=np.float64), **shared)
