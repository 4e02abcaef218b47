"""Convergence diagnostics on relabelled draws, with a remedy for every failure.

Gates for NUTS (Vehtari et al. 2021; Betancourt 2017):

=====================  ===========================================  ===========
gate                   quantity                                     passes when
=====================  ===========================================  ===========
``rhat``               max rank-normalised R-hat, relabelled params  < 1.01
``ess_bulk``           min bulk ESS                                 >= 100 / chain
``ess_tail``           min tail ESS                                 >= 100 / chain
``rhat_log_lik``       R-hat of the total log-likelihood            < 1.01
``rhat_weights``       max R-hat of the weights sorted by size      < 1.01
``divergences``        divergent transitions                        == 0
``ebfmi``              min E-BFMI over chains                       >= 0.3
``modes``              chains whose mean log-likelihood differs     none
                       from the others beyond Monte Carlo noise
=====================  ===========================================  ===========

The total log-likelihood and the sorted weights do not depend on labels, so
their R-hats and the per-chain means tell "chains in different modes" apart
from mere label permutations, and their number does not grow with the
parameters (``compare_k`` rules on them).  With one chain, R-hat compares its
two halves and ``modes`` is "not assessed"; a gate that cannot be computed
never passes (``ok`` is False, ``assessed`` False).  A chain is flagged
when its mean differs from the median chain mean by more than 4 combined
Monte Carlo standard errors *and* by more than 1 nat (a practically relevant
gap).

For ADVI (one chain of independent draws) the gates are the Pareto k-hat of
the importance ratios ``p/q`` (Yao et al. 2018; < 0.7) and ELBO convergence
(the mean ELBO of the last 10% of iterations within 2 standard errors, or
1 nat, of the 10% before: a smaller drift changes no summary noticeably).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from arviz_stats import ess, mcse, rhat
from arviz_stats.base import array_stats

from bayesgmm._format import gate_table, gate_text
from bayesgmm.parameters import ModelParameters, parameter_matrix

__all__ = ["Diagnostics", "diagnose_advi", "diagnose_laplace", "diagnose_nuts", "importance_khat"]

RHAT_MAX = 1.01
ESS_PER_CHAIN = 100
EBFMI_MIN = 0.3
KHAT_MAX = 0.7
MODE_Z = 4.0
MODE_MIN_GAP = 1.0
ELBO_TOL = 1.0


@dataclass
class Diagnostics:
    """Result of :meth:`bayesgmm.BayesianGMM.diagnose`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per gate: ``value``, ``threshold``, ``ok``, ``verdict``.
    remedies : list of str
        One plain-language remedy line per failed gate.
    details : dict
        Extra numbers, e.g. per-chain mean log-likelihoods.
    """

    table: pd.DataFrame
    remedies: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether every gate passed."""
        return bool(self.table["ok"].all())

    @property
    def failed(self) -> list[str]:
        """Names of the failed gates."""
        return list(self.table.index[~self.table["ok"]])

    def __repr__(self) -> str:
        status = "all checks passed" if self.ok else f"FAILED: {', '.join(self.failed)}"
        lines = [f"Diagnostics ({status})", gate_table(self.table).to_string()]
        lines += [f"- {remedy}" for remedy in self.remedies]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        remedies = "".join(f"<li>{r}</li>" for r in self.remedies)
        status = "all checks passed" if self.ok else "some checks failed"
        table = gate_table(self.table).to_html()
        return f"<p><b>Diagnostics</b>: {status}</p>{table}<ul>{remedies}</ul>"


def _row(value, threshold, ok, verdict_ok, verdict_bad):
    return {"value": value, "threshold": threshold, "ok": bool(ok), "assessed": True,
            "verdict": verdict_ok if ok else verdict_bad}


def _not_assessed(threshold, reason):
    """A gate that could not be computed: never a pass."""
    return {"value": float("nan"), "threshold": threshold, "ok": False, "assessed": False,
            "verdict": f"not assessed: {reason}"}


def _as_chains(draws: np.ndarray) -> np.ndarray:
    """Draws as ``(chain, draw, ...)`` for R-hat; one chain is split into its two halves."""
    if draws.shape[0] > 1:
        return draws
    half = draws.shape[1] // 2
    return np.stack([draws[0, :half], draws[0, half:2 * half]])


def _max_rhat(draws: np.ndarray) -> float:
    """Max rank-normalised split R-hat over the last axis; NaN when a quantity never moved."""
    # A quantity constant within every chain has R-hat 0/0: ArviZ's division
    # warns, and NaN here makes the gate "not assessed" instead of a pass.
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.asarray(rhat(_as_chains(draws)), dtype=float)
    return float(values.max()) if np.all(np.isfinite(values)) else float("nan")


