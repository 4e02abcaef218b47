"""Choosing the number of components (and the covariance structure): one call, three views.

:func:`compare_k` fits a :class:`~bayesgmm.BayesianGMM` for every K, or for
every (covariance structure, K) pair with ``covariance_types=``, and puts
side by side

1. Bayesian cross-validation: PSIS-LOO (with moment matching / K-fold when
   Pareto k-hat flags points, see :mod:`bayesgmm.loo`), WAIC, and
   ``az.compare``'s elpd differences, their standard errors and stacking
   weights (higher elpd is better);
2. classical criteria from EM on the same data with the same structure:
   BIC, AIC and ICL (column names say "lower is better");
3. under a sparse, overfitted mixture (``K = max(ks)`` with
   ``weight_concentration`` = :data:`SPARSE_CONCENTRATION`, one per
   structure), the posterior distribution of the number of occupied
   components.

``best_k`` rule (one-standard-error rule, Breiman et al. 1984, applied to
elpd as in Vehtari, Gelman & Gabry 2017): the **smallest** K whose elpd is
within ``se_rule`` (default 1) standard errors of the difference from the
best elpd, among the **eligible** fits.  Differences smaller than their own
noise are not evidence for the extra components, and the smaller model is
easier to interpret.  Over several structures (mclust's view: BIC over
structure and K, here with LOO beside it) the same rule reads: among the
eligible fits, the one with the **fewest free parameters** (``n_parameters``)
whose elpd is within ``se_rule`` standard errors of the difference from the
best elpd; equal counts go to the higher elpd.  With one structure the count
grows with K, so this is the smallest-K rule.

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
``diag_elpd``) runs once, on the eligible fits of every structure together;
the others keep their own ``elpd_loo`` and say why they are out in
``excluded_because``.  K-fold estimates are biased low against PSIS-LOO, so
the two are never mixed: when any eligible fit needs K-fold, every eligible
fit gets K-fold, and each refit is checked.  The rule falls back to every
fit, and says so, when none is eligible.  ``p_occupied`` is shown only when
the sparse fit of that row's structure itself passed the eligibility gates
(``KSelection.sparse_diagnostics`` holds its table).

Seeds: one per K position (and one for the sparse fit) from ``random_state``,
whatever ``n_jobs``; every structure reuses them, so a structure's rows are
the ones a single-structure sweep gives, whichever others it is compared with.

Only NUTS fits are compared (a decision): LOO on draws from a variational
approximation would need ``loo_approximate_posterior`` and its own gates, and
would not be comparable with NUTS rows; ``method="advi"`` is refused with
that advice.
"""

from __future__ import annotations

import inspect
import multiprocessing
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from bayesgmm._checks import SEED_LIMIT, as_generator, check_number, check_X
from bayesgmm._progress import progress
from bayesgmm._selection_table import (
    FitKey,
    build_table,
    decide,
    fit_label,
    plain_key,
    sparse_views,
    untrusted_sparse_note,
)
from bayesgmm.bayes import BayesianGMM
from bayesgmm.diagnostics import Diagnostics
from bayesgmm.ksweep import (
    DEFAULT_DRAWS,
    SPARSE_CONCENTRATION,
    KFit,
    fit_one_k,
    fit_sparse,
    kfold_one_k,
)
from bayesgmm.parameters import COVARIANCE_TYPES

__all__ = [
    "KSelection",
    "REPORT_COLUMNS",
    "SHORT_COLUMNS",
    "SPARSE_CONCENTRATION",
    "compare_k",
]

SHORT_COLUMNS = ("n_parameters", "elpd_loo", "se", "elpd_diff", "stacking_weight", "loo_method",
                 "bic_lower_is_better", "icl_lower_is_better", "p_occupied", "max_rhat", "error")
"""The K table as the command line prints it (``n_parameters`` only with several structures)."""

REPORT_COLUMNS = ("n_parameters", "elpd_loo", "se", "elpd_diff", "dse", "stacking_weight",
                  "p_worse", "loo_method", "max_khat", "elpd_waic", "bic_lower_is_better",
                  "icl_lower_is_better", "p_occupied", "max_rhat", "rhat_log_lik",
                  "divergences", "draws_per_chain", "converged", "excluded_because",
                  "loo_caveat", "error")
