"""Minibatch ADVI: stochastic variational inference for many rows.

Full-data ADVI (:mod:`bayesgmm.advi`) evaluates the log-likelihood of every
row at every step; at a million rows one gradient costs ~0.2 s.  Here each
step draws a batch of ``B`` rows without replacement and scales their
log-likelihood by ``N / B`` (Hoffman et al. 2013): an unbiased estimate of
the full-data ELBO gradient, at the cost of ``B`` rows.

The scaling is the kernel's frequency weights: one block is packed for ``B``
rows, each with weight ``N / B``, so the likelihood term, its gradient and
the simplex gradient (which reads the summed weights ``N``) are those of
``N`` rows.  Before every step the block's data section is overwritten with
the new batch.  The optimiser (Adam, Polyak-Ruppert averaging of the second
half of the iterates, the ELBO trace) is :func:`bayesgmm.advi.optimise_elbo`,
shared with full-data ADVI; here its step size decays as
``(1 + t / tau) ** -kappa`` (Robbins-Monro).

Two additions make the batch estimate usable at the posterior's scale, whose
widths shrink like ``1 / sqrt(N)``:

* a control variate (:class:`bayesgmm.advi.Anchor`): the batch's density at
  the EM start is subtracted and the full-data density there added, which
  keeps the estimate unbiased and removes the batch noise to first order;
* whitening (:class:`bayesgmm.advi.Whitening`): Adam works in coordinates
  scaled by the conditional posterior sds at the start
  (:func:`conditional_sds`), so one step size suits every ``N``.

Without them (``control_variate=False, whiten=False``) this is plain
stochastic variational inference, whose batch noise needs step sizes, and so
runs, that grow with ``N``.
"""

from __future__ import annotations

import numba
import numpy as np

from bayesgmm._kernel import logp_and_grad, pack_block
from bayesgmm.advi import ADVIResult, Anchor, Whitening, learning_rates, optimise_elbo
from bayesgmm.priors import ResolvedPriors

__all__ = ["fit_minibatch_advi", "draw_batches", "conditional_sds", "CURVATURE_ROWS"]

CURVATURE_ROWS = 10_000
"""Rows (at most) of the one batch the whitening's curvatures are estimated on."""

CURVATURE_STEP = 1e-5
"""Step of the central differences of the gradient (posterior sds are ~1e-3 at a million rows)."""


@numba.njit(cache=True, nogil=True)
def _floyd_batches(draws, n_rows, taken):
    """Batches of distinct rows by Floyd's algorithm, one per row of ``draws``.

    Parameters
    ----------
    draws : ndarray of shape (n_steps, batch_size)
        Integers, ``draws[s, j]`` uniform on ``0 .. n_rows - batch_size + j``.
    n_rows : int
    taken : ndarray of shape (n_rows,)
        All False; left all False.

    Returns
    -------
    ndarray of shape (n_steps, batch_size)
        Each row a uniformly drawn subset of ``0 .. n_rows - 1`` (in no
        particular order).
    """
    n_steps, batch_size = draws.shape
    batches = np.empty_like(draws)
    for s in range(n_steps):
        for j in range(batch_size):
            row = draws[s, j]
            if taken[row]:
                row = n_rows - batch_size + j  # free: earlier draws all lie below it
            taken[row] = True
            batches[s, j] = row
        for j in range(batch_size):
            taken[batches[s, j]] = False
    return batches


def draw_batches(rng: np.random.Generator, n_steps: int, n_rows: int,
                 batch_size: int) -> np.ndarray:
    """Row indices of ``n_steps`` batches, each drawn without replacement.

    Parameters
    ----------
    rng : numpy.random.Generator
    n_steps : int
    n_rows : int
    batch_size : int
        At most ``n_rows``.

    Returns
    -------
    ndarray of shape (n_steps, batch_size)
        Every row holds distinct indices; each index is in a batch with
        probability ``batch_size / n_rows``, and batches are independent.

    Examples
    --------
    >>> batches = draw_batches(np.random.default_rng(0), 3, 10, 4)
    >>> batches.shape, all(len(set(row)) == 4 for row in batches.tolist())
    ((3, 4), True)
    """
    highs = np.arange(n_rows - batch_size + 1, n_rows + 1)
    draws = rng.integers(0, highs, size=(n_steps, batch_size))
    return _floyd_batches(draws, n_rows, np.zeros(n_rows, dtype=np.bool_))


