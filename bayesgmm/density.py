"""Posterior-predictive densities and anomaly scores, with credible bands.

For a point ``x`` and draws ``theta_s``:

* the posterior-predictive log density is
  ``log p(x | data) = log mean_s p(x | theta_s)`` (log-mean-exp over draws);
* its band is the equal-tailed interval of ``log p(x | theta_s)`` over draws,
  i.e. the uncertainty of the density itself;
* the anomaly score is ``-log p(x | data)``: larger means more surprising,
  in nats; its interval is the negated band.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import logsumexp

from bayesgmm.gaussian import normalize
from bayesgmm.likelihood import DEFAULT_BUDGET, iter_obs_chunks
from bayesgmm.parameters import ModelParameters

__all__ = ["DensityArrays", "loo_predictive_density", "predictive_density", "weighted_quantiles"]


class DensityArrays(NamedTuple):
    """Posterior-predictive log density of each point and its band over draws."""

    log_density: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


def predictive_density(
    X: np.ndarray,
    parameters: ModelParameters,
    interval: float | None = 0.94,
    budget: int = DEFAULT_BUDGET,
) -> DensityArrays:
    """Log-mean-exp of the mixture density over draws, streamed over points.

    Parameters
    ----------
    X : ndarray of shape (n_obs, n_features)
    parameters : ModelParameters
        Draws flattened to one leading axis.
    interval : float or None
        Mass of the equal-tailed band; None skips the band (``lower`` and
        ``upper`` are then None), which saves a quantile per point.
    budget : int

    Returns
    -------
    DensityArrays
        Each of shape (n_obs,).
    """
    n_draws = parameters.weights.shape[0]
    n_obs = X.shape[0]
    log_density = np.empty(n_obs)
    lower = upper = None
    if interval is not None:
        lower, upper = np.empty(n_obs), np.empty(n_obs)
        tails = [(1.0 - interval) / 2.0, (1.0 + interval) / 2.0]
    for rows, joint in iter_obs_chunks(X, parameters, budget):
        per_draw = normalize(joint)[0]
        log_density[rows] = logsumexp(per_draw, axis=0) - np.log(n_draws)
        if interval is not None:
            lower[rows], upper[rows] = np.quantile(per_draw, tails, axis=0)
    return DensityArrays(log_density, lower, upper)


def weighted_quantiles(values: np.ndarray, log_weights: np.ndarray, probabilities) -> np.ndarray:
    """Quantiles of each column of ``values`` under normalised importance weights.

    Parameters
    ----------
    values, log_weights : ndarray of shape (n_draws, n_obs)
        ``log_weights`` sum (after ``exp``) to one in every column.
    probabilities : sequence of float

    Returns
    -------
    ndarray of shape (len(probabilities), n_obs)
        The smallest value whose cumulative weight reaches each probability.
    """
    order = np.argsort(values, axis=0)
    ordered = np.take_along_axis(values, order, axis=0)
    cumulative = np.cumsum(np.exp(np.take_along_axis(log_weights, order, axis=0)), axis=0)
    rows = [np.minimum((cumulative < q).sum(axis=0), values.shape[0] - 1) for q in probabilities]
    return np.stack([ordered[row, np.arange(values.shape[1])] for row in rows])


def loo_predictive_density(
    log_likelihood: np.ndarray, log_weights: np.ndarray, interval: float | None = 0.94
) -> DensityArrays:
    """Leave-one-out predictive log density of training points, with its band.

    ``log p(x_i | data without x_i)`` by Pareto-smoothed importance sampling:
    ``log sum_s w_is p(x_i | theta_s)`` with the PSIS weights ``w_is`` of
    point ``i`` (Vehtari, Gelman & Gabry 2017).  Unlike the in-sample
    density, a point cannot vouch for itself: a small component sitting on an
    outlier no longer hides it.

    Parameters
    ----------
    log_likelihood : ndarray of shape (n_draws, n_obs)
        ``log p(x_i | theta_s)``.
    log_weights : ndarray of shape (n_draws, n_obs)
        Smoothed log importance weights, normalised per point (ArviZ's
        ``loo(...).log_weights``).
    interval : float or None
        None skips the band (``lower`` and ``upper`` are then None).

    Returns
    -------
    DensityArrays
        The band is the weighted equal-tailed interval of
        ``log p(x_i | theta_s)`` under the leave-one-out posterior.
        ``log_density`` is PSIS-LOO's ``elpd_i``.
    """
    log_density = logsumexp(log_likelihood + log_weights, axis=0)
    if interval is None:
        return DensityArrays(log_density, None, None)
    lower, upper = weighted_quantiles(log_likelihood, log_weights,
                                      [(1.0 - interval) / 2.0, (1.0 + interval) / 2.0])
    return DensityArrays(log_density, lower, upper)
