"""PSIS-LOO streamed over observations: exact, in memory O(draws x block).

Pareto-smoothed importance sampling (Vehtari, Gelman & Gabry 2017) works one
observation at a time: the smoothed weights of point ``i`` depend only on
``log p(x_i | theta_s)`` over the draws ``s`` and on the relative efficiency
``r_eff``, one number for the whole posterior (:func:`relative_efficiency`).
So the ``(draws, n_obs)`` log-likelihood never has to be held whole:
:func:`streamed_psis` computes it for a block of observations at a time
(:func:`bayesgmm.likelihood.iter_log_likelihood`), smooths each column with
ArviZ's ``psislw`` and keeps only per-observation numbers.  The result is
``az.loo`` on the full matrix, whatever the block size (tested to 1e-10);
:func:`elpd_data` packs it as ArviZ's ``ELPDDataLOO``, which ``az.compare``
takes as it is.

Why not ``az.loo_subsample``: it estimates the elpd from a subsample of
points and an approximation for the rest, which adds a subsampling error
(and its own diagnostics) to every number downstream: the K table and its
one-standard-error rule, and the anomaly scores, which need every point's
own leave-one-out density anyway.  The exact computation costs one pass over
the data, like scoring memberships, and needs no new caveat.

Frequency weights (:mod:`bayesgmm.sample_weight`): row ``i`` stands for
``w_i`` copies, all of them in the posterior, so leaving one copy out has
the importance ratio ``1 / p(x_i | theta)`` of an unweighted row: ``elpd_i``
and ``k_i`` are per copy, and the totals weight them (:func:`loo_totals`):
``elpd = sum_i w_i elpd_i``, ``p_loo = sum_i w_i p_loo_i`` and the standard
error of the rows repeated.  With integer weights every number equals the
one of the repeated data.  A row of weight 0 is not in the posterior: its
``elpd_i`` is its plain predictive density, its ``k_i`` NaN, and it adds
nothing to the totals.
"""

from __future__ import annotations

from typing import NamedTuple

import arviz as az
import numpy as np
import xarray as xr
from scipy.special import logsumexp

from bayesgmm.density import loo_predictive_density
from bayesgmm.likelihood import DEFAULT_BUDGET, iter_log_likelihood
from bayesgmm.parameters import ModelParameters

__all__ = [
    "PointwiseLoo",
    "Waic",
    "elpd_data",
    "good_k",
    "loo_totals",
    "relative_efficiency",
    "streamed_psis",
    "waic",
    "waic_from_pointwise",
]

SAMPLE_DIMS = ("chain", "draw")


class PointwiseLoo(NamedTuple):
    """Per-observation results of :func:`streamed_psis`, each of shape (n_obs,).

    Attributes
    ----------
    elpd : ndarray
        ``elpd_loo_i = log sum_s w_is p(x_i | theta_s)``, ``w_is`` the
        smoothed, normalised importance weights.
    pareto_k : ndarray
        Pareto k-hat of each point (NaN for rows of weight 0).
    lppd : ndarray
        ``log mean_s p(x_i | theta_s)``; ``lppd - elpd`` is ``p_loo_i``.
    variance : ndarray
        ``var_s log p(x_i | theta_s)`` (ddof 1), WAIC's penalty.
    lower, upper : ndarray or None
        Equal-tailed band of ``log p(x_i | theta_s)`` under the
        leave-one-out posterior (None unless an interval was asked for).
    """

    elpd: np.ndarray
    pareto_k: np.ndarray
    lppd: np.ndarray
    variance: np.ndarray
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None

    @property
    def p_loo(self) -> np.ndarray:
        """Pointwise effective number of parameters, ``lppd_i - elpd_i``."""
        return self.lppd - self.elpd


