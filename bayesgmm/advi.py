"""Automatic differentiation variational inference on bayesgmm's compiled density.

Mean-field (``"advi"``) and full-rank (``"fullrank_advi"``) Gaussian
approximations ``q(theta) = N(m, L L^T)`` in the unconstrained space
(Kucukelbir et al. 2017), fitted by stochastic gradient ascent on the ELBO
with the reparameterisation trick and Adam.  The whole optimisation runs in
one numba function that calls the same log density as NUTS
(:mod:`bayesgmm.logdensity`); all random numbers are drawn beforehand from
the caller's ``numpy.random.Generator``, so results are reproducible.

The optimisation starts at the EM solution with a small spread, so the
approximation stays in the EM labelling.  The diagonal of ``L`` is stored on
the log scale so it stays positive.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np

from bayesgmm.logdensity import _logp_grad

__all__ = ["ADVIResult", "fit_advi", "ADVI_METHODS"]

ADVI_METHODS = ("advi", "fullrank_advi")


class ADVIResult(NamedTuple):
    """A fitted Gaussian approximation.

    Attributes
    ----------
    mean : ndarray of shape (n_unconstrained,)
    chol : ndarray of shape (n_unconstrained, n_unconstrained)
        Lower Cholesky factor of the covariance (diagonal for mean-field).
    elbo : ndarray of shape (n_iter,)
        Monte Carlo ELBO estimate at every iteration.
    n_skipped : int
        Iterations skipped because the density was not finite at a draw.
    """

    mean: np.ndarray
    chol: np.ndarray
    elbo: np.ndarray
    n_skipped: int

    def sample(self, n_draws: int, rng: np.random.Generator) -> np.ndarray:
        """Draws from the approximation, shape (n_draws, n_unconstrained)."""
        noise = rng.standard_normal((n_draws, self.mean.shape[0]))
        return self.mean + noise @ self.chol.T

    def log_density(self, theta: np.ndarray) -> np.ndarray:
        """``log q(theta)`` for a batch of unconstrained vectors."""
        diagonal = np.diag(self.chol)
        solved = np.linalg.solve(self.chol, (theta - self.mean).T).T
        return (
            -0.5 * np.sum(solved**2, axis=-1)
            - np.log(diagonal).sum()
            - 0.5 * self.mean.shape[0] * math.log(2.0 * math.pi)
        )


@numba.njit(cache=True, nogil=True)
def _optimise(start, block, noise, fullrank, learning_rate, initial_log_sd, decay):
    n_iter, n_mc, dim = noise.shape
    beta1, beta2, epsilon = 0.9, 0.999, 1e-8
    mean = start.copy()
    log_diag = np.full(dim, initial_log_sd)
    lower = np.zeros((dim, dim))
    state_mean = np.zeros((3, dim))
    state_log_diag = np.zeros((3, dim))
    state_lower = np.zeros((3, dim, dim))
    grad = np.empty(dim)
    theta = np.empty(dim)
    elbo = np.full(n_iter, np.nan)
    g_mean = np.empty(dim)
    g_log_diag = np.empty(dim)
    g_lower = np.zeros((dim, dim))
    skipped = 0
    constant = 0.5 * dim * (1.0 + math.log(2.0 * math.pi))
    for t in range(n_iter):
        g_mean[:] = 0.0
        g_log_diag[:] = 0.0
        g_lower[:, :] = 0.0
        value = 0.0
        finite = True
        for m in range(n_mc):
            eps = noise[t, m]
            for i in range(dim):
                acc = mean[i] + math.exp(log_diag[i]) * eps[i]
                if fullrank:
                    for j in range(i):
                        acc += lower[i, j] * eps[j]
                theta[i] = acc
            logp = _logp_grad(theta, grad, block)
            if not np.isfinite(logp):
                finite = False
                break
            value += logp
            for i in range(dim):
                g_mean[i] += grad[i]
                g_log_diag[i] += grad[i] * eps[i] * math.exp(log_diag[i])
                if fullrank:
                    for j in range(i):
                        g_lower[i, j] += grad[i] * eps[j]
        if not finite:
            skipped += 1
            continue
        entropy = constant
        for i in range(dim):
            entropy += log_diag[i]
        elbo[t] = value / n_mc + entropy
        rate = learning_rate / math.sqrt(1.0 + t / decay)
        correction1 = 1.0 - beta1 ** (t + 1)
        correction2 = 1.0 - beta2 ** (t + 1)
        for i in range(dim):
            # Adam ascent on mean and log-diagonal (entropy adds 1 to the latter).
            for state, params, g in (
                (state_mean, mean, g_mean[i] / n_mc),
                (state_log_diag, log_diag, g_log_diag[i] / n_mc + 1.0),
            ):
                state[0, i] = beta1 * state[0, i] + (1 - beta1) * g
                state[1, i] = beta2 * state[1, i] + (1 - beta2) * g * g
                params[i] += rate * (state[0, i] / correction1) / (
                    math.sqrt(state[1, i] / correction2) + epsilon
                )
            if fullrank:
                for j in range(i):
                    g = g_lower[i, j] / n_mc
                    state_lower[0, i, j] = beta1 * state_lower[0, i, j] + (1 - beta1) * g
                    state_lower[1, i, j] = beta2 * state_lower[1, i, j] + (1 - beta2) * g * g
                    lower[i, j] += rate * (state_lower[0, i, j] / correction1) / (
                        math.sqrt(state_lower[1, i, j] / correction2) + epsilon
                    )
    chol = lower.copy()
    for i in range(dim):
        chol[i, i] = math.exp(log_diag[i])
    return mean, chol, elbo, skipped


def fit_advi(
    start: np.ndarray,
    block: np.ndarray,
    rng: np.random.Generator,
    *,
    method: str = "fullrank_advi",
    n_iter: int = 10_000,
    n_mc: int = 4,
    learning_rate: float = 0.02,
    initial_sd: float = 0.05,
) -> ADVIResult:
    """Fit a Gaussian approximation to the posterior.

    Parameters
    ----------
    start : ndarray of shape (n_unconstrained,)
        Initial mean (the EM solution).
    block : ndarray
        From :func:`bayesgmm.logdensity.pack_block`.
    rng : numpy.random.Generator
    method : {"advi", "fullrank_advi"}
    n_iter : int
        Optimisation steps.
    n_mc : int
        Monte Carlo draws per gradient estimate.
    learning_rate : float
        Adam step size, decayed as ``1 / sqrt(1 + t / (n_iter / 10))``.
    initial_sd : float
        Initial standard deviation of every coordinate.

    Returns
    -------
    ADVIResult
    """
    if method not in ADVI_METHODS:
        raise ValueError(f"method must be one of {ADVI_METHODS}, got {method!r}.")
    noise = rng.standard_normal((n_iter, n_mc, start.shape[0]))
    mean, chol, elbo, skipped = _optimise(
        np.ascontiguousarray(start, dtype=np.float64),
        block,
        noise,
        method == "fullrank_advi",
        learning_rate,
        math.log(initial_sd),
        max(1.0, n_iter / 10.0),
    )
    return ADVIResult(mean, chol, elbo, int(skipped))
