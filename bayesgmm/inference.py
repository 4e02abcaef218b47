"""Posterior inference: one ``match`` chooses NUTS, ADVI or a large-N method, and the engine.

Every route starts from the EM solution in one labelling (NUTS chains each
from their own jittered copy of it, see :func:`start_spread`) and returns
draws as :class:`~bayesgmm.parameters.ModelParameters`
with leading ``(chain, draw)`` axes on the model's scale, so everything
downstream is shared.

Engines:

* ``"nutpie"`` (default): bayesgmm's compiled density
  (:mod:`bayesgmm._kernel`).  NUTS runs in nutpie's Rust sampler; ADVI runs
  in :mod:`bayesgmm.advi`.  Nothing is compiled per model.
* ``"pymc"``: the PyMC model of :func:`bayesgmm.model.build_model`, sampled by
  ``pm.sample`` (PyMC's own NUTS).  Slower; kept as the reference
  implementation.  ADVI is not offered on this engine: ``pm.fit`` on this
  model took 38 s for 2,000 iterations here and drifted away from the EM
  start, so it would only be a worse copy of the default.

Large-N methods (compiled density only; measured against full NUTS in
``reports/benchmarks/scale.md``):

* ``"laplace"``: the Gaussian at the posterior mode (:mod:`bayesgmm.laplace`),
  checked by Pareto k-hat;
* ``"coreset_nuts"``: NUTS on a weighted lightweight coreset
  (:mod:`bayesgmm.coreset`);
* ``"minibatch_advi"``: full-rank ADVI on batches of rows
  (:mod:`bayesgmm.minibatch_advi`), checked by Pareto k-hat like Laplace.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np
import xarray as xr

from bayesgmm._kernel import logp_and_grad, logp_batch
from bayesgmm.advi import ADVI_METHODS, fit_advi
from bayesgmm.coreset import CORESET_SIZE, lightweight_coreset, warn_overconfident
from bayesgmm.laplace import IMPORTANCE_DRAWS, LaplaceResult, ShardedDensity, fit_laplace
from bayesgmm.minibatch_advi import fit_minibatch_advi
from bayesgmm.noise import NoiseComponent
from bayesgmm.parameters import Layout, ModelParameters, unconstrained_to_parameters

__all__ = [
    "ENGINES",
    "EXTENSION_GROUP",
    "check_complete",
    "LARGE_N",
    "LARGE_N_METHODS",
    "MASS_MATRICES",
    "METHODS",
    "NUTS_METHODS",
    "PosteriorSample",
    "RowAccess",
    "SamplerFailure",
    "SamplerSettings",
    "VI_METHODS",
    "parameters_from_pymc",
    "laplace_sample",
    "resolve_method",
    "sample_posterior",
]

LARGE_N_METHODS = ("laplace", "coreset_nuts", "minibatch_advi")
NUTS_METHODS = ("nuts", "coreset_nuts")
METHODS = ("auto", "nuts") + ADVI_METHODS + LARGE_N_METHODS
VI_METHODS = ADVI_METHODS + ("minibatch_advi",)
"""The variational methods: their trees hold a ``vi_trace`` group (the ELBO)."""
ENGINES = ("nutpie", "pymc")
MASS_MATRICES = ("diag", "draw_diag", "low_rank")
"""nutpie's mass-matrix adaptations (``adaptation=``): gradient-based diagonal
(its default), diagonal from the draws' variances, and diagonal plus low-rank
corrections for correlated posteriors.  ``engine="pymc"`` has only ``"diag"``."""

LARGE_N = 50_000
"""From this many rows ``method="auto"`` runs :data:`LARGE_N_METHOD` instead of NUTS.

