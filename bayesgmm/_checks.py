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

Decision on extreme magnitudes: data to fit must sit within float64's comfort
zone, ``|x| <= MAX_MAGNITUDE`` (1e150) and ``max - min >= MIN_SPREAD``
(1e-150) in every non-constant column, or they are **refused** with the
factor to rescale by.  Beyond these, variances (and the covariances reported
in data units) overflow or underflow, so a fit would return NaN means or merge
clusters; rescaling inside would keep the fit but not its attributes, which
are in the user's units.  New points given to a fitted model (prediction) may
have any finite magnitude: :mod:`bayesgmm.gaussian` keeps their densities and
responsibilities defined.

Dates, times and durations are refused rather than read as nanoseconds since
1970: the unit is arbitrary and the clusters would depend on it.
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
    "check_random_state",
    "DataValidationError",
    "SEED_LIMIT",
    "TiedValuesWarning",
    "largest_ties",
    "warn_improper_ties",
    "MAX_MAGNITUDE",
    "MIN_SPREAD",
    "MISSING_OPTIONS",
    "check_X",
    "check_n_components",
    "check_number",
    "data_fingerprint",
    "match_features",
]

_MAX_ROWS_SHOWN = 5

MISSING_OPTIONS = ("reject", "marginalize")
"""How an estimator's ``missing=`` treats NaN: refuse it, or fit with it by
marginalising each row's missing values (assumed missing at random)."""

_MARGINALIZE_HINT = (
    ", or pass missing='marginalize' to fit with the missing values (assumed missing at random)"
)

MAX_MAGNITUDE = 1e150
"""Largest ``|x|`` accepted in data to fit: squares, and sums of 10^7 of them, stay finite."""

MIN_SPREAD = 1e-150
"""Smallest ``max - min`` of a non-constant column to fit: its variance stays a normal float."""

_SINCE_START = "hours since start: (t - t.min()) / pd.Timedelta(hours=1)"
_TIME_KINDS = {
    "datetime64": ("dates and times", _SINCE_START),
    "datetime": ("dates and times", _SINCE_START),
    "date": ("dates", "days since start: (t - t.min()) / pd.Timedelta(days=1)"),
    "period": ("periods", "t.dt.to_timestamp(), then " + _SINCE_START),
    "time": ("times of day", "hours since midnight: [v.hour + v.minute / 60 for v in t]"),
    "timedelta64": ("durations", "hours: t / pd.Timedelta(hours=1)"),
    "timedelta": ("durations", "hours: t / pd.Timedelta(hours=1)"),
}
"""``pandas.api.types.infer_dtype`` kinds refused by :func:`check_X`: words and a fix."""


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
    time_kind = _TIME_KINDS.get(pd.api.types.infer_dtype(column, skipna=True))
    if time_kind is not None:
        words, fix = time_kind
        raise DataValidationError(
            f"column '{name}' holds {words} (dtype {column.dtype}); as numbers they would "
            "be counts of an arbitrary unit (e.g. nanoseconds since 1970) and the clusters "
            f"would depend on it. Convert it to a number yourself, e.g. {fix}; or drop "
            "the column."
        )
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


def _check_finite(values: np.ndarray, names: list[str], index: pd.Index,
                  missing: str | None = None) -> None:
    """Reject infinite values, and NaN unless ``missing="marginalize"``, naming column and rows.

    With ``missing="marginalize"`` a row with every value missing is refused
    too: nothing about it can be marginalised.
    """
    if np.isfinite(values).all():
        return
    allow_nan = missing == "marginalize"
    for j, name in enumerate(names):
        column = values[:, j]
        for kind, mask in (("NaN", np.isnan(column)), ("inf", np.isinf(column))):
            count = int(mask.sum())
            if count and not (kind == "NaN" and allow_nan):
                hint = _MARGINALIZE_HINT if kind == "NaN" and missing == "reject" else ""
                raise DataValidationError(
                    f"column '{name}' has {count} {kind} value"
                    f"{'s' if count > 1 else ''} ({_rows_text(np.asarray(index[mask]))}"
                    f"); drop or impute them before fitting, e.g. df.dropna(){hint}."
                )
    empty = np.isnan(values).all(axis=1)
    if empty.any():
        raise DataValidationError(
            f"X has no observed value in {_rows_text(np.asarray(index[empty]))} (every value "
            "is NaN), so nothing is known about them; drop them, e.g. df.dropna(how='all')."
        )


