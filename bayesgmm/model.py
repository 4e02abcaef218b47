"""The PyMC specification of the Bayesian Gaussian mixture.

:func:`build_model` is the single source of truth for the model; the fast
log density in :mod:`bayesgmm._kernel` is tested against it.  Prior
parameters enter as float64 arrays on purpose: PyTensor turns Python float
literals such as ``2.0`` into float32 constants, which would make ``log(2.0)``
differ from the float64 value by ~2e-9.
"""

from __future__ import annotations

import warnings

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt

from bayesgmm._checks import check_n_components, check_X
from bayesgmm.priors import INVERSE_GAMMA_SHAPE, GMMPriors, ResolvedPriors
from bayesgmm.scaling import COVARIANCE_TYPES, model_noise_log_density, model_scale

__all__ = ["build_model"]

# PyTensor looks for a system BLAS the first time it compiles C code, and
# warns when pip installs leave it none.  bayesgmm's default engine does not
# run PyTensor-compiled code at all (it samples with its own compiled density,
# see bayesgmm._kernel); only engine="pymc" does, and for these small dense
# graphs the BLAS-free C code costs ~0.1 ms per gradient here.  Resolve the
# setting once, quietly, rather than showing users a warning they cannot act
# on.  A BLAS that PyTensor can find is still used.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
    _ = pytensor.config.blas__ldflags


# One function per model term, in the order of the compiled kernel's terms
# (bayesgmm._kernel): adding a term means one function here and one there.
def _weights(resolved: ResolvedPriors, n_components: int, with_noise: bool):
    concentration = np.asarray(resolved.weight_concentration, dtype=np.float64)
    if with_noise:
        # The noise weight is the last of one Dirichlet over K + 1 entries.
        mixture_weights = pm.Dirichlet(
            "mixture_weights", a=np.append(concentration, resolved.noise_concentration),
            dims="mixture_column",
        )
        noise_weight = pm.Deterministic("noise_weight", mixture_weights[n_components])
        weights = pm.Deterministic("weights", mixture_weights[:n_components], dims="component")
        return weights, noise_weight
    if n_components == 1:
        return pm.Deterministic("weights", pt.ones(1), dims="component"), None
    return pm.Dirichlet("weights", a=concentration, dims="component"), None


def _means(resolved: ResolvedPriors):
    return pm.Normal(
        "means",
        mu=np.asarray(resolved.mean_loc, dtype=np.float64),
        sigma=np.asarray(resolved.mean_scale, dtype=np.float64),
        dims=("component", "feature"),
    )


SCALE_DIMS = {"full": ("component", "feature"), "tied": ("feature",),
              "diag": ("component", "feature"), "spherical": ("component",)}
"""Dimensions of the sampled scales per covariance structure."""


def _scales(resolved: ResolvedPriors, covariance_type: str):
    tau = np.asarray(resolved.scale_scale, dtype=np.float64)
    dims = SCALE_DIMS[covariance_type]
    match resolved.scale_prior:
        case "half_normal":
            return pm.HalfNormal("scales", sigma=tau, dims=dims)
        case "exponential":
            return pm.Exponential("scales", scale=tau, dims=dims)
        case "lognormal":
            return pm.LogNormal("scales", mu=np.log(tau), sigma=np.float64(1.0), dims=dims)
        case "inverse_gamma":
            return pm.InverseGamma("scales", alpha=np.float64(INVERSE_GAMMA_SHAPE), beta=tau,
                                   dims=dims)
    raise ValueError(f"Unknown scale prior {resolved.scale_prior!r}.")


def _correlation_cholesky(resolved: ResolvedPriors, n_components: int, n_features: int,
                          covariance_type: str):
    shape = (n_components, n_features, n_features)
    if n_features > 1 and covariance_type == "full":
        return pm.LKJCorr("correlations_cholesky", n=n_features,
                          eta=np.float64(resolved.lkj_eta), size=n_components)
    if n_features > 1 and covariance_type == "tied":
        shared = pm.LKJCorr("correlations_cholesky", n=n_features,
                            eta=np.float64(resolved.lkj_eta))
        return pt.broadcast_to(shared, shape)
    return pt.broadcast_to(pt.eye(n_features), shape)