Why 50,000 (``reports/benchmarks/scale.md``): NUTS's cost grows with N (a
gradient visits every row; 2 x (500 + 500) draws took 52 s at 1e4 rows and
405 s at 1e5 here), while at 1e5 rows the Laplace approximation's posterior
means and sds agree with full NUTS's to the targets; below 1e4-ish rows per
parameter the posterior is visibly non-Gaussian and NUTS is affordable."""

LARGE_N_METHOD = "laplace"
"""The large-N method ``"auto"`` picks, chosen by the measurements in scale.md."""


def resolve_method(settings: SamplerSettings, n_samples: int) -> SamplerSettings:
    """``method="auto"`` made concrete for ``n_samples`` rows (other methods unchanged).

    Examples
    --------
    >>> settings = SamplerSettings("auto", "nutpie", 1000, 1000, 4, None, 0.9, 10000, False)
    >>> resolve_method(settings, 272).method, resolve_method(settings, 10**6).method
    ('nuts', 'laplace')
    """
    if settings.method != "auto":
        return settings
    if n_samples < LARGE_N or settings.engine == "pymc":
        return settings._replace(method="nuts")
    return settings._replace(method=LARGE_N_METHOD,
                             chains=settings.chains if LARGE_N_METHOD in NUTS_METHODS else 1)


class RowAccess(NamedTuple):
    """What the large-N methods need of the data beyond the packed block.

    Attributes
    ----------
    values : ndarray of shape (n_samples, n_features)
        The data on the model's scale.
    sample_weight : ndarray of shape (n_samples,) or None
    pack_rows : callable
        ``(rows, weight_scale) -> block`` for some rows, their weights
        multiplied by ``weight_scale`` (a number or one per row).
    priors : ResolvedPriors
        The priors on the model's scale (minibatch ADVI packs its own blocks).
    """

    values: np.ndarray
    sample_weight: np.ndarray | None
    pack_rows: object
    priors: object = None


class SamplerSettings(NamedTuple):
    """User settings of one inference run."""

    method: str
    engine: str
    draws: int
    tune: int
    chains: int
    cores: int | None
    target_accept: float
    advi_iterations: int
    progressbar: bool
    max_treedepth: int = 10
    mass_matrix: str = "diag"


class PosteriorSample(NamedTuple):
    """Draws on the model's scale plus what the sampler reported.

    Attributes
    ----------
    parameters : ModelParameters
        Leading axes ``(chain, draw)``.
    sample_stats : xarray.Dataset
        Per-draw sampler statistics (``diverging``, ``energy``, ... for NUTS;
        ``lp`` and ``log_q`` for ADVI).
    extra_groups : dict of str to xarray.Dataset
        E.g. ``vi_trace`` with the ELBO of every ADVI iteration.
    elapsed : float
        Seconds spent in the sampler or optimiser.
    """

    parameters: ModelParameters
    sample_stats: xr.Dataset
    extra_groups: dict[str, xr.Dataset]
    elapsed: float


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(2**31 - 1))


OVERDISPERSION = 2.0
"""Chain starts spread this many Laplace standard deviations around the EM start."""

MAX_START_SPREAD = 1.0
"""Cap on the starting spread in the unconstrained space (a flat direction)."""


def start_spread(start: np.ndarray, block: np.ndarray, step: float = 1e-4) -> np.ndarray:
    """Per-coordinate spread of the chain starts around ``start``.

    :data:`OVERDISPERSION` times the Laplace standard deviation of each
    coordinate, ``1 / sqrt(-d2 logp / d theta_j^2)`` from central differences
    of the gradient at ``start`` (two gradients per coordinate), capped at
    :data:`MAX_START_SPREAD` where the density is flat or not concave.  The
    diagonal curvature gives conditional standard deviations, smaller than
    the marginal ones; twice them is still about the posterior's width, so
    chains start in the EM solution's basin yet apart enough for R-hat and
    the ``modes`` gate to see a chain that settles elsewhere.

    Parameters
    ----------
    start : ndarray of shape (n_unconstrained,)
    block : ndarray
        From :func:`bayesgmm._kernel.pack_block`.
    step : float

    Returns
    -------
    ndarray of shape (n_unconstrained,)
    """
    curvature = np.empty(start.size)
    for j in range(start.size):
        shift = np.zeros(start.size)
        shift[j] = step
        above = logp_and_grad(start + shift, block)[1][j]
        below = logp_and_grad(start - shift, block)[1][j]
        curvature[j] = (above - below) / (2.0 * step)
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = OVERDISPERSION / np.sqrt(-curvature)
    return np.where(np.isfinite(spread), np.minimum(spread, MAX_START_SPREAD), MAX_START_SPREAD)


MAX_START_HALVINGS = 20
"""Times a chain's jitter is halved when it lands where the density is not usable."""


