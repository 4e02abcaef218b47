"""Leave-one-out cross-validation of a fitted mixture, with honest reliability.

:func:`reliable_loo` runs PSIS-LOO on the marginal pointwise log-likelihood,
streamed over blocks of observations (:mod:`bayesgmm.psis`: exactly
``az.loo``, without ever holding the ``(draws, n_obs)`` matrix, so it works
the same whether or not the model kept its ``log_likelihood`` group), and
escalates when ArviZ's Pareto-k diagnostic flags points:

1. ``"psis"``: plain PSIS-LOO when every k-hat is below ArviZ's threshold
   (``min(1 - 1/log10(S), 0.7)``);
2. ``"psis+mm"``: when at most :data:`KFOLD_SHARE` of the points are
   flagged, moment matching (``az.loo_moment_match``, Paananen et al. 2021)
   on the unconstrained draws, using bayesgmm's compiled log density; no
   refit needed.  It runs on the flagged points only, in batches whose
   log-likelihood stays within the streaming budget;
3. ``"kfold"``: when more than :data:`KFOLD_SHARE` of the points are
   flagged (before or after moment matching), 10-fold cross-validation
   (``az.loo_kfold``) with refits of the same model (``compare_k`` allows it
   only for fits that passed their convergence checks).

The returned :class:`LooOutcome` says which estimate was used and how many
points remain flagged, so no LOO number is shown without its caveat; it
carries WAIC (ArviZ 1.x has none) from the same pass.  A weighted fit's
totals weight each row's terms by its frequency weight (``elpd = sum_i w_i
elpd_i``, :func:`bayesgmm.psis.loo_totals`), K-fold included.
"""

from __future__ import annotations

import dataclasses
import warnings
from contextlib import contextmanager
from typing import NamedTuple

import arviz as az
import numpy as np
import xarray as xr
from arviz_stats.loo import SamplingWrapper

from bayesgmm._kernel import logp_batch, pack_block
from bayesgmm._progress import Bar, progress
from bayesgmm._workload import LOG_LIKELIHOOD_BUDGET
from bayesgmm.density import predictive_density
from bayesgmm.likelihood import evenly_spaced_draws, pointwise_log_likelihood
from bayesgmm.noise import noise_region
from bayesgmm.parameters import (
    Layout,
    parameters_to_unconstrained,
    to_data_units,
    to_model_units,
    unconstrained_to_parameters,
)
from bayesgmm.posterior import OBSERVED, parameters_from_posterior, stored_sample_weight
from bayesgmm.psis import (
    PointwiseLoo,
    Waic,
    elpd_data,
    loo_totals,
    relative_efficiency,
    streamed_psis,
    waic,
    waic_from_pointwise,
)
from bayesgmm.scaling import model_noise_log_density, model_noise_log_sides, model_scale

__all__ = [
    "KFOLD_SHARE",
    "LooOutcome",
    "REFIT_GATES",
    "Waic",
    "kfold_loo",
    "pointwise_loo",
    "psis_loo",
    "reliable_loo",
    "reported_arviz_warnings",
    "waic",
]

KFOLD_SHARE = 0.05
KFOLD_FOLDS = 10


class LooOutcome(NamedTuple):
    """An ELPD estimate and how trustworthy it is.

    Attributes
    ----------
    elpd : ELPDData
        ArviZ result (PSIS, moment-matched or K-fold).
    method : str
        ``"psis"``, ``"psis+mm"`` or ``"kfold"``.
    max_khat : float
        Largest Pareto k-hat after the final method (NaN for K-fold).
    n_high_khat : int
        Points above ArviZ's threshold after the final method.
    n_high_khat_psis : int
        Points above the threshold in plain PSIS-LOO.
    threshold : float
        ArviZ's ``good_k`` for this number of draws.
    n_unconverged_refits : int
        K-fold refits that failed their :data:`REFIT_GATES`.
    waic : Waic or None
        WAIC from the same pass over the data (None for K-fold).
    """

    elpd: object
    method: str
    max_khat: float
    n_high_khat: int
    n_high_khat_psis: int
    threshold: float
    n_unconverged_refits: int = 0
    waic: Waic | None = None

    @property
    def caveat(self) -> str:
        """Plain-language warning, or an empty string when the estimate is reliable."""
        notes = []
        if self.n_high_khat:
            notes.append(f"{self.n_high_khat} point(s) still have Pareto k-hat > "
                         f"{self.threshold:.2f}: this elpd is unreliable")
        if self.n_unconverged_refits:
            notes.append(f"{self.n_unconverged_refits} of {KFOLD_FOLDS} K-fold refits failed "
                         "their label-invariant gates: this elpd is unreliable")
        return "; ".join(notes)

    def needs_kfold(self, n_obs: int) -> bool:
        """Whether more than :data:`KFOLD_SHARE` of the points remain flagged."""
        return self.method != "kfold" and self.n_high_khat > KFOLD_SHARE * n_obs


