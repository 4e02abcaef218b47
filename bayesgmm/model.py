"""The PyMC specification of the Bayesian Gaussian mixture.

:func:`build_model` is the single source of truth for the model; the fast
log density in :mod:`bayesgmm.logdensity` is tested against it.  Prior
parameters enter as float64 arrays on purpose: PyTensor turns Python float
literals such as ``2.0`` into float32 constants, which would make ``log(2.0)``
differ from the float64 value by ~2e-9.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt

from bayesgmm._checks import check_n_components, check_X
from bayesgmm.em import standardization
from bayesgmm.priors import GMMPriors, ResolvedPriors

__all__ = ["COVARIANCE_TYPES", "ModelData", "build_model", "model_data", "model_scale"]

COVARIANCE_TYPES = ("full", "diag")

# PyTensor looks for a system BLAS the first time it compiles C code, and
# warns when pip installs leave it none.  bayesgmm's default engine does not
# run PyTensor-compiled code at all (it samples with its own compiled density,
# see bayesgmm.logdensity); only engine="pymc" does, and for these small dense
# graphs the BLAS-free C code costs ~0.1 ms per gradient here.  Resolve the
# setting once, quietly, rather than showing users a warning they cannot act
# on.  A BLAS that PyTensor can find is still used.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
    _ = pytensor.config.blas__ldflags


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


def model_data(X, priors: GMMPriors, n_components: int) -> ModelData:
    """Check ``X`` (see :mod:`bayesgmm._checks`), then :func:`model_scale`."""
    return model_scale(check_X(X, n_components=n_components).values, priors, n_components)


def _scale_distribution(resolved: ResolvedPriors, dims):
    tau = np.asarray(resolved.scale_scale, dtype=np.float64)
    match resolved.scale_prior:
        case "half_normal":
            return pm.HalfNormal("scales", sigma=tau, dims=dims)
        case "exponential":
            return pm.Exponential("scales", scale=tau, dims=dims)
        case "lognormal":
            return pm.LogNormal("scales", mu=np.log(tau), sigma=np.float64(1.0), dims=dims)
    raise ValueError(f"Unknown scale prior {resolved.scale_prior!r}.")


def build_model(
    X,
    n_components: int,
    priors: GMMPriors | None = None,
    covariance_type: str = "full",
) -> pm.Model:
    """Build the marginalised, component-vectorised PyMC mixture model.

    Parameters
    ----------
    X : array-like or DataFrame of shape (n_samples, n_features)
        Data in its own units; it is standardised inside when
        ``priors.standardize`` is True.
    n_components : int
    priors : GMMPriors, optional
        Defaults to ``GMMPriors()``.
    covariance_type : {"full", "diag"}
        ``"full"``: LKJ correlation times per-feature scales.  ``"diag"``:
        independent features.

    Returns
    -------
    pymc.Model
        Coordinates ``component``, ``feature`` (column names), ``feature2``
        and ``obs``; the data sit in ``pm.Data("X")`` so a new dataset of
        any size can be swapped in with ``pm.set_data``.

    Examples
    --------
    >>> from bayesgmm.datasets import load_faithful
    >>> model = build_model(load_faithful(), 2)
    >>> [v.name for v in model.value_vars]
    ['weights_simplex__', 'means', 'scales_log__', 'correlations_cholesky_cholesky_corr__']
    """
    n_components = check_n_components(n_components)
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(
            f"covariance_type must be one of {COVARIANCE_TYPES} for the Bayesian "
            f"model, got {covariance_type!r}."
        )
    priors = priors if priors is not None else GMMPriors()
    checked = check_X(X, n_components=n_components)
    names = checked.feature_names
    values, _, _, resolved = model_scale(checked.values, priors, n_components)
    n_samples, n_features = values.shape
    coords = {
        "component": np.arange(n_components),
        "feature": names,
        "feature2": names,
        "obs": np.arange(n_samples),
    }
    with pm.Model(coords=coords) as model:
        data = pm.Data("X", values, dims=("obs", "feature"))
        if n_components > 1:
            weights = pm.Dirichlet(
                "weights",
                a=np.asarray(resolved.weight_concentration, dtype=np.float64),
                dims="component",
            )
        else:
            weights = pm.Deterministic("weights", pt.ones(1), dims="component")
        means = pm.Normal(
            "means",
            mu=np.asarray(resolved.mean_loc, dtype=np.float64),
            sigma=np.asarray(resolved.mean_scale, dtype=np.float64),
            dims=("component", "feature"),
        )
        scales = _scale_distribution(resolved, ("component", "feature"))
        if covariance_type == "full" and n_features > 1:
            correlation_cholesky = pm.LKJCorr(
                "correlations_cholesky",
                n=n_features,
                eta=np.float64(resolved.lkj_eta),
                size=n_components,
            )
        else:
            correlation_cholesky = pt.broadcast_to(
                pt.eye(n_features), (n_components, n_features, n_features)
            )
        chol = scales[:, :, None] * correlation_cholesky
        pm.Deterministic(
            "correlations",
            correlation_cholesky @ correlation_cholesky.mT,
            dims=("component", "feature", "feature2"),
        )
        pm.Deterministic(
            "covariances", chol @ chol.mT, dims=("component", "feature", "feature2")
        )
        components = pm.MvNormal.dist(
            mu=means, chol=chol, shape=(n_components, n_features)
        )
        pm.Mixture(
            "x", w=weights, comp_dists=components, observed=data, dims=("obs", "feature")
        )
    return model
