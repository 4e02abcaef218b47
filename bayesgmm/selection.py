"""Choosing the number of components: one call, three views.

:func:`compare_k` fits a :class:`~bayesgmm.BayesianGMM` for every K and puts
side by side

1. Bayesian cross-validation: PSIS-LOO (with moment matching / K-fold when
   Pareto k-hat flags points, see :mod:`bayesgmm.loo`), WAIC, and
   ``az.compare``'s elpd differences, their standard errors and stacking
   weights (higher elpd is better);
2. classical criteria from EM on the same data: BIC, AIC and ICL (column
   names say "lower is better");
3. under a sparse, overfitted mixture (``K = max(ks)`` with
   ``weight_concentration`` = :data:`SPARSE_CONCENTRATION`), the posterior
   distribution of the number of occupied components.

``best_k`` rule (one-standard-error rule, Breiman et al. 1984, applied to
elpd as in Vehtari, Gelman & Gabry 2017): the **smallest** K whose elpd is
within ``se_rule`` (default 1) standard errors of the difference from the
best elpd.  Differences smaller than their own noise are not evidence for the
extra components, and the smaller model is easier to interpret.  Only fits
whose chains converged (relabelled R-hat and log-likelihood R-hat below 1.01,
no chain in another mode) are eligible: the elpd of chains that disagree is
not an estimate of anything (overfitted K often fail because their extra
component wanders).  Divergences are reported but do not exclude a K.  The
rule falls back to every fit, and says so, when none converged.
"""

from __future__ import annotations

import math
import multiprocessing
import time
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import arviz as az
import numpy as np
import pandas as pd
from rich.progress import Progress

from bayesgmm._checks import as_generator, check_X
from bayesgmm.bayes import BayesianGMM, diagnostics_reported
from bayesgmm.em import reference_em
from bayesgmm.loo import reliable_loo, reported_arviz_warnings, waic
from bayesgmm.posterior import OBSERVED
from bayesgmm.priors import GMMPriors

__all__ = [
    "FIT_FAILURES",
    "KFit",
    "KRow",
    "KSelection",
    "REPORT_COLUMNS",
    "SHORT_COLUMNS",
    "SPARSE_CONCENTRATION",
    "compare_k",
]

SPARSE_CONCENTRATION = 0.01

FIT_FAILURES = (ValueError,)
"""The failures one K may end in without stopping the sweep (its row shows the message).

``ValueError`` covers a K the data cannot support: too few rows for K
(``DataValidationError``), a non-finite density at the EM start, an EM
covariance that is not positive definite (``CovarianceError``), a singular
matrix (``numpy.linalg.LinAlgError``) and ArviZ's "All tail values are the
same" on degenerate draws.  Anything else is a bug and propagates.
"""

COMPARISON_COLUMNS = ("rank", "elpd_loo", "se", "elpd_diff", "dse", "stacking_weight", "p_loo")
"""Columns that come from ``az.compare`` (renamed to bayesgmm's names)."""

SHORT_COLUMNS = ("elpd_loo", "se", "elpd_diff", "stacking_weight", "loo_method",
                 "bic_lower_is_better", "icl_lower_is_better", "p_occupied", "max_rhat", "error")
"""The K table as the command line prints it."""

REPORT_COLUMNS = ("elpd_loo", "se", "elpd_diff", "dse", "stacking_weight", "loo_method",
                  "max_khat", "elpd_waic", "bic_lower_is_better", "icl_lower_is_better",
                  "p_occupied", "max_rhat", "divergences", "converged", "loo_caveat", "error")
"""The K table as the reports show it."""


@dataclass(frozen=True)
class KRow:
    """What ``compare_k`` measured for one K, besides ``az.compare``'s columns.

    A K that ended in one of :data:`FIT_FAILURES` keeps NaN numbers and the
    message in ``error``.
    """

    K: int
    loo_method: str = ""
    max_khat: float = math.nan
    share_high_khat: float = math.nan
    n_high_khat_psis: float = math.nan
    loo_caveat: str = ""
    elpd_waic: float = math.nan
    waic_se: float = math.nan
    p_waic: float = math.nan
    waic_n_high_variance: float = math.nan
    bic_lower_is_better: float = math.nan
    aic_lower_is_better: float = math.nan
    icl_lower_is_better: float = math.nan
    max_rhat: float = math.nan
    divergences: float = math.nan
    converged: bool = False
    diagnostics_ok: bool = False
    seconds: float = math.nan
    error: str = ""


