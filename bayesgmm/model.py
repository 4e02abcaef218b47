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
from bayesgmm.em import missingness_patterns
from bayesgmm.priors import INVERSE_GAMMA_SHAPE, GMMPriors, ResolvedPriors
from bayesgmm.sample_weight import model_weights
from bayesgmm.scaling import (
    COVARIANCE_TYPES,
    model_noise_log_density,
    model_noise_log_sides,
    model_scale,
)

__all__ = ["MODEL_VARIABLES", "PARAMETER_VARIABLES", "build_model", "extended_model",
           "parameter_variables"]

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
    covariances = pm.Deterministic("covariances", chol @ chol.mT, dims=pairs)
    return chol, covariances


def _likelihood(data, weights, means, chol, shape):
    components = pm.MvNormal.dist(mu=means, chol=chol, shape=shape)
    pm.Mixture("x", w=weights, comp_dists=components, observed=data, dims=("obs", "feature"))


def _likelihood_potential(data, row_weights, weights, means, chol, shape, noise_weight,
                          noise_log_density: float | None):
    """The mixture written out as a potential: with a noise component, frequency weights or both.

    ``pm.Mixture`` has no improper uniform component and no weights, so the
    marginal log-likelihood ``sum_i f_i logsumexp_k(log w_k + log N(x_i | ...))``
    (with the noise column ``log w_noise + log(1 / V)``) is written out.
    """
    components = pm.MvNormal.dist(mu=means, chol=chol, shape=shape)
    joint = pm.logp(components, data[:, None, :]) + pt.log(weights)
    if noise_log_density is not None:
        noise = pt.log(noise_weight) + np.float64(noise_log_density)
        joint = pt.concatenate([joint, pt.broadcast_to(noise, (data.shape[0], 1))], axis=1)
    rows = pt.logsumexp(joint, axis=1)
    if row_weights is not None:
        rows = rows * row_weights
    pm.Potential("x", rows.sum())


def _marginal_likelihoods(values, patterns, row_weights, weights, means, covariances,
                          noise_weight, noise_log_density: float | None):
    """One potential per missingness pattern: the mixture of the observed marginals.

    For the rows observing coordinates ``o`` (values missing at random):
    ``logsumexp_k(log w_k + log N(x_o | mu_ko, Sigma_k,oo))``, with the noise
    column ``log w_noise + log(1 / V_o)``, ``V_o`` the noise box's volume
    along ``o``.  Complete rows are not here: :func:`_likelihood` has them.
    """
    for p, (observed, rows, extent) in enumerate(zip(patterns.observed, patterns.rows,
                                                     patterns.noise_log_extents)):
        if observed.all():
            continue
        columns = np.flatnonzero(observed)
        marginals = pm.MvNormal.dist(mu=means[:, columns],
                                     cov=covariances[:, columns][:, :, columns],
                                     shape=(means.shape[0], columns.size))
        rows_observed = values[np.ix_(rows, columns)]
        joint = pm.logp(marginals, rows_observed[:, None, :]) + pt.log(weights)
        if noise_log_density is not None:
            noise = pt.log(noise_weight) + np.float64(noise_log_density + extent)
            joint = pt.concatenate([joint, pt.broadcast_to(noise, (len(rows), 1))], axis=1)
        pattern_rows = pt.logsumexp(joint, axis=1)
        if row_weights is not None:
            pattern_rows = pattern_rows * row_weights[rows]
        pm.Potential(f"x_pattern_{p}", pattern_rows.sum())


def _standardised_data(raw: np.ndarray, centre: np.ndarray, scale: np.ndarray):
    """``pm.Data("X")`` in data units, and the model's scale of it: ``(X - centre) / scale``.

    The centre and scale are recorded as ``pm.Data("data_centre")`` and
    ``pm.Data("data_scale")``, so ``pm.set_data({"X": new_rows})`` takes rows
    in the data's units and the model standardises them as it did the
    training rows.
    """
    data = pm.Data("X", raw, dims=("obs", "feature"))
    data_centre = pm.Data("data_centre", centre, dims="feature")
    data_scale = pm.Data("data_scale", scale, dims="feature")
    return (data - data_centre) / data_scale


