"""Input checks shared by every estimator in bayesgmm.

Every public entry point turns its ``X`` into a float array through
:func:`check_X`, so a user gets the same message for the same mistake whether
they call EM, the Bayesian model or the command line.  Messages name the
column, the rows and the fix.

Decision on zero-variance columns: they are **rejected**.  A constant column
carries no information about clusters, makes every component covariance
singular, and cannot be standardised; silently dropping it would change the
meaning of ``means_`` and ``feature_names_in_``.  The message tells the user
to drop the column.
"""

from __future__ import annotations

import hashlib
import numbers
import warnings
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

__all__ = [
    "CheckedData",
    "as_generator",
    "DataValidationError",
    "TiedValuesWarning",
    "largest_ties",
    "warn_improper_ties",
    "check_X",
    "check_n_components",
    "check_number",
    "data_fingerprint",
    "match_features",
]

_MAX_ROWS_SHOWN = 5


class DataValidationError(ValueError):
    """Raised when user data cannot be used; the message says how to fix it."""


class TiedValuesWarning(UserWarning):
    """Tied values with a scale prior under which the posterior is improper."""


class CheckedData(NamedTuple):
    """A validated data matrix and the names of its columns.

    Attributes
    ----------
    values : ndarray of shape (n_samples, n_features)
        A new C-contiguous float64 array (never a view of the input, so
        callers may modify it).
    feature_names : list of str
        DataFrame column names, or ``x0, x1, ...`` for arrays.
    """

    values: np.ndarray
    feature_names: list[str]


def _rows_text(row_labels: np.ndarray) -> str:
    """Describe at most a few offending rows, e.g. ``rows 4, 17, 90``."""
    shown = ", ".join(str(label) for label in row_labels[:_MAX_ROWS_SHOWN])
    more = len(row_labels) - _MAX_ROWS_SHOWN
    suffix = f" and {more} more" if more > 0 else ""
    noun = "row" if len(row_labels) == 1 else "rows"
    return f"{noun} {shown}{suffix}"


def _as_frame(X: Any) -> tuple[pd.DataFrame, bool]:
    """Wrap ``X`` in a DataFrame without copying numeric arrays."""
    if isinstance(X, pd.DataFrame):
        return X, True
    if isinstance(X, pd.Series):
        raise DataValidationError(
            f"X is a 1-D Series '{X.name}' with {len(X)} values; clustering needs a "
            "2-D table. Pass a DataFrame instead, e.g. X.to_frame() or df[['col']]."
        )
    array = np.asarray(X) if not hasattr(X, "toarray") else None
    if array is None:
        raise DataValidationError(
            "X is a sparse matrix; Gaussian mixtures need dense data. "
            "Convert it with X.toarray() if it fits in memory."
        )
    if array.ndim == 0:
        raise DataValidationError(
            f"X is a scalar ({array!r}); pass a 2-D array of shape "
            "(n_samples, n_features)."
        )
    if array.ndim == 1:
        raise DataValidationError(
            f"Expected a 2-D array, got a 1-D array of {array.shape[0]} values. "
            "Reshape your data either using array.reshape(-1, 1) if your data has "
            "a single feature or array.reshape(1, -1) if it contains a single sample."
        )
    if array.ndim > 2:
        raise DataValidationError(
            f"Expected a 2-D array, got an array of shape {array.shape}; flatten "
            "the trailing dimensions into features, e.g. "
            "array.reshape(array.shape[0], -1)."
        )
    names = [f"x{j}" for j in range(array.shape[1])]
    return pd.DataFrame(array, columns=names, copy=False), False


def _numeric_column(frame: pd.DataFrame, name: Any) -> np.ndarray:
    """Convert one column to float64 or say which value is not a number."""
    column = frame[name]
    if pd.api.types.is_complex_dtype(column.dtype):
        raise DataValidationError(
            f"column '{name}' holds complex numbers. Complex data not supported; "
            "pass the real part, the modulus, or both as separate columns."
        )
    if pd.api.types.is_bool_dtype(column.dtype) or pd.api.types.is_numeric_dtype(
        column.dtype
    ):
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
    converted = pd.to_numeric(column, errors="coerce")
    bad = converted.isna() & column.notna()
    if bad.any():
        example = column[bad].iloc[0]
        raise DataValidationError(
            f"column '{name}' is not numeric (dtype {column.dtype}, e.g. {example!r} "
            f"in {_rows_text(np.asarray(column.index[bad]))}); drop the column or "
            "encode it as numbers before clustering."
        )
    return converted.to_numpy(dtype=np.float64, na_value=np.nan)


