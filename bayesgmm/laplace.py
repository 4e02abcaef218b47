"""Laplace (Bernstein-von Mises) approximation at the posterior mode, for large N.

At N = 1e5-1e8 rows and the right K the posterior of the mixture's
parameters is nearly Gaussian in the unconstrained space (log scales, the
simplex's stick-breaking coordinates, the LKJ's free entries), with
covariance the inverse of the negative Hessian at the mode.  This module
finds that Gaussian with the compiled density, cheaply:

1. **The mode, on every row.**  Newton's method from the EM start, with
   the curvature of step 2 and the *full-data* gradient, evaluated in
   threads over row shards (:class:`ShardedDensity`, exact: the shards'
   log densities minus the prior counted once too often).  Because the
   curvature is the full data's to about ``1 / sqrt(m)`` relative, each
   step shrinks the gradient by about that factor: a handful of full-data
   gradients.
2. **The curvature, from a subsample.**  The Hessian is a sum over rows, so
   ``m = HESSIAN_ROWS`` rows drawn uniformly and weighted ``N / m`` give it
   to ``O(1 / sqrt(m))`` relative (0.3% at ``m = 1e5``); it is computed by
   central differences of the gradient at the start, and again at the mode
   only when that lies more than :data:`RECOMPUTE_AFTER_SDS` away.  The *mode* is never taken from a
   subsample: there the error would be ``sqrt(N / m)`` posterior sds.
3. **The check.**  ``IMPORTANCE_DRAWS`` draws from the Gaussian, the
   full-data log density at each, and Pareto k-hat of the importance ratios
   (Yao et al. 2018): k-hat < 0.7 says the Gaussian is a usable
   approximation of this posterior; above, use NUTS.

Label switching cannot happen inside one Gaussian around one mode: the
draws keep the EM start's labelling.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np

from bayesgmm._kernel import logp_grad

__all__ = [
    "HESSIAN_ROWS",
    "IMPORTANCE_DRAWS",
    "LaplaceResult",
    "ShardedDensity",
    "finite_difference_hessian",
    "fit_laplace",
    "laplace_at_mode",
    "newton_mode",
]

HESSIAN_ROWS = 100_000
"""Rows (drawn uniformly, weighted N / m) whose curvature stands for all N."""

IMPORTANCE_DRAWS = 100
"""Draws at which the full-data density is evaluated for the Pareto k-hat check."""

HESSIAN_STEP = 1e-4
"""Central-difference step in the unconstrained space (posterior sds there are
1e-3 to 1e-1 at large N; the error is O(step^2) of the third derivative)."""

NEWTON_TOL = 1e-10
"""Stop when the Newton decrement ``g^T H^-1 g / 2`` (nats) falls below this."""

MAX_NEWTON_STEPS = 50

RECOMPUTE_AFTER_SDS = 3.0
"""The curvature is recomputed at the mode when Newton moved further than this
(in posterior sds) from the start.  Closer, the Hessian changes by about
``distance / sqrt(N)`` relative, below the subsample's own error."""

N_THREADS = 2
"""Threads for the full-data gradient: the kernel releases the GIL."""


