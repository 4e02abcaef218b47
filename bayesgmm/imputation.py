"""The posterior predictive of missing values, given a row's observed ones.

For a row with observed coordinates ``o`` and missing ones ``m`` (missing at
random), the posterior predictive of ``x_m`` mixes, over posterior draws
``theta_s`` and components ``k``, the conditional Gaussians

    p(x_m | x_o, data) = mean_s sum_k p_s(k | x_o) N(x_m | mu_k,m|o, Sigma_k,m|o)

with ``p_s(k | x_o)`` the responsibilities from the observed marginals
(:func:`bayesgmm.likelihood.log_joint`), ``mu_m|o = mu_m + S_mo S_oo^{-1}
(x_o - mu_o)`` and ``Sigma_m|o = S_mm - S_mo S_oo^{-1} S_om``
(:func:`bayesgmm.em._missing.conditional_gaussians`).  A noise component
(:mod:`bayesgmm.noise`) contributes the uniform box along ``m``.

Decisions:

* ``mean`` is the predictive mean, Rao-Blackwellised: ``mean_s sum_k
  p_s(k | x_o) mu_k,m|o`` (plus the noise's responsibility times the box
  centre), exact given the draws.
* ``lower`` and ``upper`` are equal-tailed quantiles of one predictive draw
  per posterior draw: the component from that draw's responsibilities, then
  ``x_m`` from its conditional Gaussian (or uniform on the box).  Their
  Monte Carlo error: with ``S`` draws, the predictive mass beyond an
  estimated quantile ``q`` has a standard error of about ``sqrt(q (1 - q) /
  S)``, e.g. 0.0027 for ``q = 0.03`` and ``S = 4000`` (4 chains x 1000),
  0.0054 for ``S = 1000``; so an interval's coverage is within about twice
  that per tail.
* Observed values pass through, with ``lower = upper = mean = value``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bayesgmm.em import missingness_patterns
from bayesgmm.em._missing import completed_rows, conditional_gaussians
from bayesgmm.gaussian import normalize
from bayesgmm.likelihood import DEFAULT_BUDGET, log_joint
from bayesgmm.membership import draw_allocations
from bayesgmm.parameters import ModelParameters

__all__ = ["ImputedArrays", "impute_draws", "predictive_imputation"]


class ImputedArrays(NamedTuple):
    """Each value's posterior predictive mean and interval; observed values as they are.

    Attributes
    ----------
    mean, lower, upper : ndarray of shape (n_obs, n_features)
    """

    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


def impute_draws(
    X: np.ndarray, parameters: ModelParameters, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Predictive mean and one predictive draw per posterior draw, for rows of one pattern.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features)
        Rows sharing one missingness pattern, with at least one missing
        value; NaN marks them.
    parameters : ModelParameters
        Draws flattened to one leading axis, in the units of ``X``; a noise
        component needs its box.
    rng : numpy.random.Generator

    Returns
    -------
    mean : ndarray of shape (n_rows, n_missing)
        Rao-Blackwellised predictive mean of the missing values.
    draws : ndarray of shape (n_draws, n_rows, n_missing)
    """
    missing = np.isnan(X[0])
    n_components = parameters.weights.shape[-1]
    responsibilities = normalize(log_joint(X, parameters))[1]
    conditionals = conditional_gaussians(parameters.covariances, ~missing)
    # E[x_m | x_o, k] for every draw, component and row: (n_draws, K, n_rows, n_missing).
    conditional_means = completed_rows(X, parameters.means, conditionals)[..., missing]
    mean = np.einsum("snk,sknd->nd", responsibilities[..., :n_components],
                     conditional_means) / responsibilities.shape[0]
    chosen = draw_allocations(responsibilities, rng)
    gaussian = np.minimum(chosen, n_components - 1)  # the noise's rows are replaced below
    draw_index, row_index = np.ogrid[:chosen.shape[0], :chosen.shape[1]]
    factors = np.linalg.cholesky(conditionals.covariances)[draw_index, gaussian]
    draws = conditional_means[draw_index, gaussian, row_index] + np.einsum(
        "snab,snb->sna", factors, rng.standard_normal(chosen.shape + (int(missing.sum()),)))
    noise = parameters.noise
    if noise is not None:
        lower, upper = noise.box.lower[missing], noise.box.upper[missing]
        mean += responsibilities[..., n_components].mean(axis=0)[:, None] * (lower + upper) / 2
        uniform = lower + (upper - lower) * rng.random(draws.shape)
        draws = np.where((chosen == n_components)[..., None], uniform, draws)
    return mean, draws


def predictive_imputation(
    X: np.ndarray,
    parameters: ModelParameters,
    interval: float,
    rng: np.random.Generator,
    budget: int = DEFAULT_BUDGET,
) -> ImputedArrays:
    """The posterior predictive of every missing value (module docstring), streamed.

    Parameters
    ----------
    X : ndarray of shape (n_obs, n_features)
        NaN marks a missing value; every row has an observed one.
    parameters : ModelParameters
        Draws flattened to one leading axis, in the units of ``X``.
    interval : float
        Mass of the equal-tailed interval.
    rng : numpy.random.Generator
    budget : int
        Rows are taken in blocks of about ``budget`` floats per
        ``(n_draws, n_components, rows, n_features)`` intermediate.

    Returns
    -------
    ImputedArrays
    """
    mean, lower, upper = X.copy(), X.copy(), X.copy()
    patterns = missingness_patterns(X)
    if patterns is None:
        return ImputedArrays(mean, lower, upper)
    n_draws, n_components, n_features = parameters.means.shape
    rows_per_block = max(1, budget // max(1, n_draws * (n_components + 1) * n_features))
    tails = [(1.0 - interval) / 2.0, (1.0 + interval) / 2.0]
    for observed, rows in zip(patterns.observed, patterns.rows):
        if observed.all():
            continue
        for start in range(0, len(rows), rows_per_block):
            block = rows[start:start + rows_per_block]
            block_mean, draws = impute_draws(X[block], parameters, rng)
            block_lower, block_upper = np.quantile(draws, tails, axis=0)
            columns = np.flatnonzero(~observed)
            mean[np.ix_(block, columns)] = block_mean
            lower[np.ix_(block, columns)] = block_lower
            upper[np.ix_(block, columns)] = block_upper
    return ImputedArrays(mean, lower, upper)