def chain_start(start: np.ndarray, spread: np.ndarray, seed, block=None) -> np.ndarray:
    """One chain's start: ``start`` plus Gaussian jitter of sd ``spread`` from ``seed``.

    With ``block``, the jitter is halved (at most :data:`MAX_START_HALVINGS`
    times, then dropped) until the density and its gradient are finite and
    no gradient entry is exactly 0 there: nutpie refuses such a start.
    """
    jitter = spread * np.random.default_rng(seed).standard_normal(start.shape)
    if block is None:
        return start + jitter
    for _ in range(MAX_START_HALVINGS):
        logp, grad = logp_and_grad(start + jitter, block)
        if np.isfinite(logp) and np.all(np.isfinite(grad)) and np.all(grad != 0.0):
            return start + jitter
        jitter = 0.5 * jitter
    return start


class SamplerFailure(ValueError):
    """The sampler stopped with an internal error (e.g. no valid start); the fit failed."""


def _run_nutpie(model, settings, rng):
    import nutpie

    try:
        return nutpie.sample(
            model, draws=settings.draws, tune=settings.tune, chains=settings.chains,
            cores=settings.cores, seed=_seed(rng), progress_bar=settings.progressbar,
            save_warmup=False, target_accept=settings.target_accept,
            maxdepth=settings.max_treedepth, adaptation=settings.mass_matrix,
        )
    except BaseException as error:
        # nutpie's Rust panics arrive as pyo3's PanicException, a BaseException:
        # turn exactly those into a fit failure with advice, re-raise the rest.
        if type(error).__name__ != "PanicException":
            raise
        message = str(error).splitlines()[0] if str(error) else "internal panic"
        raise SamplerFailure(
            f"nutpie stopped: {message}. Try another random_state, fewer components, or "
            "method='advi'."
        ) from None


def check_complete(theta: np.ndarray, chains: int, draws: int) -> None:
    """Refuse a partial trace: nutpie returns one, truncated or NaN-padded, on Ctrl-C.

    Raises
    ------
    KeyboardInterrupt
        When a chain has fewer than ``draws`` finite draws: the run was
        interrupted, and a partial trace is never summarised.
    """
    if theta.shape[:2] != (chains, draws) or not np.all(np.isfinite(theta)):
        raise KeyboardInterrupt(
            "sampling was interrupted before every chain finished its draws; nothing was kept."
        )


def _nuts_nutpie(block, start, layout, settings, rng) -> PosteriorSample:
    from bayesgmm._kernel.nutpie import THETA, compiled_model

    spread = start_spread(start, block)
    began = time.perf_counter()
    model = compiled_model(block, start.size,
                           lambda seed: chain_start(start, spread, seed, block))
    try:
        trace = _run_nutpie(model, settings, rng)
    except SamplerFailure:
        # Seen with a sparse prior (weight_concentration=0.01, K=6, Faithful):
        # nutpie panics "bad initial gradient: Invalid initial point" with
        # jittered starts on several chains although every start has a finite
        # density and gradient (checked), and not with one chain or with
        # identical starts.  Root cause in nutpie not found; fall back to
        # identical starts, which the chains' own warm-up then spreads.
        model = compiled_model(block, start.size, lambda seed: start.copy())
        trace = _run_nutpie(model, settings, rng)
    elapsed = time.perf_counter() - began
    theta = trace.posterior[THETA].values
    check_complete(theta, settings.chains, settings.draws)
    return PosteriorSample(
        unconstrained_to_parameters(theta, layout),
        _nuts_stats(trace.sample_stats.to_dataset()), {}, elapsed,
    )