class ShardedDensity:
    """The log density and its gradient, summed over row shards evaluated in threads.

    Each shard's block holds the prior too; the prior-only block (no rows)
    is subtracted ``n_shards - 1`` times, so the sum is exact (the Dirichlet
    gradient is linear in the counts and the summed row weights).

    Parameters
    ----------
    shard_blocks : list of ndarray
        Packed blocks, one per shard of the rows.
    prior_block : ndarray
        The same model packed without rows.
    """

    def __init__(self, shard_blocks: list[np.ndarray], prior_block: np.ndarray):
        self.shard_blocks = shard_blocks
        self.prior_block = prior_block
        self.n_evaluations = 0
        self._pool = ThreadPoolExecutor(max(1, min(N_THREADS, len(shard_blocks))))

    def __call__(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Log density and gradient at ``theta`` (shape (n_unconstrained,))."""
        theta = np.ascontiguousarray(theta, dtype=np.float64)

        def one(block):
            grad = np.empty_like(theta)
            return logp_grad(theta, grad, block), grad

        parts = list(self._pool.map(one, self.shard_blocks))
        value = sum(part[0] for part in parts)
        grad = np.sum([part[1] for part in parts], axis=0)
        if len(parts) > 1:
            prior_value, prior_grad = one(self.prior_block)
            value -= (len(parts) - 1) * prior_value
            grad -= (len(parts) - 1) * prior_grad
        self.n_evaluations += 1
        return float(value), grad

    def log_densities(self, thetas: np.ndarray) -> np.ndarray:
        """Log density at each row of ``thetas`` (shape (n_points, n_unconstrained))."""
        return np.array([self(theta)[0] for theta in thetas])

    def close(self) -> None:
        """Stop the threads."""
        self._pool.shutdown()

    @classmethod
    def over_rows(cls, pack_rows, rows: np.ndarray, weight_scale: float = 1.0,
                  prior_block: np.ndarray | None = None) -> ShardedDensity:
        """The density of ``rows``, split into :data:`N_THREADS` shards.

        Parameters
        ----------
        pack_rows : callable
            ``(rows, weight_scale) -> block`` (:meth:`bayesgmm.fitting.Problem.pack_rows`).
        rows : ndarray of int
        weight_scale : float
            Multiplies every row's weight, e.g. ``N / m`` for ``m`` rows drawn uniformly.
        prior_block : ndarray, optional
            The model packed without rows, when the caller already has it.
        """
        if prior_block is None:
            prior_block = pack_rows(np.arange(0), 1.0)
        return cls([pack_rows(part, weight_scale) for part in np.array_split(rows, N_THREADS)],
                   prior_block)


def finite_difference_hessian(gradient, theta: np.ndarray,
                              step: float = HESSIAN_STEP) -> np.ndarray:
    """Symmetric Hessian by central differences of ``gradient``.

    Parameters
    ----------
    gradient : callable
        ``theta -> (logp, grad)``.
    theta : ndarray of shape (n_unconstrained,)
    step : float

    Returns
    -------
    ndarray of shape (n_unconstrained, n_unconstrained)

    Examples
    --------
    >>> quadratic = lambda t: (-0.5 * t @ t, -t)
    >>> np.allclose(finite_difference_hessian(quadratic, np.ones(3)), -np.eye(3))
    True
    """
    size = theta.shape[0]
    hessian = np.empty((size, size))
    for i in range(size):
        shift = np.zeros(size)
        shift[i] = step
        hessian[i] = (gradient(theta + shift)[1] - gradient(theta - shift)[1]) / (2.0 * step)
    return 0.5 * (hessian + hessian.T)


def _precision_factor(hessian: np.ndarray) -> np.ndarray:
    """Cholesky factor of ``-hessian``, or a ValueError saying the point is no maximum."""
    try:
        return np.linalg.cholesky(-hessian)
    except np.linalg.LinAlgError:
        largest = float(np.linalg.eigvalsh(hessian).max())
        raise ValueError(
            "The Laplace approximation needs a posterior maximum, but the log density is not "
            f"concave there (largest Hessian eigenvalue {largest:.3g} > 0): a component is "
            "probably empty or K is too large for these data. Use fewer components, or "
            "method='nuts'."
        ) from None


def _distance_in_sds(precision_cholesky: np.ndarray, step: np.ndarray) -> float:
    """``sqrt(step^T P step)``: the length of ``step`` in posterior sds, P = factor factor^T."""
    return float(np.linalg.norm(precision_cholesky.T @ step))


def newton_mode(density, precision_cholesky: np.ndarray, start: np.ndarray,
                ) -> tuple[np.ndarray, int]:
    """Maximise ``density`` by Newton steps with a fixed curvature, halving on failure.

    Parameters
    ----------
    density : callable
        ``theta -> (logp, grad)`` on every row.
    precision_cholesky : ndarray of shape (n_unconstrained, n_unconstrained)
        Cholesky factor of the negative Hessian used for every step.
    start : ndarray of shape (n_unconstrained,)

    Returns
    -------
    mode : ndarray of shape (n_unconstrained,)
    n_steps : int
    """
    theta = start
    value, grad = density(theta)
    for n_steps in range(1, MAX_NEWTON_STEPS + 1):
        direction = np.linalg.solve(precision_cholesky.T,
                                    np.linalg.solve(precision_cholesky, grad))
        decrement = 0.5 * float(grad @ direction)
        if decrement < NEWTON_TOL:
            return theta, n_steps - 1
        length = 1.0
        while length > 1e-8:
            candidate = theta + length * direction
            new_value, new_grad = density(candidate)
            if np.isfinite(new_value) and new_value >= value - 1e-12 * abs(value):
                break
            length *= 0.5
        else:
            return theta, n_steps
        theta, value, grad = candidate, new_value, new_grad
    return theta, MAX_NEWTON_STEPS


class LaplaceResult(NamedTuple):
    """The Gaussian approximation ``N(mean, chol chol^T)`` in the unconstrained space.

    Attributes
    ----------
    mean : ndarray of shape (n_unconstrained,)
        The posterior mode.
    chol : ndarray of shape (n_unconstrained, n_unconstrained)
        Lower Cholesky factor of the covariance (the inverse negative Hessian).
    log_ratio : ndarray of shape (IMPORTANCE_DRAWS,)
        ``log p(theta) - log q(theta)`` at draws from the approximation (the
        full-data density), for Pareto k-hat.
    n_newton_steps : int
    n_density_evaluations : int
        Full-data gradients spent (Newton steps, line search, the check).
    hessian_rows : int
        Rows the curvature was computed from.
    """

    mean: np.ndarray
    chol: np.ndarray
    log_ratio: np.ndarray
    n_newton_steps: int
    n_density_evaluations: int
    hessian_rows: int

    def sample(self, n_draws: int, rng: np.random.Generator) -> np.ndarray:
        """Draws from the approximation, shape (n_draws, n_unconstrained)."""
        return self.mean + rng.standard_normal((n_draws, self.mean.shape[0])) @ self.chol.T

    def log_density(self, theta: np.ndarray) -> np.ndarray:
        """``log q(theta)`` for a batch of unconstrained vectors."""
        solved = np.linalg.solve(self.chol, (theta - self.mean).T).T
        return (-0.5 * np.sum(solved**2, axis=-1) - np.log(np.diag(self.chol)).sum()
                - 0.5 * self.mean.shape[0] * math.log(2.0 * math.pi))


def laplace_at_mode(start: np.ndarray, density, curvature, rng: np.random.Generator,
                    hessian_rows: int) -> LaplaceResult:
    """Newton to the mode of ``density``, the Gaussian there, and the importance check.

    Parameters
    ----------
    start : ndarray of shape (n_unconstrained,)
    density : callable
        ``theta -> (logp, grad)`` on every row, with a ``log_densities(thetas)``
        method (one pass over the rows for many points) and ``n_evaluations``.
    curvature : callable
        ``theta -> (logp, grad)`` whose Hessian stands for ``density``'s.
    rng : numpy.random.Generator
        Draws the check's points.
    hessian_rows : int
        Rows behind ``curvature`` (recorded).

    Returns
    -------
    LaplaceResult
    """
    factor = _precision_factor(finite_difference_hessian(curvature, start))
    mode, n_steps = newton_mode(density, factor, start)
    if _distance_in_sds(factor, mode - start) > RECOMPUTE_AFTER_SDS:
        factor = _precision_factor(finite_difference_hessian(curvature, mode))
    covariance_cholesky = np.linalg.inv(factor).T  # (P P^T)^-1 = P^-T P^-1
    covariance_cholesky = np.linalg.cholesky(covariance_cholesky @ covariance_cholesky.T)
    result = LaplaceResult(mode, covariance_cholesky, np.zeros(0), n_steps, 0, hessian_rows)
    draws = result.sample(IMPORTANCE_DRAWS, rng)
    log_ratio = density.log_densities(draws) - result.log_density(draws)
    return result._replace(log_ratio=log_ratio, n_density_evaluations=density.n_evaluations)


def fit_laplace(start: np.ndarray, pack_rows, n_samples: int, rng: np.random.Generator,
                ) -> LaplaceResult:
    """The Laplace approximation for data in memory (see the module docstring).

    Parameters
    ----------
    start : ndarray of shape (n_unconstrained,)
        The EM start in the unconstrained space.
    pack_rows : callable
        ``(rows, weight_scale) -> block``: the compiled density's block for
        the given row indices, their frequency weights multiplied by
        ``weight_scale`` (:meth:`bayesgmm.fitting.Problem.pack_rows`).
    n_samples : int
        Rows in the data.
    rng : numpy.random.Generator
        Draws the curvature's subsample and the check's draws.

    Returns
    -------
    LaplaceResult
    """
    density = ShardedDensity.over_rows(pack_rows, np.arange(n_samples))
    curvature = density
    if n_samples > HESSIAN_ROWS:
        rows = np.sort(rng.choice(n_samples, HESSIAN_ROWS, replace=False))
        curvature = ShardedDensity.over_rows(pack_rows, rows, n_samples / HESSIAN_ROWS,
                                             density.prior_block)
    try:
        return laplace_at_mode(start, density, curvature, rng, min(n_samples, HESSIAN_ROWS))
    finally:
        density.close()
        curvature.close()
