"""The work of ``compare_k`` for one (structure, K): fit until the noise settles, then measure.

Each function here runs in a worker process (see ``bayesgmm.selection``) and
returns a typed record; a K the data cannot support ends in one of
:data:`FIT_FAILURES` and becomes that K's row, never a lost sweep.

Extension rule: a fit whose only failed gates are :data:`NOISE_GATES`
(R-hat, bulk/tail ESS, R-hat of the ordered weights or of the
log-likelihood: quantities that more draws settle) while no chain sits in
another mode and no transition diverged is refitted with twice the draws and
tune, up to ``max_draws`` per chain.  (A short run can miss the
log-likelihood R-hat by noise alone; a real second solution also shows in
the ``modes`` gate, which stops the extension.)  Eligibility for ``best_k`` then rests on
:data:`ELIGIBILITY_GATES` only: label-invariant quantities whose number does
not grow with K, so a larger K is not held to a maximum over more noise.
"""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import asdict, dataclass, replace
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from bayesgmm.bayes import BayesianGMM, diagnostics_reported
from bayesgmm.em import reference_em
from bayesgmm.loo import LooOutcome, kfold_loo, psis_loo
from bayesgmm.noise import noise_region
from bayesgmm.parameters import Layout
from bayesgmm.priors import GMMPriors

__all__ = [
    "ELIGIBILITY_GATES",
    "FIT_FAILURES",
    "NOISE_GATES",
    "SPARSE_CONCENTRATION",
    "KFit",
    "KRow",
    "SparseFit",
    "eligibility",
    "fit_one_k",
    "fit_sparse",
    "kfold_one_k",
]

FIT_FAILURES = (ValueError,)
"""The failures one K may end in without stopping the sweep (its row shows the message).

``ValueError`` covers a K the data cannot support: too few rows for K
(``DataValidationError``), a non-finite density at the EM start, an EM
covariance that is not positive definite (``CovarianceError``), a singular
matrix (``numpy.linalg.LinAlgError``), ArviZ's "All tail values are the
same" on degenerate draws, and a sampler that stopped with an internal error
(``bayesgmm.inference.SamplerFailure``).  Anything else is a bug and propagates.
"""

SPARSE_CONCENTRATION = 0.01
"""Dirichlet concentration of the sparse, overfitted mixture."""

ELIGIBILITY_GATES = ("rhat_log_lik", "rhat_weights", "modes")
NOISE_GATES = ("rhat", "ess_bulk", "ess_tail", "rhat_weights", "rhat_log_lik")
DEFAULT_DRAWS = 1000


@dataclass(frozen=True)
class KRow:
    """What ``compare_k`` measured for one K, besides ``az.compare``'s columns.

    ``covariance_type`` and ``n_parameters`` (free parameters of the
    Bayesian model, known before fitting) name the model.  A K that ended in
    one of :data:`FIT_FAILURES` keeps NaN numbers and the message in
    ``error``.
    """

    K: int
    covariance_type: str
    n_parameters: int
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
    rhat_log_lik: float = math.nan
    divergences: float = math.nan
    draws_per_chain: float = math.nan
    extensions: float = math.nan
    converged: bool = False
    excluded_because: str = ""
    diagnostics_ok: bool = False
    seconds: float = math.nan
    error: str = ""


class KFit(NamedTuple):
    """One K of the sweep: its row, and the fit and LOO outcome when it succeeded."""

    row: KRow
    fit: BayesianGMM | None
    loo: LooOutcome | None


class SparseFit(NamedTuple):
    """The overfitted sparse mixture: occupancy probabilities, its diagnostics, or the failure."""

    occupied: pd.Series | None
    diagnostics: Any | None
    error: str


def eligibility(diagnostics) -> str:
    """Why a fit is not eligible for ``best_k`` ("" when it is): its failed eligibility gates."""
    table = diagnostics.table
    failed = [gate for gate in ELIGIBILITY_GATES
              if gate in table.index and not table.loc[gate, "ok"]]
    return ", ".join(f"{gate} {table.loc[gate, 'verdict']}" for gate in failed)


def _noise_only(diagnostics) -> bool:
    failed = set(diagnostics.failed)
    return bool(failed) and failed <= set(NOISE_GATES)


def fit_until_settled(
    frame: pd.DataFrame, k: int, settings: dict, seed: int, max_draws: int
) -> tuple[BayesianGMM, int]:
    """Fit K components; refit with twice the draws and tune while only noise gates fail.

    Returns
    -------
    fit : BayesianGMM
    extensions : int
        How many times the run was doubled.
    """
    draws = int(settings.get("draws", DEFAULT_DRAWS))
    tune = int(settings.get("tune", DEFAULT_DRAWS))
    extensions = 0
    while True:
        model = BayesianGMM(k, **{**settings, "draws": draws, "tune": tune,
                                  "random_state": seed})
        with diagnostics_reported():  # the row's gates columns report them
            fit = model.fit(frame)
        if not _noise_only(fit.diagnostics_) or 2 * draws > max_draws:
            return fit, extensions
        draws, tune, extensions = 2 * draws, 2 * tune, extensions + 1