"""The K table as the reports show it (``n_parameters`` only with several structures)."""

DEFAULT_COVARIANCE_TYPE = inspect.signature(BayesianGMM).parameters["covariance_type"].default
"""The structure compared when neither ``covariance_type`` nor ``covariance_types`` is given."""


class Task(NamedTuple):
    """One unit of work of the sweep (a K, or the sparse fit)."""

    label: str
    function: Callable
    args: tuple


class Sweep(NamedTuple):
    """The checked request: K values, structures, shared settings and the seeds.

    ``seeds`` holds one seed per K position, then one for the sparse fit;
    every structure uses the same ones.
    """

    ks: list[int]
    structures: tuple[str, ...]
    settings: dict
    seeds: list[int]

    @property
    def several(self) -> bool:
        """Whether more than one covariance structure is compared."""
        return len(self.structures) > 1

    def settings_for(self, structure: str) -> dict:
        """The :class:`BayesianGMM` settings of one structure."""
        return {**self.settings, "covariance_type": structure}

    def structure_and_k(self, chosen: FitKey | None) -> tuple[str | None, int | None]:
        """The chosen fit's structure and K, from its key in the table (None: all failed)."""
        if not self.several:
            return self.structures[0], chosen
        return chosen if chosen is not None else (None, None)


@dataclass
class KSelection:
    """Result of :func:`compare_k`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per K, indexed by K; with several structures one row per
        (covariance_type, K), indexed by both, with ``n_parameters`` (see
        :func:`compare_k` for the columns).
    best_k : int or None
        Chosen by the one-standard-error rule on elpd (module docstring);
        None if every fit failed.
    best_covariance_type : str or None
        The structure of the chosen fit: the only one when one is compared;
        None if every fit of several structures failed.
    rule : str
        The rule in words, with the numbers that decided it.
    fits : dict of int, or of (str, int), to BayesianGMM
        The fitted models that succeeded, keyed as the table's index.
    occupied : pandas.Series or None
        Posterior probability of each number of occupied components under
        the sparse overfitted mixture (shown as ``p_occupied`` only when
        that fit passed its label-invariant gates); with several structures
        indexed by (covariance_type, occupied_components).
    sparse_diagnostics : Diagnostics, dict of str to Diagnostics, or None
        The sparse fit's own diagnostics; with several structures, one per
        structure whose sparse fit ran.
    """

    table: pd.DataFrame
    best_k: int | None
    best_covariance_type: str | None
    rule: str
    fits: dict[FitKey, BayesianGMM] = field(default_factory=dict, repr=False)
    occupied: pd.Series | None = None
    sparse_diagnostics: Diagnostics | dict[str, Diagnostics] | None = None

    def plot(self, ax=None):
        """Plot elpd +/- SE by K beside EM's BIC (see :func:`bayesgmm.plots.plot_k_selection`).

        Parameters
        ----------
        ax : matplotlib Axes, or a pair of Axes with several structures, optional

        Returns
        -------
        matplotlib Axes or ndarray of two Axes
            One structure: the elpd axis (the BIC axis is its twin).  Several:
            the elpd panel and the BIC panel, one line per structure in each.
        """
        from bayesgmm.plots import plot_k_selection

        return plot_k_selection(self, ax=ax)

    def view(self, columns=SHORT_COLUMNS) -> pd.DataFrame:
        """The table restricted to ``columns`` (those it has), e.g. :data:`REPORT_COLUMNS`."""
        return self.table[[c for c in columns if c in self.table.columns]]

    def _choice(self, separator: str) -> str:
        """The chosen fit in words: ``best_k``, and ``best_covariance_type`` when several."""
        if self.table.index.nlevels == 1:
            return f"best_k{separator}{self.best_k}"
        return (f"best_covariance_type{separator}{self.best_covariance_type!r}, "
                f"best_k{separator}{self.best_k}")

    def __repr__(self) -> str:
        return f"KSelection({self._choice('=')})\n{self.rule}\n{self.table.to_string()}"

    def _repr_html_(self) -> str:
        return f"<p><b>{self._choice(' = ')}</b>: {self.rule}</p>{self.table.to_html()}"


