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
best elpd, among the **eligible** fits.  Differences smaller than their own
noise are not evidence for the extra components, and the smaller model is
easier to interpret.

Eligibility rests on label-invariant gates whose number does not grow with K
(:data:`bayesgmm.ksweep.ELIGIBILITY_GATES`: R-hat of the total
log-likelihood, R-hat of the weights sorted by size, no chain in another
mode); R-hat and ESS over all relabelled parameters are reported.  A K that
fails only R-hat or ESS gates while no chain sits in another mode and no
transition diverged is first run longer, doubling draws and tune up to
``max_draws`` per chain (:mod:`bayesgmm.ksweep`), so sampler noise alone
does not decide K.
Divergences are reported and stop an extension, but do not exclude a K.

The table never ranks an untrusted fit: ``az.compare`` (``rank``,
``elpd_diff``, ``dse``, ``stacking_weight``, ``p_worse``, ``diag_diff``,
``diag_elpd``) runs on the eligible fits only; the others keep their own
``elpd_loo`` and say why they are out in ``excluded_because``.  K-fold
estimates are biased low against PSIS-LOO, so the two are never mixed: when
any eligible K needs K-fold, every eligible K gets K-fold, and each refit is
checked.  The rule falls back to every fit, and says so, when none is
eligible.  ``p_occupied`` is shown only when the sparse fit itself passed
the eligibility gates (``KSelection.sparse_diagnostics`` holds its table).

Only NUTS fits are compared (a decision): LOO on draws from a variational
approximation would need ``loo_approximate_posterior`` and its own gates, and
would not be comparable with NUTS rows; ``method="advi"`` is refused with
that advice.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import arviz as az
import numpy as np
import pandas as pd
from rich.progress import Progress

from bayesgmm._checks import SEED_LIMIT, as_generator, check_number, check_X
from bayesgmm.bayes import BayesianGMM
from bayesgmm.diagnostics import Diagnostics
from bayesgmm.ksweep import (
    DEFAULT_DRAWS,
    SPARSE_CONCENTRATION,
    KFit,
    SparseFit,
    eligibility,
    fit_one_k,
    fit_sparse,
    kfold_one_k,
)
from bayesgmm.loo import reported_arviz_warnings

__all__ = [
    "KSelection",
    "REPORT_COLUMNS",
    "SHORT_COLUMNS",
    "SPARSE_CONCENTRATION",
    "compare_k",
]

COMPARISON_COLUMNS = ("rank", "elpd_diff", "dse", "stacking_weight", "p_worse", "diag_diff",
                      "diag_elpd")
"""Columns that come from ``az.compare`` on the eligible fits."""

SHORT_COLUMNS = ("elpd_loo", "se", "elpd_diff", "stacking_weight", "loo_method",
                 "bic_lower_is_better", "icl_lower_is_better", "p_occupied", "max_rhat", "error")
"""The K table as the command line prints it."""

REPORT_COLUMNS = ("elpd_loo", "se", "elpd_diff", "dse", "stacking_weight", "p_worse",
                  "loo_method", "max_khat", "elpd_waic", "bic_lower_is_better",
                  "icl_lower_is_better", "p_occupied", "max_rhat", "rhat_log_lik",
                  "divergences", "draws_per_chain", "converged", "excluded_because",
                  "loo_caveat", "error")
