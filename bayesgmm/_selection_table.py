"""The table of :func:`bayesgmm.compare_k` and the rule that reads it (no sampling here).

Pure functions on the sweep's typed records (:class:`bayesgmm.ksweep.KFit`,
:class:`bayesgmm.ksweep.SparseFit`): :func:`build_table` assembles one row
per fit, with ``az.compare`` run once over the eligible fits of every
structure, and :func:`decide` applies the one-standard-error rule described
in :mod:`bayesgmm.selection`.
"""

from __future__ import annotations

from dataclasses import asdict

import arviz as az
import numpy as np
import pandas as pd

from bayesgmm.diagnostics import Diagnostics
from bayesgmm.ksweep import KFit, SparseFit, eligibility
from bayesgmm.loo import reported_arviz_warnings

__all__ = [
    "COMPARISON_COLUMNS",
    "STRUCTURE_INDEX",
    "FitKey",
    "build_table",
    "decide",
    "fit_label",
    "plain_key",
    "sparse_views",
    "untrusted_sparse_note",
]

COMPARISON_COLUMNS = ("rank", "elpd_diff", "dse", "stacking_weight", "p_worse", "diag_diff",
                      "diag_elpd")
"""Columns that come from ``az.compare`` on the eligible fits."""

STRUCTURE_INDEX = ("covariance_type", "K")
"""Index levels of the table when several covariance structures are compared."""

MODEL_COLUMNS = ("covariance_type", "n_parameters")
"""Columns that name the model; with one structure the table leaves them out, as K alone does."""

FitKey = int | tuple[str, int]
"""A fit's place in the table: K, or (covariance_type, K) with several structures."""


def fit_label(key: FitKey) -> str:
    """A fit's name in the rule: ``K=3``, or ``(tied, K=3)`` with several structures."""
    return f"({key[0]}, K={key[1]})" if isinstance(key, tuple) else f"K={key}"


def plain_key(key) -> FitKey:
    """An index entry as the plain Python key of ``KSelection.fits``."""
    return (str(key[0]), int(key[1])) if isinstance(key, tuple) else int(key)


def difference_se(elpd_a, elpd_b) -> float:
    """Standard error of the elpd difference of two models, from pointwise values."""
    difference = np.asarray(elpd_a.elpd_i).ravel() - np.asarray(elpd_b.elpd_i).ravel()
    return float(np.sqrt(difference.size * difference.var()))