def _check_finite(values: np.ndarray, names: list[str], index: pd.Index) -> None:
    """Reject NaN and infinite values, naming the column and rows."""
    if np.isfinite(values).all():
        return
    for j, name in enumerate(names):
        column = values[:, j]
        for kind, mask in (("NaN", np.isnan(column)), ("inf", np.isinf(column))):
            count = int(mask.sum())
            if count:
                raise DataValidationError(
                    f"column '{name}' has {count} {kind} value"
                    f"{'s' if count > 1 else ''} ({_rows_text(np.asarray(index[mask]))}"
                    "); drop or impute them before fitting, e.g. df.dropna()."
                )


def _check_constant(values: np.ndarray, names: list[str]) -> None:
    """Reject zero-variance columns (see the module docstring)."""
    if values.shape[0] < 2:
        return
    spread = np.ptp(values, axis=0)
    for j in np.flatnonzero(spread == 0):
        raise DataValidationError(
            f"column '{names[j]}' is constant (every value is {values[0, j]:g}); "
            "it carries no information about clusters and makes every covariance "
            "singular. Drop the column before fitting."
        )


def check_X(
    X: Any,
    *,
    n_components: int | None = None,
    n_features: int | None = None,
    reject_constant: bool = True,
) -> CheckedData:
    """Validate data and return it as a float64 array with column names.

    Parameters
    ----------
    X : array-like or DataFrame of shape (n_samples, n_features)
        Data to validate.  Lists, arrays (numeric or object) and DataFrames
        are accepted; bool columns become 0/1.
    n_components : int, optional
        When given, require at least this many rows.
    n_features : int, optional
        When given (prediction on new data), require this many columns.
    reject_constant : bool, default=True
        Reject zero-variance columns.  Prediction on new data passes
        ``False``: a constant column is harmless there.

    Returns
    -------
    CheckedData
        ``values`` (float64, C-contiguous) and ``feature_names``.

    Raises
    ------
    DataValidationError
        For NaN/inf, non-numeric columns, empty input, 1-D input, too few
        rows, the wrong number of columns, or a constant column.

    Examples
    --------
    >>> import pandas as pd
    >>> checked = check_X(pd.DataFrame({"a": [1.0, 2.0], "b": [3, 5]}))
    >>> checked.values.dtype, checked.feature_names
    (dtype('float64'), ['a', 'b'])
    """
    frame, from_frame = _as_frame(X)
    n_rows, n_columns = frame.shape
    if n_rows == 0:
        raise DataValidationError(
            f"X is empty: 0 sample(s) (shape=({n_rows}, {n_columns})); pass at least "
            "one row of data."
        )
    if n_columns == 0:
        raise DataValidationError(
            f"X has 0 feature(s) (shape=({n_rows}, 0)) while a minimum of 1 is "
            "required; pass at least one numeric column."
        )
    names = [str(name) for name in frame.columns]
    if not from_frame and np.asarray(X).dtype.kind in "biuf":
        # Numeric arrays: one contiguous float64 copy, no per-column work.
        values = np.array(X, dtype=np.float64, order="C", copy=True)
    else:
        values = np.column_stack([_numeric_column(frame, c) for c in frame.columns])
    values = np.ascontiguousarray(values, dtype=np.float64)
    _check_finite(values, names, frame.index)
    if n_features is not None and n_columns != n_features:
        raise DataValidationError(
            f"X has {n_columns} features, but the model is expecting {n_features} "
            "features as input; pass the same columns that were used in fit."
        )
    if n_components is not None:
        check_n_components(n_components, n_rows)
    if reject_constant:
        _check_constant(values, names)
    return CheckedData(values, names)