def _with_missing_filled(values: np.ndarray, names: list[str]) -> np.ndarray:
    """``values`` with each NaN replaced by its column's smallest observed value.

    The columns' maxima and minima are unchanged, so :func:`_check_spread`
    sees the observed values only.  A column with no observed value is
    refused.
    """
    missing = np.isnan(values)
    if not missing.any():
        return values
    for j in np.flatnonzero(missing.all(axis=0)):
        raise DataValidationError(
            f"column '{names[j]}' has no observed value (every value is NaN); it carries "
            "no information about clusters. Drop the column before fitting."
        )
    return np.where(missing, np.nanmin(values, axis=0), values)


def _check_unique_names(names: list[str]) -> None:
    """Reject repeated column names: a name must pick out one column."""
    counts = pd.Series(names).value_counts()
    repeated = counts[counts > 1]
    if len(repeated):
        listed = ", ".join(f"'{name}' ({count} times)" for name, count in repeated.items())
        raise DataValidationError(
            f"X has duplicated column names: {listed}; each feature needs its own name. "
            "Rename them, e.g. df.columns = ['a', 'b', ...], or drop the repeats with "
            "df.loc[:, ~df.columns.duplicated()]."
        )


def _check_spread(values: np.ndarray, names: list[str]) -> None:
    """Reject constant columns and magnitudes float64 cannot fit (module docstring).

    Constancy is ``max == min``, exact at any magnitude; the magnitude and
    spread tests only look at columns that vary.
    """
    high, low = values.max(axis=0), values.min(axis=0)
    constant = np.flatnonzero(high == low) if values.shape[0] > 1 else []
    for j in constant:
        raise DataValidationError(
            f"column '{names[j]}' is constant (every value is {values[0, j]:g}); "
            "it carries no information about clusters and makes every covariance "
            "singular. Drop the column before fitting."
        )
    magnitude = np.maximum(high, -low)
    for j in np.flatnonzero(magnitude > MAX_MAGNITUDE):
        factor = 10.0 ** np.ceil(np.log10(magnitude[j]))
        raise DataValidationError(
            f"column '{names[j]}' has values up to {magnitude[j]:.3g} in magnitude; their "
            "squares (variances, covariances in data units) overflow float64. Rescale the "
            f"column, e.g. divide it by {factor:.0e}, and read the fitted means and "
            "covariances in those units."
        )
    spread = high - low
    for j in np.flatnonzero((spread > 0) & (spread < MIN_SPREAD)):
        factor = 10.0 ** -np.floor(np.log10(spread[j]))
        raise DataValidationError(
            f"column '{names[j]}' spans only {spread[j]:.3g} (max - min); its variance "
            "underflows float64 and clusters in it cannot be told apart. Rescale the "
            f"column, e.g. multiply it by {factor:.0e}, and read the fitted means and "
            "covariances in those units."
        )


def _check_not_empty(n_rows: int, n_columns: int) -> None:
    """Refuse data without rows or without columns."""
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


