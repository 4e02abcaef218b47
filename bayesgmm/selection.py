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

import multiprocessing
import time
import traceback
import warnings
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import arviz as az
import numpy as np
import pandas as pd
from rich.progress import Progress

from bayesgmm._checks import check_X
from bayesgmm.bayes import BayesianGMM
from bayesgmm.em import GaussianMixtureEM, as_generator
from bayesgmm.loo import reliable_loo, waic
from bayesgmm.priors import GMMPriors

__all__ = ["KSelection", "compare_k", "SPARSE_CONCENTRATION"]

SPARSE_CONCENTRATION = 0.01


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


def _fit_one(values, names, k, settings, seed) -> dict[str, Any]:
    """Fit one K and compute everything its table row needs (runs in a worker)."""
    began = time.perf_counter()
    row: dict[str, Any] = {"K": k}
    try:
        frame = pd.DataFrame(values, columns=names)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = BayesianGMM(k, **{**settings, "random_state": seed}).fit(frame)
            converged = _converged(fit.diagnostics_)
            # K-fold costs 10 refits; it is not spent on a fit whose chains did
            # not converge (that K is not eligible for best_k anyway).
            outcome = reliable_loo(fit, values, allow_kfold=converged)
        log_lik = fit.idata_.log_likelihood["x"].values
        information = waic(log_lik.reshape(-1, log_lik.shape[-1]))
        em = GaussianMixtureEM(
            k, covariance_type=fit.covariance_type, n_init=10, tol=1e-6, max_iter=1000,
            random_state=seed,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            em.fit(values)
        table = fit.diagnostics_.table["value"]
        row.update(
            loo_method=outcome.method,
            max_khat=outcome.max_khat,
            share_high_khat=outcome.n_high_khat / values.shape[0],
            n_high_khat_psis=outcome.n_high_khat_psis,
            loo_caveat=outcome.caveat,
            elpd_waic=information["elpd_waic"],
            waic_se=information["se"],
            p_waic=information["p_waic"],
            waic_n_high_variance=information["n_high_variance"],
            bic_lower_is_better=em.bic(values),
            aic_lower_is_better=em.aic(values),
            icl_lower_is_better=em.icl(values),
            max_rhat=float(table.get("rhat", np.nan)),
            divergences=int(table.get("divergences", 0)),
            converged=converged,
            diagnostics_ok=fit.diagnostics_.ok,
            error="",
        )
        return {"row": row, "fit": fit, "elpd": outcome.elpd,
                "seconds": time.perf_counter() - began}
    except Exception as error:  # one K failing must not lose the others
        detail = "".join(traceback.format_exception_only(type(error), error)).strip()
        row["error"] = detail
        return {"row": row, "fit": None, "elpd": None, "seconds": time.perf_counter() - began}


def _run_all(tasks, n_jobs, show_progress):
    """Run ``(label, callable, args)`` tasks, in processes when ``n_jobs > 1``."""
    results = {}
    with Progress(disable=not show_progress, transient=True) as progress:
        bar = progress.add_task("compare_k", total=len(tasks))
        if n_jobs == 1:
            for label, function, args in tasks:
                progress.update(bar, description=f"fitting {label}")
                results[label] = function(*args)
                progress.advance(bar)
            return results
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=n_jobs, mp_context=context) as pool:
            pending = {pool.submit(function, *args): label for label, function, args in tasks}
            while pending:
                running = ", ".join(sorted(pending.values()))
                progress.update(bar, description=f"running {running}")
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    label = pending.pop(future)
                    results[label] = future.result()
                    progress.advance(bar)
    return results


def _sparse_fit(values, names, k_max, settings, seed) -> dict[str, Any]:
    """The overfitted sparse mixture and its occupied-component distribution."""
    try:
        priors = settings.get("priors") or GMMPriors()
        sparse = GMMPriors(**{**priors.to_dict(), "weight_concentration": SPARSE_CONCENTRATION})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = BayesianGMM(k_max, **{**settings, "priors": sparse, "random_state": seed}).fit(
                pd.DataFrame(values, columns=names)
            )
        return {"occupied": fit.occupied_components(random_state=seed), "error": ""}
    except Exception as error:
        return {"occupied": None, "error": f"{type(error).__name__}: {error}"}


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
    tasks = [(f"K={k}", _fit_one, (*args, k, settings, seed)) for k, seed in zip(ks, seeds)]
    if sparse:
        tasks.append(("sparse", _sparse_fit, (*args, max(ks), settings, seeds[-1])))
    results = _run_all(tasks, n_jobs, progressbar)

    rows = [results[f"K={k}"]["row"] | {"seconds": results[f"K={k}"]["seconds"]} for k in ks]
    table = pd.DataFrame(rows).set_index("K")
    elpds = {k: results[f"K={k}"]["elpd"] for k in ks if results[f"K={k}"]["elpd"] is not None}
    comparison_columns = ["rank", "elpd_loo", "se", "elpd_diff", "dse", "stacking_weight", "p_loo"]
    if elpds:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            comparison = az.compare(elpds, method="stacking", round_to="none")
        comparison = comparison.rename(columns={"elpd": "elpd_loo", "weight": "stacking_weight",
                                                "p": "p_loo"})
        table = comparison[comparison_columns].join(table, how="right")
    else:
        table = pd.DataFrame(columns=comparison_columns, index=table.index).join(table)
    occupied = None
    if sparse:
        occupied = results["sparse"]["occupied"]
        table["p_occupied"] = [
            float(occupied.get(k, 0.0)) if occupied is not None else np.nan for k in table.index
        ]
    table = table.sort_index()
    best_k, rule = _decide(table, elpds, se_rule)
    fits = {k: results[f"K={k}"]["fit"] for k in ks if results[f"K={k}"]["fit"] is not None}
    return KSelection(table, best_k, rule, fits, occupied)
