"""The steps of a Bayesian fit, one function each.

``BayesianGMM.fit`` is the composition

    prepare_problem -> sample_problem -> relabel_sample -> assemble_datatree

and each step can be called (and is tested) on its own:

* :func:`prepare_problem` checks the data, puts it on the model's scale,
  resolves the priors, packs the compiled density's block and computes the
  EM start every chain begins from, in the label order the prior prefers
  (:func:`prior_label_order`);
* :func:`sample_problem` runs the chosen inference (see
  :mod:`bayesgmm.inference`);
* :func:`relabel_sample` maps the draws to data units and resolves label
  switching against the EM start, permuting only labels whose priors are
  exchangeable (:func:`exchangeable_groups`);
* :func:`assemble_datatree` adds the pointwise log-likelihood and builds the
  DataTree that is the fitted model's stored form.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import xarray as xr

from bayesgmm._checks import CheckedData, check_X
from bayesgmm._kernel import logp_and_grad, pack_block
from bayesgmm._workload import check_workload
from bayesgmm.em import reference_em
from bayesgmm.inference import (
    EXTENSION_GROUP,
    NUTS_METHODS,
    PosteriorSample,
    RowAccess,
    SamplerSettings,
    sample_posterior,
)
from bayesgmm.likelihood import log_likelihood_per_draw, pointwise_log_likelihood
from bayesgmm.noise import NoiseComponent, NoiseRegion, noise_region
from bayesgmm.parameters import (
    Layout,
    ModelParameters,
    flatten_draws,
    parameters_to_unconstrained,
    to_data_units,
    unflatten_draws,
)
from bayesgmm.posterior import build_datatree, keeps_pointwise_log_likelihood
from bayesgmm.priors import GMMPriors, ResolvedPriors
from bayesgmm.relabel import RelabellingSummary, apply_permutations, relabel_draws
from bayesgmm.sample_weight import model_weights
from bayesgmm.scaling import (
    ModelData,
    model_noise_log_density,
    model_noise_log_sides,
    model_scale,
)

__all__ = [
    "Problem",
    "em_start_parameters",
    "within_prior_reach",
    "exchangeable_groups",
    "prior_label_order",
    "prepare_problem",
    "sample_problem",
    "relabel_sample",
    "assemble_datatree",
]

MIN_START_WEIGHT = 1e-6
"""EM weights are floored here so the start lies inside the simplex."""

START_NUDGE = 1e-6
"""Spread of the nudge added to the unconstrained start (see :func:`prepare_problem`)."""

PRIOR_REACH = 6.0
"""Prior sds from ``mean_loc`` beyond which an EM mean is pulled in for the start."""

EM_START_ROWS = 100_000
"""Above this many rows the EM start is fitted to this many rows drawn uniformly
(without replacement): the start only has to lie in the posterior's basin, and
every method then uses all rows.  At or below it, EM sees every row."""

RELABEL_ROWS = 20_000
"""Stephens' relabelling scores the draws on at most this many rows, evenly
spaced through the data (deterministic); its objective is an average over rows."""


class Problem(NamedTuple):
    """Everything a fit needs before inference runs.

    Attributes
    ----------
    data : CheckedData
        The user's data (checked, float64) and feature names.
    scaled : ModelData
        The data on the model's scale, the map back, the resolved priors.
    priors : GMMPriors
    layout : Layout
    block : ndarray
        Packed data and priors for the compiled density.
    start : ndarray of shape (layout.size,)
        The EM start in the unconstrained space (nudged).
    em_start : ModelParameters
        The EM start in data units, in the label order of ``start``: the
        relabelling pivot.
    noise_volume : float or None
        The user's ``noise_volume`` (data units), for the PyMC model; whether
        there is a noise component at all is ``layout.has_noise``.
    missing : {"reject", "marginalize"}
        How missing values (NaN) in ``data`` are treated.
    sample_weight : ndarray of shape (n_samples,) or None
        Checked frequency weights of ``data``'s rows (None: each counts once).
    """

    data: CheckedData
    scaled: ModelData
    priors: GMMPriors
    layout: Layout
    block: np.ndarray
    start: np.ndarray
    em_start: ModelParameters
    noise_volume: float | None = None
    missing: str = "reject"
    sample_weight: np.ndarray | None = None

    @property
    def noise_box(self) -> NoiseRegion | None:
        """The noise component's box in data units (None without one)."""
        if not self.layout.has_noise:
            return None
        return noise_region(self.data.values, self.noise_volume)

    def pack_rows(self, rows: np.ndarray, weight_scale: float = 1.0) -> np.ndarray:
        """The compiled density's block for some of the rows, their weights scaled.

        Parameters
        ----------
        rows : ndarray of int
            Row indices (none: the prior alone).
        weight_scale : float or ndarray of shape (len(rows),)
            Multiplies each row's frequency weight (1 when unweighted), e.g.
            ``N / m`` for ``m`` rows drawn uniformly, or a coreset's weights.

        Returns
        -------
        ndarray
            As :attr:`block`, for those rows.
        """
        unweighted = self.sample_weight is None and np.ndim(weight_scale) == 0 and \
            weight_scale == 1.0
        weights = None if unweighted else (
            np.ones(self.data.values.shape[0]) if self.sample_weight is None
            else self.sample_weight)[rows] * weight_scale
        return _pack(self.scaled, self.data.values, self.layout, self.noise_volume, weights,
                     rows)


