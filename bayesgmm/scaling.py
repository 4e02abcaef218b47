"""Standardisation and the scale the Bayesian model is fitted on.

Numpy only.  EM standardises inside (so ``reg_covar`` is relative to each
feature's variance); the Bayesian model states its weakly informative priors
on the standardised scale unless ``GMMPriors(standardize=False)``.

The bulk standardisation (:func:`standardization`) is stated once, in pieces
that a table in chunks can use as well (a Dask EM fit,
:mod:`bayesgmm.em._distributed`): the fences from the quartiles of some rows
(:func:`bulk_fences`), the moments of the bulk values of a block of rows
(:func:`bulk_moments`), combined over blocks (:func:`add_bulk_moments`),
and the centre and scale from the moments of all the rows
(:func:`centre_and_scale`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bayesgmm.noise import (
    check_noise_volume,
    log_noise_density,
    noise_log_sides,
    noise_region,
)
from bayesgmm.parameters import COVARIANCE_TYPES
from bayesgmm.priors import GMMPriors, ResolvedPriors

__all__ = [
    "COVARIANCE_TYPES",
    "SCALE_MODES",
    "BulkFences",
    "BulkMoments",
    "ModelData",
    "add_bulk_moments",
    "bulk_fences",
    "bulk_mask",
    "bulk_moments",
    "centre_and_scale",
    "column_quartiles",
    "inside_fences",
    "model_noise_log_density",
    "model_noise_log_sides",
    "model_scale",
    "standardization",
]

SCALE_MODES = {"full": "feature", "tied": "feature", "diag": "feature", "spherical": "common"}
"""How each covariance structure may be standardised (see :func:`standardization`):
a spherical component is spherical in the user's units only if every feature
is divided by the same scale."""


FAR_OUT_IQRS = 5.0
"""Values more than this many interquartile ranges outside the quartiles do
not set the centre and scale.  Wider than Tukey's far-out fence (3) so that a
genuine small cluster still counts (Galaxies' three velocities near 33,000
km/s lie 3.1 IQRs out); a Gaussian column reaches it at 7.4 sd, never in
practice.  The outliers that break a fit lie thousands of IQRs out."""


def column_quartiles(
    values: np.ndarray, sample_weight: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """First and third quartiles of every column, NaN ignored.

    Without weights, ``np.nanpercentile``'s linear interpolation (without
    NaN, ``np.percentile``'s values bit for bit).  With frequency weights,
    the inverse of the weighted empirical distribution function (numpy's
    ``inverted_cdf``, the one method it offers with weights) over the rows
    of positive weight.  That one does not change when every weight is
    multiplied by a constant; the repeated rows' linear interpolation would
    (its ``(n - 1) q`` position makes the quartiles of weights summing to 5
    differ from those of the same weights times 100).  The two definitions
    differ by less than one gap between neighbouring order statistics, so
    they class a value differently only when it lies that close to a fence.

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_features)
        Every column needs an observed value (of positive weight).
    sample_weight : ndarray of shape (n_samples,), optional
        Non-negative frequency weights.

    Returns
    -------
    lower, upper : ndarray of shape (n_features,)

    Examples
    --------
    >>> values = np.array([[1.0], [2.0], [10.0]])
    >>> [q.tolist() for q in column_quartiles(values, np.array([2.0, 1.0, 1.0]))]
    [[1.0], [2.0]]
    """
    if sample_weight is None:
        lower, upper = np.nanpercentile(values, [25.0, 75.0], axis=0)
        return lower, upper
    quartiles = np.empty((2, values.shape[1]))
    for j, column in enumerate(values.T):
        counted = ~np.isnan(column) & (sample_weight > 0)
        quartiles[:, j] = np.percentile(column[counted], [25.0, 75.0],
                                        weights=sample_weight[counted], method="inverted_cdf")
    return quartiles[0], quartiles[1]


class BulkFences(NamedTuple):
    """Far-out fences of every column: ``[Q1 - 5 IQR, Q3 + 5 IQR]``.

    Attributes
    ----------
    lower, upper : ndarray of shape (n_features,)
    whole : ndarray of bool, shape (n_features,)
        Columns whose interquartile range is 0 (at least half their values
        tied), which cannot tell outliers from the bulk: every value is bulk.
    """

    lower: np.ndarray
    upper: np.ndarray
    whole: np.ndarray

    @property
    def middle(self) -> np.ndarray:
        """Halfway between the fences: an origin near the bulk (:func:`bulk_moments`)."""
        return 0.5 * (self.lower + self.upper)


def bulk_fences(values: np.ndarray, sample_weight: np.ndarray | None = None) -> BulkFences:
    """The fences set by the (weighted) quartiles of some rows (:func:`column_quartiles`).

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_features)
        All the rows, or a sample of them (a Dask fit); NaN where missing.
    sample_weight : ndarray of shape (n_samples,), optional

    Returns
    -------
    BulkFences
    """
    lower, upper = column_quartiles(values, sample_weight)
    spread = upper - lower
    return BulkFences(lower - FAR_OUT_IQRS * spread, upper + FAR_OUT_IQRS * spread,
                      spread == 0.0)


def inside_fences(values: np.ndarray, fences: BulkFences) -> np.ndarray:
    """Which values are bulk: observed, and inside their column's fences (or all of a whole one).

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_features)
    fences : BulkFences

    Returns
    -------
    ndarray of bool, same shape
    """
    inside = (values >= fences.lower) & (values <= fences.upper)
    return (inside | fences.whole) & ~np.isnan(values)


def bulk_mask(values: np.ndarray, sample_weight: np.ndarray | None = None) -> np.ndarray:
    """Which values lie inside the far-out fences of their column.

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_features)
        Missing values (NaN) are ignored: the quartiles are those of the
        observed values, and a missing value is never bulk.  Every column
        needs an observed value.
    sample_weight : ndarray of shape (n_samples,), optional
        Frequency weights: the quartiles are weighted (:func:`column_quartiles`).

    Returns
    -------
    ndarray of bool, same shape
        True inside ``[Q1 - 5 IQR, Q3 + 5 IQR]``, and everywhere observed in
        a column whose IQR is 0 (:class:`BulkFences`).
    """
    return inside_fences(values, bulk_fences(values, sample_weight))


class BulkMoments(NamedTuple):
    """Weighted moments of each column's bulk values in a block of rows.

    Blocks combine (:func:`add_bulk_moments`) when their moments are taken
    about the same origin.

    Attributes
    ----------
    origin : float or ndarray of shape (n_features,)
        The point the moments are taken about.
    weight : ndarray of shape (n_features,)
        Total weight of the bulk values.
    mean : ndarray of shape (n_features,)
        Their weighted mean minus ``origin`` (0 where ``weight`` is 0).
    squares : ndarray of shape (n_features,)
        The weighted sum of their squared deviations from their mean.
    """

    origin: float | np.ndarray
    weight: np.ndarray
    mean: np.ndarray
    squares: np.ndarray


def bulk_moments(
    values: np.ndarray, sample_weight: np.ndarray | None, fences: BulkFences,
    origin: float | np.ndarray = 0.0,
) -> BulkMoments:
    """The moments of the bulk values of some rows, in two passes (mean, then deviations).

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_features)
        NaN where missing.
    sample_weight : ndarray of shape (n_samples,) or None
        Frequency weights; rows of weight 0 add nothing.
    fences : BulkFences
        From these rows or from a sample of a larger table.
    origin : float or ndarray of shape (n_features,), default 0
        0 for the rows of one block: its mean is then ``np.mean``'s, bit for
        bit.  Blocks to be combined need a common origin near their values
        (:attr:`BulkFences.middle`): their means are subtracted from each
        other, and means far from the origin (1e6 for a spread of 1e-3) keep
        too few digits of the difference.

    Returns
    -------
    BulkMoments
    """
    bulk = inside_fences(values, fences)
    # Unit weights multiply exactly: unweighted, these are the plain sums.
    weights = np.where(bulk, 1.0 if sample_weight is None else sample_weight[:, None], 0.0)
    weight = weights.sum(axis=0)
    deviations = np.where(bulk, values - origin, 0.0)
    total = (weights * deviations).sum(axis=0)
    mean = np.divide(total, weight, out=np.zeros_like(total), where=weight > 0.0)
    squares = (weights * np.where(bulk, deviations - mean, 0.0) ** 2).sum(axis=0)
    return BulkMoments(origin, weight, mean, squares)


def add_bulk_moments(first: BulkMoments, second: BulkMoments) -> BulkMoments:
    """The moments of two disjoint blocks of rows together (Chan, Golub & LeVeque 1979).

    Examples
    --------
    >>> values = np.array([[1.0], [2.0], [4.0], [7.0]])
    >>> fences = bulk_fences(values)
    >>> parts = add_bulk_moments(bulk_moments(values[:1], None, fences),
    ...                          bulk_moments(values[1:], None, fences))
    >>> whole = bulk_moments(values, None, fences)
    >>> all(np.allclose(a, b) for a, b in zip(parts, whole))
    True
    """
    weight = first.weight + second.weight
    share = np.divide(second.weight, weight, out=np.zeros_like(weight), where=weight > 0.0)
    shift = second.mean - first.mean
    return BulkMoments(first.origin, weight, first.mean + share * shift,
                       first.squares + second.squares + first.weight * share * shift**2)


def centre_and_scale(moments: BulkMoments, scale_mode: str) -> tuple[np.ndarray, np.ndarray]:
    """The centre and scale of :func:`standardization`, from the moments of all the rows.

    Parameters
    ----------
    moments : BulkMoments
        Of every row (:func:`add_bulk_moments` over blocks).
    scale_mode : {"feature", "common"}
        Per-feature standard deviations, or one common scale (the root mean
        of the feature variances) repeated for every feature.

    Returns
    -------
    centre, scale : ndarray of shape (n_features,)
        ``scale`` is 1 where a column has no spread.
    """
    variance = moments.squares / moments.weight
    if scale_mode == "common":
        variance = np.full_like(variance, variance.mean())
    scale = np.sqrt(variance)
    scale[scale == 0.0] = 1.0
    return moments.origin + moments.mean, scale


def standardization(values: np.ndarray, scale_mode: str,
                    sample_weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Centre and scale such that ``(values - centre) / scale`` is standardised.

    The centre and scale are the mean and standard deviation of each
    column's bulk: the values inside its far-out fences (see
    :func:`bulk_mask`).  On data without gross outliers that is the plain
    mean and sd, bit for bit (Old Faithful, Galaxies, any Gaussian column).  Why not
    the plain sd: one far point inflates it without bound, and both
    ``reg_covar`` (EM) and the default priors (Bayesian) are stated in
    these units, so a single row at 1e6 next to clusters of spread 1 made
    every cluster look like a point and merged them.  Why not the IQR
    itself: on multimodal data (Old Faithful) it is 1.3-1.5x the sd and
    would change every weakly informative default that has been validated.

    In pieces: :func:`bulk_fences`, :func:`bulk_moments` of the one block,
    :func:`centre_and_scale`.

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_features)
        Missing values (NaN) are ignored: the centre and scale are those of
        the observed values in each column's bulk.
    scale_mode : {"feature", "common"}
        Per-feature standard deviations, or one common scale (the root mean
        of the feature variances) repeated for every feature.
    sample_weight : ndarray of shape (n_samples,), optional
        Frequency weights: weighted quartiles, mean and sd, so integer
        weights standardise as the rows repeated would.

    Returns
    -------
    centre, scale : ndarray of shape (n_features,)
        ``scale`` is strictly positive (1 where a column has no spread, which
        only happens for a single row).

    Examples
    --------
    >>> values = np.array([[0.0], [1.0], [2.0], [1e6]])
    >>> repeated = np.array([[0.0], [1.0], [1.0], [2.0], [1e6]])
    >>> weighted = standardization(values, "feature", np.array([1.0, 2.0, 1.0, 1.0]))
    >>> np.allclose(weighted, standardization(repeated, "feature"))
    True
    >>> [v.tolist() for v in weighted]
    [[1.0], [0.7071067811865476]]
    """
    fences = bulk_fences(values, sample_weight)
    return centre_and_scale(bulk_moments(values, sample_weight, fences), scale_mode)