"""The K table as the reports show it."""


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
        the sparse overfitted mixture (shown as ``p_occupied`` only when
        that fit passed its label-invariant gates).
    sparse_diagnostics : Diagnostics or None
        The sparse fit's own diagnostics.
    """

    table: pd.DataFrame
    best_k: int | None
    rule: str
    fits: dict[int, BayesianGMM] = field(default_factory=dict, repr=False)
    occupied: pd.Series | None = None
    sparse_diagnostics: Diagnostics | None = None

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


def _difference_se(elpd_a, elpd_b) -> float:
    """Standard error of the elpd difference of two models, from pointwise values."""
    difference = np.asarray(elpd_a.elpd_i).ravel() - np.asarray(elpd_b.elpd_i).ravel()
    return float(np.sqrt(difference.size * difference.var()))


def _decide(table: pd.DataFrame, elpds: dict, se_rule: float) -> tuple[int | None, str]:
    """The one-SE rule among eligible fits (module docstring), with the numbers in words."""
    usable = table.dropna(subset=["elpd_loo"])
    if usable.empty:
        return None, "every K failed; see the error column"
    eligible = usable[usable["converged"].astype(bool)]
    note = ""
    if eligible.empty:
        eligible = usable
        note = (" (no fit passed the label-invariant gates, so all were considered; treat with "
                "care: the table ranks none of them)")
    elif len(eligible) < len(usable):
        why = usable.get("excluded_because", pd.Series("", index=usable.index))
        reasons = "; ".join(f"K={k}: {why[k] or 'label-invariant gates failed'}"
                            for k in usable.index.difference(eligible.index))
        note = f"; not eligible ({reasons})"
    best = int(eligible["elpd_loo"].idxmax())
    gaps = {k: eligible.loc[best, "elpd_loo"] - eligible.loc[k, "elpd_loo"] for k in eligible.index}
    errors = {k: _difference_se(elpds[best], elpds[k]) if k != best else 0.0
              for k in eligible.index}
    chosen = min(k for k in eligible.index if gaps[k] <= se_rule * errors[k])
    among = " among the eligible fits" if len(eligible) < len(usable) else ""
    extended = usable[usable.get("extensions", pd.Series(0, index=usable.index)).fillna(0) > 0]
    runs = "".join(f"; K={k} was run longer ({int(row['draws_per_chain'])} draws per chain)"
                   for k, row in extended.iterrows())
    rule = (f"smallest K with elpd within {se_rule:g} SE of the best: K={best} has the highest "
            f"elpd{among}; K={chosen} is {gaps[chosen]:.1f} below it (SE of the difference "
            f"{errors[chosen]:.1f}){note}{runs}")
    return int(chosen), rule


def _table(per_k: list[KFit], sparse: SparseFit | None) -> tuple[pd.DataFrame, dict]:
    """The K table and the elpds it rests on.

    ``az.compare`` (ranks, differences, stacking weights, ``p_worse`` and
    its diagnostics) runs on the eligible fits only; the other rows keep
    their own elpd and say in ``excluded_because`` why they are out.
    """
    table = pd.DataFrame([asdict(result.row) for result in per_k]).set_index("K")
    elpds = {result.row.K: result.loo.elpd for result in per_k if result.loo is not None}
    for column, attribute in (("elpd_loo", "elpd"), ("se", "se"), ("p_loo", "p")):
        table[column] = [float(getattr(elpds[k], attribute)) if k in elpds else np.nan
                         for k in table.index]
    ranked = {k: elpd for k, elpd in elpds.items() if table.loc[k, "converged"]}
    if ranked:
        with reported_arviz_warnings():
            comparison = az.compare(ranked, method="stacking", round_to="none")
        comparison = comparison.rename(columns={"weight": "stacking_weight"})
        table = comparison[list(COMPARISON_COLUMNS)].join(table, how="right")
    else:
        table = pd.DataFrame(columns=list(COMPARISON_COLUMNS), index=table.index).join(table)
    if sparse is not None:
        trusted = sparse.occupied is not None and not eligibility(sparse.diagnostics)
        table["p_occupied"] = [float(sparse.occupied.get(k, 0.0)) if trusted else np.nan
                               for k in table.index]
    return table.sort_index(), elpds


def _kfold_for_all(per_k: list[KFit], values, n_jobs, progressbar) -> list[KFit]:
    """K-fold for every eligible K when any needs it: K-fold and PSIS are never compared."""
    n_obs = values.shape[0]
    eligible = [i for i, result in enumerate(per_k)
                if result.loo is not None and result.row.converged]
    if not any(per_k[i].loo.needs_kfold(n_obs) for i in eligible):
        return per_k
    tasks = [Task(f"K-fold K={per_k[i].row.K}", kfold_one_k, (per_k[i], values))
             for i in eligible]
    refitted = dict(zip(eligible, _run_all(tasks, n_jobs, progressbar), strict=True))
    return [refitted.get(i, result) for i, result in enumerate(per_k)]


def _sweep_settings(ks, n_jobs, max_draws, bayesgmm_kwargs) -> tuple[list[int], dict, list]:
    """Checked K values and settings, and one seed per task (K values, then the sparse fit).

    ``ks`` must be an iterable of positive integers (numpy integers, and
    floats without a fractional part such as ``3.0``, are accepted); a bare
    int or a string is refused rather than guessed at.
    """
    if isinstance(ks, (str, bytes)) or not np.iterable(ks):
        raise ValueError(
            f"ks must be an iterable of positive integers, got {ks!r}; pass ks=range(1, 4) "
            "to compare K = 1, 2, 3, or [3] for a single K."
        )
    given = list(ks)
    bad = [k for k in given if isinstance(k, (bool, np.bool_))
           or not isinstance(k, (int, float, np.integer, np.floating))
           or not float(k).is_integer() or k < 1]
    if not given or bad:
        what = f"{bad[0]!r} is not a positive integer" if bad else "it is empty"
        raise ValueError(
            f"ks must be an iterable of positive integers, got {given!r} ({what}); e.g. "
            "ks=range(1, 4) or [2, 3, 5]."
        )
    ks = sorted({int(k) for k in given})
    if not isinstance(n_jobs, int) or n_jobs < 1:
        raise ValueError(f"n_jobs must be a positive integer, got {n_jobs!r}.")
    settings = {"progressbar": False, **bayesgmm_kwargs}
    settings.pop("n_components", None)
    if settings.get("method", "nuts") != "nuts":
        raise ValueError(
            "compare_k ranks K by PSIS-LOO, which needs draws from the posterior itself; "
            f"method={settings['method']!r} draws from a variational approximation, whose LOO "
            "(and eligibility gates) would not be comparable across K. Use method='nuts' (the "
            "default) in compare_k, then fit the chosen K with ADVI if needed."
        )
    check_number("max_draws", max_draws, low=int(settings.get("draws", DEFAULT_DRAWS)),
                 integer=True)
    # One seed per task, derived from the user's random_state: results do not
    # depend on n_jobs or on the order in which the tasks run.
    root = as_generator(settings.pop("random_state", None)).integers(SEED_LIMIT)
    seeds = [int(child.generate_state(1)[0])
             for child in np.random.SeedSequence(int(root)).spawn(len(ks) + 1)]
    return ks, settings, seeds


def compare_k(
    X,
    ks=range(1, 7),
    *,
    n_jobs: int = 1,
    se_rule: float = 1.0,
    sparse: bool = True,
    max_draws: int = 4000,
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
    max_draws : int, default=4000
        Budget per chain for extended runs: a K that fails only on noise
        (R-hat, ESS) is refitted with doubled draws and tune while the
        doubled draws stay within it (module docstring).  Set it to
        ``draws`` to never extend.
    progressbar : bool, default=True
        Show which K is running.
    **bayesgmm_kwargs
        Passed to every :class:`BayesianGMM` (e.g. ``draws``,
        ``covariance_type``, ``priors``, ``random_state``).

    Returns
    -------
    KSelection
        ``table`` columns, one row per K: from ``az.compare`` on the
        eligible fits, ``rank``, ``elpd_diff`` (to the best, <= 0), ``dse``,
        ``stacking_weight``, ``p_worse``, ``diag_diff``, ``diag_elpd``
        (NaN for ineligible rows); every row's ``elpd_loo`` (higher is
        better), ``se``, ``p_loo``, ``loo_method`` (psis / psis+mm /
        kfold), ``max_khat``, ``share_high_khat``, ``loo_caveat``,
        ``elpd_waic`` (higher is better), ``waic_se``, ``p_waic``,
        ``waic_n_high_variance`` (points where WAIC is unreliable),
        ``bic_lower_is_better``, ``aic_lower_is_better``,
        ``icl_lower_is_better``, ``p_occupied`` (posterior probability that
        exactly K components are occupied; NaN when the sparse fit is not
        trusted), ``max_rhat``, ``rhat_log_lik``, ``divergences``,
        ``draws_per_chain`` and ``extensions`` (runs doubled),
        ``converged`` (eligible for ``best_k``), ``excluded_because``,
        ``diagnostics_ok`` (every gate, divergences and ESS included),
        ``seconds``, ``error``.
    """
    checked = check_X(X, n_components=1)
    ks, settings, seeds = _sweep_settings(ks, n_jobs, max_draws, bayesgmm_kwargs)
    args = (checked.values, checked.feature_names)
    tasks = [Task(f"K={k}", fit_one_k, (*args, k, settings, seed, max_draws))
             for k, seed in zip(ks, seeds)]
    if sparse:
        tasks.append(Task("sparse", fit_sparse, (*args, max(ks), settings, seeds[-1])))
    results = _run_all(tasks, n_jobs, progressbar)
    per_k = _kfold_for_all(results[:len(ks)], checked.values, n_jobs, progressbar)
    sparse_fit: SparseFit | None = results[-1] if sparse else None
    table, elpds = _table(per_k, sparse_fit)
    best_k, rule = _decide(table, elpds, se_rule)
    if sparse_fit is not None and np.isnan(table["p_occupied"]).all():
        reason = sparse_fit.error or eligibility(sparse_fit.diagnostics)
        rule += f"; p_occupied is blank: the sparse K={max(ks)} fit is not trusted ({reason})"
    fits = {result.row.K: result.fit for result in per_k if result.fit is not None}
    return KSelection(table, best_k, rule, fits,
                      sparse_fit.occupied if sparse_fit is not None else None,
                      sparse_fit.diagnostics if sparse_fit is not None else None)