def check_X(
    X: Any,
    *,
    n_components: int | None = None,
    n_features: int | None = None,
    reject_constant: bool = True,
    missing: str | None = None,
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
        Data to fit: reject zero-variance columns and magnitudes outside
        ``[MIN_SPREAD, MAX_MAGNITUDE]`` (module docstring).  Prediction on
        new data passes ``False``: a constant column is harmless there, and
        far points keep defined densities.
    missing : {None, "reject", "marginalize"}, default=None
        Missing values (NaN).  ``None``: refused, with the advice to drop or
        impute them (callers without a ``missing=`` option).  ``"reject"``:
        refused, and the message also names ``missing='marginalize'``.
        ``"marginalize"``: accepted, except in a row with every value missing
        and, with ``reject_constant``, in a column with every value missing;
        constancy and magnitudes are then judged on the observed values.
        Infinite values are refused in every case.

    Returns
    -------
    CheckedData
        ``values`` (float64, C-contiguous) and ``feature_names``.

    Raises
    ------
    DataValidationError
        For NaN (unless ``missing="marginalize"``), inf, rows or columns with
        every value missing, non-numeric or date/time columns, duplicated column
        names, empty input, 1-D input, too few rows, the wrong number of
        columns, a constant column, or magnitudes float64 cannot fit.

    Examples
    --------
    >>> import pandas as pd
    >>> checked = check_X(pd.DataFrame({"a": [1.0, 2.0], "b": [3, 5]}))
    >>> checked.values.dtype, checked.feature_names
    (dtype('float64'), ['a', 'b'])
    """
    frame, from_frame = _as_frame(X)
    n_rows, n_columns = frame.shape
    _check_not_empty(n_rows, n_columns)
    names = [str(name) for name in frame.columns]
    _check_unique_names(names)
    if not from_frame and np.asarray(X).dtype.kind in "biuf":
        # Numeric arrays: one contiguous float64 copy, no per-column work.
        values = np.array(X, dtype=np.float64, order="C", copy=True)
    else:
        values = np.column_stack([_numeric_column(frame, c) for c in frame.columns])
    values = np.ascontiguousarray(values, dtype=np.float64)
    _check_finite(values, names, frame.index, missing)
    if n_features is not None and n_columns != n_features:
        raise DataValidationError(
            f"X has {n_columns} features, but the model is expecting {n_features} "
            "features as input; pass the same columns that were used in fit."
        )
    if n_components is not None:
        check_n_components(n_components, n_rows)
    if reject_constant:
        _check_spread(_with_missing_filled(values, names), names)
    return CheckedData(values, names)


def match_features(X: Any, feature_names, missing: str | None = None) -> np.ndarray:
    """Check new data against a fitted model's features.

    DataFrame columns are matched to ``feature_names`` by name (extra columns
    are ignored, order does not matter); arrays must have as many columns.
    Constant columns are allowed: they are harmless in prediction.

    Parameters
    ----------
    X : array-like or DataFrame of shape (n_samples, n_features)
    feature_names : sequence of str
        The names the model was fitted on.
    missing : {None, "reject", "marginalize"}, default=None
        Missing values (NaN), as :func:`check_X` treats them.

    Returns
    -------
    ndarray of shape (n_samples, len(feature_names))
    """
    names = [str(name) for name in feature_names]
    if isinstance(X, pd.DataFrame):
        columns = X.columns.astype(str)
        _check_unique_names(list(columns))
        absent = [name for name in names if name not in columns]
        if absent:
            raise DataValidationError(
                f"X has no column '{absent[0]}', which the model was fitted on (needs: "
                f"{', '.join(names)}); pass those columns."
            )
        X = X.set_axis(columns, axis=1)[names]
    elif np.ndim(X) == 2 and np.shape(X)[1] != len(names):
        # scikit-learn's wording, which its estimator checks look for.
        raise DataValidationError(
            f"X has {np.shape(X)[1]} features, but BayesianGMM is expecting {len(names)} "
            "features as input; pass the same columns that were used in fit."
        )
    return check_X(X, n_features=len(names), reject_constant=False, missing=missing).values


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
    """SHA-256 of a float64 array's bytes and shape, for provenance (every NaN alike)."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    if np.isnan(values).any():  # a NaN's payload bits are not part of the data
        values = np.where(np.isnan(values), np.nan, values)
    digest = hashlib.sha256(values.tobytes())
    digest.update(str(values.shape).encode())
    return digest.hexdigest()


def check_random_state(random_state: Any, *, stored: bool = False) -> None:
    """Require None, a numpy Generator or RandomState, or a non-negative integer.

    Parameters
    ----------
    random_state : object
    stored : bool, default=False
        The seed will be stored in a model file as a 64-bit integer, so it
        must also be below :data:`SEED_LIMIT`.

    Raises
    ------
    ValueError
        For anything else (strings, negative ints, floats, bools), saying
        what is accepted.
    """
    if random_state is None or isinstance(random_state,
                                          (np.random.Generator, np.random.RandomState)):
        return
    if (isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool)
            and random_state >= 0 and (not stored or random_state < SEED_LIMIT)):
        return
    if stored:
        raise ValueError(
            "random_state must be None, an integer in [0, 2**63) such as random_state=0 (the "
            "model file stores it as a 64-bit integer), a numpy.random.Generator or a "
            f"numpy.random.RandomState; got {random_state!r}."
        )
    raise ValueError(
        "random_state must be None, a non-negative int, a numpy Generator or RandomState, "
        f"got {random_state!r}; e.g. random_state=0 for reproducible results."
    )


def as_generator(random_state: Any) -> np.random.Generator:
    """One ``np.random.Generator`` from ``None``, an int, a Generator or a RandomState.

    Parameters
    ----------
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState
        A Generator is returned as is; a RandomState seeds a new Generator
        from its stream; ``None`` and non-negative ints seed one.

    Returns
    -------
    numpy.random.Generator

    Raises
    ------
    ValueError
        For anything else (see :func:`check_random_state`).
    """
    check_random_state(random_state)
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(2**32 - 1, dtype=np.int64))
    return np.random.default_rng(random_state)


SEED_LIMIT = 2**63
"""Seeds are stored in model files and passed on as signed 64-bit integers."""

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
