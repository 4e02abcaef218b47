"""Markdown reports with figures for fitted models and K comparisons.

A report is a folder: ``report.md`` plus PNG figures next to it, so it reads
well on GitHub and in any Markdown viewer.  Sections: data summary, K
comparison (when there is one), the chosen model's parameters with
intervals, diagnostics with plain-language verdicts, figures.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bayesgmm import plots
from bayesgmm._format import format_value, gate_table
from bayesgmm._workload import LOG_LIKELIHOOD_BUDGET
from bayesgmm.inference import NUTS_METHODS
from bayesgmm.parameters import parameter_matrix
from bayesgmm.posterior import parameters_from_posterior, stores_pointwise
from bayesgmm.predictive import CHECK_DRAWS, predictive_check_tree
from bayesgmm.selection import REPORT_COLUMNS

__all__ = ["data_summary", "format_value", "markdown_table", "parameter_table", "write_report"]

def data_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Count, mean, sd, min and max of every column."""
    return frame.describe().T[["count", "mean", "std", "min", "max"]]


def parameter_table(model, interval: float | None = None) -> pd.DataFrame:
    """Posterior mean, sd and equal-tailed interval of every parameter.

    Parameters
    ----------
    model : BayesianGMM
    interval : float, optional
        Defaults to the model's ``interval``.

    Returns
    -------
    pandas.DataFrame
        Rows like ``means[1, waiting]``; correlation rows only below the
        diagonal.
    """
    interval = model.interval if interval is None else interval
    tails = [(1 - interval) / 2, (1 + interval) / 2]
    parameters = parameters_from_posterior(model.idata_.posterior.to_dataset())
    names, draws = parameter_matrix(parameters, model.covariance_type,
                                    list(model.feature_names_in_))
    lower, upper = np.quantile(draws, tails, axis=0)
    return pd.DataFrame(
        {"mean": draws.mean(axis=0), "sd": draws.std(axis=0),
         f"{interval:.0%} lower": lower, f"{interval:.0%} upper": upper},
        index=pd.Index(names, name="parameter"),
    )


def markdown_table(frame: pd.DataFrame, digits: int = 3) -> str:
    """A DataFrame as a Markdown table with readable numbers."""
    def cell(value):
        return format_value(value, digits)

    # A MultiIndex, e.g. (covariance_type, K), gets one column per level.
    names = [name or "" for name in frame.index.names]
    header = "| " + " | ".join(names + list(map(str, frame.columns))) + " |"
    lines = [header, "|" + "---|" * (len(frame.columns) + len(names))]
    for index, row in frame.iterrows():
        keys = index if isinstance(index, tuple) else (index,)
        lines.append("| " + " | ".join([str(k) for k in keys] + [cell(v) for v in row]) + " |")
    return "\n".join(lines)


def _save(figure, path: Path) -> str:
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
    return path.name


def _figure_makers(model, selection, out: Path):
    """(caption, file name, callable that draws and saves the figure)."""
    def save_axes(draw, name):
        return lambda: _save(np.atleast_1d(draw())[0].figure, out / name)

    def save_collection(function, name):
        def run():
            function(model).savefig(out / name, dpi=90, bbox_inches="tight")
            plt.close("all")
            return name
        return run

    makers = []
    if model.idata_.posterior.sizes["feature"] == 1:
        makers.append(("Posterior-predictive density with credible band", "density.png",
                       save_axes(lambda: plots.plot_density_1d(model), "density.png")))
    else:
        makers.append(("Clusters, posterior covariance ellipses and uncertain points",
                       "clusters.png", save_axes(lambda: plots.plot_clusters(model),
                                                 "clusters.png")))
    makers.append(("Membership probabilities of the least certain points",
                   "membership_intervals.png",
                   save_axes(lambda: plots.plot_membership_intervals(model),
                             "membership_intervals.png")))
    if selection is not None and selection.table["elpd_loo"].notna().any():
        makers.append(("Choosing K: elpd and BIC", "k_selection.png",
                       save_axes(selection.plot, "k_selection.png")))
    makers.append(("Posterior predictive check: the data's distribution (black) among "
                   f"{CHECK_DRAWS} replicates of it", "ppc.png",
                   save_collection(_plot_predictive_check, "ppc.png")))
    if model.idata_.attrs["method"] in NUTS_METHODS:
        makers.append(("Rank plots of the relabelled draws", "rank.png",
                       save_collection(plots.plot_rank, "rank.png")))
        makers.append(("Trace plots of the relabelled draws", "trace.png",
                       save_collection(plots.plot_trace, "trace.png")))
    return makers


