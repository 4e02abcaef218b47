"""The runs of one EM fit: cold restarts or one warm start, progress, the best run.

:func:`best_run` drives :func:`bayesgmm.em._algorithm.iterate` once per
start and keeps the run with the highest final mean log-likelihood; a start
whose covariance is ill-defined is skipped, and only when every start fails
is the first failure raised.  The starts come from
:func:`bayesgmm.em._start.initial_state` (one per ``n_init``) or, with
``warm_start=True`` after a fit, from :func:`warm_state`: the previous
solution moved onto the new fit's standardised scale.  These follow
scikit-learn's ``GaussianMixture(warm_start=True)``: ``n_init`` is ignored,
the first step's change is measured from the previous ``lower_bound_`` (so
a refit of a converged model can stop after one step), and a run that stops
at ``max_iter`` warns (:func:`warn_not_converged`).

:class:`Progress` prints what scikit-learn's ``verbose`` prints: one line per
initialisation, one per ``verbose_interval`` iterations, with timings and
the change of the mean log-likelihood at ``verbose >= 2``.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterable

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from bayesgmm.em._algorithm import EMRun, EMState, StepInfo, add_noise_component, iterate
from bayesgmm.em._covariance import CovarianceError, get_family
from bayesgmm.em._problem import FitProblem, FitSettings
from bayesgmm.em._scoring import FittedMixture, in_data_units

__all__ = ["Progress", "best_run", "warm_state", "warn_not_converged"]


class Progress:
    """scikit-learn's ``verbose`` messages for the runs of one fit, printed to stdout.

    Parameters
    ----------
    verbose : int
        0 prints nothing; 1 the initialisations and iteration numbers; 2 and
        more also the time taken and the change of the mean log-likelihood.
    interval : int
        Iterations between two iteration lines.
    log_jacobian : float
        Subtracted from the mean log-likelihood EM reports on the
        standardised scale, to print it in the data's units (as
        ``lower_bound_``).
    """

    def __init__(self, verbose: int, interval: int, log_jacobian: float):
        self.verbose = verbose
        self.interval = interval
        self.log_jacobian = log_jacobian
        self._run_started = self._iteration_ended = time.perf_counter()

    def run_started(self, index: int) -> None:
        """Announce run ``index`` (counted from 0)."""
        if self.verbose >= 1:
            print(f"Initialization {index}")
            self._run_started = self._iteration_ended = time.perf_counter()

    def step_done(self, n_iter: int, change: float) -> None:
        """Report EM step ``n_iter`` (counted from 1) and its change of the log-likelihood."""
        if self.verbose < 1 or n_iter % self.interval:
            return
        if self.verbose == 1:
            print(f"  Iteration {n_iter}")
            return
        now = time.perf_counter()
        print(
            f"  Iteration {n_iter}\t time lapse {now - self._iteration_ended:.5f}s\t "
            f"ll change {change:.5f}"
        )
        self._iteration_ended = now

    def run_ended(self, run: EMRun) -> None:
        """Say whether the run converged; at ``verbose >= 2`` its time and final value."""
        outcome = "converged" if run.converged else "did not converge"
        if self.verbose == 1:
            print(f"Initialization {outcome}.")
        elif self.verbose >= 2:
            lower_bound = _final_value(run) - self.log_jacobian
            print(
                f"Initialization {outcome}. time lapse "
                f"{time.perf_counter() - self._run_started:.5f}s\t lower bound {lower_bound:.5f}."
            )


def _final_value(run: EMRun) -> float:
    return run.log_likelihoods[-1] if run.n_iter else -np.inf


def best_run(
    step: Callable[[EMState], tuple[EMState, StepInfo]],
    starts: Iterable[Callable[[], EMState]],
    *,
    tol: float,
    max_iter: int,
    previous: float = -np.inf,
    progress: Progress | None = None,
) -> EMRun:
    """Run EM from every start and keep the run of highest final mean log-likelihood.

    Parameters
    ----------
    step : callable
        ``state -> (state, StepInfo)``, one EM step over all the rows.
    starts : iterable of callables
        Each ``() -> EMState`` makes one starting state; one that raises
        :class:`~bayesgmm.em.CovarianceError` is skipped, as is a run that
        does.
    tol, max_iter : float, int
        As in :func:`~bayesgmm.em._algorithm.iterate`.
    previous : float, default=-inf
        Mean log-likelihood (standardised scale) the first step's change is
        measured from: a warm start's previous value.
    progress : Progress, optional
        Told of every run and step.

    Returns
    -------
    EMRun

    Raises
    ------
    CovarianceError
        The first failure, when every start failed.
    """
    on_step = None if progress is None else progress.step_done
    best, failures = None, []
    for index, start in enumerate(starts):
        if progress is not None:
            progress.run_started(index)
        try:
            run = iterate(
                step, start(), tol=tol, max_iter=max_iter, previous=previous, on_step=on_step
            )
        except CovarianceError as error:
            failures.append(error)
            continue
        if progress is not None:
            progress.run_ended(run)
        if best is None or _final_value(run) > _final_value(best):
            best = run
    if best is None:
        raise failures[0]
    return best


def warm_state(fitted: FittedMixture, problem: FitProblem, settings: FitSettings) -> EMState:
    """A previous solution moved onto the standardised scale of a new fit.

    Parameters
    ----------
    fitted : FittedMixture
        The previous fit: its state, on its own standardised scale.
    problem : FitProblem
        The new fit: its standardisation and, with a noise component, its
        noise density (the noise keeps its weight).
    settings : FitSettings
        The new fit's.

    Returns
    -------
    EMState
        Without covariances (EM needs only the precisions' Cholesky
        factors); the previous solution in the data's units, up to rounding.

    Raises
    ------
    ValueError
        When the previous fit has another number of components or
        features, another covariance type, or is not alike with or without
        a noise component.
    """
    state = fitted.state
    before = (state.means.shape, fitted.covariance_type, state.noise is not None)
    now = ((settings.n_components, len(problem.centre)), settings.covariance_type, settings.noise)
    if before != now:
        raise ValueError(
            "warm_start=True continues the previous fit, which had (n_components, "
            "n_features), covariance_type and noise "
            f"{before}; this fit has {now}. Fit with warm_start=False to start afresh."
        )
    previous = in_data_units(fitted)
    means = (previous.means - problem.centre) / problem.scale
    precisions_cholesky = get_family(settings.covariance_type).rescale_precisions_cholesky(
        previous.precisions_cholesky, 1.0 / problem.scale
    )
    if state.noise is None:
        return EMState(state.weights, means, None, precisions_cholesky)
    gaussian = EMState(state.weights / state.weights.sum(), means, None, precisions_cholesky)
    return add_noise_component(gaussian, state.noise.weight, problem.noise.log_density)


def warn_not_converged(
    run: EMRun, *, max_iter: int, tol: float, starts: str, previous: float = -np.inf
) -> None:
    """Warn that the kept run stopped at ``max_iter`` with a change still above ``tol``.

    Parameters
    ----------
    run : EMRun
        The kept run.
    max_iter : int
    tol : float
    starts : str
        Which run it was, e.g. "the best of n_init=3 initialisations".
    previous : float, default=-inf
        The value its first step's change was measured from (:func:`best_run`).
    """
    before = run.log_likelihoods[-2] if run.n_iter > 1 else previous
    change = abs(run.log_likelihoods[-1] - before) if np.isfinite(before) else math.inf
    warnings.warn(
        f"EM did not converge: after max_iter={max_iter} iterations of {starts} the mean "
        f"log-likelihood still changed by {change:.3g} (tol={tol:g}). Increase max_iter or "
        "tol, try more n_init (with warm_start=True: fit again to continue), or check for "
        "duplicated or degenerate rows.",
        ConvergenceWarning,
        stacklevel=4,
    )
