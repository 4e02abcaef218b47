"""Automatic differentiation variational inference on bayesgmm's compiled density.

Mean-field (``"advi"``) and full-rank (``"fullrank_advi"``) Gaussian
approximations ``q(theta) = N(m, L L^T)`` in the unconstrained space
(Kucukelbir et al. 2017), fitted by stochastic gradient ascent on the ELBO
with the reparameterisation trick and Adam.  The whole optimisation runs in
one numba function that calls the same log density as NUTS
(:func:`bayesgmm._kernel.logp_grad`); all random numbers are drawn beforehand
from the caller's ``numpy.random.Generator``, so results are reproducible.

The optimisation starts at the EM solution with a small spread, so the
approximation stays in the EM labelling.  The diagonal of ``L`` is stored on
the log scale so it stays positive.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np

from bayesgmm._kernel import logp_grad

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


_BLOCK = 500


@numba.njit(cache=True, nogil=True)
def _optimise_block(state, adam, first_iteration, block, noise, fullrank, learning_rate, decay,
                    elbo, average, average_from, n_averaged):
    """Run ``noise.shape[0]`` Adam steps, updating ``state`` and ``adam`` in place.

    ``state`` rows: 0 = mean, 1 = log of the diagonal of L, 2.. = L's strictly
    lower part (rows of a dim x dim matrix).  ``adam`` holds the first and
    second moment estimates with the same layout.  From iteration
    ``average_from`` on, the iterates are summed into ``average``
    (Polyak-Ruppert averaging).  Returns skipped steps.
    """
    n_iter, n_mc, dim = noise.shape
    beta1, beta2, epsilon = 0.9, 0.999, 1e-8
    mean = state[0, 0]
    log_diag = state[1, 0]
    lower = state[2]
    grad = np.empty(dim)
    theta = np.empty(dim)
    gradient = np.zeros((3, dim, dim))
    skipped = 0
    constant = 0.5 * dim * (1.0 + math.log(2.0 * math.pi))
    for step in range(n_iter):
        t = first_iteration + step
        gradient[:, :, :] = 0.0
        value = 0.0
        finite = True
        for m in range(n_mc):
            eps = noise[step, m]
            for i in range(dim):
                acc = mean[i] + math.exp(log_diag[i]) * eps[i]
                if fullrank:
                    for j in range(i):
                        acc += lower[i, j] * eps[j]
                theta[i] = acc
            logp = logp_grad(theta, grad, block)
            if not np.isfinite(logp):
                finite = False
                break
            value += logp
            for i in range(dim):
                gradient[0, 0, i] += grad[i] / n_mc
                gradient[1, 0, i] += grad[i] * eps[i] * math.exp(log_diag[i]) / n_mc
                if fullrank:
                    for j in range(i):
                        gradient[2, i, j] += grad[i] * eps[j] / n_mc
        if not finite:
            skipped += 1
            continue
        entropy = constant
        for i in range(dim):
            entropy += log_diag[i]
            gradient[1, 0, i] += 1.0  # d entropy / d log L_ii
        elbo[t] = value / n_mc + entropy
        rate = learning_rate / math.sqrt(1.0 + t / decay)
        correction1 = 1.0 - beta1 ** (t + 1)
        correction2 = 1.0 - beta2 ** (t + 1)
        for part in range(3 if fullrank else 2):
            rows = dim if part == 2 else 1
            for r in range(rows):
                for c in range(dim if part < 2 else r):
                    g = gradient[part, r, c]
                    adam[0, part, r, c] = beta1 * adam[0, part, r, c] + (1 - beta1) * g
                    adam[1, part, r, c] = beta2 * adam[1, part, r, c] + (1 - beta2) * g * g
                    state[part, r, c] += rate * (adam[0, part, r, c] / correction1) / (
                        math.sqrt(adam[1, part, r, c] / correction2) + epsilon
                    )
        if t >= average_from:
            average += state
            n_averaged[0] += 1
    return skipped


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
        From :func:`bayesgmm._kernel.pack_block`.
    rng : numpy.random.Generator
    method : {"advi", "fullrank_advi"}
    n_iter : int
        Optimisation steps.
    n_mc : int
        Monte Carlo draws per gradient estimate.
    learning_rate : float
        Adam step size, decayed as ``1 / sqrt(1 + t / (n_iter / 10))``.  The
        returned approximation averages the iterates of the second half
        (Polyak-Ruppert averaging).
    initial_sd : float
        Initial standard deviation of every coordinate.

    Returns
    -------
    ADVIResult
    """
    if method not in ADVI_METHODS:
        raise ValueError(f"method must be one of {ADVI_METHODS}, got {method!r}.")
    dim = start.shape[0]
    state = np.zeros((3, dim, dim))
    state[0, 0] = start
    state[1, 0] = math.log(initial_sd)
    adam = np.zeros((2, 3, dim, dim))
    elbo = np.full(n_iter, np.nan)
    average = np.zeros_like(state)
    average_from = n_iter // 2
    n_averaged = np.zeros(1, dtype=np.int64)
    skipped = 0
    # Random numbers are drawn block by block: memory stays O(block * dim).
    for first in range(0, n_iter, _BLOCK):
        noise = rng.standard_normal((min(_BLOCK, n_iter - first), n_mc, dim))
        skipped += _optimise_block(state, adam, first, block, noise,
                                   method == "fullrank_advi", learning_rate,
                                   max(1.0, n_iter / 10.0), elbo, average, average_from,
                                   n_averaged)
    # The averaged second half of the iterates: far less Monte Carlo noise in
    # the final approximation than the last stochastic iterate.
    if n_averaged[0] == 0:
        raise ValueError(
            "ADVI failed: the log density was not finite at any draw of the second half of "
            "the optimisation. Use method='nuts', or tighter priors."
        )
    state = average / n_averaged[0]
    mean = state[0, 0].copy()
    chol = np.tril(state[2], k=-1) if method == "fullrank_advi" else np.zeros((dim, dim))
    chol[np.diag_indices(dim)] = np.exp(state[1, 0])
    return ADVIResult(mean, chol, elbo, int(skipped))