# ArviZ warnings whose content bayesgmm reports itself, so they are silenced
# by message (every other warning still reaches the user):
REPORTED_ARVIZ_WARNINGS = (
    # Pareto k-hat above the threshold: LooOutcome.max_khat, n_high_khat, caveat.
    "Estimated shape parameter of Pareto distribution",
    # Moment matching left points flagged or reverted them: same fields.
    "After Moment Matching, ",
    r"Observation \d+: Moment matching did not improve k",
    r"Maximum number of moment matching iterations",
    # az.compare on close models: the table's elpd_diff and dse columns.
    "Difference in performance potentially due to chance",
    "All models have nearly identical performance",
)


@contextmanager
def reported_arviz_warnings():
    """Silence the ArviZ warnings of :data:`REPORTED_ARVIZ_WARNINGS`, and no others."""
    with warnings.catch_warnings():
        for message in REPORTED_ARVIZ_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=UserWarning)
        yield


def _quiet(function, *args, **kwargs):
    """Run an ArviZ call whose reported warnings are silenced."""
    with reported_arviz_warnings():
        return function(*args, **kwargs)


def _khat_counts(result, threshold):
    khat = np.asarray(result.pareto_k).ravel()
    return float(np.nanmax(khat)), int(np.sum(khat > threshold))


class _Unconstrained:
    """Maps between a fitted model's draws and its unconstrained space.

    ``X`` and ``sample_weight`` are the training data and weights: the
    density (``log_prob``) is the one that was sampled.
    """

    def __init__(self, fit, X, sample_weight=None):
        priors = fit.priors_
        values, self.centre, self.scale, resolved = model_scale(
            X, priors, fit.n_components, fit.covariance_type, sample_weight)
        noise_log_density = model_noise_log_density(X, self.scale, fit.noise, fit.noise_volume)
        self.X = X
        self.layout = Layout(fit.n_components, X.shape[1], fit.covariance_type,
                             noise_log_density)
        # Rows with missing values: the block groups them by pattern, and the
        # noise's marginal over their observed coordinates needs its box.
        self.block = pack_block(
            values, resolved, fit.n_components, fit.covariance_type, noise_log_density,
            model_noise_log_sides(X, self.scale, fit.noise, fit.noise_volume), sample_weight)
        self.noise_box = noise_region(X, fit.noise_volume) if fit.noise else None

    def upars(self, posterior: xr.Dataset) -> xr.DataArray:
        chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]
        flat = to_model_units(parameters_from_posterior(posterior), self.centre, self.scale)
        vectors = parameters_to_unconstrained(flat, self.layout)
        return xr.DataArray(vectors.reshape(chains, draws, -1), dims=("chain", "draw", "upar"))

    def log_prob(self, upars: xr.DataArray) -> xr.DataArray:
        values = upars.values
        out = logp_batch(values.reshape(-1, values.shape[-1]), self.block)
        return xr.DataArray(out.reshape(values.shape[:2]), dims=("chain", "draw"))

    def log_lik_i(self, upars: xr.DataArray, i: int, rows: np.ndarray | None = None
                  ) -> xr.DataArray:
        """Log-likelihood of row ``i`` of ``rows`` (default: the training data) per draw."""
        rows = self.X if rows is None else rows
        values = upars.values
        parameters = to_data_units(
            unconstrained_to_parameters(values.reshape(-1, values.shape[-1]), self.layout),
            self.centre, self.scale,
        )
        if parameters.noise is not None:
            parameters = parameters._replace(noise=parameters.noise._replace(box=self.noise_box))
        log_lik = pointwise_log_likelihood(rows[i:i + 1], parameters)[:, 0]
        return xr.DataArray(log_lik.reshape(values.shape[:2]), dims=("chain", "draw"))