def _pack(scaled: ModelData, values: np.ndarray, layout: Layout, noise_volume: float | None,
          row_weights: np.ndarray | None, rows=slice(None)) -> np.ndarray:
    """:func:`bayesgmm._kernel.pack_block` for ``rows`` of the problem's data."""
    noise_log_sides = model_noise_log_sides(values, scaled.scale, layout.has_noise,
                                            noise_volume)
    return pack_block(scaled.values[rows], scaled.resolved, layout.n_components,
                      layout.covariance_type, layout.noise_log_density, noise_log_sides,
                      row_weights)


def em_start_parameters(
    values: np.ndarray,
    n_components: int,
    covariance_type: str,
    n_init: int,
    seed: int,
    noise_log_density: float | None = None,
    sample_weight: np.ndarray | None = None,
) -> ModelParameters:
    """The reference EM solution as ModelParameters (weights kept > 0).

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_features)
        NaN marks a missing value; EM then marginalises them
        (``missing="marginalize"``), as the model does.
    n_components : int
    covariance_type : {"full", "tied", "diag", "spherical"}
    n_init : int
        EM restarts.
    seed : int
    noise_log_density : float, optional
        ``log(1 / V)`` on the scale of ``values``: EM then fits the same
        uniform noise component.
    sample_weight : ndarray of shape (n_samples,), optional
        Frequency weights, for a weighted EM.

    Returns
    -------
    ModelParameters
        On the scale of ``values``, without leading axes.
    """
    noise_volume = None if noise_log_density is None else float(np.exp(-noise_log_density))
    missing = "marginalize" if np.isnan(values).any() else "reject"
    em = reference_em(values, n_components, covariance_type, n_init=n_init, random_state=seed,
                      noise_volume=noise_volume, missing=missing, sample_weight=sample_weight)
    n_features = values.shape[1]
    shape = (n_components, n_features)
    match covariance_type:
        case "diag":
            scales = np.sqrt(em.covariances_)
        case "spherical":
            scales = np.broadcast_to(np.sqrt(em.covariances_)[:, None], shape)
        case _:  # full, tied: dense matrices, per component or shared
            covariances = np.broadcast_to(em.covariances_, shape + (n_features,))
            scales = np.sqrt(np.diagonal(covariances, axis1=1, axis2=2))
    if covariance_type in ("full", "tied"):
        chol = np.linalg.cholesky(covariances / (scales[:, :, None] * scales[:, None, :]))
    else:
        chol = np.broadcast_to(np.eye(n_features), shape + (n_features,))
    if noise_log_density is None:
        weights = np.maximum(em.weights_, MIN_START_WEIGHT)
        return ModelParameters(weights / weights.sum(), em.means_, np.array(scales),
                               np.array(chol))
    weights = np.maximum(np.append(em.weights_, em.noise_weight_), MIN_START_WEIGHT)
    weights /= weights.sum()
    return ModelParameters(weights[:-1], em.means_, np.array(scales), np.array(chol),
                           NoiseComponent(weights[-1], noise_log_density))