def conditional_sds(point: np.ndarray, block: np.ndarray) -> np.ndarray:
    """Conditional posterior standard deviations ``1 / sqrt(-d2 log p / d theta_j2)`` at a point.

    The second derivatives are central differences of the gradient (two
    gradients per coordinate).  A curvature below 1 (a coordinate the data
    barely inform, or a point where the density is not concave in it) is
    raised to 1: no scale exceeds the unit scale of the standardised model.

    Parameters
    ----------
    point : ndarray of shape (n_unconstrained,)
    block : ndarray
        From :func:`bayesgmm._kernel.pack_block`.

    Returns
    -------
    ndarray of shape (n_unconstrained,)

    Examples
    --------
    >>> from bayesgmm.priors import ResolvedPriors
    >>> priors = ResolvedPriors(np.ones(1), np.zeros(1), np.full(1, 0.1), np.ones(1),
    ...                         "lognormal", 2.0)
    >>> block = pack_block(np.empty((0, 1)), priors, 1, "diag")
    >>> conditional_sds(np.zeros(2), block).round(6).tolist()  # the priors' sds: 0.1 and 1
    [0.1, 1.0]
    """
    curvature = np.empty(point.shape[0])
    for j in range(point.shape[0]):
        step = np.zeros(point.shape[0])
        step[j] = CURVATURE_STEP
        difference = logp_and_grad(point + step, block)[1] - logp_and_grad(point - step, block)[1]
        curvature[j] = -difference[j] / (2.0 * CURVATURE_STEP)
    return 1.0 / np.sqrt(np.maximum(curvature, 1.0))


