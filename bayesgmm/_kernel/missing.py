"""Rows with missing values: the mixture of marginal Gaussians over their observed coordinates.

Values missing at random leave the likelihood of a row with observed
coordinates ``o`` as ``sum_k w_k N(x_o | mu_ko, Sigma_k,oo) + w_noise / V_o``,
``V_o`` the noise box's volume along ``o`` (:func:`bayesgmm.noise.noise_log_sides`).
The packer groups these rows by pattern (:attr:`~bayesgmm._kernel.layout.Section.PATTERNS`,
:attr:`~bayesgmm._kernel.layout.Section.INCOMPLETE_DATA`); complete rows stay in
``DATA`` and take :func:`~bayesgmm._kernel.likelihood.mixture_statistics` as
before.  Per gradient, for each pattern:

1. :func:`observed_factors`: for each component the Cholesky factor ``L`` of
   ``Sigma_oo = (C C^T)_oo``, the observed means and the log normaliser;
2. :func:`~bayesgmm._kernel.likelihood.mixture_statistics` on the pattern's
   rows with those: the log-likelihood and, per component, ``n``,
   ``sum_i r_i w_i`` and ``S = sum_i r_i w_i w_i^T`` of the whitened residuals
   ``w = L^{-1} (x_o - mu_o)``;
3. :func:`observed_gradient`: ``dlogp/dmu_o = L^{-T} sum_i r_i w_i`` and
   ``dlogp/dSigma_oo = 0.5 Sigma^{-1} (R - n Sigma) Sigma^{-1}
   = 0.5 L^{-T} (S - n I) L^{-1}`` (``R = L S L^T`` the weighted residual
   scatter), added into full ``D x D`` matrices.

:func:`missing_statistics` drives the three and maps the covariance gradient
to the Cholesky factor, ``dlogp/dC = 2 dlogp/dSigma C`` (from ``dSigma = dC C^T
+ C dC^T``); :func:`~bayesgmm._kernel.likelihood.mixture_gradient` adds it to the
complete rows' before the chain rule to the scales and correlations.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np

from bayesgmm._kernel.layout import PatternColumn
from bayesgmm._kernel.likelihood import mixture_statistics, solve_transposed
from bayesgmm.gaussian import LOG_2PI

__all__ = [
    "IncompleteStatistics",
    "observed_factors",
    "observed_gradient",
    "missing_statistics",
]


class IncompleteStatistics(NamedTuple):
    """What the rows with missing values add to the gradient beyond the means.

    Attributes
    ----------
    counts : ndarray of shape (n_components + 1,)
        The summed responsibilities of all rows, the complete ones' included;
        the last entry is the noise's.
    cholesky_gradient : ndarray of shape (n_components, n_features, n_features)
        ``dlogp/dC_k`` of the rows with missing values (lower triangle);
        shape ``(0, n_features, n_features)`` when no row has a missing value.
    """

    counts: np.ndarray
    cholesky_gradient: np.ndarray


@numba.njit(cache=True, nogil=True)
def observed_factors(log_weights, means, chol, columns):
    """The components' marginals over the observed ``columns``.

    Parameters
    ----------
    log_weights : ndarray of shape (n_components [+ 1],)
    means : ndarray of shape (n_components, n_features)
    chol : ndarray of shape (n_components, n_features, n_features)
        ``C_k``, lower triangular.
    columns : ndarray of int, shape (n_observed,)
        Increasing.

    Returns
    -------
    observed_means : ndarray of shape (n_components, n_observed)
    factors : ndarray of shape (n_components, n_observed, n_observed)
        Lower Cholesky factors of ``(C_k C_k^T)_oo``.
    log_component : ndarray of shape (n_components,)
        ``log w_k - m/2 log(2 pi) - log det L_k``.
    """
    n_components = means.shape[0]
    n_observed = columns.shape[0]
    observed_means = np.empty((n_components, n_observed))
    factors = np.zeros((n_components, n_observed, n_observed))
    log_component = np.empty(n_components)
    for k in range(n_components):
        log_det = 0.0
        for a in range(n_observed):
            row = columns[a]
            observed_means[k, a] = means[k, row]
            for b in range(a + 1):
                column = columns[b]
                value = 0.0
                for j in range(column + 1):  # C is lower triangular and column <= row
                    value += chol[k, row, j] * chol[k, column, j]
                for j in range(b):
                    value -= factors[k, a, j] * factors[k, b, j]
                if a == b:
                    factors[k, a, a] = math.sqrt(value)
                    log_det += math.log(factors[k, a, a])
                else:
                    factors[k, a, b] = value / factors[k, b, b]
        log_component[k] = log_weights[k] - 0.5 * n_observed * LOG_2PI - log_det
    return observed_means, factors, log_component


@numba.njit(cache=True, nogil=True)
def observed_gradient(statistics, factors, columns, n_features, grad_means,
                      covariance_gradient):
    """Add one pattern's gradient with respect to the means and the covariances.

    Parameters
    ----------
    statistics : MixtureStatistics
        Of the pattern's rows, from ``mixture_statistics`` on the observed
        marginals; ``second`` is made symmetric.
    factors : ndarray of shape (n_components, n_observed, n_observed)
    columns : ndarray of int, shape (n_observed,)
    n_features : int
    grad_means : ndarray of shape (n_components * n_features,)
        Updated in place.
    covariance_gradient : ndarray of shape (n_components, n_features, n_features)
        ``dlogp/dSigma_k``, symmetric; updated in place on the observed block.
    """
    counts, first, second = statistics
    n_components, n_observed = first.shape
    vector = np.empty(n_observed)
    solved = np.empty((n_observed, n_observed))
    twice = np.empty((n_observed, n_observed))
    for k in range(n_components):
        factor = factors[k]
        for a in range(n_observed):
            for b in range(a):
                second[k, b, a] = second[k, a, b]
            second[k, a, a] -= counts[k]
        solve_transposed(factor, first[k], vector)
        for a in range(n_observed):
            grad_means[k * n_features + columns[a]] += vector[a]
        # L^{-T} (S - n I) L^{-1}: solve the columns, then the columns of the transpose.
        for b in range(n_observed):
            solve_transposed(factor, second[k, :, b], solved[:, b])
        for b in range(n_observed):
            solve_transposed(factor, solved[b, :], twice[:, b])
        for a in range(n_observed):
            for b in range(n_observed):
                covariance_gradient[k, columns[a], columns[b]] += 0.5 * twice[a, b]


@numba.njit(cache=True, nogil=True)
def _cholesky_gradient(covariance_gradient, chol):
    """``2 G_k C_k`` on the lower triangle: ``dlogp/dC`` from ``dlogp/dSigma = G``."""
    n_components, n_features = chol.shape[:2]
    out = np.zeros((n_components, n_features, n_features))
    for k in range(n_components):
        for i in range(n_features):
            for j in range(i + 1):
                value = 0.0
                for m in range(j, n_features):
                    value += covariance_gradient[k, i, m] * chol[k, m, j]
                out[k, i, j] = 2.0 * value
    return out


@numba.njit(cache=True, nogil=True)
def missing_statistics(patterns, values, row_weights, log_weights, means, chol, log_noise,
                       counts, grad_means, logp):
    """Add the log-likelihood of the rows with missing values; their means' gradient too.

    Parameters
    ----------
    patterns : ndarray
        :attr:`~bayesgmm._kernel.layout.Section.PATTERNS`, flat.
    values : ndarray
        :attr:`~bayesgmm._kernel.layout.Section.INCOMPLETE_DATA`.
    row_weights : ndarray
        :attr:`~bayesgmm._kernel.layout.Section.INCOMPLETE_WEIGHTS`: the
        rows' frequency weights in the same order, or empty (unweighted).
    log_weights : ndarray of shape (n_components [+ 1],)
    means : ndarray of shape (n_components, n_features)
    chol : ndarray of shape (n_components, n_features, n_features)
    log_noise : float
        ``log w_noise + log(1 / V)``; ``-inf`` without a noise component.
    counts : ndarray of shape (n_components + 1,)
        The complete rows' summed responsibilities; returned as they are
        (the same array) when no row has a missing value.
    grad_means : ndarray of shape (n_components * n_features,)
        Updated in place.
    logp : float
        Running total.

    Returns
    -------
    logp : float
        ``-inf`` as soon as a row is out of every component's reach.
    statistics : IncompleteStatistics
    """
    n_components, n_features = means.shape
    width = PatternColumn.COLUMNS + n_features
    n_patterns = patterns.shape[0] // width
    if n_patterns == 0:  # nothing allocated: complete data cost what they did before
        return logp, IncompleteStatistics(counts, chol[:0])
    counts = counts.copy()
    covariance_gradient = np.zeros((n_components, n_features, n_features))
    start = 0
    first_row = 0
    weighted = row_weights.shape[0] > 0
    for p in range(n_patterns):
        record = patterns[p * width:(p + 1) * width]
        n_observed = int(record[PatternColumn.N_OBSERVED])
        columns = np.empty(n_observed, dtype=np.int64)
        for a in range(n_observed):
            columns[a] = int(record[PatternColumn.COLUMNS + a])
        n_rows = int(record[PatternColumn.N_ROWS])
        stop = start + n_rows * n_observed
        pattern_weights = (row_weights[first_row:first_row + n_rows] if weighted
                           else row_weights)
        observed_means, factors, log_component = observed_factors(log_weights, means, chol,
                                                                   columns)
        logp, statistics = mixture_statistics(
            values[start:stop], pattern_weights, observed_means, factors, log_component,
            log_noise + record[PatternColumn.NOISE_LOG_EXTENT], logp,
        )
        if logp == -np.inf:
            return logp, IncompleteStatistics(counts, covariance_gradient)
        for k in range(n_components + 1):
            counts[k] += statistics.counts[k]
        observed_gradient(statistics, factors, columns, n_features, grad_means,
                          covariance_gradient)
        start = stop
        first_row += n_rows
    return logp, IncompleteStatistics(counts, _cholesky_gradient(covariance_gradient, chol))
