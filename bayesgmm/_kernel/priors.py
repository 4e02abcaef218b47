"""The prior terms of the log density, one per parameter block, in numba.

Every term has the same contract.  It takes its block of the unconstrained
vector (``free``) and of the gradient (``grad``, added to in place) and the
running total ``logp``; it applies PyMC's default transform for its
variable, adds the prior's log density plus the log Jacobian of the
transform, and returns the new ``logp`` first, then the constrained values
later terms need.  Each is tested against PyMC's ``logp`` of the same
distribution in ``tests/_kernel/test_logdensity.py``.

The normalising constants that depend only on the priors are computed once,
in Python, when the block is packed: :func:`dirichlet_constant` and
:func:`lkj_log_normaliser`.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from scipy.special import gammaln

from bayesgmm.gaussian import LOG_2PI
from bayesgmm.priors import INVERSE_GAMMA_SHAPE, SCALE_PRIORS

__all__ = [
    "dirichlet_constant",
    "lkj_log_normaliser",
    "dirichlet_simplex",
    "simplex_gradient",
    "normal_means",
    "half_normal_log_scale",
    "exponential_log_scale",
    "lognormal_log_scale",
    "log_scales",
    "lkj_cholesky",
]

HALF_NORMAL = SCALE_PRIORS.index("half_normal")
EXPONENTIAL = SCALE_PRIORS.index("exponential")
LOGNORMAL = SCALE_PRIORS.index("lognormal")
INVERSE_GAMMA = SCALE_PRIORS.index("inverse_gamma")


def dirichlet_constant(concentration: np.ndarray) -> float:
    """Log normaliser of the Dirichlet plus the constant of the simplex Jacobian.

    ``log Gamma(sum a) - sum log Gamma(a_k) + log K``; 0 for one component
    (no weights to sample).
    """
    n_components = len(concentration)
    if n_components == 1:
        return 0.0
    return float(
        gammaln(concentration.sum()) - gammaln(concentration).sum() + math.log(n_components)
    )


def lkj_log_normaliser(eta: float, n_features: int) -> float:
    """Log normalising constant of PyMC's ``LKJCorr`` density of the Cholesky factor."""
    d = n_features
    total = (d - 1) * gammaln(eta + (d - 1) / 2.0)
    for k in range(1, d):
        total -= 0.5 * k * math.log(math.pi) + gammaln(eta + (d - 1 - k) / 2.0)
    return float(total)


@numba.njit(cache=True, nogil=True)
def dirichlet_simplex(free, concentration, constant, logp):
    """Weights from PyMC's simplex transform; Dirichlet prior plus Jacobian.

    ``w = softmax(free_1, ..., free_{K-1}, -sum(free))``.  Adds
    ``constant + sum_k a_k log w_k``, with ``constant`` the
    :func:`dirichlet_constant` of the concentrations ``a`` (the ``-1`` of the
    Dirichlet exponent cancels against the Jacobian ``sum_k log w_k``).
    Returns ``logp`` and ``log w``, shape ``(n_components,)``.

    The gradient depends on the likelihood's counts as well; it is added
    once both are known, by :func:`simplex_gradient`.
    """
    n_components = concentration.shape[0]
    log_weights = np.zeros(n_components)
    if n_components == 1:
        return logp, log_weights
    last = 0.0
    for k in range(n_components - 1):
        last -= free[k]
    top = last
    for k in range(n_components - 1):
        if free[k] > top:
            top = free[k]
    total = math.exp(last - top)
    for k in range(n_components - 1):
        total += math.exp(free[k] - top)
    log_norm = top + math.log(total)
    for k in range(n_components - 1):
        log_weights[k] = free[k] - log_norm
    log_weights[n_components - 1] = last - log_norm
    logp += constant
    for k in range(n_components):
        logp += concentration[k] * log_weights[k]
    return logp, log_weights


@numba.njit(cache=True, nogil=True)
def simplex_gradient(grad, concentration, counts, n_samples, log_weights):
    """Add the gradient of ``sum_k (a_k + n_k) log w_k`` to the simplex block.

    Prior, Jacobian and likelihood all depend on the weights through
    ``log w_k``: the likelihood with the expected counts ``n_k`` (summed
    responsibilities, ``sum_k n_k = n_samples``) and the Dirichlet with its
    concentrations ``a_k``.  With zero counts this is the prior's gradient.

    Parameters
    ----------
    grad : ndarray of shape (n_components - 1,)
        Updated in place.
    concentration, counts, log_weights : ndarray of shape (n_components,)
    n_samples : float
        The summed row weights (the number of rows when unweighted).
    """
    n_components = concentration.shape[0]
    if n_components == 1:
        return
    total_concentration = 0.0
    for k in range(n_components):
        total_concentration += concentration[k]
    # d/dz_k is (a_k + n_k) - (A + N) w_k, minus the same for the last weight.
    total = total_concentration + n_samples
    last = n_components - 1
    last_gradient = (concentration[last] + counts[last]) - total * math.exp(log_weights[last])
    for k in range(last):
        grad[k] += (
            (concentration[k] + counts[k]) - total * math.exp(log_weights[k]) - last_gradient
        )