def fit_minibatch_advi(
    start: np.ndarray,
    X: np.ndarray,
    priors: ResolvedPriors,
    n_components: int,
    covariance_type: str,
    rng: np.random.Generator,
    *,
    method: str = "fullrank_advi",
    batch_size: int = 1000,
    n_iter: int = 10_000,
    n_mc: int = 1,
    learning_rate: float = 0.02,
    decay_iterations: float | None = None,
    decay_exponent: float = 0.6,
    initial_sd: float = 1.0,
    control_variate: bool = True,
    whiten: bool = True,
    noise_log_density: float | None = None,
    progressbar: bool = False,
) -> ADVIResult:
    """Fit a Gaussian approximation to the posterior from random batches of rows.

    Parameters
    ----------
    start : ndarray of shape (n_unconstrained,)
        Initial mean (the EM solution), laid out as
        :class:`bayesgmm.parameters.Layout` says.
    X : ndarray of shape (n_samples, n_features)
        The data on the model's scale (``problem.scaled.values`` of
        :func:`bayesgmm.fitting.prepare_problem`); no missing values.
    priors : ResolvedPriors
        On the same scale.
    n_components : int
    covariance_type : {"full", "tied", "diag", "spherical"}
    rng : numpy.random.Generator
        Draws the curvature batch, then the Monte Carlo noise and the batches.
    method : {"advi", "fullrank_advi"}
    batch_size : int, default=1000
        Rows per step, at most ``n_samples``.  ``n_samples`` itself is
        full-data ADVI: every batch is all rows, in order; with
        ``whiten=False`` exactly :func:`bayesgmm.advi.fit_advi` on
        ``pack_block(X, ...)`` with the same schedule.
    n_iter : int, default=10000
        Optimisation steps.
    n_mc : int, default=1
        Monte Carlo draws per gradient estimate.
    learning_rate : float, default=0.02
        Adam's step size at ``t = 0``, in the optimiser's coordinates: units
        of conditional posterior sd with ``whiten``.
    decay_iterations : float, optional
        ``tau`` of the schedule ``learning_rate / (1 + t / tau) ** kappa``;
        default ``n_iter / 10``.
    decay_exponent : float, default=0.6
        ``kappa``, in (0.5, 1] for the Robbins-Monro conditions.
    initial_sd : float, default=1.0
        Initial standard deviation of every coordinate, in the optimiser's
        coordinates.  Without ``whiten`` both it and ``learning_rate`` are in
        the unconstrained space's own units, where posterior sds shrink like
        ``1 / sqrt(N)``: pass values of that order.
    control_variate : bool, default=True
        Correct every batch's density by the full-data density at ``start``
        (:class:`bayesgmm.advi.Anchor`; one pass over all rows).  The batch
        noise of the gradient then shrinks from order ``N / sqrt(B)`` to
        order ``sqrt(N / B)`` near ``start``.
    whiten : bool, default=True
        Optimise in coordinates centred on ``start`` and scaled by the
        :func:`conditional_sds` there, estimated on one batch of
        :data:`CURVATURE_ROWS` rows (:class:`bayesgmm.advi.Whitening`), so
        that the step sizes mean the same at every ``N``.
    noise_log_density : float, optional
        ``log(1 / V)`` on the model's scale, for a model with a uniform noise
        component (:func:`bayesgmm.scaling.model_noise_log_density`).
    progressbar : bool, default=False
        Show the optimisation's steps done.

    Returns
    -------
    ADVIResult
        Its ``elbo`` holds the minibatch estimates of the ELBO, one per step;
        the approximation averages the iterates of the second half.

    Raises
    ------
    ValueError
        When ``X`` has missing values, or ``batch_size`` is not in
        ``1 .. n_samples``.

    Examples
    --------
    >>> from bayesgmm.parameters import Layout
    >>> from bayesgmm.priors import GMMPriors
    >>> from bayesgmm.scaling import model_scale
    >>> X = np.random.default_rng(0).normal(size=(5000, 2))
    >>> scaled = model_scale(X, GMMPriors(), 1, "diag")
    >>> start = np.zeros(Layout(1, 2, "diag").size)
    >>> result = fit_minibatch_advi(start, scaled.values, scaled.resolved, 1, "diag",
    ...                             np.random.default_rng(1), batch_size=500, n_iter=3000)
    >>> bool(np.abs(result.mean).max() < 0.05)  # means and log scales ~0 on the model's scale
    True
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    start = np.ascontiguousarray(start, dtype=np.float64)
    n_samples = X.shape[0]
    if np.isnan(X).any():
        raise ValueError(
            "Minibatch ADVI does not handle missing values (NaN): drop the incomplete rows, "
            "or use full-data inference (fit_advi on a block packed with the NaN rows, or "
            "NUTS), which marginalises them."
        )
    if not 1 <= batch_size <= n_samples:
        raise ValueError(
            f"batch_size must be between 1 and the number of rows ({n_samples}), "
            f"got {batch_size}."
        )

    def weighted_block(rows: np.ndarray) -> np.ndarray:
        # Each row counts n_samples / len(rows) times: the summed weights are
        # n_samples, as the simplex gradient needs.
        return pack_block(X[rows], priors, n_components, covariance_type, noise_log_density,
                          row_weights=np.full(len(rows), n_samples / len(rows)))

    whitening = None
    if whiten:
        rows = draw_batches(rng, 1, n_samples, min(n_samples, CURVATURE_ROWS))[0]
        whitening = Whitening(start, conditional_sds(start, weighted_block(rows)))
    rates = learning_rates(learning_rate, n_iter,
                           max(1.0, n_iter / 10.0) if decay_iterations is None
                           else decay_iterations, decay_exponent)
    block = weighted_block(np.arange(batch_size))  # its data are replaced at every step
    if batch_size == n_samples:  # every batch is all rows: the block holds them
        return optimise_elbo(start, block, rng, method=method, rates=rates, n_mc=n_mc,
                             initial_sd=initial_sd, whitening=whitening, progressbar=progressbar)
    anchor = None
    if control_variate:
        full = pack_block(X, priors, n_components, covariance_type, noise_log_density)
        anchor = Anchor(start, *logp_and_grad(start, full))
        del full
    return optimise_elbo(
        start, block, rng, method=method, rates=rates, n_mc=n_mc, initial_sd=initial_sd,
        data=X,
        draw_batches=lambda rng, n_steps: draw_batches(rng, n_steps, n_samples, batch_size),
        anchor=anchor, whitening=whitening, progressbar=progressbar,
    )