def _run_on_client(tasks: list[Task], client, advance) -> list:
    """Run the tasks on a ``dask.distributed.Client``; each array argument is sent once.

    Every task is one fit (or one K-fold refit) in a worker process, submitted
    with ``pure=False`` so identical arguments never share a result; arrays
    are scattered to every worker once instead of travelling with each task.
    """
    from distributed import as_completed

    shared: dict[int, Any] = {}

    def scattered(argument):
        if not isinstance(argument, np.ndarray):
            return argument
        if id(argument) not in shared:
            shared[id(argument)] = client.scatter(argument, broadcast=True)
        return shared[id(argument)]

    futures = {client.submit(task.function, *map(scattered, task.args), pure=False): position
               for position, task in enumerate(tasks)}
    results: list = [None] * len(tasks)
    for future in as_completed(futures):
        results[futures[future]] = future.result()
        advance(tasks[futures[future]].label)
    return results


def _run_all(tasks: list[Task], n_jobs: int, progressbar: bool, client=None) -> list:
    """Run the tasks: on ``client``, in processes when ``n_jobs > 1``; results in task order."""
    results: list = [None] * len(tasks)
    with progress(len(tasks), "compare_k", progressbar) as bar:
        if client is not None:
            return _run_on_client(tasks, client,
                                  lambda label: bar.advance(description=f"done {label}"))
        if n_jobs == 1:
            for position, task in enumerate(tasks):
                bar.describe(f"fitting {task.label}")
                results[position] = task.function(*task.args)
                bar.advance()
            return results
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=n_jobs, mp_context=context) as pool:
            pending = {pool.submit(task.function, *task.args): position
                       for position, task in enumerate(tasks)}
            while pending:
                running = ", ".join(sorted(tasks[p].label for p in pending.values()))
                bar.describe(f"running {running}")
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    results[pending.pop(future)] = future.result()
                    bar.advance()
    return results


def _kfold_for_all(per_k: list[KFit], values, n_jobs, progressbar, client=None) -> list[KFit]:
    """K-fold for every eligible fit when any needs it: K-fold and PSIS are never compared.

    Run here (``n_jobs=1``, no client), each task also shows its refits
    under the sweep's bar; a worker's bar would garble the display.
    """
    n_obs = values.shape[0]
    eligible = [i for i, result in enumerate(per_k)
                if result.loo is not None and result.row.converged]
    if not any(per_k[i].loo.needs_kfold(n_obs) for i in eligible):
        return per_k
    refits_shown = progressbar and n_jobs == 1 and client is None
    tasks = [Task(f"K-fold {per_k[i].row.covariance_type} K={per_k[i].row.K}", kfold_one_k,
                  (per_k[i], values, refits_shown)) for i in eligible]
    refitted = dict(zip(eligible, _run_all(tasks, n_jobs, progressbar, client), strict=True))
    return [refitted.get(i, result) for i, result in enumerate(per_k)]