def _chain_modes(total_log_lik: np.ndarray) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Chains whose mean total log-likelihood is off beyond Monte Carlo noise."""
    means = total_log_lik.mean(axis=1)
    errors = np.array([float(mcse(chain[None, :, None])[0]) for chain in total_log_lik])
    reference = int(np.argsort(means)[len(means) // 2])
    gap = np.abs(means - means[reference])
    z = gap / np.sqrt(errors**2 + errors[reference] ** 2)
    odd = [int(c) for c in np.flatnonzero((z > MODE_Z) & (gap > MODE_MIN_GAP))]
    return odd, means, errors


def _rhat_row(value, split, verdict_ok, verdict_bad):
    if not np.isfinite(value):
        return _not_assessed(RHAT_MAX, "a quantity never moved within a chain")
    suffix = " (one chain: its halves compared)" if split else ""
    return _row(value, RHAT_MAX, value < RHAT_MAX, verdict_ok + suffix, verdict_bad + suffix)


def _nuts_rows(parameters, sample_stats, total_log_lik, covariance_type) -> dict:
    """Every NUTS gate's row (module docstring)."""
    params = parameter_matrix(parameters, covariance_type)[1]
    chains = params.shape[0]
    split = chains == 1
    ess_min = ESS_PER_CHAIN * chains
    with np.errstate(invalid="ignore", divide="ignore"):
        bulk = float(np.min(ess(params, method="bulk")))
        tail = float(np.min(ess(params, method="tail", prob=(0.05, 0.95))))
    divergences = int(np.asarray(sample_stats["diverging"]).sum())
    ordered_weights = np.sort(parameters.weights, axis=-1)
    rows = {
        "rhat": _rhat_row(_max_rhat(params), split, "chains agree", "chains disagree"),
        "ess_bulk": _row(bulk, ess_min, bulk >= ess_min, "enough draws", "too few effective draws"),
        "ess_tail": _row(tail, ess_min, tail >= ess_min, "tails well explored",
                         "tails poorly explored"),
        "rhat_log_lik": _rhat_row(_max_rhat(total_log_lik[..., None]), split,
                                  "same fit quality in every chain",
                                  "chains reach different fit quality"),
        "rhat_weights": _rhat_row(_max_rhat(ordered_weights), split,
                                  "same cluster sizes in every chain",
                                  "chains find different cluster sizes")
        if ordered_weights.shape[-1] > 1 else
        _row(float("nan"), RHAT_MAX, True, "one component: its weight is 1", ""),
        "divergences": _row(divergences, 0, divergences == 0, "no divergences",
                            "divergent transitions"),
    }
    if "energy" in sample_stats:
        energy = np.asarray(sample_stats["energy"])
        ebfmi = float(np.min(array_stats.bfmi(energy, chain_axis=0, draw_axis=1)))
        rows["ebfmi"] = _row(ebfmi, EBFMI_MIN, ebfmi >= EBFMI_MIN, "energy well explored",
                             "energy poorly explored")
    else:
        rows["ebfmi"] = _not_assessed(EBFMI_MIN, "the sampler reported no energy")
    if split:
        rows["modes"] = _not_assessed(0, "one chain cannot show another mode")
    else:
        odd = _chain_modes(total_log_lik)[0]
        rows["modes"] = _row(len(odd), 0, not odd, "one mode", "chains in different modes")
    return rows


def _nuts_remedies(table: pd.DataFrame, details: dict) -> list[str]:
    value = {gate: gate_text(table.loc[gate, "value"], table.loc[gate, "threshold"])
             for gate in table.index}
    means = np.round(details.get("chain_mean_log_lik", []), 1).tolist()
    remedies = {
        "rhat": f"R-hat {value['rhat']} on relabelled parameters is above 1.01: run longer "
                "(increase draws and tune), or check the 'modes' gate.",
        "ess_bulk": f"Bulk ESS {value['ess_bulk']} is below "
                    f"{table.loc['ess_bulk', 'threshold']:.0f}: increase draws.",
        "ess_tail": f"Tail ESS {value['ess_tail']} is below "
                    f"{table.loc['ess_tail', 'threshold']:.0f}: increase draws.",
        "rhat_log_lik": f"R-hat of the log-likelihood is {value['rhat_log_lik']}: the chains "
                        "explore different solutions, not just relabelled ones; increase "
                        "tune, or try a different number of components.",
        "rhat_weights": f"R-hat of the ordered weights is {value['rhat_weights']}: the chains "
                        "disagree on the cluster sizes; increase draws and tune.",
        "divergences": f"{value['divergences']} divergent transitions: raise target_accept "
                       "(e.g. 0.95) or use tighter priors (smaller scale_scale, larger lkj_eta).",
        "ebfmi": f"E-BFMI {value['ebfmi']} is below 0.3: increase tune, or use tighter priors.",
        "modes": f"Chains {details.get('odd_chains')} sit in a different mode (mean "
                 f"log-likelihood by chain {means}); the model may have more components "
                 "than the data support "
                 "(try a smaller n_components), or discard those chains.",
    }
    lines = []
    for gate in table.index[~table["ok"]]:
        if table.loc[gate, "assessed"]:
            lines.append(remedies[gate])
        else:
            lines.append(f"Gate '{gate}' was {table.loc[gate, 'verdict']}; "
                         + ("run chains >= 2." if gate == "modes" else "inspect the draws."))
    return lines