def _pymc_start(model, start, layout) -> dict[str, np.ndarray]:
    """The start as constrained values keyed by the PyMC model's variable names.

    (Value-variable names cannot be used: PyMC cannot parse the untransformed
    name back out of ``correlations_cholesky_cholesky_corr__``.)
    """
    parameters = unconstrained_to_parameters(start, layout)
    sets, per_set = layout.scale_shape
    # PyMC's shared sets have no axis of their own (see bayesgmm.model.SCALE_DIMS).
    scale_shape = {"tied": (per_set,), "spherical": (sets,)}.get(layout.covariance_type,
                                                                 (sets, per_set))
    chol = parameters.correlation_cholesky
    values = {
        "weights": parameters.weights,
        "mixture_weights": (None if parameters.noise is None else
                            np.append(parameters.weights, parameters.noise.weight)),
        "means": parameters.means,
        "scales": parameters.scales[:sets, :per_set].reshape(scale_shape),
        "correlations_cholesky": chol[0] if layout.covariance_type == "tied" else chol,
    }
    free = {rv.name for rv in model.free_RVs}
    return {name: value for name, value in values.items() if name in free}


def parameters_from_pymc(posterior: xr.Dataset, layout: Layout) -> ModelParameters:
    """Draws of the PyMC model's posterior group as ModelParameters.

    Parameters
    ----------
    posterior : xarray.Dataset
        From ``pm.sample`` on :func:`bayesgmm.model.build_model`.
    layout : Layout

    Returns
    -------
    ModelParameters
        Leading axes ``(chain, draw)``; identity correlations when the
        model has none.
    """
    weights = posterior["weights"].values
    sample_shape = weights.shape[:-1]
    k, d = layout.n_components, layout.n_features
    scales = posterior["scales"].values.reshape(sample_shape + layout.scale_shape)
    if "correlations_cholesky" in posterior:
        chol = posterior["correlations_cholesky"].values
        chol = chol.reshape(sample_shape + (-1, d, d))
    else:
        chol = np.eye(d)
    noise = None
    if layout.has_noise:
        noise = NoiseComponent(posterior["noise_weight"].values, layout.noise_log_density)
    return ModelParameters(
        weights, posterior["means"].values,
        np.broadcast_to(scales, sample_shape + (k, d)).copy(),
        np.broadcast_to(chol, sample_shape + (k, d, d)).copy(),
        noise,
    )


EXTENSION_GROUP = "extension"
"""DataTree group of the variables a user's ``extend_model`` added (relabelled)."""


def _nuts_pymc(model, start, block, layout, settings, rng) -> PosteriorSample:
    import pymc as pm

    from bayesgmm.model import MODEL_VARIABLES

    spread = start_spread(start, block)
    starts = [_pymc_start(model, chain_start(start, spread, _seed(rng), block), layout)
              for _ in range(settings.chains)]
    began = time.perf_counter()
    trace = pm.sample(
        draws=settings.draws,
        tune=settings.tune,
        chains=settings.chains,
        cores=settings.cores,
        random_seed=_seed(rng),
        initvals=starts,
        init="adapt_diag",
        target_accept=settings.target_accept,
        max_treedepth=settings.max_treedepth,
        progressbar=settings.progressbar,
        compute_convergence_checks=False,
        model=model,
    )
    elapsed = time.perf_counter() - began
    means = trace.posterior["means"].values
    check_complete(means.reshape(means.shape[:2] + (-1,)), settings.chains, settings.draws)
    posterior = trace.posterior.to_dataset()
    extension = [name for name in posterior.data_vars if name not in MODEL_VARIABLES]
    return PosteriorSample(
        parameters_from_pymc(posterior, layout),
        _nuts_stats(trace.sample_stats.to_dataset()),
        {EXTENSION_GROUP: posterior[extension]} if extension else {},
        elapsed,
    )


