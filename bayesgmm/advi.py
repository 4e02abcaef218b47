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

:func:`optimise_elbo` is the optimiser itself, shared with
:mod:`bayesgmm.minibatch_advi`, which loads a fresh batch of rows into the
block before every step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numba
import numpy as np

from bayesgmm._kernel import logp_grad
from bayesgmm._kernel.layout import Section, section
from bayesgmm._progress import progress

__all__ = [
    "ADVIResult",
    "ADVI_METHODS",
    "Anchor",
    "Whitening",
    "fit_advi",
    "learning_rates",
    "optimise_elbo",
]

ADVI_METHODS = ("advi", "fullrank_advi")

_DESCRIPTIONS = {"advi": "ADVI (mean-field)", "fullrank_advi": "ADVI (full-rank)"}


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


class Anchor(NamedTuple):
    """The full-data log density at one point: a control variate for batch estimates.

    A batch's density at ``theta`` minus its density at ``point``, plus the
    full-data density at ``point``, is still an unbiased estimate of the
    full-data density at ``theta``, and near ``point`` a far less noisy one:
    the batch noise of the two terms cancels to first order (Baker et al.
    2019, control variates for stochastic gradients).

    Attributes
    ----------
    point : ndarray of shape (n_unconstrained,)
    logp : float
        The full-data log density at ``point``.
    grad : ndarray of shape (n_unconstrained,)
        Its gradient.
    """

    point: np.ndarray
    logp: float
    grad: np.ndarray


class Whitening(NamedTuple):
    """Coordinates ``z`` the optimiser works in: ``theta = centre + scale * z``.

    Adam's steps have a fixed size in the coordinates it works in, so they
    suit a posterior only as wide as about that size in every coordinate; in
    the unconstrained space posterior widths shrink like ``1 / sqrt(N)``.
    With ``scale`` near the posterior's conditional standard deviations the
    optimisation in ``z`` looks the same for every ``N``.

    Attributes
    ----------
    centre : ndarray of shape (n_unconstrained,)
    scale : ndarray of shape (n_unconstrained,)
        Positive.
    """

    centre: np.ndarray
    scale: np.ndarray


_NO_ANCHOR = Anchor(np.zeros(0), 0.0, np.zeros(0))


def _identity_whitening(dim: int) -> Whitening:
    return Whitening(np.zeros(dim), np.ones(dim))


_BLOCK = 500
"""Iterations per call of the compiled optimiser: its random numbers are drawn, and the
progress bar advances, once per block."""


@numba.njit(cache=True, nogil=True)
def _elbo_gradient(state, block, noise, fullrank, whitening, offset, offset_grad, theta, grad,
                   gradient):
    """Monte Carlo ELBO estimate at ``state`` and its gradient, written into ``gradient``.

    ``noise`` of shape (n_mc, dim) holds the standard normal draws of the
    reparameterisation ``z = mean + L eps``, ``theta = centre + scale * z``
    (a :class:`Whitening`).  The density is the block's plus the constant
    ``offset`` (gradient ``offset_grad``), zero for full-data ADVI.  Returns
    the estimate in ``z`` and whether the density was finite at every draw
    (when not, ``gradient`` is incomplete and the step is to be skipped).
    """
    n_mc, dim = noise.shape
    mean = state[0, 0]
    log_diag = state[1, 0]
    lower = state[2]
    gradient[:, :, :] = 0.0
    value = 0.0
    for m in range(n_mc):
        eps = noise[m]
        for i in range(dim):
            acc = mean[i] + math.exp(log_diag[i]) * eps[i]
            if fullrank:
                for j in range(i):
                    acc += lower[i, j] * eps[j]
            theta[i] = whitening.centre[i] + whitening.scale[i] * acc
        logp = logp_grad(theta, grad, block) + offset
        if not np.isfinite(logp):
            return logp, False
        value += logp
        for i in range(dim):
            grad[i] = (grad[i] + offset_grad[i]) * whitening.scale[i]
            gradient[0, 0, i] += grad[i] / n_mc
            gradient[1, 0, i] += grad[i] * eps[i] * math.exp(log_diag[i]) / n_mc
            if fullrank:
                for j in range(i):
                    gradient[2, i, j] += grad[i] * eps[j] / n_mc
    entropy = 0.5 * dim * (1.0 + math.log(2.0 * math.pi))
    for i in range(dim):
        entropy += log_diag[i]
        gradient[1, 0, i] += 1.0  # d entropy / d log L_ii
    return value / n_mc + entropy, True