def within_prior_reach(
    parameters: ModelParameters, resolved: ResolvedPriors, covariance_type: str = "full"
) -> ModelParameters:
    """Move EM components the mean prior cannot reach to where it can.

    EM gives a far outlier a component of its own, centred on it with a
    tiny spread.  Under the prior ``means ~ Normal(mean_loc, mean_scale)``
    that start is hopeless (a point 1e5 sds out costs ~1e9 nats), and the
    posterior's mode is elsewhere: a component centred within the prior's
    reach whose spread covers the far point.  Such a component starts
    there: each coordinate beyond ``PRIOR_REACH`` prior sds is clipped to
    that bound, and its scale grows to at least the distance moved, so the
    component still holds the points EM gave it.  Other components are
    untouched, except that a shared scale (``tied``: across components;
    ``spherical``: across features) takes the largest widened value.

    Parameters
    ----------
    parameters : ModelParameters
        On the model's scale, without leading axes.
    resolved : ResolvedPriors
    covariance_type : {"full", "tied", "diag", "spherical"}

    Returns
    -------
    ModelParameters
    """
    reach = PRIOR_REACH * resolved.mean_scale
    means = np.clip(parameters.means, resolved.mean_loc - reach, resolved.mean_loc + reach)
    moved = np.abs(parameters.means - means)
    scales = np.maximum(parameters.scales, moved)
    if covariance_type in ("tied", "spherical"):
        shared_axis = 0 if covariance_type == "tied" else 1
        scales = np.broadcast_to(scales.max(axis=shared_axis, keepdims=True), scales.shape)
    return parameters._replace(means=means, scales=np.array(scales))


def exchangeable_groups(concentration: np.ndarray) -> np.ndarray:
    """Group id of every label: labels with equal Dirichlet concentration share one.

    Only the weights' prior tells labels apart (the priors on means, scales
    and correlations are the same for every component), so labels in one
    group are exchangeable and labels in different groups are not.

    Parameters
    ----------
    concentration : ndarray of shape (n_components,)

    Returns
    -------
    ndarray of shape (n_components,)
        Integers from 0; all 0 for a symmetric prior.

    Examples
    --------
    >>> exchangeable_groups(np.array([1.0, 30.0, 1.0])).tolist()
    [0, 1, 0]
    """
    return np.unique(concentration, return_inverse=True)[1].reshape(-1)


def prior_label_order(weights: np.ndarray, concentration: np.ndarray) -> np.ndarray:
    """The labelling of one parameter set that the Dirichlet prior favours most.

    Maximises ``sum_k (concentration[k] - 1) * log(weights[order[k]])`` over
    permutations ``order`` (the other priors do not depend on the labels).
    By the rearrangement inequality the maximum pairs the labels sorted by
    concentration with the components sorted by weight: if labels ``i, j``
    have ``a_i < a_j`` (``a = concentration - 1``) but weights ``b_i > b_j``
    (``b = log weights[order]``), swapping their components changes the sum
    by ``(a_j - a_i) * (b_i - b_j) > 0``.  Any pairing is turned into the
    sorted one by such swaps (swaps among equal ``a`` change nothing), none
    of which lowers the sum, so the sorted pairing is a maximiser.

    Parameters
    ----------
    weights : ndarray of shape (n_components,)
        Strictly positive.
    concentration : ndarray of shape (n_components,)

    Returns
    -------
    ndarray of shape (n_components,)
        ``order[k]`` is the component that becomes label ``k`` (the
        convention of :mod:`bayesgmm.relabel`).

    Examples
    --------
    >>> prior_label_order(np.array([0.7, 0.1, 0.2]), np.array([1.0, 30.0, 5.0])).tolist()
    [1, 0, 2]
    """
    order = np.empty(len(weights), dtype=np.intp)
    order[np.argsort(concentration, kind="stable")] = np.argsort(weights, kind="stable")
    return order


