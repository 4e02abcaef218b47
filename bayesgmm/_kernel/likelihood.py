"""The marginal mixture likelihood and its gradient, in numba.

Three steps, called in this order by :func:`bayesgmm._kernel.logp_grad`
(with :func:`bayesgmm._kernel.missing.missing_statistics` between the last
two when rows have missing values):

1. :func:`covariance_factors`: ``C_k = diag(scales_k) L_k`` and the log
   normaliser of each weighted component;
2. :func:`mixture_statistics`: one pass over the rows, log-sum-exp over the
   components, collecting the responsibility-weighted moments of the whitened
   residuals ``z = C_k^{-1} (x - mean_k)``;
3. :func:`mixture_gradient`: the chain rule from those moments into the
   means, the scales and the correlation entries.

The gradient with respect to the weights (the noise component's included)
needs only the counts; it is added together with the Dirichlet's by
:func:`bayesgmm._kernel.priors.simplex_gradient`.  A uniform noise component
(:mod:`bayesgmm.noise`) is one more term of each row's log-sum-exp, a constant.
Frequency weights (:mod:`bayesgmm.sample_weight`) multiply each row's
log-likelihood and so its responsibilities: every statistic is a weighted sum.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np

from bayesgmm.gaussian import LOG_2PI

__all__ = [
    "CovarianceFactors",
    "MixtureStatistics",
    "covariance_factors",
    "mixture_statistics",
    "mixture_gradient",
    "solve_transposed",
]


class CovarianceFactors(NamedTuple):
    """The covariance of each component, factored.

    Attributes
    ----------
    scales : ndarray of shape (n_components, n_features)
    correlation_cholesky : ndarray of shape (n_components, n_features, n_features)
        ``L_k``, rows of unit norm.
    row_norms : ndarray of shape (n_components, n_features)
        Norms of the unit-diagonal rows that ``L_k`` was normalised from.
    cholesky : ndarray of shape (n_components, n_features, n_features)
        ``C_k = diag(scales_k) L_k``.
    """

    scales: np.ndarray
    correlation_cholesky: np.ndarray
    row_norms: np.ndarray
    cholesky: np.ndarray


class MixtureStatistics(NamedTuple):
    """Responsibility-weighted sums over the rows, per component.

    Attributes
    ----------
    counts : ndarray of shape (n_components + 1,)
        ``n_k = sum_i r_ik``; the last entry is the noise component's (0
        without one).
    first : ndarray of shape (n_components, n_features)
        ``sum_i r_ik z_ik`` with ``z_ik = C_k^{-1} (x_i - mean_k)``.
    second : ndarray of shape (n_components, n_features, n_features)
        ``sum_i r_ik z_ik z_ik^T``, lower triangle.
    """

    counts: np.ndarray
    first: np.ndarray
    second: np.ndarray


@numba.njit(cache=True, nogil=True)
def covariance_factors(log_weights, scales, correlation_cholesky, row_norms):
    """Cholesky factors of the covariances and each component's log normaliser.

    Returns
    -------
    factors : CovarianceFactors
    log_component : ndarray of shape (n_components,)
        ``log w_k - D/2 log(2 pi) - log det C_k``.
    """
    n_components, n_features = scales.shape
    chol = np.empty((n_components, n_features, n_features))
    log_component = np.empty(n_components)
    for k in range(n_components):
        log_det = 0.0
        for i in range(n_features):
            for j in range(n_features):
                chol[k, i, j] = scales[k, i] * correlation_cholesky[k, i, j]
            log_det += math.log(chol[k, i, i])
        log_component[k] = log_weights[k] - 0.5 * n_features * LOG_2PI - log_det
    factors = CovarianceFactors(scales, correlation_cholesky, row_norms, chol)
    return factors, log_component


@numba.njit(cache=True, nogil=True)
def mixture_statistics(data, row_weights, means, chol, log_component, log_noise, logp):
    """Add ``sum_i f_i log (sum_k w_k N(x_i | mean_k, C_k C_k^T) + w_noise / V)`` to ``logp``.

    Parameters
    ----------
    data : ndarray of shape (n_samples * n_features,)
        Rows of ``X``, row-major.
    row_weights : ndarray of shape (n_samples,) or (0,)
        The rows' frequency weights ``f_i``; empty for 1 each (unweighted,
        the arithmetic of an unweighted fit exactly).
    means : ndarray of shape (n_components, n_features)
    chol : ndarray of shape (n_components, n_features, n_features)
    log_component : ndarray of shape (n_components,)
        From :func:`covariance_factors`.
    log_noise : float
        ``log w_noise + log(1 / V)``, the noise component's constant log
        density term; ``-inf`` without a noise component.
    logp : float
        Running total.

    Returns
    -------
    logp : float
    statistics : MixtureStatistics
    """
    n_components, n_features = means.shape
    has_noise = log_noise > -np.inf
    counts = np.zeros(n_components + 1)
    first = np.zeros((n_components, n_features))
    second = np.zeros((n_components, n_features, n_features))
    z = np.empty((n_components, n_features))
    joint = np.empty(n_components)
    weighted = row_weights.shape[0] > 0
    row_weight = 1.0
    for n in range(data.shape[0] // n_features):
        base = n * n_features
        if weighted:
            row_weight = row_weights[n]
        top = -np.inf
        for k in range(n_components):
            squared = 0.0
            for i in range(n_features):
                value = data[base + i] - means[k, i]
                for j in range(i):
                    value -= chol[k, i, j] * z[k, j]
                value /= chol[k, i, i]
                z[k, i] = value
                squared += value * value
            joint[k] = log_component[k] - 0.5 * squared
            if joint[k] > top:
                top = joint[k]
        if has_noise and log_noise > top:
            top = log_noise
        if top == -np.inf:  # a point no component can reach (overflow): log density -inf
            return -np.inf, MixtureStatistics(counts, first, second)
        total = 0.0
        for k in range(n_components):
            joint[k] = math.exp(joint[k] - top)
            total += joint[k]
        if has_noise:
            noise = math.exp(log_noise - top)
            total += noise
            counts[n_components] += row_weight * noise / total
        logp += row_weight * (top + math.log(total))
        for k in range(n_components):
            responsibility = row_weight * joint[k] / total
            counts[k] += responsibility
            for i in range(n_features):
                scaled = responsibility * z[k, i]
                first[k, i] += scaled
                for j in range(i + 1):
                    second[k, i, j] += scaled * z[k, j]
    return logp, MixtureStatistics(counts, first, second)


@numba.njit(cache=True, nogil=True)
def solve_transposed(chol, rhs, out):
    """``out = C^{-T} rhs`` by back substitution, ``C`` lower triangular."""
    n_features = rhs.shape[0]
    for i in range(n_features - 1, -1, -1):
        value = rhs[i]
        for j in range(i + 1, n_features):
            value -= chol[j, i] * out[j]
        out[i] = value / chol[i, i]


@numba.njit(cache=True, nogil=True)
def _scale_gradient(solved, count, chol, correlation_cholesky, scales, grad):
    """Scales' part of the chain rule for one component.

    On entry ``solved`` is ``C^{-T} S`` (``S`` the symmetric second moment);
    it leaves as ``G = tril(C^{-T} S) - n diag(1 / C_ii)``, the gradient with
    respect to ``C``'s lower triangle.
    """
    for i in range(scales.shape[0]):
        solved[i, i] -= count / chol[i, i]
        dscale = 0.0
        for j in range(i + 1):
            dscale += solved[i, j] * correlation_cholesky[i, j]
        grad[i] += dscale * scales[i]


@numba.njit(cache=True, nogil=True)
def _correlation_gradient(solved, correlation_cholesky, scales, row_norms, rows, cols, grad):
    """Correlation entries' part of the chain rule for one component.

    ``solved`` holds ``G`` from :func:`_scale_gradient`; ``dlogp/dL =
    diag(scales) G``, then through the row normalisation of ``L``.
    """
    for i in range(1, scales.shape[0]):
        inner = 0.0
        for j in range(i + 1):
            solved[i, j] *= scales[i]
            inner += solved[i, j] * correlation_cholesky[i, j]
        for j in range(i):
            solved[i, j] = (solved[i, j] - correlation_cholesky[i, j] * inner) / row_norms[i]
    for t in range(rows.shape[0]):
        grad[t] += solved[int(rows[t]), int(cols[t])]


@numba.njit(cache=True, nogil=True)
def mixture_gradient(grad_means, grad_scales, grad_correlations, statistics, factors, rows,
                     cols, cholesky_gradient):
    """Add the likelihood's gradient with respect to means, log scales and correlations.

    Parameters
    ----------
    grad_means, grad_scales : ndarray of shape (n_components * n_features,)
        Updated in place (``grad_scales`` is with respect to the log scales).
    grad_correlations : ndarray of shape (n_components * n_triangle,)
        Updated in place.
    statistics : MixtureStatistics
        From :func:`mixture_statistics`; ``second`` is made symmetric.
    factors : CovarianceFactors
    rows, cols : ndarray of shape (n_triangle,)
        Positions of the free correlation entries in ``L``.
    cholesky_gradient : ndarray of shape (n_components, n_features, n_features)
        Further ``dlogp/dC_k`` (lower triangle) of rows with missing values
        (:mod:`bayesgmm._kernel.missing`), taken through the same chain rule;
        shape ``(0, n_features, n_features)`` when there are none.
    """
    counts, first, second = statistics
    n_components, n_features = first.shape
    n_triangle = rows.shape[0]
    solved = np.empty((n_features, n_features))
    vector = np.empty(n_features)
    for k in range(n_components):
        chol = factors.cholesky[k]
        for i in range(n_features):
            for j in range(i):
                second[k, j, i] = second[k, i, j]
        solve_transposed(chol, first[k], vector)
        for i in range(n_features):
            grad_means[k * n_features + i] += vector[i]
        for column in range(n_features):
            solve_transposed(chol, second[k, :, column], solved[:, column])
        if cholesky_gradient.shape[0] > 0:
            for i in range(n_features):
                for j in range(i + 1):
                    solved[i, j] += cholesky_gradient[k, i, j]
        _scale_gradient(solved, counts[k], chol, factors.correlation_cholesky[k],
                        factors.scales[k], grad_scales[k * n_features:(k + 1) * n_features])
        if n_triangle > 0:
            _correlation_gradient(solved, factors.correlation_cholesky[k], factors.scales[k],
                                  factors.row_norms[k], rows, cols,
                                  grad_correlations[k * n_triangle:(k + 1) * n_triangle])