@numba.njit(cache=True, nogil=True)
def _adam_step(state, adam, gradient, t, rate, fullrank):
    """One Adam ascent step of iteration ``t`` on ``state``, in place."""
    dim = state.shape[1]
    beta1, beta2, epsilon = 0.9, 0.999, 1e-8
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


@numba.njit(cache=True, nogil=True)
def _load_rows(block, data, rows):
    """Overwrite the block's data section with ``data[rows]``."""
    target = section(block, Section.DATA)
    n_features = data.shape[1]
    for b in range(rows.shape[0]):
        for i in range(n_features):
            target[b * n_features + i] = data[rows[b], i]


@numba.njit(cache=True, nogil=True)
def _optimise_block(state, adam, first_iteration, block, noise, fullrank, whitening, rates,
                    elbo, average, average_from, n_averaged, data, batches, anchor):
    """Run ``noise.shape[0]`` Adam steps, updating ``state`` and ``adam`` in place.

    ``state`` rows: 0 = mean, 1 = log of the diagonal of L, 2.. = L's strictly
    lower part (rows of a dim x dim matrix), all in the coordinates of
    ``whitening`` (:class:`Whitening`).  ``adam`` holds the first and
    second moment estimates with the same layout.  Step ``s`` has step size
    ``rates[s]`` and, when ``batches`` has columns, first loads the rows
    ``data[batches[s]]`` into the block; then, with an ``anchor`` (an
    :class:`Anchor`, its point empty for none), the density of every draw is
    corrected by the full-data density at the anchor minus the batch's.  From
    iteration ``average_from`` on, the iterates are summed into ``average``
    (Polyak-Ruppert averaging).  Returns skipped steps.
    """
    n_iter, n_mc, dim = noise.shape
    grad = np.empty(dim)
    theta = np.empty(dim)
    gradient = np.zeros((3, dim, dim))
    offset = 0.0
    offset_grad = np.zeros(dim)
    skipped = 0
    for step in range(n_iter):
        t = first_iteration + step
        if batches.shape[1] > 0:
            _load_rows(block, data, batches[step])
            if anchor.point.shape[0] > 0:
                offset = anchor.logp - logp_grad(anchor.point, grad, block)
                for i in range(dim):
                    offset_grad[i] = anchor.grad[i] - grad[i]
        value, finite = _elbo_gradient(state, block, noise[step], fullrank, whitening, offset,
                                       offset_grad, theta, grad, gradient)
        if not finite:
            skipped += 1
            continue
        elbo[t] = value
        _adam_step(state, adam, gradient, t, rates[step], fullrank)
        if t >= average_from:
            average += state
            n_averaged[0] += 1
    return skipped


def learning_rates(learning_rate: float, n_iter: int, decay_iterations: float,
                   decay_exponent: float) -> np.ndarray:
    """A Robbins-Monro step-size schedule ``learning_rate / (1 + t / tau) ** kappa``.

    Parameters
    ----------
    learning_rate : float
        The step size at ``t = 0``.
    n_iter : int
    decay_iterations : float
        ``tau``: the iterations over which the step size falls by ``2 ** kappa``.
    decay_exponent : float
        ``kappa``; in (0.5, 1] the steps satisfy the Robbins-Monro conditions.

    Returns
    -------
    ndarray of shape (n_iter,)

    Examples
    --------
    >>> learning_rates(0.02, 4, 1.0, 1.0).tolist()
    [0.02, 0.01, 0.006666666666666667, 0.005]
    """
    return learning_rate / (1.0 + np.arange(n_iter) / decay_iterations) ** decay_exponent


