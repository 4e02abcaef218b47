"""Standardisation and the scale the Bayesian model is fitted on.

Numpy only.  EM standardises inside (so ``reg_covar`` is relative to each
feature's variance); the Bayesian model states its weakly informative priors
on the standardised scale unless ``GMMPriors(standardize=False)``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bayesgmm.priors import GMMPriors, ResolvedPriors

__all__ = ["COVARIANCE_TYPES", "ModelData", "model_scale", "standardization"]

COVARIANCE_TYPES = ("full", "diag")
"""Covariance structures of the Bayesian model (EM has more, see ``bayesgmm.em``)."""


def standardization(values: np.ndarray, scale_mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Centre and scale such that ``(values - centre) / scale`` is standardised.

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_features)
    scale_mode : {"feature", "common"}
        Per-feature standard deviations, or one common scale (the root mean
        of the feature variances) repeated for every feature.

    Returns
    -------
    centre, scale : ndarray of shape (n_features,)
        ``scale`` is strictly positive (1 where a column has no spread, which
        only happens for a single row).
    """
    centre = values.mean(axis=0)
    variance = values.var(axis=0)
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


def model_scale(values: np.ndarray, priors: GMMPriors, n_components: int) -> ModelData:
    """Put already-checked data on the model's scale and resolve the priors.

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_features)
        Output of :func:`bayesgmm._checks.check_X`.
    priors : GMMPriors
    n_components : int

    Returns
    -------
    ModelData
    """
    centre, scale = standardization(values, "feature")
    resolved = priors.resolve(n_components, centre, scale)
    if not priors.standardize:
        return ModelData(values, np.zeros_like(centre), np.ones_like(scale), resolved)
    return ModelData((values - centre) / scale, centre, scale, resolved)