class KFit(NamedTuple):
    """One K of the sweep: its row, and the fit and elpd when it succeeded."""

    row: KRow
    fit: BayesianGMM | None
    elpd: Any | None


class SparseFit(NamedTuple):
    """The overfitted sparse mixture: occupancy probabilities, or the failure."""

    occupied: pd.Series | None
    error: str


class Task(NamedTuple):
    """One unit of work of the sweep (a K, or the sparse fit)."""

    label: str
    function: Callable
    args: tuple


@dataclass
class KSelection:
    """Result of :func:`compare_k`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per K (see :func:`compare_k` for the columns).
    best_k : int or None
        Chosen by the one-standard-error rule on elpd (module docstring);
        None if every fit failed.
    rule : str
        The rule in words, with the numbers that decided it.
    fits : dict of int to BayesianGMM
        The fitted models that succeeded.
    occupied : pandas.Series or None
        Posterior probability of each number of occupied components under
        the sparse overfitted mixture.
    """

    table: pd.DataFrame
    best_k: int | None
    rule: str
    fits: dict[int, BayesianGMM] = field(default_factory=dict, repr=False)
    occupied: pd.Series | None = None

    def plot(self, ax=None):
        """Plot elpd +/- SE by K, with EM's BIC on a second axis.

        Parameters
        ----------
        ax : matplotlib Axes, optional

        Returns
        -------
        matplotlib Axes
            The elpd axis (the BIC axis is its twin).
        """
        from bayesgmm.plots import plot_k_selection

        return plot_k_selection(self, ax=ax)

    def view(self, columns=SHORT_COLUMNS) -> pd.DataFrame:
        """The table restricted to ``columns`` (those it has), e.g. :data:`REPORT_COLUMNS`."""
        return self.table[[c for c in columns if c in self.table.columns]]

    def __repr__(self) -> str:
        return f"KSelection(best_k={self.best_k})\n{self.rule}\n{self.table.to_string()}"

    def _repr_html_(self) -> str:
        return f"<p><b>best_k = {self.best_k}</b>: {self.rule}</p>{self.table.to_html()}"


_CONVERGENCE_GATES = ("rhat", "rhat_log_lik", "modes")


def _converged(diagnostics) -> bool:
    """Chains agree (R-hat of parameters and log-likelihood, one mode).

    Divergences and ESS are reported but do not make a K ineligible: a few
    divergences in thousands of draws rarely move an elpd, while chains that
    disagree make it meaningless.
    """
    table = diagnostics.table
    return bool(all(table.loc[gate, "ok"] for gate in _CONVERGENCE_GATES if gate in table.index))


def _quiet_fit(model: BayesianGMM, frame: pd.DataFrame) -> BayesianGMM:
    """Fit; the table's converged and diagnostics_ok columns report its diagnostics."""
    with diagnostics_reported():
        return model.fit(frame)


def _measure(values, names, k, settings, seed) -> tuple[KRow, BayesianGMM, Any]:
    """Fit one K and compute its row, LOO included."""
    fit = _quiet_fit(BayesianGMM(k, **{**settings, "random_state": seed}),
                     pd.DataFrame(values, columns=names))
    converged = _converged(fit.diagnostics_)
    # K-fold costs 10 refits; it is not spent on a fit whose chains did not
    # converge (that K is not eligible for best_k anyway).
    outcome = reliable_loo(fit, values, allow_kfold=converged)
    log_lik = fit.idata_.log_likelihood[OBSERVED].values
    information = waic(log_lik.reshape(-1, log_lik.shape[-1]))
    em = reference_em(values, k, fit.covariance_type, random_state=seed)
    gates = fit.diagnostics_.table["value"]
    row = KRow(
        K=k,
        loo_method=outcome.method,
        max_khat=outcome.max_khat,
        share_high_khat=outcome.n_high_khat / values.shape[0],
        n_high_khat_psis=outcome.n_high_khat_psis,
        loo_caveat=outcome.caveat,
        elpd_waic=information.elpd_waic,
        waic_se=information.se,
        p_waic=information.p_waic,
        waic_n_high_variance=information.n_high_variance,
        bic_lower_is_better=em.bic(values),
        aic_lower_is_better=em.aic(values),
        icl_lower_is_better=em.icl(values),
        max_rhat=float(gates.get("rhat", np.nan)),
        divergences=int(gates.get("divergences", 0)),
        converged=converged,
        diagnostics_ok=fit.diagnostics_.ok,
    )
    return row, fit, outcome.elpd