@numba.njit(cache=True, nogil=True)
def normal_means(free, grad, loc, scale, n_components, logp):
    """Normal prior of the component means (identity transform).

    ``free`` holds the means row-major; ``loc`` and ``scale`` (shape
    ``(n_features,)``) are the prior's, per feature.  Returns ``logp`` and the
    means, shape ``(n_components, n_features)``.
    """
    n_features = loc.shape[0]
    means = np.empty((n_components, n_features))
    for k in range(n_components):
        for d in range(n_features):
            index = k * n_features + d
            means[k, d] = free[index]
            z = (free[index] - loc[d]) / scale[d]
            logp += -0.5 * z * z - math.log(scale[d]) - 0.5 * LOG_2PI
            grad[index] += -z / scale[d]
    return logp, means


@numba.njit(cache=True, nogil=True)
def half_normal_log_scale(log_scale, scale, tau):
    """``HalfNormal(tau)`` of ``scale = exp(log_scale)`` as a density of ``log_scale``."""
    ratio = scale / tau
    logp = 0.5 * math.log(2.0 / math.pi) - math.log(tau) - 0.5 * ratio * ratio + log_scale
    return logp, 1.0 - ratio * ratio


@numba.njit(cache=True, nogil=True)
def exponential_log_scale(log_scale, scale, tau):
    """``Exponential`` with mean ``tau`` of ``scale``, as a density of ``log_scale``."""
    return -math.log(tau) - scale / tau + log_scale, 1.0 - scale / tau


@numba.njit(cache=True, nogil=True)
def lognormal_log_scale(log_scale, scale, tau):
    """``LogNormal(log tau, 1)`` of ``scale``: ``log_scale ~ Normal(log tau, 1)``."""
    shift = log_scale - math.log(tau)
    return -0.5 * shift * shift - 0.5 * LOG_2PI, -shift


@numba.njit(cache=True, nogil=True)
def inverse_gamma_log_scale(log_scale, scale, tau):
    """``InverseGamma(INVERSE_GAMMA_SHAPE, tau)`` of ``scale``, Jacobian of the log included."""
    shape = INVERSE_GAMMA_SHAPE
    ratio = tau / scale
    value = shape * math.log(tau) - math.lgamma(shape) - shape * log_scale - ratio
    return value, ratio - shape


@numba.njit(cache=True, nogil=True)
def log_scales(free, grad, tau, prior, n_components, logp):
    """Per-feature scales from PyMC's log transform; their prior plus Jacobian.

    ``free`` holds the log scales row-major; ``tau`` (shape ``(n_features,)``)
    is the prior's scale per feature and ``prior`` the prior's position in
    :data:`bayesgmm.priors.SCALE_PRIORS`.  Returns ``logp`` and the scales,
    shape ``(n_components, n_features)``.

    One function per prior (:func:`half_normal_log_scale`, ...) gives the log
    density of one log scale, Jacobian included, and its derivative; it is
    handed ``scale = exp(log_scale)`` too, computed once here.
    """
    n_features = tau.shape[0]
    scales = np.empty((n_components, n_features))
    for k in range(n_components):
        for d in range(n_features):
            index = k * n_features + d
            scales[k, d] = math.exp(free[index])
            if prior == HALF_NORMAL:
                value, slope = half_normal_log_scale(free[index], scales[k, d], tau[d])
            elif prior == EXPONENTIAL:
                value, slope = exponential_log_scale(free[index], scales[k, d], tau[d])
            elif prior == LOGNORMAL:
                value, slope = lognormal_log_scale(free[index], scales[k, d], tau[d])
            else:
                value, slope = inverse_gamma_log_scale(free[index], scales[k, d], tau[d])
            logp += value
            grad[index] += slope
    return logp, scales


@numba.njit(cache=True, nogil=True)
def lkj_cholesky(free, grad, rows, cols, eta, constant, n_components, n_features, logp):
    """Correlation Cholesky factors from PyMC's LKJ transform; LKJ prior plus Jacobian.

    The free entries of each component (``n_triangle`` of them, component by
    component) go to ``(rows[t], cols[t])`` of a unit-diagonal lower
    triangular matrix (:func:`bayesgmm.parameters.spiral_indices`); dividing
    each row by its norm gives the Cholesky factor ``L``.  ``constant`` is
    :func:`lkj_log_normaliser` of the LKJ shape ``eta``.  With no free entries
    (diagonal covariance, or one feature) ``L`` is the identity and nothing is
    added.

    Returns
    -------
    logp : float
    correlation_cholesky : ndarray of shape (n_components, n_features, n_features)
    row_norms : ndarray of shape (n_components, n_features)
        Norms of the unit-diagonal rows, needed by the likelihood gradient.
    """
    n_triangle = rows.shape[0]
    chol = np.zeros((n_components, n_features, n_features))
    row_norms = np.ones((n_components, n_features))
    for k in range(n_components):
        for d in range(n_features):
            chol[k, d, d] = 1.0
    if n_triangle == 0:
        return logp, chol, row_norms
    power = 2.0 * eta + n_features - 1.0
    for k in range(n_components):
        for t in range(n_triangle):
            chol[k, int(rows[t]), int(cols[t])] = free[k * n_triangle + t]
        logp += constant
        for i in range(n_features):
            squared = 1.0
            for j in range(i):
                squared += chol[k, i, j] * chol[k, i, j]
            row_norms[k, i] = math.sqrt(squared)
            logp += -0.5 * power * math.log(squared)
        for t in range(n_triangle):
            i, j = int(rows[t]), int(cols[t])
            grad[k * n_triangle + t] += -power * chol[k, i, j] / (row_norms[k, i] * row_norms[k, i])
        for i in range(n_features):
            for j in range(i + 1):
                chol[k, i, j] /= row_norms[k, i]
    return logp, chol, row_norms