def relative_efficiency(posterior: xr.Dataset) -> float:
    """``r_eff`` as ``az.loo`` computes it: mean ESS of every posterior value over the draws.

    1 with one chain.  Parameters whose ESS is undefined (the constant
    diagonal of the correlations) count as ArviZ counts them.

    Parameters
    ----------
    posterior : xarray.Dataset
        With dimensions ``chain`` and ``draw``.

    Returns
    -------
    float
    """
    if posterior.sizes["chain"] == 1:
        return 1.0
    ess = posterior.azstats.ess(method="mean")
    n_samples = posterior.sizes["chain"] * posterior.sizes["draw"]
    return float(np.hstack([ess[name].values.ravel() for name in ess.data_vars]).mean()
                 / n_samples)


def good_k(n_samples: int) -> float:
    """ArviZ's Pareto k-hat threshold for ``n_samples`` draws, ``min(1 - 1/log10(S), 0.7)``."""
    return min(1 - 1 / np.log10(n_samples), 0.7) if n_samples > 1 else 0.7


def streamed_psis(
    X: np.ndarray,
    parameters: ModelParameters,
    n_chains: int,
    reff: float,
    interval: float | None = None,
    sample_weight: np.ndarray | None = None,
    budget: int = DEFAULT_BUDGET,
) -> PointwiseLoo:
    """PSIS-LOO of every observation, one block of observations at a time.

    Parameters
    ----------
    X : ndarray of shape (n_obs, n_features)
        The training data.
    parameters : ModelParameters
        The posterior draws, flattened ``(chain, draw)`` in chain-major
        order (:func:`bayesgmm.parameters.flatten_draws`).
    n_chains : int
    reff : float
        :func:`relative_efficiency` of the posterior.
    interval : float, optional
        Also compute the leave-one-out band of that mass.
    sample_weight : ndarray of shape (n_obs,), optional
        Frequency weights; rows of weight 0 get their plain predictive
        density (module docstring).
    budget : int
        Floats per block; memory is ``O(budget + n_obs)``.

    Returns
    -------
    PointwiseLoo
    """
    n_draws, n_obs = parameters.weights.shape[0], X.shape[0]
    out = {name: np.empty(n_obs) for name in ("elpd", "pareto_k", "lppd", "variance")}
    band = {name: np.empty(n_obs) for name in ("lower", "upper")} if interval else {}
    for rows, log_lik in iter_log_likelihood(X, parameters, budget):
        log_weights, pareto_k = _smoothed_weights(log_lik, n_chains, reff)
        if sample_weight is not None:
            absent = sample_weight[rows] == 0  # not in the posterior: nothing to leave out
            log_weights[:, absent] = -np.log(n_draws)
            pareto_k[absent] = np.nan
        density = loo_predictive_density(log_lik, log_weights, interval)
        out["elpd"][rows], out["pareto_k"][rows] = density.log_density, pareto_k
        out["lppd"][rows] = logsumexp(log_lik, axis=0) - np.log(n_draws)
        out["variance"][rows] = log_lik.var(axis=0, ddof=1)
        for name in band:
            band[name][rows] = getattr(density, name)
    return PointwiseLoo(**out, **band)


def _smoothed_weights(log_lik: np.ndarray, n_chains: int,
                      reff: float) -> tuple[np.ndarray, np.ndarray]:
    """ArviZ's PSIS log weights (normalised per point) and k-hat of a (draws, rows) block."""
    blocked = xr.DataArray(log_lik.reshape(n_chains, -1, log_lik.shape[1]),
                           dims=(*SAMPLE_DIMS, "obs"))
    log_weights, pareto_k = blocked.azstats.psislw(r_eff=reff, dim=list(SAMPLE_DIMS))
    log_weights = log_weights.transpose(*SAMPLE_DIMS, "obs").values
    return log_weights.reshape(log_lik.shape), np.array(pareto_k.values, dtype=np.float64)