def match_features(X: Any, feature_names) -> np.ndarray:
    """Check new data against a fitted model's features.

    DataFrame columns are matched to ``feature_names`` by name (extra columns
    are ignored, order does not matter); arrays must have as many columns.
    Constant columns are allowed: they are harmless in prediction.

    Parameters
    ----------
    X : array-like or DataFrame of shape (n_samples, n_features)
    feature_names : sequence of str
        The names the model was fitted on.

    Returns
    -------
    ndarray of shape (n_samples, len(feature_names))
    """
    names = [str(name) for name in feature_names]
    if isinstance(X, pd.DataFrame):
        columns = X.columns.astype(str)
        missing = [name for name in names if name not in columns]
        if missing:
            raise DataValidationError(
                f"X has no column '{missing[0]}', which the model was fitted on (needs: "
                f"{', '.join(names)}); pass those columns."
            )
        X = X.set_axis(columns, axis=1)[names]
    return check_X(X, n_features=len(names), reject_constant=False).values


def check_n_components(n_components: Any, n_samples: int | None = None) -> int:
    """Check that ``n_components`` is a positive int not above ``n_samples``.

    Parameters
    ----------
    n_components : int
        Requested number of mixture components.
    n_samples : int, optional
        Number of rows in the data.

    Returns
    -------
    int
        ``n_components`` as a Python int.
    """
    if isinstance(n_components, bool) or not isinstance(
        n_components, (int, np.integer)
    ):
        raise DataValidationError(
            f"n_components must be a positive integer, got {n_components!r}."
        )
    if n_components < 1:
        raise DataValidationError(
            f"n_components must be at least 1, got {n_components}."
        )
    if n_samples is not None and n_samples < n_components:
        raise DataValidationError(
            f"Expected n_samples >= n_components, but got n_samples = {n_samples} "
            f"and n_components = {n_components}; collect more rows or lower "
            "n_components."
        )
    return int(n_components)


def check_number(name: str, value: Any, *, low: float, integer: bool = False) -> None:
    """Require a real number (or an integer) of at least ``low``; bools are refused."""
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind) or value < low:
        what = "an integer" if integer else "a number"
        raise ValueError(f"{name} must be {what} >= {low}, got {value!r}.")


def data_fingerprint(values: np.ndarray) -> str:
    """SHA-256 of a float64 array's bytes and shape, for provenance."""
    digest = hashlib.sha256(np.ascontiguousarray(values, dtype=np.float64).tobytes())
    digest.update(str(values.shape).encode())
    return digest.hexdigest()


def as_generator(random_state: Any) -> np.random.Generator:
    """One ``np.random.Generator`` from ``None``, an int, a Generator or a RandomState."""
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(2**32 - 1, dtype=np.int64))
    return np.random.default_rng(random_state)


MAX_HARMLESS_TIE = 2
"""A component on ``m`` tied points makes the posterior improper once ``m > 2``."""


def largest_ties(values: np.ndarray) -> np.ndarray:
    """How often the most repeated value of each feature occurs.

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_features)

    Returns
    -------
    ndarray of int, shape (n_features,)

    Examples
    --------
    >>> largest_ties(np.array([[1.0, 2.0], [1.0, 3.0], [1.0, 4.0]])).tolist()
    [3, 1]
    """
    ordered = np.sort(values, axis=0)
    counts = []
    for column in ordered.T:
        starts = np.flatnonzero(np.r_[True, column[1:] != column[:-1], True])
        counts.append(int(np.diff(starts).max()))
    return np.asarray(counts)


def warn_improper_ties(values: np.ndarray, feature_names: list[str], scale_prior: str,
                       proper_priors: tuple[str, ...]) -> None:
    """Warn when tied values make the posterior improper under ``scale_prior``.

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_features)
    feature_names : list of str
    scale_prior : str
    proper_priors : tuple of str
        Scale priors that stay proper with ties (nothing is checked for them).
    """
    if scale_prior in proper_priors:
        return
    ties = largest_ties(values)
    worst = int(np.argmax(ties))
    if ties[worst] > MAX_HARMLESS_TIE:
        warnings.warn(
            f"column '{feature_names[worst]}' repeats one value {ties[worst]} times: with "
            f"scale_prior={scale_prior!r} a component can collapse onto tied values and the "
            "posterior is improper (samplers find scales near 0). Use "
            f"GMMPriors(scale_prior={proper_priors[0]!r}), the default, or de-duplicate "
            "the rounding (e.g. add uniform jitter of half the rounding unit).",
            TiedValuesWarning,
            stacklevel=3,
        )