def _all_likelihoods(raw, scaled, patterns, row_weights, weights, means, chol, covariances,
                     noise_weight, noise_log_density: float | None, shape: tuple[int, int]):
    """The complete rows' likelihood ``x`` on ``pm.Data("X")``, then the patterns' potentials."""
    values = scaled.values
    complete = np.flatnonzero(~np.isnan(values).any(axis=1))
    if complete.size:
        data = _standardised_data(raw[complete], scaled.centre, scaled.scale)
        if noise_log_density is None and row_weights is None:
            _likelihood(data, weights, means, chol, shape)
        else:
            complete_weights = None if row_weights is None else pm.Data(
                "sample_weight", row_weights[complete], dims="obs")
            _likelihood_potential(data, complete_weights, weights, means, chol, shape,
                                  noise_weight, noise_log_density)
    if patterns is not None:
        _marginal_likelihoods(values, patterns, row_weights, weights, means, covariances,
                              noise_weight, noise_log_density)


def _check_structure(n_components, covariance_type: str) -> int:
    """The checked number of components; an unknown covariance_type is refused."""
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(
            f"covariance_type must be one of {COVARIANCE_TYPES} for the Bayesian "
            f"model, got {covariance_type!r}."
        )
    return check_n_components(n_components)


def build_model(
    X,
    n_components: int,
    priors: GMMPriors | None = None,
    covariance_type: str = "full",
    noise_volume: float | None = None,
    *,
    noise: bool = False,
    missing: str = "reject",
    sample_weight=None,
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
    missing : {"reject", "marginalize"}, default="reject"
        NaN refused, or marginalised (missing at random): ``x`` then holds
        the complete rows (``obs`` numbers them as in ``X``) and each pattern
        of missing values adds a potential ``x_pattern_{p}``
        (:func:`_marginal_likelihoods`).
    sample_weight : array-like of shape (n_samples,), optional
        Frequency weights: row ``i``'s log-likelihood counts ``w_i`` times
        (``pm.Data("sample_weight")`` and a potential ``x``, since
        ``pm.Mixture`` takes no weights), and the standardisation is
        weighted.  None or all ones: the unweighted model.

    Returns
    -------
    pymc.Model
        Coordinates ``component``, ``feature`` (column names), ``feature2``
        and ``obs``.  The complete rows sit in ``pm.Data("X")`` in the data's
        own units, with the standardisation recorded beside them
        (``pm.Data("data_centre")``, ``pm.Data("data_scale")``): the
        likelihood ``x`` is of ``(X - data_centre) / data_scale``, and the
        parameters (``means``, ``scales``, ``covariances``) are on that
        standardised scale.  So new rows in data units, of any number, are
        swapped in with ``pm.set_data({"X": rows}, coords={"obs": ...})``
        (a weighted model also needs ``"sample_weight"`` of the same length;
        the potentials of rows with missing values stay those of the
        training rows), and ``pm.sample_posterior_predictive`` draws ``x`` on
        the standardised scale (multiply by ``data_scale``, add
        ``data_centre``).

    Examples
    --------
    >>> from bayesgmm.datasets import load_faithful
    >>> model = build_model(load_faithful(), 2)
    >>> [v.name for v in model.value_vars]
    ['weights_simplex__', 'means', 'scales_log__', 'correlations_cholesky_cholesky_corr__']
    """
    n_components = _check_structure(n_components, covariance_type)
    checked = check_X(X, n_components=n_components, missing=missing)
    row_weights = model_weights(sample_weight, checked.values.shape[0])
    scaled = model_scale(checked.values, priors or GMMPriors(), n_components, covariance_type,
                         row_weights)
    values, scale, resolved = scaled.values, scaled.scale, scaled.resolved
    noise_log_density = model_noise_log_density(checked.values, scale, noise, noise_volume)
    patterns = missingness_patterns(
        values, model_noise_log_sides(checked.values, scale, noise, noise_volume))
    n_features = values.shape[1]
    coords = {
        "component": np.arange(n_components),
        "mixture_column": np.arange(n_components + 1),
        "feature": checked.feature_names,
        "feature2": checked.feature_names,
        "obs": np.flatnonzero(~np.isnan(values).any(axis=1)),
    }
    with pm.Model(coords=coords) as model:
        weights, noise_weight = _weights(resolved, n_components, noise_log_density is not None)
        means = _means(resolved)
        scales = _component_scales(_scales(resolved, covariance_type), covariance_type,
                                   (n_components, n_features))
        correlation_cholesky = _correlation_cholesky(resolved, n_components, n_features,
                                                     covariance_type)
        chol, covariances = _component_cholesky(scales, correlation_cholesky)
        _all_likelihoods(checked.values, scaled, patterns, row_weights, weights, means, chol,
                         covariances, noise_weight, noise_log_density, (n_components, n_features))
    return model


PARAMETER_VARIABLES = ("weights", "noise_weight", "means", "scales", "correlations_cholesky")
"""The variables bayesgmm reads a posterior from (``inference.parameters_from_pymc``)."""

MODEL_VARIABLES = PARAMETER_VARIABLES + ("mixture_weights", "correlations", "covariances")
"""Every posterior variable :func:`build_model`'s model can have: the parameters
and the deterministics derived from them (a given model has those its
structure needs); anything else in an extended model's posterior is the
extension's."""


def parameter_variables(model: pm.Model) -> tuple[str, ...]:
    """The :data:`PARAMETER_VARIABLES` ``model`` has.

    ``weights``, ``means`` and ``scales`` always; ``correlations_cholesky``
    for ``full`` and ``tied`` with several features; ``noise_weight`` with a
    noise component.
    """
    return tuple(name for name in PARAMETER_VARIABLES if name in model.named_vars)


def extended_model(base: pm.Model, extend) -> pm.Model:
    """A user's extension of the model, checked to keep what bayesgmm reads back.

    Parameters
    ----------
    base : pymc.Model
        From :func:`build_model`, on the model's standardised scale.
    extend : callable
        ``extend(base) -> pymc.Model``: add variables in ``with base:``, or
        return ``pm.do(base, {...})`` to replace one, e.g. give the means a
        hierarchical prior.  It must keep the variables of
        :func:`parameter_variables` by name (free or deterministic) and
        their shapes, and the likelihood (``x`` and any ``x_pattern_*``
        potentials); those are what relabelling, memberships, diagnostics
        and the DataTree use.  The prior must stay exchangeable over
        components (no ordering, no component-specific priors): the draws are
        relabelled as for the base model.  New variables indexed by
        component should use the ``component`` dimension (``dims=``), so
        relabelling permutes them too.

    Returns
    -------
    pymc.Model

    Raises
    ------
    TypeError, ValueError
        When ``extend`` returns no model, or one without those variables.
    """
    model = extend(base)
    if not isinstance(model, pm.Model):
        raise TypeError(
            f"extend_model must return a pymc.Model (the extended base model, or pm.do(base, "
            f"...)); it returned {type(model).__name__}."
        )
    likelihood = [variable.name for variable in base.observed_RVs + base.potentials]
    lost = [name for name in (*parameter_variables(base), *likelihood)
            if name not in model.named_vars]
    if lost:
        raise ValueError(
            f"the extended model lacks {lost}: bayesgmm reads the posterior from these. Keep "
            "them by name, e.g. replace a variable with pm.do(base, {'means': expression}) "
            "rather than deleting it."
        )
    return model