def _checked_ks(ks) -> list[int]:
    """Sorted distinct K values.

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
    return sorted({int(k) for k in given})


def _checked_structures(covariance_types, settings: dict) -> tuple[str, ...]:
    """The structures to compare, in the order given and without repeats.

    ``covariance_types=None`` means the one ``covariance_type`` in
    ``settings`` (``BayesianGMM``'s default when absent); naming both is
    refused, as is a bare string or an unknown structure.
    """
    if covariance_types is None:
        given = [settings.get("covariance_type", DEFAULT_COVARIANCE_TYPE)]
        argument = "covariance_type"
    elif "covariance_type" in settings:
        raise ValueError(
            f"compare_k got covariance_type={settings['covariance_type']!r} and "
            f"covariance_types={covariance_types!r}; pass only covariance_types, listing every "
            "structure to compare, e.g. covariance_types=('full', 'tied')."
        )
    elif isinstance(covariance_types, (str, bytes)) or not np.iterable(covariance_types):
        raise ValueError(
            f"covariance_types must be a list of structures, got {covariance_types!r}; e.g. "
            f"covariance_types=('full', 'tied'), or covariance_type={covariance_types!r} for one."
        )
    else:
        given, argument = list(covariance_types), "covariance_types"
    unknown = [structure for structure in given if structure not in COVARIANCE_TYPES]
    if not given or unknown:
        what = f"unknown {unknown!r}" if unknown else "it is empty"
        raise ValueError(f"{argument} must name structures among {COVARIANCE_TYPES}, got "
                         f"{given!r} ({what}).")
    return tuple(dict.fromkeys(given))


def _sweep_settings(ks, n_jobs, max_draws, bayesgmm_kwargs) -> tuple[list[int], dict, list]:
    """Checked K values and settings, and one seed per task (K values, then the sparse fit)."""
    ks = _checked_ks(ks)
    if not isinstance(n_jobs, int) or n_jobs < 1:
        raise ValueError(f"n_jobs must be a positive integer, got {n_jobs!r}.")
    # NUTS whatever N: BayesianGMM's "auto" would switch to Laplace at large N, and
    # the eligibility gates and PSIS-LOO below are stated for NUTS draws.
    settings = {"progressbar": False, "method": "nuts", **bayesgmm_kwargs}
    settings.pop("n_components", None)
    if settings["method"] != "nuts":
        raise ValueError(
            "compare_k ranks K by PSIS-LOO, which needs draws from the posterior itself; "
            f"method={settings['method']!r} draws from a variational approximation, whose LOO "
            "(and eligibility gates) would not be comparable across K. Use method='nuts' (the "
            "default) in compare_k, then fit the chosen K with ADVI if needed."
        )
    check_number("max_draws", max_draws, low=int(settings.get("draws", DEFAULT_DRAWS)),
                 integer=True)
    # One seed per task, derived from the user's random_state: results do not
    # depend on n_jobs or on the order in which the tasks run.  Every
    # structure reuses the K positions' seeds and the sparse fit's.
    root = as_generator(settings.pop("random_state", None)).integers(SEED_LIMIT)
    seeds = [int(child.generate_state(1)[0])
             for child in np.random.SeedSequence(int(root)).spawn(len(ks) + 1)]
    return ks, settings, seeds


def _tasks(sweep: Sweep, values, names, max_draws: int, sparse: bool) -> list[Task]:
    """One task per (structure, K), then one sparse fit per structure when ``sparse``."""
    fits = [Task(fit_label((structure, k) if sweep.several else k), fit_one_k,
                 (values, names, k, sweep.settings_for(structure), seed, max_draws))
            for structure in sweep.structures for k, seed in zip(sweep.ks, sweep.seeds)]
    k_max = max(sweep.ks)
    sparse_fits = [Task(f"sparse {structure} K={k_max}", fit_sparse,
                        (values, names, k_max, sweep.settings_for(structure), sweep.seeds[-1]))
                   for structure in sweep.structures] if sparse else []
    return fits + sparse_fits


def compare_k(
    X,
    ks=range(1, 7),
    *,
    covariance_types=None,
    n_jobs: int = 1,
    se_rule: float = 1.0,
    sparse: bool = True,
    max_draws: int = 4000,
    progressbar: bool = True,
    client=None,
    **bayesgmm_kwargs,
) -> KSelection:
    """Compare numbers of components (and structures) by LOO, WAIC, stacking, BIC and occupancy.

    Parameters
    ----------
    X : array-like or DataFrame of shape (n_samples, n_features)
    ks : iterable of int
        Numbers of components to compare.
    covariance_types : iterable of str, optional
        Structures to compare with every K (of ``"full"``, ``"tied"``,
        ``"diag"``, ``"spherical"``).  None: K alone, for the
        ``covariance_type`` in ``bayesgmm_kwargs`` (default ``"full"``).
    n_jobs : int, default=1
        Worker processes; each (structure, K) fit and each sparse fit is a task.
    se_rule : float, default=1.0
        Standard errors of tolerance in the ``best_k`` rule.
    sparse : bool, default=True
        Also fit the sparse overfitted mixture, ``K = max(ks)``, per structure.
    max_draws : int, default=4000
        Budget per chain of extended runs (a fit failing only noise gates is
        refitted with doubled draws and tune; module docstring); ``draws``
        means never extend.
    progressbar : bool, default=True
        Show which K is running (:func:`bayesgmm._progress.progress`), and
        with ``n_jobs=1`` the K-fold refits; False shows nothing.
    client : dask.distributed.Client, optional
        Run every (structure, K) fit, sparse fit and K-fold refit as a task
        on this client's workers (the data scattered to them once), instead
        of here; ``n_jobs`` must then stay 1.  Results are those of the
        in-process sweep: each task's seed comes from ``random_state``.
    **bayesgmm_kwargs
        Passed to every :class:`BayesianGMM` (``draws``, ``priors``, ...).

    Returns
    -------
    KSelection
        ``table`` columns (one row per K; per (covariance_type, K) with ``n_parameters``,
        the Bayesian model's free parameters, when several structures): from ``az.compare``
        on the eligible fits, ``rank``, ``elpd_diff`` (to the best, <= 0), ``dse``,
        ``stacking_weight``, ``p_worse``, ``diag_diff``, ``diag_elpd`` (NaN for ineligible
        rows); every row's ``elpd_loo`` (higher is better), ``se``, ``p_loo``,
        ``loo_method`` (psis / psis+mm / kfold), ``max_khat``, ``share_high_khat``,
        ``loo_caveat``, ``elpd_waic`` (higher is better), ``waic_se``, ``p_waic``,
        ``waic_n_high_variance`` (points where WAIC is unreliable), ``bic_lower_is_better``,
        ``aic_lower_is_better``, ``icl_lower_is_better``, ``p_occupied`` (posterior
        probability that exactly K components are occupied; NaN when the sparse fit is not
        trusted), ``max_rhat``, ``rhat_log_lik``, ``divergences``, ``draws_per_chain`` and
        ``extensions`` (runs doubled), ``converged`` (eligible for ``best_k``),
        ``excluded_because``, ``diagnostics_ok`` (every gate, divergences and ESS included),
        ``seconds``, ``error``.

    Raises
    ------
    ValueError
        For bad ``ks``, ``n_jobs``, ``max_draws`` or structures (unknown, or
        both ``covariance_type`` and ``covariance_types``), or ADVI.
    """
    checked = check_X(X, n_components=1, missing=bayesgmm_kwargs.get("missing", "reject"))
    ks, settings, seeds = _sweep_settings(ks, n_jobs, max_draws, bayesgmm_kwargs)
    if client is not None and n_jobs != 1:
        raise ValueError(f"Pass either client= (the tasks run on its workers) or n_jobs="
                         f"{n_jobs}, not both.")
    sweep = Sweep(ks, _checked_structures(covariance_types, settings), settings, seeds)
    results = _run_all(_tasks(sweep, checked.values, checked.feature_names, max_draws, sparse),
                       n_jobs, progressbar, client)
    n_fits = len(sweep.ks) * len(sweep.structures)  # the sparse fits come last
    per_k = _kfold_for_all(results[:n_fits], checked.values, n_jobs, progressbar, client)
    sparse_fits = dict(zip(sweep.structures, results[n_fits:], strict=True)) if sparse else {}
    table, elpds = build_table(per_k, sparse_fits, sweep.several)
    chosen, rule = decide(table, elpds, se_rule)
    rule += untrusted_sparse_note(sparse_fits, max(sweep.ks), sweep.several)
    fits = {plain_key(key): result.fit for key, result in zip(table.index, per_k, strict=True)
            if result.fit is not None}
    best_covariance_type, best_k = sweep.structure_and_k(chosen)
    return KSelection(table, best_k, best_covariance_type, rule, fits,
                      *sparse_views(sparse_fits, sweep.several))
