"""Leave-one-out cross-validation of a fitted mixture, with honest reliability.

:func:`reliable_loo` runs ArviZ's PSIS-LOO on the marginal pointwise
log-likelihood and escalates when ArviZ's Pareto-k diagnostic flags points:

1. ``"psis"``: plain PSIS-LOO when every k-hat is below ArviZ's threshold
   (``min(1 - 1/log10(S), 0.7)``);
2. ``"psis+mm"``: when at most :data:`KFOLD_SHARE` of the points are
   flagged, moment matching (``az.loo_moment_match``, Paananen et al. 2021)
   on the unconstrained draws, using bayesgmm's compiled log density; no
   refit needed;
3. ``"kfold"``: when more than :data:`KFOLD_SHARE` of the points are
   flagged (before or after moment matching), 10-fold cross-validation
   (``az.loo_kfold``) with refits of the same model (``compare_k`` allows it
   only for fits that passed their convergence checks).

The returned :class:`LooOutcome` says which estimate was used and how many
points remain flagged, so no LOO number is shown without its caveat.
:func:`waic` computes WAIC (ArviZ 1.x has none) from the same matrix.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import NamedTuple

import arviz as az
import numpy as np
import xarray as xr
from arviz_stats.loo import SamplingWrapper
from scipy.special import logsumexp

from bayesgmm._kernel import logp_batch, pack_block
from bayesgmm.likelihood import pointwise_log_likelihood
from bayesgmm.noise import noise_region
from bayesgmm.parameters import (
    Layout,
    parameters_to_unconstrained,
    to_data_units,
    to_model_units,
    unconstrained_to_parameters,
)
from bayesgmm.posterior import OBSERVED, parameters_from_posterior
from bayesgmm.scaling import model_noise_log_density, model_noise_log_sides, model_scale

__all__ = [
    "KFOLD_SHARE",
    "LooOutcome",
    "REFIT_GATES",
    "Waic",
    "kfold_loo",
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
    """

    elpd: object
    method: str
    max_khat: float
    n_high_khat: int
    n_high_khat_psis: int
    threshold: float
    n_unconverged_refits: int = 0

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


class Waic(NamedTuple):
    """WAIC on the elpd scale (higher is better).

    Attributes
    ----------
    elpd_waic : float
    se : float
    p_waic : float
        Effective number of parameters.
    n_high_variance : int
        Points whose posterior variance of the log-likelihood exceeds 0.4,
        where WAIC is known to be unreliable (Vehtari, Gelman & Gabry 2017).
    """

    elpd_waic: float
    se: float
    p_waic: float
    n_high_variance: int


def waic(log_likelihood: np.ndarray) -> Waic:
    """Widely applicable information criterion from a pointwise log-likelihood.

    Parameters
    ----------
    log_likelihood : ndarray of shape (n_draws, n_obs)

    Returns
    -------
    Waic
    """
    n_draws = log_likelihood.shape[0]
    lppd = logsumexp(log_likelihood, axis=0) - np.log(n_draws)
    penalty = log_likelihood.var(axis=0, ddof=1)
    pointwise = lppd - penalty
    return Waic(float(pointwise.sum()), float(np.sqrt(pointwise.size * pointwise.var())),
                float(penalty.sum()), int((penalty > 0.4).sum()))


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
    """Maps between a fitted model's draws and its unconstrained space."""

    def __init__(self, fit, X):
        priors = fit.priors_
        values, self.centre, self.scale, resolved = model_scale(X, priors, fit.n_components,
                                                              fit.covariance_type)
        noise_log_density = model_noise_log_density(X, self.scale, fit.noise, fit.noise_volume)
        self.X = X
        self.layout = Layout(fit.n_components, X.shape[1], fit.covariance_type,
                             noise_log_density)
        # Rows with missing values: the block groups them by pattern, and the
        # noise's marginal over their observed coordinates needs its box.
        self.block = pack_block(
            values, resolved, fit.n_components, fit.covariance_type, noise_log_density,
            model_noise_log_sides(X, self.scale, fit.noise, fit.noise_volume))
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

    def log_lik_i(self, upars: xr.DataArray, i: int) -> xr.DataArray:
        values = upars.values
        parameters = to_data_units(
            unconstrained_to_parameters(values.reshape(-1, values.shape[-1]), self.layout),
            self.centre, self.scale,
        )
        if parameters.noise is not None:
            parameters = parameters._replace(noise=parameters.noise._replace(box=self.noise_box))
        log_lik = pointwise_log_likelihood(self.X[i:i + 1], parameters)[:, 0]
        return xr.DataArray(log_lik.reshape(values.shape[:2]), dims=("chain", "draw"))