def _component_scales(scales, covariance_type: str, shape):
    """One scale per component and feature: shared sets repeated."""
    match covariance_type:
        case "tied":
            return pt.broadcast_to(scales[None, :], shape)
        case "spherical":
            return pt.broadcast_to(scales[:, None], shape)
    return scales


def _component_cholesky(scales, correlation_cholesky):
    """``diag(scales_k) L_k``, recording correlations and covariances as deterministics."""
    chol = scales[:, :, None] * correlation_cholesky
    pairs = ("component", "feature", "feature2")
    pm.Deterministic("correlations", correlation_cholesky @ correlation_cholesky.mT, dims=pairs)
    pm.Deterministic("covariances", chol @ chol.mT, dims=pairs)
    return chol


def _likelihood(data, weights, means, chol, shape):
    components = pm.MvNormal.dist(mu=means, chol=chol, shape=shape)
    pm.Mixture("x", w=weights, comp_dists=components, observed=data, dims=("obs", "feature"))


def _likelihood_with_noise(data, weights, means, chol, shape, noise_weight,
                           noise_log_density: float):
    """The mixture plus a constant density ``1 / V``.

    ``pm.Mixture`` has no improper uniform component, so the marginal
    log-likelihood is written out as a potential.
    """
    components = pm.MvNormal.dist(mu=means, chol=chol, shape=shape)
    gaussian = pm.logp(components, data[:, None, :]) + pt.log(weights)
    noise = pt.log(noise_weight) + np.float64(noise_log_density)
    joint = pt.concatenate([gaussian, pt.broadcast_to(noise, (data.shape[0], 1))], axis=1)
    pm.Potential("x", pt.logsumexp(joint, axis=1).sum())


def build_model(
    X,
    n_components: int,
    priors: GMMPriors | None = None,
    covariance_type: str = "full",
    noise_volume: float | None = None,
    *,
    noise: bool = False,
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
    covariance_type : {"full", "tied", "diag", "spherical"}
        ``"full"``: LKJ correlation times per-feature scales, per component.
        ``"tied"``: one such covariance shared by all components.
        ``"diag"``: independent features, own scales per component.
        ``"spherical"``: one scale per component for every feature (the
        data are then standardised by one common scale).

    noise_volume : float, optional
        With ``noise=True``: the hypervolume ``V`` of the noise, in the
        data's units; default the data's bounding box.
    noise : bool, default=False
        Add a uniform noise component of density ``1 / V``
        (:mod:`bayesgmm.noise`); its weight is the last entry of one
        Dirichlet, ``mixture_weights``, with ``weights`` (the Gaussian ones)
        and ``noise_weight`` as deterministics.

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
    values, _, scale, resolved = model_scale(checked.values, priors, n_components,
                                             covariance_type)
    noise_log_density = model_noise_log_density(checked.values, scale, noise, noise_volume)
    n_samples, n_features = values.shape
    coords = {
        "component": np.arange(n_components),
        "mixture_column": np.arange(n_components + 1),
        "feature": names,
        "feature2": names,
        "obs": np.arange(n_samples),
    }
    with pm.Model(coords=coords) as model:
        data = pm.Data("X", values, dims=("obs", "feature"))
        weights, noise_weight = _weights(resolved, n_components, noise_log_density is not None)
        means = _means(resolved)
        scales = _component_scales(_scales(resolved, covariance_type), covariance_type,
                                   (n_components, n_features))
        correlation_cholesky = _correlation_cholesky(resolved, n_components, n_features,
                                                     covariance_type)
        chol = _component_cholesky(scales, correlation_cholesky)
        shape = (n_components, n_features)
        if noise_log_density is None:
            _likelihood(data, weights, means, chol, shape)
        else:
            _likelihood_with_noise(data, weights, means, chol, shape, noise_weight,
                                   noise_log_density)
    return model