def _fit_one(values, names, k, settings, seed) -> KFit:
    """One K of the sweep (runs in a worker); a failure becomes the row's error."""
    began = time.perf_counter()
    try:
        row, fit, elpd = _measure(values, names, k, settings, seed)
    except FIT_FAILURES as error:  # one K failing must not lose the others
        detail = "".join(traceback.format_exception_only(type(error), error)).strip()
        return KFit(KRow(K=k, seconds=time.perf_counter() - began, error=detail), None, None)
    return KFit(KRow(**{**asdict(row), "seconds": time.perf_counter() - began}), fit, elpd)


def _run_all(tasks: list[Task], n_jobs: int, show_progress: bool) -> list:
    """Run the tasks, in processes when ``n_jobs > 1``; results in task order."""
    results: list = [None] * len(tasks)
    with Progress(disable=not show_progress, transient=True) as progress:
        bar = progress.add_task("compare_k", total=len(tasks))
        if n_jobs == 1:
            for position, task in enumerate(tasks):
                progress.update(bar, description=f"fitting {task.label}")
                results[position] = task.function(*task.args)
                progress.advance(bar)
            return results
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=n_jobs, mp_context=context) as pool:
            pending = {pool.submit(task.function, *task.args): position
                       for position, task in enumerate(tasks)}
            while pending:
                running = ", ".join(sorted(tasks[p].label for p in pending.values()))
                progress.update(bar, description=f"running {running}")
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    results[pending.pop(future)] = future.result()
                    progress.advance(bar)
    return results


def _sparse_fit(values, names, k_max, settings, seed) -> SparseFit:
    """The overfitted sparse mixture and its occupied-component distribution."""
    priors = settings.get("priors") or GMMPriors()
    sparse = GMMPriors(**{**priors.to_dict(), "weight_concentration": SPARSE_CONCENTRATION})
    try:
        fit = _quiet_fit(
            BayesianGMM(k_max, **{**settings, "priors": sparse, "random_state": seed}),
            pd.DataFrame(values, columns=names),
        )
    except FIT_FAILURES as error:
        return SparseFit(None, f"{type(error).__name__}: {error}")
    return SparseFit(fit.occupied_components(random_state=seed), "")


def _difference_se(elpd_a, elpd_b) -> float:
    """Standard error of the elpd difference of two models, from pointwise values."""
    difference = np.asarray(elpd_a.elpd_i).ravel() - np.asarray(elpd_b.elpd_i).ravel()
    return float(np.sqrt(difference.size * difference.var()))


def _decide(table: pd.DataFrame, elpds: dict, se_rule: float) -> tuple[int | None, str]:
    """The one-SE rule among fits whose convergence diagnostics passed."""
    usable = table.dropna(subset=["elpd_loo"])
    if usable.empty:
        return None, "every K failed; see the error column"
    eligible = usable[usable["converged"].astype(bool)]
    note = ""
    if eligible.empty:
        eligible = usable
        note = " (no fit converged, so all were eligible; treat with care)"
    elif len(eligible) < len(usable):
        excluded = ", ".join(str(k) for k in usable.index.difference(eligible.index))
        note = (f"; K={excluded} not eligible because their chains did not converge "
                "(R-hat or modes gate failed, so their elpd is not trustworthy)")
    best = int(eligible["elpd_loo"].idxmax())
    gaps = {k: eligible.loc[best, "elpd_loo"] - eligible.loc[k, "elpd_loo"] for k in eligible.index}
    errors = {k: _difference_se(elpds[best], elpds[k]) if k != best else 0.0
              for k in eligible.index}
    chosen = min(k for k in eligible.index if gaps[k] <= se_rule * errors[k])
    among = " among the fits whose chains converged" if len(eligible) < len(usable) else ""
    rule = (f"smallest K with elpd within {se_rule:g} SE of the best: K={best} has the highest "
            f"elpd{among}; K={chosen} is {gaps[chosen]:.1f} below it (SE of the difference "
            f"{errors[chosen]:.1f}){note}")
    return int(chosen), rule


