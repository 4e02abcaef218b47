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
from typing import NamedTuple

import arviz as az
import numpy as np
import xarray as xr
from arviz_stats.loo import SamplingWrapper
from scipy.special import logsumexp

from bayesgmm.likelihood import pointwise_log_likelihood
from bayesgmm.logdensity import (
    Layout,
    logp_batch,
    pack_block,
    parameters_to_unconstrained,
    unconstrained_to_parameters,
)
from bayesgmm.model import model_scale
from bayesgmm.posterior import parameters_from_posterior, to_data_units, to_model_units

__all__ = ["KFOLD_SHARE", "LooOutcome", "reliable_loo", "waic"]

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

    @property
    def caveat(self) -> str:
        """Plain-language warning, or an empty string when the estimate is reliable."""
        if self.n_high_khat == 0:
            return ""
        return (f"{self.n_high_khat} point(s) still have Pareto k-hat > "
                f"{self.threshold:.2f}: this elpd is unreliable")


def waic(log_likelihood: np.ndarray) -> dict[str, float]:
    """Widely applicable information criterion on the elpd scale.

    Parameters
    ----------
    log_likelihood : ndarray of shape (n_draws, n_obs)

    Returns
    -------
    dict
        ``elpd_waic`` (higher is better), ``se``, ``p_waic`` and
        ``n_high_variance``: points whose posterior variance of the
        log-likelihood exceeds 0.4, where WAIC is known to be unreliable
        (Vehtari, Gelman & Gabry 2017).
    """
    n_draws = log_likelihood.shape[0]
    lppd = logsumexp(log_likelihood, axis=0) - np.log(n_draws)
    penalty = log_likelihood.var(axis=0, ddof=1)
    pointwise = lppd - penalty
    return {
        "elpd_waic": float(pointwise.sum()),
        "se": float(np.sqrt(pointwise.size * pointwise.var())),
        "p_waic": float(penalty.sum()),
        "n_high_variance": int((penalty > 0.4).sum()),
    }


def _quiet(function, *args, **kwargs):
    """Run an ArviZ call whose Pareto-k warnings we report in the table instead."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return function(*args, **kwargs)


def _khat_counts(result, threshold):
    khat = np.asarray(result.pareto_k).ravel()
    return float(np.nanmax(khat)), int(np.sum(khat > threshold))


class _Unconstrained:
    """Maps between a fitted model's draws and its unconstrained space."""

    def __init__(self, fit, X):
        priors = fit.priors_
        values, self.centre, self.scale, resolved = model_scale(X, priors, fit.n_components)
        self.X = X
        self.layout = Layout(fit.n_components, X.shape[1], fit.covariance_type)
        self.block = pack_block(values, resolved, fit.n_components, fit.covariance_type)

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
        log_lik = pointwise_log_likelihood(self.X[i:i + 1], parameters)[:, 0]
        return xr.DataArray(log_lik.reshape(values.shape[:2]), dims=("chain", "draw"))


class _RefitWrapper(SamplingWrapper):
    """K-fold refits of a BayesianGMM with its own settings."""

    def __init__(self, fit, X):
        super().__init__(model=None, idata_orig=fit.idata_)
        self.fit = fit
        self.X = X

    def sel_observations(self, idx):
        train = np.setdiff1d(np.arange(self.X.shape[0]), idx)
        return self.X[train], (self.X[idx], np.asarray(idx))

    def sample(self, modified_observed_data):
        from bayesgmm.bayes import BayesianGMM

        settings = self.fit.get_params()
        settings.update(progressbar=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return BayesianGMM(**settings).fit(modified_observed_data)

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


def reliable_loo(fit, X: np.ndarray | None = None, *, allow_kfold: bool = True) -> LooOutcome:
    """PSIS-LOO with moment matching and K-fold fallbacks (see the module docstring).

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
        When many points are flagged and K-fold is not allowed, plain PSIS is
        returned with its caveat: moment matching costs one pass over all
        draws per flagged point and iteration, so it is kept for the case of
        a few flagged points.
    """
    tree = fit.idata_
    if X is None:
        X = tree.observed_data["x"].values
    first = _quiet(az.loo, tree, var_name="x", pointwise=True)
    threshold = float(first.good_k)
    max_khat, n_high = _khat_counts(first, threshold)
    if n_high == 0:
        return LooOutcome(first, "psis", max_khat, 0, 0, threshold)
    many = n_high > KFOLD_SHARE * X.shape[0]
    if not many:
        mapping = _Unconstrained(fit, X)
        matched = _quiet(
            az.loo_moment_match, tree, first, log_prob_upars_fn=mapping.log_prob,
            log_lik_i_upars_fn=mapping.log_lik_i,
            upars=mapping.upars(tree.posterior.to_dataset()), var_name="x", pointwise=True,
        )
        matched_max, matched_high = _khat_counts(matched, threshold)
        if matched_high <= KFOLD_SHARE * X.shape[0] or not allow_kfold:
            return LooOutcome(matched, "psis+mm", matched_max, matched_high, n_high, threshold)
    if not allow_kfold:
        return LooOutcome(first, "psis", max_khat, n_high, n_high, threshold)
    kfold = _quiet(az.loo_kfold, tree, _RefitWrapper(fit, X), var_name="x", k=KFOLD_FOLDS,
                   pointwise=True)
    return LooOutcome(kfold, "kfold", float("nan"), 0, n_high, threshold)
