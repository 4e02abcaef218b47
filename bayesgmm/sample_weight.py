"""Frequency weights: one check, shared by EM and the Bayesian fit.

A weight is a *frequency* weight: ``w_i`` says how many times row ``i``
counts, so a fit with integer weights equals the fit on the rows repeated
that many times, and the log-likelihood is ``sum_i w_i log p(x_i)``.
Fractional weights are allowed (a coreset's, survey weights scaled to
counts); the effective number of rows is ``sum_i w_i``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["check_sample_weight", "is_unweighted", "model_weights"]


def check_sample_weight(sample_weight: Any, n_samples: int) -> np.ndarray | None:
    """Check frequency weights against the data's rows.

    Parameters
    ----------
    sample_weight : array-like of shape (n_samples,) or None
        Non-negative, finite, not all zero.
    n_samples : int
        Rows of the checked data.

    Returns
    -------
    ndarray of shape (n_samples,) or None
        Float64 weights; None when ``sample_weight`` is None (every row counts once).

    Raises
    ------
    ValueError
        Naming the rows at fault and the fix.

    Examples
    --------
    >>> check_sample_weight([1, 2, 0.5], 3).tolist()
    [1.0, 2.0, 0.5]
    >>> check_sample_weight([1, -2, 1], 3)
    Traceback (most recent call last):
    ...
    ValueError: sample_weight must be non-negative (frequency weights); row 1 is -2.0. ...
    """
    if sample_weight is None:
        return None
    if hasattr(sample_weight, "to_numpy"):
        sample_weight = sample_weight.to_numpy()
    try:
        weights = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"sample_weight must be numbers, one per row of X; could not read it as numbers "
            f"({error})."
        ) from None
    if weights.ndim != 1 or weights.shape[0] != n_samples:
        raise ValueError(
            f"sample_weight must have one entry per row of X: X has {n_samples} rows, "
            f"sample_weight has shape {weights.shape}. Pass a 1-D array of length {n_samples}."
        )
    bad = np.flatnonzero(~np.isfinite(weights))
    if bad.size:
        raise ValueError(
            f"sample_weight must be finite; {bad.size} entries are NaN or infinite (first at "
            f"row {bad[0]}). Give those rows a weight (0 drops a row) or remove them."
        )
    negative = np.flatnonzero(weights < 0)
    if negative.size:
        raise ValueError(
            f"sample_weight must be non-negative (frequency weights); row {negative[0]} is "
            f"{weights[negative[0]]}. {negative.size} rows are negative: fix or drop them."
        )
    if not weights.any():
        raise ValueError(
            "sample_weight is zero for every row, so no row counts. Give at least one row a "
            "positive weight."
        )
    return weights


def is_unweighted(weights: np.ndarray | None) -> bool:
    """True when ``weights`` is None or all ones (the unweighted fit, bit for bit)."""
    return weights is None or bool(np.all(weights == 1.0))


def model_weights(sample_weight: Any, n_samples: int) -> np.ndarray | None:
    """Checked weights for a model, or None when every row counts once.

    None (and all ones) select the unweighted model bit for bit.

    Examples
    --------
    >>> model_weights(np.ones(3), 3) is None
    True
    """
    weights = check_sample_weight(sample_weight, n_samples)
    return None if is_unweighted(weights) else weights