def loo_totals(elpd_i: np.ndarray, p_loo_i: np.ndarray,
               sample_weight: np.ndarray | None = None,
               ddof: int = 1) -> tuple[float, float, float]:
    """``elpd``, its standard error and ``p_loo`` from pointwise values, frequency-weighted.

    ``elpd = sum_i w_i elpd_i``, ``p = sum_i w_i p_loo_i`` and
    ``se = sqrt(W / (W - ddof) * sum_i w_i (elpd_i - mean_w)^2)`` with
    ``W = sum_i w_i``: the standard error of the rows repeated, which is
    ArviZ's ``sqrt(n var(elpd_i, ddof))`` when every ``w_i`` is 1 (the
    default).  ArviZ uses ``ddof=1`` for PSIS-LOO and 0 for K-fold.

    Returns
    -------
    elpd, se, p : float
    """
    weights = np.ones_like(elpd_i) if sample_weight is None else sample_weight
    used = weights > 0
    elpd_i, p_loo_i, weights = elpd_i[used], p_loo_i[used], weights[used]
    total = weights.sum()
    mean = (weights * elpd_i).sum() / total
    spread = (weights * (elpd_i - mean) ** 2).sum()
    se = float(np.sqrt(total / (total - ddof) * spread)) if total > ddof else 0.0
    return float((weights * elpd_i).sum()), se, float((weights * p_loo_i).sum())


def elpd_data(pointwise: PointwiseLoo, n_samples: int,
              sample_weight: np.ndarray | None = None) -> az.ELPDDataLOO:
    """ArviZ's ``ELPDDataLOO`` for streamed results, pointwise values included.

    ``elpd_i``, ``pareto_k`` and ``p_loo_i`` are per row (per copy under
    frequency weights); ``elpd``, ``se`` and ``p`` are :func:`loo_totals`.
    ``log_weights`` is None: the ``(draws, n_obs)`` weights are not kept.

    Parameters
    ----------
    pointwise : PointwiseLoo
    n_samples : int
        Draws in all (chains x draws).
    sample_weight : ndarray of shape (n_obs,), optional

    Returns
    -------
    arviz.ELPDDataLOO
    """
    obs = {"obs": np.arange(pointwise.elpd.shape[0])}

    def pointwise_array(values, name):
        return xr.DataArray(values, dims=("obs",), coords=obs, name=name)

    elpd, se, p = loo_totals(pointwise.elpd, pointwise.p_loo, sample_weight)
    threshold = good_k(n_samples)
    return az.ELPDDataLOO(
        elpd=elpd, se=se, p=p, n_samples=n_samples, n_data_points=pointwise.elpd.shape[0],
        scale="log", warning=bool(np.nanmax(pointwise.pareto_k, initial=-np.inf) > threshold),
        good_k=threshold, elpd_i=pointwise_array(pointwise.elpd, "elpd_i"),
        pareto_k=pointwise_array(pointwise.pareto_k, "pareto_k"), approx_posterior=False,
        p_loo_i=pointwise_array(pointwise.p_loo, "p_loo_i"),
    )


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


def waic_from_pointwise(lppd: np.ndarray, variance: np.ndarray,
                        sample_weight: np.ndarray | None = None) -> Waic:
    """WAIC from each point's ``lppd_i`` and log-likelihood variance (:class:`PointwiseLoo`).

    ``elpd_waic = sum_i w_i (lppd_i - variance_i)``; the standard error
    (``sqrt(n var(elpd_waic_i))``, ddof 0) and penalty are weighted as in
    :func:`loo_totals`.
    """
    elpd, se, penalty = loo_totals(lppd - variance, variance, sample_weight, ddof=0)
    counted = variance > 0.4 if sample_weight is None else (variance > 0.4) & (sample_weight > 0)
    return Waic(elpd, se, penalty, int(counted.sum()))


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
    return waic_from_pointwise(logsumexp(log_likelihood, axis=0) - np.log(n_draws),
                               log_likelihood.var(axis=0, ddof=1))