def prepare_problem(
    X,
    *,
    n_components: int,
    covariance_type: str,
    priors: GMMPriors,
    em_n_init: int,
    rng: np.random.Generator,
    settings: SamplerSettings | None = None,
    noise: bool = False,
    noise_volume: float | None = None,
    missing: str = "reject",
    sample_weight=None,
) -> Problem:
    """Check the data and build the compiled density and the start.

    Parameters
    ----------
    X : array-like or DataFrame of shape (n_samples, n_features)
    n_components : int
    covariance_type : {"full", "tied", "diag", "spherical"}
    priors : GMMPriors
    em_n_init : int
    rng : numpy.random.Generator
        Draws the EM seed, then the start's nudge.
    settings : SamplerSettings, optional
        When given, the workload they imply is checked right after the data
        (:func:`bayesgmm._workload.check_workload`), before the EM start.
    noise : bool, default=False
        Add a uniform noise component (:mod:`bayesgmm.noise`).
    noise_volume : float, optional
        Its hypervolume in data units; default the data's bounding box.
    missing : {"reject", "marginalize"}, default="reject"
        Missing values (NaN): refused, or marginalised (missing at random)
        in the density, the EM start and every summary.
    sample_weight : array-like of shape (n_samples,), optional
        Frequency weights (:mod:`bayesgmm.sample_weight`): the weighted
        log-likelihood ``sum_i w_i log p(x_i)``, a weighted standardisation
        and a weighted EM start.  All ones is the unweighted fit.

    Returns
    -------
    Problem
        With an asymmetric ``weight_concentration`` the EM components are put
        in :func:`prior_label_order`.

    Raises
    ------
    ValueError
        When the density is not finite at the EM start (the data cannot
        support ``n_components``).
    """
    data = check_X(X, n_components=n_components, missing=missing)
    weights = model_weights(sample_weight, data.values.shape[0])
    if settings is not None:
        check_workload(*data.values.shape, n_components, draws=settings.draws,
                       chains=settings.chains, covariance_type=covariance_type)
    scaled = model_scale(data.values, priors, n_components, covariance_type, weights)
    noise_log_density = model_noise_log_density(data.values, scaled.scale, noise, noise_volume)
    layout = Layout(n_components, data.values.shape[1], covariance_type, noise_log_density)
    em_rows = _em_start_rows(data.values.shape[0], rng)
    start_parameters = within_prior_reach(
        em_start_parameters(scaled.values[em_rows], n_components, covariance_type, em_n_init,
                            int(rng.integers(2**31 - 1)), noise_log_density,
                            None if weights is None else weights[em_rows]),
        scaled.resolved, covariance_type,
    )
    concentration = scaled.resolved.weight_concentration
    if exchangeable_groups(concentration).max() > 0:
        # EM's label order is arbitrary; an asymmetric prior is not.  Start
        # the chains (and the relabelling pivot) in the labelling it favours.
        order = prior_label_order(start_parameters.weights, concentration)
        start_parameters = ModelParameters(*(np.asarray(a)[order] for a in start_parameters[:4]),
                                           start_parameters.noise)
    block = _pack(scaled, data.values, layout, noise_volume if noise else None, weights)
    start = _nudged_start(start_parameters, layout, block, rng)
    em_start = to_data_units(start_parameters, scaled.centre, scaled.scale)
    return Problem(data, scaled, priors, layout, block, start, em_start,
                   noise_volume if noise else None, missing, weights)


def _em_start_rows(n_samples: int, rng: np.random.Generator):
    """All rows, or :data:`EM_START_ROWS` of them drawn uniformly (sorted) above that."""
    if n_samples <= EM_START_ROWS:
        return slice(None)
    return np.sort(rng.choice(n_samples, EM_START_ROWS, replace=False))


def _nudged_start(parameters: ModelParameters, layout: Layout, block: np.ndarray,
                  rng: np.random.Generator) -> np.ndarray:
    """The start in the unconstrained space, nudged; refused where the density is not finite.

    The nudge is invisible at the posterior's scale: nutpie rejects a start
    whose gradient has an exact zero (e.g. a correlation of exactly 0 in a
    component no point belongs to).
    """
    start = parameters_to_unconstrained(parameters, layout)
    start = start + START_NUDGE * rng.standard_normal(start.shape)
    start_logp, start_grad = logp_and_grad(start, block)
    if not (np.isfinite(start_logp) and np.all(np.isfinite(start_grad))):
        raise ValueError(
            "The EM starting point has a non-finite posterior density: the data cannot "
            f"support {layout.n_components} components (too few distinct points, or "
            "duplicated rows). Use fewer components or remove duplicated rows."
        )
    return start


def sample_problem(
    problem: Problem, settings: SamplerSettings, rng: np.random.Generator,
    extend_model=None,
) -> PosteriorSample:
    """Run the inference that ``settings`` choose, from the problem's start.

    Parameters
    ----------
    problem : Problem
    settings : SamplerSettings
    rng : numpy.random.Generator
    extend_model : callable, optional
        For ``engine="pymc"``: applied to the PyMC model before sampling
        (:func:`bayesgmm.model.extended_model`).

    Returns
    -------
    PosteriorSample
        Draws on the model's scale.
    """
    def pymc_model():
        from bayesgmm.model import build_model, extended_model

        frame = pd.DataFrame(problem.data.values, columns=problem.data.feature_names)
        layout = problem.layout
        model = build_model(frame, layout.n_components, problem.priors, layout.covariance_type,
                            problem.noise_volume, noise=layout.has_noise,
                            missing=problem.missing, sample_weight=problem.sample_weight)
        return model if extend_model is None else extended_model(model, extend_model)

    rows = RowAccess(problem.scaled.values, problem.sample_weight, problem.pack_rows,
                     problem.scaled.resolved)
    return sample_posterior(settings, block=problem.block, start=problem.start,
                            layout=problem.layout, model_factory=pymc_model, rng=rng, rows=rows)


