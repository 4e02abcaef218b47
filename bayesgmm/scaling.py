"""Standardisation and the scale the Bayesian model is fitted on.

Numpy only.  EM standardises inside (so ``reg_covar`` is relative to each
feature's variance); the Bayesian model states its weakly informative priors
on the standardised scale unless ``GMMPriors(standardize=False)``.
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
    "ModelData",
    "bulk_mask",
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


def _weighted_quartiles(values: np.ndarray, sample_weight: np.ndarray) -> np.ndarray:
    """Weighted first and third quartiles of each column, NaN ignored; shape (2, n_features).

    ``inverted_cdf`` is the quantile numpy defines for weights: with integer
    weights it is the quantile of the rows repeated (up to interpolation).
    """
    quartiles = np.empty((2, values.shape[1]))
    for j, column in enumerate(values.T):
        observed = ~np.isnan(column) & (sample_weight > 0)
        quartiles[:, j] = np.percentile(column[observed], [25.0, 75.0],
                                        weights=sample_weight[observed], method="inverted_cdf")
    return quartiles


def bulk_mask(values: np.ndarray, sample_weight: np.ndarray | None = None) -> np.ndarray:
    """Which values lie inside the far-out fences of their column.

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_features)
        Missing values (NaN) are ignored: the quartiles are those of the
        observed values, and a missing value is never bulk.  Every column
        needs an observed value.
    sample_weight : ndarray of shape (n_samples,), optional
        Frequency weights: the quartiles are weighted
        (:func:`_weighted_quartiles`).

    Returns
    -------
    ndarray of bool, same shape
        True inside ``[Q1 - 5 IQR, Q3 + 5 IQR]``.  A column whose IQR is 0 (at
        least half its values tied) cannot tell outliers from the bulk: all
        of it counts as bulk.
    """
    if sample_weight is None:
        # Without NaN, nanpercentile returns np.percentile's values bit for bit.
        lower, upper = np.nanpercentile(values, [25.0, 75.0], axis=0)
    else:
        lower, upper = _weighted_quartiles(values, sample_weight)
    spread = upper - lower
    inside = (values >= lower - FAR_OUT_IQRS * spread) & (values <= upper + FAR_OUT_IQRS * spread)
    return (inside | (spread == 0.0)) & ~np.isnan(values)


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
    """
    bulk = bulk_mask(values, sample_weight)
    if sample_weight is None:
        counts = bulk.sum(axis=0)
        centre = np.where(bulk, values, 0.0).sum(axis=0) / counts
        variance = np.where(bulk, (values - centre) ** 2, 0.0).sum(axis=0) / counts
    else:
        weights = np.where(bulk, sample_weight[:, None], 0.0)
        counts = weights.sum(axis=0)
        centre = (weights * np.where(bulk, values, 0.0)).sum(axis=0) / counts
        variance = (weights * np.where(bulk, values - centre, 0.0) ** 2).sum(axis=0) / counts
    if scale_mode == "common":
        variance = np.full_like(variance, variance.mean())
    scale = np.sqrt(variance)
    scale[scale == 0.0] = 1.0
    return centre, scale


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
