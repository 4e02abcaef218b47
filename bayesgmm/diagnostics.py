"""Convergence diagnostics on relabelled draws, with a remedy for every failure.

Gates for NUTS (Vehtari et al. 2021; Betancourt 2017):

=====================  ===========================================  ===========
gate                   quantity                                     passes when
=====================  ===========================================  ===========
``rhat``               max rank-normalised R-hat, relabelled params  < 1.01
``ess_bulk``           min bulk ESS                                 >= 100 / chain
``ess_tail``           min tail ESS                                 >= 100 / chain
``rhat_log_lik``       R-hat of the total log-likelihood            < 1.01
``divergences``        divergent transitions                        == 0
``ebfmi``              min E-BFMI over chains                       >= 0.3
``modes``              chains whose mean log-likelihood differs     none
                       from the others beyond Monte Carlo noise
=====================  ===========================================  ===========

The total log-likelihood does not depend on labels, so its R-hat and the
per-chain means tell "chains in different modes" apart from mere label
permutations.  A chain is flagged when its mean differs from the median chain
mean by more than 4 combined Monte Carlo standard errors *and* by more than
1 nat (a practically relevant gap).

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

from bayesgmm.parameters import ModelParameters, parameter_matrix

__all__ = ["Diagnostics", "diagnose_nuts", "diagnose_advi"]

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
        lines = [f"Diagnostics ({status})", self.table.to_string()]
        lines += [f"- {remedy}" for remedy in self.remedies]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        remedies = "".join(f"<li>{r}</li>" for r in self.remedies)
        status = "all checks passed" if self.ok else "some checks failed"
        return f"<p><b>Diagnostics</b>: {status}</p>{self.table.to_html()}<ul>{remedies}</ul>"


def _row(value, threshold, ok, verdict_ok, verdict_bad):
    return {"value": value, "threshold": threshold, "ok": bool(ok),
            "verdict": verdict_ok if ok else verdict_bad}


def _chain_modes(total_log_lik: np.ndarray) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Chains whose mean total log-likelihood is off beyond Monte Carlo noise."""
    means = total_log_lik.mean(axis=1)
    errors = np.array([float(mcse(chain[None, :, None])[0]) for chain in total_log_lik])
    reference = int(np.argsort(means)[len(means) // 2])
    gap = np.abs(means - means[reference])
    z = gap / np.sqrt(errors**2 + errors[reference] ** 2)
    odd = [int(c) for c in np.flatnonzero((z > MODE_Z) & (gap > MODE_MIN_GAP))]
    return odd, means, errors


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
    """
    params = parameter_matrix(parameters, covariance_type)[1]
    chains = params.shape[0]
    ess_min = ESS_PER_CHAIN * chains
    multi = chains > 1
    max_rhat = float(np.nanmax(rhat(params))) if multi else float("nan")
    bulk = float(np.min(ess(params, method="bulk")))
    tail = float(np.min(ess(params, method="tail", prob=(0.05, 0.95))))
    log_lik_rhat = float(rhat(total_log_lik[..., None])[0]) if multi else float("nan")
    divergences = int(np.asarray(sample_stats["diverging"]).sum())
    if "energy" in sample_stats:
        energy = np.asarray(sample_stats["energy"])
        ebfmi = float(np.min(array_stats.bfmi(energy, chain_axis=0, draw_axis=1)))
    else:
        ebfmi = float("nan")
    odd, chain_means, chain_errors = _chain_modes(total_log_lik) if multi else ([], None, None)
    rows = {
        "rhat": _row(max_rhat, RHAT_MAX, not multi or max_rhat < RHAT_MAX,
                     "chains agree", "chains disagree"),
        "ess_bulk": _row(bulk, ess_min, bulk >= ess_min, "enough draws", "too few effective draws"),
        "ess_tail": _row(tail, ess_min, tail >= ess_min, "tails well explored",
                         "tails poorly explored"),
        "rhat_log_lik": _row(log_lik_rhat, RHAT_MAX, not multi or log_lik_rhat < RHAT_MAX,
                             "same fit quality in every chain",
                             "chains reach different fit quality"),
        "divergences": _row(divergences, 0, divergences == 0, "no divergences",
                            "divergent transitions"),
        "ebfmi": _row(ebfmi, EBFMI_MIN, not ebfmi < EBFMI_MIN, "energy well explored",
                      "energy poorly explored"),
        "modes": _row(len(odd), 0, not odd, "one mode", "chains in different modes"),
    }
    table = pd.DataFrame.from_dict(rows, orient="index")
    remedies = {
        "rhat": f"R-hat {max_rhat:.3f} on relabelled parameters is above 1.01: run longer "
                "(increase draws and tune), or check the 'modes' gate.",
        "ess_bulk": f"Bulk ESS {bulk:.0f} is below {ess_min}: increase draws.",
        "ess_tail": f"Tail ESS {tail:.0f} is below {ess_min}: increase draws.",
        "rhat_log_lik": f"R-hat of the log-likelihood is {log_lik_rhat:.3f}: the chains "
                        "explore different solutions, not just relabelled ones; increase "
                        "tune, or try a different number of components.",
        "divergences": f"{divergences} divergent transitions: raise target_accept (e.g. "
                       "0.95) or use tighter priors (smaller scale_scale, larger lkj_eta).",
        "ebfmi": f"E-BFMI {ebfmi:.2f} is below 0.3: increase tune, or use tighter priors.",
        "modes": f"Chains {odd} sit in a different mode (mean log-likelihood "
                 f"{np.round(chain_means, 1).tolist() if chain_means is not None else ''}); "
                 "the model may have more components than the data support (try a "
                 "smaller n_components), or discard those chains.",
    }
    details = {}
    if chain_means is not None:
        details = {"chain_mean_log_lik": chain_means.tolist(),
                   "chain_mcse_log_lik": chain_errors.tolist()}
    return Diagnostics(table, [remedies[g] for g in table.index[~table["ok"]]], details)


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
    finite = log_ratio[np.isfinite(log_ratio)]
    if finite.size < 2 or np.ptp(finite) == 0:
        khat = float("inf") if finite.size < 2 else 0.0
    else:
        khat = float(array_stats.psislw(-finite, r_eff=1.0)[1])
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
        "khat": f"Pareto k-hat {khat:.2f} of the importance ratios is above 0.7: the "
                "Gaussian approximation misses the posterior; use method='nuts'.",
        "elbo_converged": f"The ELBO still changed by {change:.2f} nats over the last 10% of "
                          "iterations: increase advi_iterations.",
    }
    return Diagnostics(table, [remedies[g] for g in table.index[~table["ok"]]],
                       {"elbo_final": float(last.mean()) if last.size else float("nan")})