def _table(per_k: list[KFit], sparse: SparseFit | None) -> tuple[pd.DataFrame, dict]:
    """The K table (``az.compare``'s columns, then each K's row) and the elpds it rests on."""
    table = pd.DataFrame([asdict(result.row) for result in per_k]).set_index("K")
    elpds = {result.row.K: result.elpd for result in per_k if result.elpd is not None}
    if elpds:
        with reported_arviz_warnings():
            comparison = az.compare(elpds, method="stacking", round_to="none")
        comparison = comparison.rename(columns={"elpd": "elpd_loo", "weight": "stacking_weight",
                                                "p": "p_loo"})
        table = comparison[list(COMPARISON_COLUMNS)].join(table, how="right")
    else:
        table = pd.DataFrame(columns=list(COMPARISON_COLUMNS), index=table.index).join(table)
    if sparse is not None:
        occupied = sparse.occupied
        table["p_occupied"] = [
            float(occupied.get(k, 0.0)) if occupied is not None else np.nan for k in table.index
        ]
    return table.sort_index(), elpds


def compare_k(
    X,
    ks=range(1, 7),
    *,
    n_jobs: int = 1,
    se_rule: float = 1.0,
    sparse: bool = True,
    progressbar: bool = True,
    **bayesgmm_kwargs,
) -> KSelection:
    """Compare numbers of components by LOO, WAIC, stacking, BIC/AIC/ICL and occupancy.

    Parameters
    ----------
    X : array-like or DataFrame of shape (n_samples, n_features)
    ks : iterable of int
        Numbers of components to compare.
    n_jobs : int, default=1
        Worker processes for the independent fits (each K, and the sparse
        fit, is one task).
    se_rule : float, default=1.0
        Standard errors of tolerance in the ``best_k`` rule.
    sparse : bool, default=True
        Also fit the sparse overfitted mixture with ``K = max(ks)``.
    progressbar : bool, default=True
        Show which K is running.
    **bayesgmm_kwargs
        Passed to every :class:`BayesianGMM` (e.g. ``draws``,
        ``covariance_type``, ``priors``, ``random_state``).

    Returns
    -------
    KSelection
        ``table`` columns: ``rank``, ``elpd_loo`` (higher is better),
        ``se``, ``elpd_diff`` (to the best, <= 0), ``dse``,
        ``stacking_weight``, ``p_loo``, ``loo_method`` (psis / psis+mm /
        kfold), ``max_khat``, ``share_high_khat``, ``loo_caveat``,
        ``elpd_waic`` (higher is better), ``waic_se``, ``p_waic``,
        ``waic_n_high_variance`` (points where WAIC is unreliable),
        ``bic_lower_is_better``, ``aic_lower_is_better``,
        ``icl_lower_is_better``, ``p_occupied`` (posterior probability that
        exactly K components are occupied), ``max_rhat``, ``divergences``,
        ``converged`` (eligible for ``best_k``), ``diagnostics_ok`` (every
        gate, divergences and ESS included), ``seconds``, ``error``.
    """
    checked = check_X(X, n_components=1)
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be positive integers, got {ks!r}.")
    if not isinstance(n_jobs, int) or n_jobs < 1:
        raise ValueError(f"n_jobs must be a positive integer, got {n_jobs!r}.")
    settings = {"progressbar": False, **bayesgmm_kwargs}
    settings.pop("n_components", None)
    # One seed per task, derived from the user's random_state: results do not
    # depend on n_jobs or on the order in which the tasks run.
    root = as_generator(settings.pop("random_state", None)).integers(2**63)
    seeds = [int(child.generate_state(1)[0])
             for child in np.random.SeedSequence(int(root)).spawn(len(ks) + 1)]
    args = (checked.values, checked.feature_names)
    tasks = [Task(f"K={k}", _fit_one, (*args, k, settings, seed)) for k, seed in zip(ks, seeds)]
    if sparse:
        tasks.append(Task("sparse", _sparse_fit, (*args, max(ks), settings, seeds[-1])))
    results = _run_all(tasks, n_jobs, progressbar)
    per_k: list[KFit] = results[:len(ks)]
    sparse_fit: SparseFit | None = results[-1] if sparse else None
    table, elpds = _table(per_k, sparse_fit)
    best_k, rule = _decide(table, elpds, se_rule)
    if sparse_fit is not None and sparse_fit.occupied is None:
        rule += f"; the sparse occupancy fit failed ({sparse_fit.error}), so p_occupied is NaN"
    fits = {result.row.K: result.fit for result in per_k if result.fit is not None}
    occupied = sparse_fit.occupied if sparse_fit is not None else None
    return KSelection(table, best_k, rule, fits, occupied)