def relabel_sample(
    problem: Problem, sample: PosteriorSample, method: str, progressbar: bool = False
) -> tuple[ModelParameters, RelabellingSummary, PosteriorSample]:
    """Draws in data units, relabelled against the EM start.

    Labels are permuted only within :func:`exchangeable_groups` of the
    resolved weight concentration.  Stephens' algorithm sees at most
    :data:`RELABEL_ROWS` rows.

    Parameters
    ----------
    problem : Problem
    sample : PosteriorSample
    method : {"stephens", "pivot"}
    progressbar : bool, default=False
        Show Stephens' iterations.

    Returns
    -------
    relabelled : ModelParameters
        Leading axes ``(chain, draw)``, data units; a noise component
        carries its box (:attr:`Problem.noise_box`).
    summary : RelabellingSummary
    sample : PosteriorSample
        ``sample`` with the variables of a user's model extension
        (:data:`~bayesgmm.inference.EXTENSION_GROUP`) that have a
        ``component`` dimension permuted by the same permutations.
    """
    scaled = problem.scaled
    draws = to_data_units(sample.parameters, scaled.centre, scaled.scale)
    if draws.noise is not None:
        draws = draws._replace(noise=draws.noise._replace(box=problem.noise_box))
    groups = exchangeable_groups(scaled.resolved.weight_concentration)
    values = problem.data.values
    if values.shape[0] > RELABEL_ROWS:
        values = values[np.linspace(0, values.shape[0] - 1, RELABEL_ROWS).astype(int)]
    flat, result = relabel_draws(values, flatten_draws(draws), problem.em_start, method, groups,
                                 progressbar=progressbar)
    extension = sample.extra_groups.get(EXTENSION_GROUP)
    if extension is not None:
        sample = sample._replace(extra_groups={
            **sample.extra_groups,
            EXTENSION_GROUP: _relabel_dataset(extension, result.permutations)})
    return unflatten_draws(flat, draws.weights.shape[0]), result.summary, sample


def _relabel_dataset(dataset: xr.Dataset, permutations: np.ndarray) -> xr.Dataset:
    """Permute the ``component`` axis of every variable that has one, draw by draw."""
    def relabel(variable: xr.DataArray) -> xr.DataArray:
        if "component" not in variable.dims:
            return variable
        ordered = variable.transpose("chain", "draw", "component", ...)
        values = ordered.values.reshape((-1,) + ordered.shape[2:])
        permuted = apply_permutations(values, permutations).reshape(ordered.shape)
        return ordered.copy(data=permuted).transpose(*variable.dims)

    return dataset.map(relabel)


def assemble_datatree(
    problem: Problem,
    relabelled: ModelParameters,
    sample: PosteriorSample,
    attrs: dict[str, Any],
) -> xr.DataTree:
    """The fitted model's DataTree, with the log-likelihood the budget allows.

    The pointwise ``(chain, draw, obs)`` matrix is kept only within
    :data:`~bayesgmm._workload.LOG_LIKELIHOOD_BUDGET` values.  The per-draw
    total ``sum_i w_i log p(x_i | theta_s)`` is kept with it, and otherwise
    for NUTS (its diagnostics need it; streamed over blocks of rows), not
    for the Gaussian approximations (Laplace, ADVI), whose check is Pareto
    k-hat: at 1e6 rows the total over 1000 draws cost 8 minutes here.  A
    weighted problem stores its weights.

    Parameters
    ----------
    problem : Problem
    relabelled : ModelParameters
        Leading axes ``(chain, draw)``, data units.
    sample : PosteriorSample
        For its sampler statistics and extra groups.
    attrs : dict
        Root attributes (strings and numbers only).

    Returns
    -------
    xarray.DataTree
        See :func:`bayesgmm.posterior.build_datatree`.
    """
    chains, n_draws = relabelled.weights.shape[:2]
    values = problem.data.values
    weights = problem.sample_weight
    flat = flatten_draws(relabelled)
    log_lik = total = None
    if keeps_pointwise_log_likelihood(chains * n_draws, values.shape[0]):
        log_lik = pointwise_log_likelihood(values, flat).reshape(chains, n_draws, -1)
    elif attrs.get("method") in NUTS_METHODS:
        total = log_likelihood_per_draw(values, flat, weights).reshape(chains, n_draws)
    return build_datatree(
        relabelled,
        sample_stats=sample.sample_stats,
        log_likelihood=log_lik,
        total_log_likelihood=total,
        sample_weight=weights,
        observed=values,
        feature_names=problem.data.feature_names,
        attrs=attrs,
        extra_groups=sample.extra_groups,
    )