REFIT_GATES = ("rhat_log_lik", "modes")
"""Label-invariant gates every K-fold refit must pass (its elpd is flagged otherwise)."""


class _RefitWrapper(SamplingWrapper):
    """K-fold refits of a BayesianGMM with its own settings; counts refits that failed.

    ``log_likelihood__i`` returns each held-out point's log predictive
    density (log-mean-exp over the refit's draws, streamed) as a single
    "draw": ArviZ's K-fold reduces the draws by exactly that log-mean-exp,
    so the result is the same while no ``(draws, held-out rows)`` matrix is
    built.  With frequency weights, ArviZ calls ``sel_observations`` then
    ``sample`` for each fold; the training rows' weights pass between them.
    Every finished refit advances ``bar``, when given.
    """

    def __init__(self, fit, X, sample_weight=None, bar: Bar | None = None):
        extension = fit.idata_.attrs.get("model_extension")
        if extension is not None and fit.extend_model is None:
            raise ValueError(
                f"this model was fitted with extend_model={extension}, which a saved model "
                "cannot carry; refits would drop the extension. Set model.extend_model to "
                "that function again before K-fold refits."
            )
        super().__init__(model=None, idata_orig=fit.idata_)
        self.fit = fit
        self.X = X
        self.bar = bar
        self.sample_weight = sample_weight
        self.n_unconverged = 0
        self._train_weight = None

    def sel_observations(self, idx):
        train = np.setdiff1d(np.arange(self.X.shape[0]), idx)
        if self.sample_weight is not None:
            self._train_weight = self.sample_weight[train]
        return self.X[train], (self.X[idx], np.asarray(idx))

    def sample(self, modified_observed_data):
        from bayesgmm.bayes import BayesianGMM, diagnostics_reported

        settings = self.fit.get_params()
        settings.update(progressbar=False)
        if self.fit.noise and self.fit.noise_volume is None:
            # The model being scored has the full data's noise box: a fold's own,
            # smaller box would score held-out points at a different (and outside
            # it, unjustified) density.
            settings["noise_volume"] = float(np.exp(noise_region(self.X, None).log_volume))
        with diagnostics_reported():  # counted below and reported in the caveat
            refit = BayesianGMM(**settings).fit(modified_observed_data,
                                                sample_weight=self._train_weight)
        table = refit.diagnostics_.table
        if not all(table.loc[gate, "ok"] for gate in REFIT_GATES if gate in table.index):
            self.n_unconverged += 1
        if self.bar is not None:
            self.bar.advance()
        return refit

    def get_inference_data(self, fitted_model):
        return fitted_model.idata_

    def log_likelihood__i(self, excluded_obs, idata__i):
        values, idx = excluded_obs
        parameters = parameters_from_posterior(idata__i.posterior.to_dataset())
        return _as_single_draw(predictive_density(values, parameters, interval=None).log_density,
                               idx)


def _as_single_draw(values: np.ndarray, obs: np.ndarray) -> xr.DataArray:
    """Per-point values shaped as a log-likelihood of one chain and one draw."""
    return xr.DataArray(values[None, None, :], dims=("chain", "draw", "obs"),
                        coords={"obs": obs})