REFIT_GATES = ("rhat_log_lik", "modes")
"""Label-invariant gates every K-fold refit must pass (its elpd is flagged otherwise)."""


class _RefitWrapper(SamplingWrapper):
    """K-fold refits of a BayesianGMM with its own settings; counts refits that failed."""

    def __init__(self, fit, X):
        super().__init__(model=None, idata_orig=fit.idata_)
        self.fit = fit
        self.X = X
        self.n_unconverged = 0

    def sel_observations(self, idx):
        train = np.setdiff1d(np.arange(self.X.shape[0]), idx)
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
            refit = BayesianGMM(**settings).fit(modified_observed_data)
        table = refit.diagnostics_.table
        if not all(table.loc[gate, "ok"] for gate in REFIT_GATES if gate in table.index):
            self.n_unconverged += 1
        return refit
    def get_inference_data(self, fitted_model):
        return fitted_model.idata_

    def log_likelihood__i(self, excluded_obs, idata__i):
        values, idx = excluded_obs
        parameters = parameters_from_posterior(idata__i.posterior.to_dataset())
        log_lik = pointwise_log_likelihood(values, parameters)
        chains, draws = idata__i.posterior.sizes["chain"], idata__i.posterior.sizes["draw"]
        return xr.DataArray(
            log_lik.reshape(chains, draws, -1), dims=("chain", "draw", "obs"),
            coords={"obs": idx},
        )


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
        for the case of a few flagged points.
    """
    tree = fit.idata_
    if X is None:
        X = tree.observed_data[OBSERVED].values
    first = _quiet(az.loo, tree, var_name=OBSERVED, pointwise=True)
    threshold = float(first.good_k)
    max_khat, n_high = _khat_counts(first, threshold)
    if n_high == 0 or n_high > KFOLD_SHARE * X.shape[0]:
        return LooOutcome(first, "psis", max_khat, n_high, n_high, threshold)
    mapping = _Unconstrained(fit, X)
    # ArviZ's split moment matching evaluates both branches of an
    # ``xr.where`` and the unused one overflows in ``exp``; the result is
    # unaffected, so that overflow (and only it) is not shown.
    with np.errstate(over="ignore"):
        matched = _quiet(
            az.loo_moment_match, tree, first, log_prob_upars_fn=mapping.log_prob,
            log_lik_i_upars_fn=mapping.log_lik_i,
            upars=mapping.upars(tree.posterior.to_dataset()), var_name=OBSERVED,
            pointwise=True,
        )
    matched_max, matched_high = _khat_counts(matched, threshold)
    return LooOutcome(matched, "psis+mm", matched_max, matched_high, n_high, threshold)


def kfold_loo(fit, X: np.ndarray | None = None, psis: LooOutcome | None = None) -> LooOutcome:
    """10-fold cross-validation with refits of the same model, each refit checked.

    Parameters
    ----------
    fit : BayesianGMM
    X : ndarray, optional
        Training data; defaults to the model's ``observed_data``.
    psis : LooOutcome, optional
        The PSIS result it replaces (for its flagged-point count).

    Returns
    -------
    LooOutcome
        ``"kfold"``; ``n_unconverged_refits`` counts refits whose
        :data:`REFIT_GATES` failed (the caveat then says so).  K-fold elpd is
        biased low against PSIS-LOO (each fold trains on 90% of the data),
        so it is never compared with PSIS rows (see ``compare_k``).
    """
    tree = fit.idata_
    if X is None:
        X = tree.observed_data[OBSERVED].values
    wrapper = _RefitWrapper(fit, X)
    kfold = _quiet(az.loo_kfold, tree, wrapper, var_name=OBSERVED, k=KFOLD_FOLDS,
                   pointwise=True)
    n_high = psis.n_high_khat_psis if psis is not None else 0
    threshold = psis.threshold if psis is not None else float("nan")
    return LooOutcome(kfold, "kfold", float("nan"), 0, n_high, threshold, wrapper.n_unconverged)


def reliable_loo(fit, X: np.ndarray | None = None, *, allow_kfold: bool = True) -> LooOutcome:
    """PSIS-LOO, moment matching, then K-fold when still needed (module docstring).

    Parameters
    ----------
    fit : BayesianGMM
        A fitted NUTS model.
    X : ndarray, optional
        Training data; defaults to the model's ``observed_data``.
    allow_kfold : bool, default=True
        Permit the (expensive, 10 refits) K-fold fallback.

    Returns
    -------
    LooOutcome
        When many points are flagged and K-fold is not allowed, the PSIS
        estimate with its caveat.
    """
    outcome = psis_loo(fit, X)
    if allow_kfold and outcome.needs_kfold(fit.idata_.observed_data[OBSERVED].shape[0]):
        return kfold_loo(fit, X, outcome)
    return outcome