def _measure(
    named: KRow, values, names, settings, seed, max_draws
) -> tuple[KRow, BayesianGMM, Any]:
    """Fit the model ``named`` (its K and covariance_type) and fill in its row."""
    k = named.K
    fit, extensions = fit_until_settled(pd.DataFrame(values, columns=names), k, settings,
                                        seed, max_draws)
    outcome = psis_loo(fit, values)  # streamed: the fit need not keep its log-likelihood
    information = outcome.waic
    # The classical criteria come from EM with the same model: structure and noise.
    noise_volume = (float(np.exp(noise_region(values, fit.noise_volume).log_volume))
                    if fit.noise else None)
    em = reference_em(values, k, fit.covariance_type, random_state=seed,
                      noise_volume=noise_volume, missing=fit.missing)
    gates = fit.diagnostics_.table["value"]
    excluded = eligibility(fit.diagnostics_)
    row = replace(
        named, loo_method=outcome.method, max_khat=outcome.max_khat,
        share_high_khat=outcome.n_high_khat / values.shape[0],
        n_high_khat_psis=outcome.n_high_khat_psis, loo_caveat=outcome.caveat,
        elpd_waic=information.elpd_waic, waic_se=information.se, p_waic=information.p_waic,
        waic_n_high_variance=information.n_high_variance,
        bic_lower_is_better=em.bic(values), aic_lower_is_better=em.aic(values),
        icl_lower_is_better=em.icl(values),
        max_rhat=float(gates.get("rhat", np.nan)),
        rhat_log_lik=float(gates.get("rhat_log_lik", np.nan)),
        divergences=int(gates.get("divergences", 0)), draws_per_chain=fit.draws,
        extensions=extensions, converged=not excluded, excluded_because=excluded,
        diagnostics_ok=fit.diagnostics_.ok,
    )
    return row, fit, outcome


def fit_one_k(values, names, k, settings, seed, max_draws) -> KFit:
    """One K of the sweep; a failure becomes the row's error.

    ``settings`` name the ``covariance_type`` (``compare_k`` always sets it).
    """
    began = time.perf_counter()
    structure = settings["covariance_type"]
    # A noise component adds its weight; the value of its density does not count.
    noise_log_density = 0.0 if settings.get("noise", False) else None
    named = KRow(K=k, covariance_type=structure,
                 n_parameters=Layout(k, values.shape[1], structure, noise_log_density).size)
    try:
        row, fit, outcome = _measure(named, values, names, settings, seed, max_draws)
    except FIT_FAILURES as error:  # one K failing must not lose the others
        detail = "".join(traceback.format_exception_only(type(error), error)).strip()
        return KFit(replace(named, seconds=time.perf_counter() - began, error=detail), None, None)
    return KFit(replace(row, seconds=time.perf_counter() - began), fit, outcome)


def kfold_one_k(result: KFit, values, progressbar: bool = False) -> KFit:
    """Replace one K's PSIS estimate by K-fold cross-validation (refits checked).

    ``progressbar`` shows the refits done (:func:`bayesgmm.loo.kfold_loo`).
    """
    began = time.perf_counter()
    outcome = kfold_loo(result.fit, values, result.loo, progressbar=progressbar)
    row = KRow(**{**asdict(result.row), "loo_method": outcome.method,
                  "max_khat": outcome.max_khat, "share_high_khat": 0.0,
                  "loo_caveat": outcome.caveat,
                  "seconds": result.row.seconds + time.perf_counter() - began})
    return KFit(row, result.fit, outcome)


def fit_sparse(values, names, k_max, settings, seed) -> SparseFit:
    """The overfitted sparse mixture, its occupied-component distribution and diagnostics."""
    priors = settings.get("priors") or GMMPriors()
    sparse = GMMPriors(**{**priors.to_dict(), "weight_concentration": SPARSE_CONCENTRATION})
    try:
        with diagnostics_reported():  # shown in KSelection.sparse_diagnostics
            fit = BayesianGMM(k_max, **{**settings, "priors": sparse, "random_state": seed}).fit(
                pd.DataFrame(values, columns=names))
    except FIT_FAILURES as error:
        return SparseFit(None, None, f"{type(error).__name__}: {error}")
    return SparseFit(fit.occupied_components(random_state=seed), fit.diagnostics_, "")