def diagnose_nuts(
    parameters: ModelParameters, sample_stats, total_log_lik: np.ndarray, covariance_type: str
) -> Diagnostics:
    """Diagnostics of NUTS draws (see the module docstring).

    Parameters
    ----------
    parameters : ModelParameters
        Relabelled draws with leading axes ``(chain, draw)``; flattened to
        named columns by :func:`bayesgmm.parameters.parameter_matrix`.
    sample_stats : xarray.Dataset
        Must hold ``diverging``; ``energy`` for E-BFMI.
    total_log_lik : ndarray of shape (chain, draw)
        Sum of the pointwise log-likelihood.
    covariance_type : str

    Returns
    -------
    Diagnostics
        A gate that cannot be computed (``modes`` with one chain, an R-hat
        of draws that never moved) is "not assessed" and never passes.
    """
    rows = _nuts_rows(parameters, sample_stats, total_log_lik, covariance_type)
    table = pd.DataFrame.from_dict(rows, orient="index")
    details = {}
    if total_log_lik.shape[0] > 1:
        odd, chain_means, chain_errors = _chain_modes(total_log_lik)
        details = {"odd_chains": odd, "chain_mean_log_lik": chain_means.tolist(),
                   "chain_mcse_log_lik": chain_errors.tolist()}
    return Diagnostics(table, _nuts_remedies(table, details), details)


def importance_khat(log_ratio: np.ndarray) -> float:
    """Pareto k-hat of importance ratios ``log p - log q`` (Yao et al. 2018).

    Non-finite ratios are dropped; fewer than 2 left give ``inf``, all equal
    give 0 (the approximation is exact up to a constant).
    """
    finite = log_ratio[np.isfinite(log_ratio)]
    if finite.size < 2 or np.ptp(finite) == 0:
        return float("inf") if finite.size < 2 else 0.0
    return float(array_stats.psislw(-finite, r_eff=1.0)[1])


def diagnose_laplace(log_ratio: np.ndarray) -> Diagnostics:
    """Diagnostics of a Laplace fit: Pareto k-hat of the full-data importance ratios.

    Parameters
    ----------
    log_ratio : ndarray of shape (n_check_draws,)
        ``log p(theta) - log q(theta)`` at draws from the Gaussian
        (:data:`bayesgmm.laplace.IMPORTANCE_DRAWS` of them).

    Returns
    -------
    Diagnostics
    """
    khat = importance_khat(log_ratio)
    table = pd.DataFrame.from_dict(
        {"khat": _row(khat, KHAT_MAX, khat < KHAT_MAX, "approximation usable",
                      "approximation unreliable")}, orient="index")
    remedies = [] if khat < KHAT_MAX else [
        f"Pareto k-hat {gate_text(khat, KHAT_MAX)} of the importance ratios is above 0.7: "
        "the posterior is not "
        "close to Gaussian at its mode (K too large, or too few rows per component); use "
        "method='nuts'."]
    return Diagnostics(table, remedies, {"n_check_draws": int(log_ratio.size)})


def diagnose_advi(elbo: np.ndarray, log_ratio: np.ndarray) -> Diagnostics:
    """Diagnostics of a variational fit (see the module docstring).

    Parameters
    ----------
    elbo : ndarray of shape (n_iter,)
        ELBO trace (NaN for skipped iterations).
    log_ratio : ndarray of shape (n_draws,)
        ``log p(theta) - log q(theta)`` at draws from ``q``.

    Returns
    -------
    Diagnostics
    """
    khat = importance_khat(log_ratio)
    trace = elbo[np.isfinite(elbo)]
    window = max(1, trace.size // 10)
    last, before = trace[-window:], trace[-2 * window:-window]
    if before.size:
        change = float(last.mean() - before.mean())
        noise = float(np.sqrt(last.var() / last.size + before.var() / before.size))
        converged = abs(change) <= max(2 * noise, ELBO_TOL)
    else:
        change, converged = float("nan"), False
    rows = {
        "khat": _row(khat, KHAT_MAX, khat < KHAT_MAX, "approximation usable",
                     "approximation unreliable"),
        "elbo_converged": _row(change, ELBO_TOL, converged, "ELBO stable", "ELBO still moving"),
    }
    table = pd.DataFrame.from_dict(rows, orient="index")
    remedies = {
        "khat": f"Pareto k-hat {gate_text(khat, KHAT_MAX)} of the importance ratios is "
                "above 0.7: the "
                "Gaussian approximation misses the posterior; use method='nuts'.",
        "elbo_converged": f"The ELBO still changed by {change:.2f} nats over the last 10% of "
                          "iterations: increase advi_iterations.",
    }
    return Diagnostics(table, [remedies[g] for g in table.index[~table["ok"]]],
                       {"elbo_final": float(last.mean()) if last.size else float("nan")})