def _laplace(start, layout, settings, rng, rows: RowAccess) -> PosteriorSample:
    began = time.perf_counter()
    result = fit_laplace(start, rows.pack_rows, rows.values.shape[0], rng)
    return laplace_sample(result, layout, settings.draws, rng, began)


def laplace_sample(result: LaplaceResult, layout: Layout, draws: int, rng: np.random.Generator,
                   began: float) -> PosteriorSample:
    """Draws from a Laplace approximation, with its check as the ``laplace`` group.

    Parameters
    ----------
    result : LaplaceResult
    layout : Layout
    draws : int
    rng : numpy.random.Generator
    began : float
        ``time.perf_counter()`` when the fit began.

    Returns
    -------
    PosteriorSample
        One chain.
    """
    theta = result.sample(draws, rng)
    elapsed = time.perf_counter() - began
    check = xr.Dataset({"log_ratio": ("check_draw", result.log_ratio)},
                       attrs={"newton_steps": result.n_newton_steps,
                              "full_data_gradients": result.n_density_evaluations,
                              "hessian_rows": result.hessian_rows})
    return PosteriorSample(unconstrained_to_parameters(theta[None], layout), xr.Dataset(),
                           {"laplace": check}, elapsed)


def _coreset_nuts(start, layout, settings, rng, rows: RowAccess) -> PosteriorSample:
    centres = unconstrained_to_parameters(start, layout).means
    coreset = lightweight_coreset(rows.values, centres, CORESET_SIZE, rng, rows.sample_weight)
    warn_overconfident(rows.values.shape[0], CORESET_SIZE)
    unit_weights = coreset.weights / (1.0 if rows.sample_weight is None
                                      else rows.sample_weight[coreset.rows])
    sample = _nuts_nutpie(rows.pack_rows(coreset.rows, unit_weights), start, layout, settings,
                          rng)
    return sample._replace(extra_groups={"coreset": xr.Dataset(
        {"rows": ("coreset_row", coreset.rows), "weights": ("coreset_row", coreset.weights)})})


def _minibatch_advi(start, layout, settings, rng, rows: RowAccess) -> PosteriorSample:
    if rows.sample_weight is not None:
        raise ValueError("method='minibatch_advi' does not take sample_weight yet; use "
                         "method='laplace' (the large-N default), which does.")
    began = time.perf_counter()
    result = fit_minibatch_advi(start, rows.values, rows.priors, layout.n_components,
                                layout.covariance_type, rng, n_iter=settings.advi_iterations,
                                noise_log_density=layout.noise_log_density,
                                progressbar=settings.progressbar)
    theta = result.sample(settings.draws, rng)
    elapsed = time.perf_counter() - began
    # The check reads every row, so it uses IMPORTANCE_DRAWS of the draws, as Laplace's.
    density = ShardedDensity.over_rows(rows.pack_rows, np.arange(rows.values.shape[0]))
    try:
        checked = theta[:IMPORTANCE_DRAWS]
        log_ratio = density.log_densities(checked) - result.log_density(checked)
    finally:
        density.close()
    trace = xr.Dataset({"elbo": ("iteration", result.elbo),
                        "log_ratio": ("check_draw", log_ratio)})
    return PosteriorSample(unconstrained_to_parameters(theta[None, :, :], layout), xr.Dataset(),
                           {"vi_trace": trace}, elapsed)