class ModelData(NamedTuple):
    """Data on the scale the model is fitted on, the map back, and the priors.

    Attributes
    ----------
    values : ndarray of shape (n_samples, n_features)
        ``(x - centre) / scale``.
    centre, scale : ndarray of shape (n_features,)
        Zeros and ones when ``priors.standardize`` is False.
    resolved : ResolvedPriors
        Concrete priors on that scale.
    """

    values: np.ndarray
    centre: np.ndarray
    scale: np.ndarray
    resolved: ResolvedPriors


def model_scale(
    values: np.ndarray, priors: GMMPriors, n_components: int, covariance_type: str = "full",
    sample_weight: np.ndarray | None = None,
) -> ModelData:
    """Put already-checked data on the model's scale and resolve the priors.

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_features)
        Output of :func:`bayesgmm._checks.check_X`.
    priors : GMMPriors
    n_components : int
    covariance_type : {"full", "tied", "diag", "spherical"}
        ``"spherical"`` uses one common scale (:data:`SCALE_MODES`), and
        its ``scale_scale`` must be one number.
    sample_weight : ndarray of shape (n_samples,), optional
        Frequency weights (checked): the standardisation is weighted, so the
        weakly informative priors mean the same as for the rows repeated.

    Returns
    -------
    ModelData
    """
    centre, scale = standardization(values, SCALE_MODES[covariance_type], sample_weight)
    extent = np.nanmax(np.abs(values - centre), axis=0)
    resolved = priors.resolve(n_components, centre, scale, extent)
    if covariance_type == "spherical":
        if np.ptp(resolved.scale_scale) > 0.0:
            raise ValueError(
                "covariance_type='spherical' has one scale per component, shared by "
                "every feature, so it needs one scale_scale; got one per feature: "
                f"{np.asarray(priors.scale_scale).tolist()}. Pass a single number."
            )
        resolved = resolved._replace(scale_scale=resolved.scale_scale[:1])
    if not priors.standardize:
        return ModelData(values, np.zeros_like(centre), np.ones_like(scale), resolved)
    return ModelData((values - centre) / scale, centre, scale, resolved)