def _plot_predictive_check(model):
    """``az.plot_ppc_dist`` on :func:`bayesgmm.predictive.predictive_check_tree`."""
    import arviz as az

    rng = np.random.default_rng(0)  # a figure: the same picture every time
    return az.plot_ppc_dist(predictive_check_tree(model.idata_, model._parameters, rng),
                            cols=["feature"])  # one panel per feature, not all pooled


def _figure_lines(model, selection, out: Path) -> list[str]:
    """Markdown for every figure; a figure that cannot be drawn is reported, not fatal."""
    lines = []
    for caption, name, make in _figure_makers(model, selection, out):
        try:
            make()
            lines += [f"### {caption}", "", f"![{caption}]({name})", ""]
        except Exception as error:  # a degenerate posterior must not lose the report
            plt.close("all")
            lines += [f"### {caption}", "",
                      f"*Not drawn: {type(error).__name__}: {error}*", ""]
    return lines


def _pointwise_note(tree) -> str:
    """Whether the model file keeps the pointwise log-likelihood, in one sentence."""
    if stores_pointwise(tree):
        return "The pointwise log-likelihood is kept in the model file."
    return (f"The pointwise log-likelihood (draws x rows) is over the "
            f"{LOG_LIKELIHOOD_BUDGET:,}-value budget and not kept: LOO and anomaly scores "
            "stream it from the draws.")


def write_report(out, model, frame: pd.DataFrame, *, selection=None, em_rows=None,
                 title: str = "bayesgmm report") -> Path:
    """Write ``report.md`` and figures into the folder ``out``.

    Parameters
    ----------
    out : path-like
        Existing or new folder.
    model : BayesianGMM
        The chosen, fitted model.
    frame : pandas.DataFrame
        The data it was fitted on (for the data summary).
    selection : KSelection, optional
        Adds the K comparison section.
    em_rows : list of dict, optional
        EM table rows to include.
    title : str

    Returns
    -------
    pathlib.Path
        The path of ``report.md``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tree = model.idata_
    diagnostics = model.diagnose()
    lines = [f"# {title}", "",
             f"Model: K = {model.n_components}, {model.covariance_type} covariance, "
             f"method {tree.attrs['method']} ({tree.attrs['engine']} engine), "
             f"{tree.posterior.sizes['chain']} chain(s) x {tree.posterior.sizes['draw']} draws. "
             f"Relabelling: {model.relabelling_.method}, "
             f"{model.relabelling_.n_permuted} of {model.relabelling_.n_draws} draws "
             "permuted. " + _pointwise_note(tree), "",
             "## Data", "",
             f"{len(frame)} rows, {frame.shape[1]} numeric column(s).", "",
             markdown_table(data_summary(frame)), ""]
    if em_rows:
        lines += ["## EM fits (lower BIC/AIC/ICL is better)", "",
                  markdown_table(pd.DataFrame(em_rows).set_index("covariance")), ""]
    if selection is not None:
        lines += ["## Choosing K", "",
                  f"**Chosen K = {selection.best_k}** ({selection.rule}). elpd: higher is "
                  "better; BIC/ICL: lower is better; p_occupied: posterior probability that "
                  "exactly K components are occupied under a sparse overfitted mixture.", "",
                  markdown_table(selection.view(REPORT_COLUMNS)), ""]
    lines += ["## Parameters (data units)", "", markdown_table(parameter_table(model)), "",
              "## Diagnostics", "",
              "All checks passed." if diagnostics.ok else
              "**Some checks failed.** " + " ".join(diagnostics.remedies), "",
              markdown_table(gate_table(diagnostics.table)), "", "## Figures", ""]
    lines += _figure_lines(model, selection, out)
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