def pointwise_loo(fit, X: np.ndarray | None = None, interval: float | None = None,
                  max_draws: int | None = None) -> PointwiseLoo:
    """Plain PSIS-LOO of every training point, streamed (:func:`bayesgmm.psis.streamed_psis`).

    Parameters
    ----------
    fit : BayesianGMM
    X : ndarray, optional
        Training data; defaults to the model's ``observed_data``.
    interval : float, optional
        Also the leave-one-out band of ``log p(x_i | theta)`` of that mass.
    max_draws : int, optional
        Use at most this many draws in all, the same evenly spaced number
        from each chain (at least one per chain); None uses every draw.

    Returns
    -------
    PointwiseLoo
    """
    tree = fit.idata_
    if X is None:
        X = tree.observed_data[OBSERVED].values
    posterior = tree.posterior.to_dataset()
    parameters = fit._parameters
    chains = posterior.sizes["chain"]
    draws = posterior.sizes["draw"]
    if evenly_spaced_draws(chains * draws, max_draws) is not None:  # checks max_draws too
        kept = evenly_spaced_draws(draws, max(1, max_draws // chains))
        if kept is not None:
            posterior = posterior.isel(draw=kept)
            parameters = parameters_from_posterior(posterior)
    return streamed_psis(X, parameters, chains, relative_efficiency(posterior), interval,
                         stored_sample_weight(tree))


def psis_loo(fit, X: np.ndarray | None = None) -> LooOutcome:
    """PSIS-LOO, with moment matching when at most :data:`KFOLD_SHARE` of points are flagged.

    Parameters
    ----------
    fit : BayesianGMM
        A fitted NUTS model.
    X : ndarray, optional
        Training data; defaults to the model's ``observed_data``.

    Returns
    -------
    LooOutcome
        ``"psis"`` or ``"psis+mm"``; :meth:`LooOutcome.needs_kfold` says
        whether too many points remain flagged.  Moment matching costs one
        pass over all draws per flagged point and iteration, so it is kept
        for the case of a few flagged points.  Its ``elpd`` is an
        ``ELPDDataLOO`` with pointwise ``elpd_i``, ``pareto_k`` and
        ``p_loo_i`` but no ``log_weights`` (they would be a
        ``(draws, n_obs)`` array).
    """
    tree = fit.idata_
    if X is None:
        X = tree.observed_data[OBSERVED].values
    weights = stored_sample_weight(tree)
    pointwise = pointwise_loo(fit, X)
    n_samples = fit._parameters.weights.shape[0]
    information = waic_from_pointwise(pointwise.lppd, pointwise.variance, weights)
    first = elpd_data(pointwise, n_samples, weights)
    threshold = float(first.good_k)
    max_khat, n_high = _khat_counts(first, threshold)
    if n_high == 0 or n_high > KFOLD_SHARE * X.shape[0]:
        return LooOutcome(first, "psis", max_khat, n_high, n_high, threshold, waic=information)
    matched = elpd_data(_moment_matched(fit, X, pointwise, threshold, weights), n_samples,
                        weights)
    matched_max, matched_high = _khat_counts(matched, threshold)
    return LooOutcome(matched, "psis+mm", matched_max, matched_high, n_high, threshold,
                      waic=information)


def _moment_matched(fit, X: np.ndarray, pointwise: PointwiseLoo, threshold: float,
                    sample_weight: np.ndarray | None) -> PointwiseLoo:
    """``pointwise`` with its flagged points moment-matched (``az.loo_moment_match``).

    Moment matching treats each point on its own, so it runs on the flagged
    points only, in batches whose log-likelihood matrix stays within
    :data:`~bayesgmm._workload.LOG_LIKELIHOOD_BUDGET`; each batch is a small
    tree (the posterior and that batch's log-likelihood) with the plain
    PSIS results of its points.
    """
    tree = fit.idata_
    posterior = tree.posterior.to_dataset()
    chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]
    reff = relative_efficiency(posterior)
    mapping = _Unconstrained(fit, X, sample_weight)
    upars = mapping.upars(posterior)
    elpd, pareto_k = pointwise.elpd.copy(), pointwise.pareto_k.copy()
    flagged = np.flatnonzero(pointwise.pareto_k > threshold)
    per_batch = max(1, LOG_LIKELIHOOD_BUDGET // (chains * draws))
    for start in range(0, flagged.size, per_batch):
        batch = flagged[start:start + per_batch]
        rows = X[batch]
        log_lik = xr.DataArray(
            pointwise_log_likelihood(rows, fit._parameters).reshape(chains, draws, -1),
            dims=("chain", "draw", "obs"), coords={"obs": np.arange(batch.size)})
        log_weights, batch_k = log_lik.azstats.psislw(r_eff=reff, dim=["chain", "draw"])
        plain = az.ELPDDataLOO(
            elpd=float(elpd[batch].sum()), se=0.0, p=0.0, n_samples=chains * draws,
            n_data_points=batch.size, scale="log", warning=True, good_k=threshold,
            elpd_i=xr.DataArray(elpd[batch], dims=("obs",), coords=log_lik.obs.coords),
            pareto_k=batch_k, log_weights=log_weights,
        )
        small = xr.DataTree.from_dict({"posterior": posterior,
                                       "log_likelihood": xr.Dataset({OBSERVED: log_lik})})
        # ArviZ's split moment matching evaluates both branches of an
        # ``xr.where`` and the unused one overflows in ``exp``; the result is
        # unaffected, so that overflow (and only it) is not shown.  A batch of
        # one point makes ArviZ's batch standard error a variance of one
        # value; that number is discarded (totals come from every point).
        with np.errstate(over="ignore"), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Degrees of freedom <= 0 for slice",
                                    category=RuntimeWarning)
            matched = _quiet(
                az.loo_moment_match, small, plain, log_prob_upars_fn=mapping.log_prob,
                log_lik_i_upars_fn=lambda upars, i, rows=rows: mapping.log_lik_i(upars, i, rows),
                upars=upars, var_name=OBSERVED, reff=reff, k_threshold=threshold,
                pointwise=True,
            )
        elpd[batch] = matched.elpd_i.values
        pareto_k[batch] = matched.pareto_k.values
    return pointwise._replace(elpd=elpd, pareto_k=pareto_k)


def kfold_loo(fit, X: np.ndarray | None = None, psis: LooOutcome | None = None, *,
              progressbar: bool = False) -> LooOutcome:
    """10-fold cross-validation with refits of the same model, each refit checked.

    Parameters
    ----------
    fit : BayesianGMM
    X : ndarray, optional
        Training data; defaults to the model's ``observed_data``.
    psis : LooOutcome, optional
        The PSIS result it replaces (for its flagged-point count).
    progressbar : bool, default=False
        Show the refits done (each refit's own sampler stays silent).

    Returns
    -------
    LooOutcome
        ``"kfold"``; ``n_unconverged_refits`` counts refits whose
        :data:`REFIT_GATES` failed (the caveat then says so).  K-fold elpd is
        biased low against PSIS-LOO (each fold trains on 90% of the data),
        so it is never compared with PSIS rows (see ``compare_k``).  Refits
        of a weighted fit keep their rows' weights, and the totals weight
        each row's terms (:func:`bayesgmm.psis.loo_totals`).

    Notes
    -----
    ArviZ's ``loo_kfold`` reduces the full fit's and each refit's
    log-likelihood over the draws by log-mean-exp and uses nothing else of
    them, so it is given those per-point values directly, as a
    log-likelihood of one draw (streamed: no ``(draws, n_obs)`` matrix).
    """
    tree = fit.idata_
    if X is None:
        X = tree.observed_data[OBSERVED].values
    weights = stored_sample_weight(tree)
    lppd = predictive_density(X, fit._parameters, interval=None).log_density
    reduced = xr.DataTree.from_dict({"log_likelihood": xr.Dataset(
        {OBSERVED: _as_single_draw(lppd, np.arange(X.shape[0]))})})
    with progress(KFOLD_FOLDS, f"K-fold refits, K={fit.n_components}", progressbar) as bar:
        wrapper = _RefitWrapper(fit, X, weights, bar)
        kfold = _quiet(az.loo_kfold, reduced, wrapper, var_name=OBSERVED, k=KFOLD_FOLDS,
                       pointwise=True)
    totals = {}
    if weights is not None:
        elpd, se, p = loo_totals(kfold.elpd_i.values, kfold.p_kfold_i.values, weights, ddof=0)
        totals = {"elpd": elpd, "se": se, "p": p}
    kfold = dataclasses.replace(kfold, n_samples=fit._parameters.weights.shape[0], **totals)
    n_high = psis.n_high_khat_psis if psis is not None else 0
    threshold = psis.threshold if psis is not None else float("nan")
    return LooOutcome(kfold, "kfold", float("nan"), 0, n_high, threshold, wrapper.n_unconverged)


def reliable_loo(fit, X: np.ndarray | None = None, *, allow_kfold: bool = True,
                 progressbar: bool = False) -> LooOutcome:
    """PSIS-LOO, moment matching, then K-fold when still needed (module docstring).

    Parameters
    ----------
    fit : BayesianGMM
        A fitted NUTS model.
    X : ndarray, optional
        Training data; defaults to the model's ``observed_data``.
    allow_kfold : bool, default=True
        Permit the (expensive, 10 refits) K-fold fallback.
    progressbar : bool, default=False
        Show the K-fold refits done, when they run.

    Returns
    -------
    LooOutcome
        When many points are flagged and K-fold is not allowed, the PSIS
        estimate with its caveat.
    """
    outcome = psis_loo(fit, X)
    if allow_kfold and outcome.needs_kfold(fit.idata_.observed_data[OBSERVED].shape[0]):
        return kfold_loo(fit, X, outcome, progressbar=progressbar)
    return outcome