def optimise_elbo(
    start: np.ndarray,
    block: np.ndarray,
    rng: np.random.Generator,
    *,
    method: str,
    rates: np.ndarray,
    n_mc: int,
    initial_sd: float,
    data: np.ndarray | None = None,
    draw_batches: Callable[[np.random.Generator, int], np.ndarray] | None = None,
    anchor: Anchor | None = None,
    whitening: Whitening | None = None,
    progressbar: bool = False,
) -> ADVIResult:
    """Maximise the ELBO by Adam and average the second half of the iterates.

    Parameters
    ----------
    start : ndarray of shape (n_unconstrained,)
        Initial mean.
    block : ndarray
        From :func:`bayesgmm._kernel.pack_block`; with ``draw_batches`` its
        data section is overwritten at every step.
    rng : numpy.random.Generator
        Draws, block by block, the Monte Carlo noise and then the batches.
    method : {"advi", "fullrank_advi"}
    rates : ndarray of shape (n_iter,)
        Step size of every iteration (:func:`learning_rates`).
    n_mc : int
        Monte Carlo draws per gradient estimate.
    initial_sd : float
        Initial standard deviation of every coordinate (of ``z`` with a
        ``whitening``).
    data : ndarray of shape (n_samples, n_features), optional
        The rows batches are drawn from (C-contiguous float64).
    draw_batches : callable, optional
        ``draw_batches(rng, n_steps)`` returns the row indices of the next
        ``n_steps`` batches, an integer array of shape (n_steps, batch_size)
        whose rows fill the block's data section exactly.  None: the block's
        data stay as packed (full-data ADVI).
    anchor : Anchor, optional
        With ``draw_batches``: correct every batch's density by the
        full-data density at the anchor (a control variate).
    whitening : Whitening, optional
        Optimise in its coordinates ``z``; the result and the ELBO trace are
        mapped back to ``theta``.
    progressbar : bool, default=False
        Show the iterations done (:func:`bayesgmm._progress.progress`),
        updated every :data:`_BLOCK` iterations, between calls of the
        compiled loop.

    Returns
    -------
    ADVIResult
    """
    if method not in ADVI_METHODS:
        raise ValueError(f"method must be one of {ADVI_METHODS}, got {method!r}.")
    n_iter = rates.shape[0]
    dim = start.shape[0]
    state = np.zeros((3, dim, dim))
    state[0, 0] = start if whitening is None else (start - whitening.centre) / whitening.scale
    state[1, 0] = math.log(initial_sd)
    adam = np.zeros((2, 3, dim, dim))
    elbo = np.full(n_iter, np.nan)
    average = np.zeros_like(state)
    average_from = n_iter // 2
    n_averaged = np.zeros(1, dtype=np.int64)
    if data is None:
        data = np.zeros((0, 0))
    skipped = 0
    description = _DESCRIPTIONS[method] + ("" if draw_batches is None else " on batches")
    # Random numbers are drawn block by block: memory stays O(block * dim).
    with progress(n_iter, description, progressbar) as bar:
        for first in range(0, n_iter, _BLOCK):
            n_steps = min(_BLOCK, n_iter - first)
            noise = rng.standard_normal((n_steps, n_mc, dim))
            batches = (np.zeros((n_steps, 0), dtype=np.int64) if draw_batches is None
                       else draw_batches(rng, n_steps))
            skipped += _optimise_block(
                state, adam, first, block, noise, method == "fullrank_advi",
                _identity_whitening(dim) if whitening is None else whitening,
                rates[first:first + n_steps], elbo, average, average_from, n_averaged, data,
                batches, _NO_ANCHOR if anchor is None else anchor)
            bar.advance(n_steps)
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
    if whitening is not None:  # q of theta: entropy larger by the log Jacobian
        mean = whitening.centre + whitening.scale * mean
        chol = whitening.scale[:, None] * chol
        elbo = elbo + np.log(whitening.scale).sum()
    return ADVIResult(mean, chol, elbo, int(skipped))


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
    progressbar: bool = False,
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
    progressbar : bool, default=False
        Show the iterations done.

    Returns
    -------
    ADVIResult
    """
    rates = learning_rates(learning_rate, n_iter, max(1.0, n_iter / 10.0), 0.5)
    return optimise_elbo(start, block, rng, method=method, rates=rates, n_mc=n_mc,
                         initial_sd=initial_sd, progressbar=progressbar)