def _advi_own(block, start, layout, settings, rng) -> PosteriorSample:
    began = time.perf_counter()
    result = fit_advi(
        start, block, rng, method=settings.method, n_iter=settings.advi_iterations,
        progressbar=settings.progressbar,
    )
    theta = result.sample(settings.draws, rng)
    elapsed = time.perf_counter() - began
    lp = logp_batch(theta, block)
    stats = xr.Dataset(
        {
            "lp": (("chain", "draw"), lp[None, :]),
            "log_q": (("chain", "draw"), result.log_density(theta)[None, :]),
        }
    )
    trace = xr.Dataset({"elbo": ("iteration", result.elbo)})
    return PosteriorSample(
        unconstrained_to_parameters(theta[None, :, :], layout),
        stats,
        {"vi_trace": trace},
        elapsed,
    )


# nutpie's names -> PyMC/ArviZ names, so both engines report the same statistics.
_NUTS_STAT_NAMES = {"logp": "lp", "depth": "tree_depth", "mean_tree_accept": "acceptance_rate"}
_NUTS_STATS = ("diverging", "energy", "lp", "step_size", "tree_depth", "n_steps",
               "acceptance_rate", "maxdepth_reached")


def _nuts_stats(dataset: xr.Dataset) -> xr.Dataset:
    """Per-draw NUTS statistics under common names, as plain (chain, draw) arrays."""
    dataset = dataset.rename({k: v for k, v in _NUTS_STAT_NAMES.items() if k in dataset})
    variables = {name: (("chain", "draw"), np.asarray(dataset[name].values))
                 for name in _NUTS_STATS if name in dataset}
    variables["diverging"] = (("chain", "draw"), variables["diverging"][1].astype(bool))
    return xr.Dataset(variables)


def sample_posterior(
    settings: SamplerSettings,
    *,
    block: np.ndarray,
    start: np.ndarray,
    layout: Layout,
    model_factory,
    rng: np.random.Generator,
    rows: RowAccess | None = None,
) -> PosteriorSample:
    """Run the chosen method on the chosen engine.

    Parameters
    ----------
    settings : SamplerSettings
    block : ndarray
        Packed data and priors for the compiled density.
    start : ndarray of shape (n_unconstrained,)
        EM solution in the unconstrained space.
    layout : Layout
    model_factory : callable
        Zero-argument callable returning the PyMC model (only the ``"pymc"``
        engine builds it).
    rng : numpy.random.Generator
    rows : RowAccess, optional
        Needed by :data:`LARGE_N_METHODS`.

    Returns
    -------
    PosteriorSample
    """
    match settings.method, settings.engine:
        case "nuts", "nutpie":
            return _nuts_nutpie(block, start, layout, settings, rng)
        case "nuts", "pymc":
            return _nuts_pymc(model_factory(), start, block, layout, settings, rng)
        case ("advi" | "fullrank_advi"), "nutpie":
            return _advi_own(block, start, layout, settings, rng)
        case "laplace", "nutpie":
            return _laplace(start, layout, settings, rng, rows)
        case "coreset_nuts", "nutpie":
            return _coreset_nuts(start, layout, settings, rng, rows)
        case "minibatch_advi", "nutpie":
            return _minibatch_advi(start, layout, settings, rng, rows)
        case ("laplace" | "coreset_nuts" | "minibatch_advi"), "pymc":
            raise ValueError(
                f"method={settings.method!r} runs on bayesgmm's compiled density only; use "
                "engine='nutpie' (the default)."
            )
        case ("advi" | "fullrank_advi"), "pymc":
            raise ValueError(
                "ADVI runs on bayesgmm's compiled density only; use engine='nutpie' "
                "(the default). PyMC's pm.fit on this model took 38 s for 2,000 "
                "iterations here and drifted away from the EM start."
            )
    raise ValueError(
        f"method must be one of {METHODS} and engine one of {ENGINES}, got "
        f"method={settings.method!r}, engine={settings.engine!r}."
    )


