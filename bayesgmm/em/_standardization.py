"""EM's bulk standardisation with frequency weights, and in pieces that chunks can add.

:func:`bayesgmm.scaling.standardization` centres and scales each column by
the mean and sd of its bulk, the values inside far-out fences set by its
quartiles.  Here the same rule is split in two steps, so that a Dask fit can
take the fences from a sample and add the bulk sums over chunks
(:mod:`bayesgmm.em._distributed`), and it takes frequency weights:

1. :func:`bulk_fences`: ``[Q1 - 5 IQR, Q3 + 5 IQR]`` from the (weighted)
   quartiles (:func:`weighted_quartiles`).
2. :func:`bulk_sums` and :func:`centre_and_scale`: the weighted mean and sd
   of the values inside, through sums about a provisional centre.

Why weighted: EM's ``reg_covar`` is relative to this scale, so a fit with
integer weights equals the fit on the repeated rows only if both are
standardised alike.  With the rows' unweighted spread instead, the two
differed by up to 3e-5 relative in the covariances at convergence (default
``reg_covar``; 1e-13 with ``reg_covar=0``).  Unweighted data go straight
to :func:`bayesgmm.scaling.standardization`, bit for bit.

Which weighted quartiles: those of the weighted empirical distribution
(``inverted_cdf``), which are the same when every weight is multiplied by a
constant; the repeated rows' (``np.percentile``'s linear interpolation)
would not be (their ``(n - 1) q`` position makes the quartiles of weights
summing to 5 differ from those of the same weights times 100).  The two
definitions differ by less than one gap between neighbouring order
statistics, so they class a value differently only when it lies that close
to a fence; the centre and scale, sums over the values inside, are then the
repeated rows' exactly (to rounding).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bayesgmm.scaling import FAR_OUT_IQRS, standardization

__all__ = [
    "BulkFences",
    "BulkSums",
    "add_bulk_sums",
    "bulk_fences",
    "bulk_sums",
    "centre_and_scale",
    "weighted_quartiles",
    "weighted_standardization",
]


def weighted_quartiles(
    values: np.ndarray, sample_weight: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """First and third quartiles of every column, each row counting its weight; NaN ignored.

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_features)
        Every column needs an observed value.
    sample_weight : ndarray of shape (n_samples,) or None
        Non-negative frequency weights.  None: ``np.nanpercentile``'s linear
        interpolation, as :func:`bayesgmm.scaling.bulk_mask`.  Weights: the
        inverse of the weighted empirical distribution function (numpy's
        ``inverted_cdf``, the one method it offers with weights), which does
        not change when every weight is multiplied by the same number.

    Returns
    -------
    lower, upper : ndarray of shape (n_features,)

    Examples
    --------
    >>> values = np.array([[1.0], [2.0], [10.0]])
    >>> [q.tolist() for q in weighted_quartiles(values, np.array([2.0, 1.0, 1.0]))]
    [[1.0], [2.0]]
    """
    if sample_weight is None:
        return tuple(np.nanpercentile(values, [25.0, 75.0], axis=0))
    weights = np.broadcast_to(sample_weight[:, None], values.shape)
    return tuple(np.nanpercentile(
        values, [25.0, 75.0], axis=0, method="inverted_cdf", weights=weights
    ))


class BulkFences(NamedTuple):
    """Far-out fences of every column (:func:`bayesgmm.scaling.bulk_mask`'s rule).

    Attributes
    ----------
    lower, upper : ndarray of shape (n_features,)
    whole : ndarray of bool, shape (n_features,)
        Columns whose interquartile range is 0: every value is bulk.
    shift : ndarray of shape (n_features,)
        A provisional centre the sums are taken about (the quartiles'
        midpoint, inside the bulk), so that no digits cancel.
    """

    lower: np.ndarray
    upper: np.ndarray
    whole: np.ndarray
    shift: np.ndarray


def bulk_fences(values: np.ndarray, sample_weight: np.ndarray | None) -> BulkFences:
    """The fences of :func:`bayesgmm.scaling.bulk_mask` from (weighted) quartiles.

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_features)
        All the rows, or a sample of them; NaN where missing.
    sample_weight : ndarray of shape (n_samples,) or None

    Returns
    -------
    BulkFences
    """
    lower, upper = weighted_quartiles(values, sample_weight)
    spread = upper - lower
    return BulkFences(
        lower - FAR_OUT_IQRS * spread, upper + FAR_OUT_IQRS * spread, spread == 0.0,
        0.5 * (lower + upper),
    )


class BulkSums(NamedTuple):
    """Weighted sums over each column's bulk about the fences' shift (results add).

    Attributes
    ----------
    weights : ndarray of shape (n_features,)
        Total weight of the bulk values.
    sums, squares : ndarray of shape (n_features,)
        Weighted sums of their deviations from the shift, and of the squared
        deviations.
    """

    weights: np.ndarray
    sums: np.ndarray
    squares: np.ndarray


def bulk_sums(
    values: np.ndarray, sample_weight: np.ndarray | None, fences: BulkFences
) -> BulkSums:
    """The sums over the bulk values of some rows.

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_features)
    sample_weight : ndarray of shape (n_samples,) or None
        Rows of weight 0 add nothing.
    fences : BulkFences

    Returns
    -------
    BulkSums
    """
    with np.errstate(invalid="ignore"):
        inside = (values >= fences.lower) & (values <= fences.upper)
    bulk = (inside | fences.whole) & ~np.isnan(values)
    weights = bulk if sample_weight is None else bulk * sample_weight[:, None]
    deviations = np.where(bulk, values - fences.shift, 0.0)
    weighted = deviations * weights
    return BulkSums(
        weights.sum(axis=0, dtype=np.float64), weighted.sum(axis=0),
        (weighted * deviations).sum(axis=0),
    )


def add_bulk_sums(first: BulkSums, second: BulkSums) -> BulkSums:
    """The sums of two disjoint blocks of rows."""
    return BulkSums(*(a + b for a, b in zip(first, second)))


def centre_and_scale(
    sums: BulkSums, fences: BulkFences, scale_mode: str
) -> tuple[np.ndarray, np.ndarray]:
    """Centre and scale from bulk sums, as :func:`bayesgmm.scaling.standardization` forms them.

    Parameters
    ----------
    sums : BulkSums
        Over all the rows.
    fences : BulkFences
    scale_mode : {"feature", "common"}
        Per-feature sds, or one common scale (the root mean of the feature
        variances).

    Returns
    -------
    centre, scale : ndarray of shape (n_features,)
        ``scale`` is 1 where a column has no spread.
    """
    mean_deviation = sums.sums / sums.weights
    centre = fences.shift + mean_deviation
    variance = np.maximum(sums.squares / sums.weights - mean_deviation**2, 0.0)
    if scale_mode == "common":
        variance = np.full_like(variance, variance.mean())
    scale = np.sqrt(variance)
    scale[scale == 0.0] = 1.0
    return centre, scale


def weighted_standardization(
    values: np.ndarray, scale_mode: str, sample_weight: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`bayesgmm.scaling.standardization` of rows with frequency weights.

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_features)
        NaN where missing.
    scale_mode : {"feature", "common"}
    sample_weight : ndarray of shape (n_samples,) or None
        Positive frequency weights; None: the unweighted standardisation,
        bit for bit.

    Returns
    -------
    centre, scale : ndarray of shape (n_features,)

    Examples
    --------
    >>> values = np.array([[0.0], [1.0], [2.0]])
    >>> repeated = np.array([[0.0], [1.0], [1.0], [2.0]])
    >>> weighted = weighted_standardization(values, "feature", np.array([1.0, 2.0, 1.0]))
    >>> np.allclose(weighted, standardization(repeated, "feature"))
    True
    """
    if sample_weight is None:
        return standardization(values, scale_mode)
    fences = bulk_fences(values, sample_weight)
    return centre_and_scale(bulk_sums(values, sample_weight, fences), fences, scale_mode)