def _eligible_fits(usable: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The fits the rule chooses among, and a note on those left out (or on the fallback)."""
    eligible = usable[usable["converged"].astype(bool)]
    if eligible.empty:
        return usable, (" (no fit passed the label-invariant gates, so all were considered; "
                        "treat with care: the table ranks none of them)")
    if len(eligible) == len(usable):
        return eligible, ""
    why = usable.get("excluded_because", pd.Series("", index=usable.index))
    reasons = "; ".join(f"{fit_label(key)}: {why[key] or 'label-invariant gates failed'}"
                        for key in usable.index if key not in eligible.index)
    return eligible, f"; not eligible ({reasons})"


def decide(table: pd.DataFrame, elpds: dict, se_rule: float) -> tuple[FitKey | None, str]:
    """The one-SE rule among eligible fits (:mod:`bayesgmm.selection`), with the numbers in words.

    The size of a model is its ``n_parameters`` when the table compares
    several structures (a (covariance_type, K) index), else its K (one
    structure: the count grows with K).  Returns the chosen index entry.
    """
    several = table.index.nlevels > 1
    usable = table.dropna(subset=["elpd_loo"])
    if usable.empty:
        return None, f"every {'fit' if several else 'K'} failed; see the error column"
    eligible, note = _eligible_fits(usable)
    best = eligible["elpd_loo"].idxmax()
    gaps = {key: eligible.loc[best, "elpd_loo"] - eligible.loc[key, "elpd_loo"]
            for key in eligible.index}
    errors = {key: difference_se(elpds[best], elpds[key]) if key != best else 0.0
              for key in eligible.index}
    size = (eligible["n_parameters"] if several
            else pd.Series(eligible.index, index=eligible.index))
    chosen = min((key for key in eligible.index if gaps[key] <= se_rule * errors[key]),
                 key=lambda key: (size[key], gaps[key]))
    among = " among the eligible fits" if len(eligible) < len(usable) else ""
    extended = usable[usable.get("extensions", pd.Series(0, index=usable.index)).fillna(0) > 0]
    runs = "".join(f"; {fit_label(key)} was run longer ({int(row['draws_per_chain'])} draws "
                   "per chain)" for key, row in extended.iterrows())
    smallest = "fewest free parameters" if several else "smallest K"
    count = f", with {int(size[chosen])} free parameters," if several else ""
    rule = (f"{smallest} with elpd within {se_rule:g} SE of the best: {fit_label(best)} has the "
            f"highest elpd{among}; {fit_label(chosen)}{count} is {gaps[chosen]:.1f} below it "
            f"(SE of the difference {errors[chosen]:.1f}){note}{runs}")
    return plain_key(chosen), rule


def _trusted_occupancy(sparse: SparseFit) -> pd.Series | None:
    """The sparse fit's occupancy probabilities when it passed its gates, else None."""
    if sparse.occupied is None or eligibility(sparse.diagnostics):
        return None
    return sparse.occupied


def _occupied_probability(occupied: pd.Series | None, k: int) -> float:
    """Probability that exactly ``k`` components are occupied; NaN without a trusted fit."""
    return np.nan if occupied is None else float(occupied.get(k, 0.0))


def _comparison(ranked: dict, index: pd.Index) -> pd.DataFrame:
    """``az.compare``'s columns for the ranked fits, on the table's index (NaN elsewhere)."""
    if not ranked:
        return pd.DataFrame(columns=list(COMPARISON_COLUMNS), index=index)
    with reported_arviz_warnings():
        comparison = az.compare({fit_label(key): elpd for key, elpd in ranked.items()},
                                method="stacking", round_to="none")
    comparison = comparison.rename(columns={"weight": "stacking_weight"})
    return (comparison[list(COMPARISON_COLUMNS)]
            .reindex([fit_label(key) for key in index]).set_axis(index))


def build_table(
    per_k: list[KFit], sparse: dict[str, SparseFit], several: bool
) -> tuple[pd.DataFrame, dict]:
    """The table (by K, or by (covariance_type, K) when ``several``) and the elpds it rests on.

    ``az.compare`` (ranks, differences, stacking weights, ``p_worse`` and
    its diagnostics) runs once on the eligible fits only; the other rows
    keep their own elpd and say in ``excluded_because`` why they are out.
    ``sparse`` holds the sparse fit of each structure (empty without one).
    """
    rows = pd.DataFrame([asdict(result.row) for result in per_k])
    table = (rows.set_index(list(STRUCTURE_INDEX)) if several
             else rows.set_index("K").drop(columns=list(MODEL_COLUMNS)))
    elpds = {key: result.loo.elpd for key, result in zip(table.index, per_k, strict=True)
             if result.loo is not None}
    for column, attribute in (("elpd_loo", "elpd"), ("se", "se"), ("p_loo", "p")):
        table[column] = [float(getattr(elpds[key], attribute)) if key in elpds else np.nan
                         for key in table.index]
    ranked = {key: elpd for key, elpd in elpds.items() if table.loc[key, "converged"]}
    table = _comparison(ranked, table.index).join(table)
    if sparse:
        occupancy = {structure: _trusted_occupancy(fit) for structure, fit in sparse.items()}
        table["p_occupied"] = [_occupied_probability(occupancy[result.row.covariance_type],
                                                     result.row.K) for result in per_k]
    return table, elpds


def untrusted_sparse_note(sparse: dict[str, SparseFit], k_max: int, several: bool) -> str:
    """Why ``p_occupied`` is blank, for each structure whose sparse fit is not trusted."""
    notes = []
    for structure, fit in sparse.items():
        if _trusted_occupancy(fit) is None:
            reason = fit.error or eligibility(fit.diagnostics)
            where = f" for {structure}" if several else ""
            name = fit_label((structure, k_max) if several else k_max)
            notes.append(f"; p_occupied is blank{where}: the sparse {name} fit is not trusted "
                         f"({reason})")
    return "".join(notes)


def sparse_views(
    sparse: dict[str, SparseFit], several: bool
) -> tuple[pd.Series | None, Diagnostics | dict[str, Diagnostics] | None]:
    """``KSelection.occupied`` and ``sparse_diagnostics``: one fit's, or keyed by structure."""
    if not sparse:
        return None, None
    if not several:
        (fit,) = sparse.values()
        return fit.occupied, fit.diagnostics
    occupied = {structure: fit.occupied for structure, fit in sparse.items()
                if fit.occupied is not None}
    return (pd.concat(occupied, names=["covariance_type"]) if occupied else None,
            {structure: fit.diagnostics for structure, fit in sparse.items()
             if fit.diagnostics is not None})