def model_noise_log_density(
    values: np.ndarray, scale: np.ndarray, noise: bool, noise_volume: float | None
) -> float | None:
    """``log(1 / V)`` of the noise component on the model's scale, or None without one.

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_features)
        Checked data in the user's units (for the default ``V``, their
        bounding box).
    scale : ndarray of shape (n_features,)
        ``ModelData.scale``: the model sees ``(x - centre) / scale``.
    noise : bool
    noise_volume : float or None
        ``V`` in the user's units.

    Returns
    -------
    float or None
    """
    if not noise:
        return None
    check_noise_volume(noise_volume)
    return log_noise_density(noise_region(values, noise_volume).log_volume, scale)


def model_noise_log_sides(
    values: np.ndarray, scale: np.ndarray, noise: bool, noise_volume: float | None
) -> np.ndarray | None:
    """Log side lengths of the noise box on the model's scale, or None without one.

    Their sum is ``-model_noise_log_density(...)``; rows with missing values
    need them (:func:`bayesgmm.noise.noise_log_sides`).

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_features)
        Checked data in the user's units.
    scale : ndarray of shape (n_features,)
    noise : bool
    noise_volume : float or None

    Returns
    -------
    ndarray of shape (n_features,) or None
    """
    if not noise:
        return None
    return noise_log_sides(noise_region(values, noise_volume), scale)
