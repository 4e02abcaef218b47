"""Command-line interface: ``bayesgmm demo``.

Every user error exits with status 2 and one line on stderr, never a
traceback.
"""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.table import Table

from bayesgmm._checks import DataValidationError
from bayesgmm.datasets import load_faithful
from bayesgmm.em import GaussianMixtureEM

__all__ = ["main"]


def em_table(X, ks=range(1, 5), covariance_types=("full", "tied", "diag", "spherical")):
    """Fit EM for every K and covariance type; return rows and the best fit by BIC.

    Parameters
    ----------
    X : DataFrame of shape (n_samples, n_features)
    ks : iterable of int
    covariance_types : iterable of str

    Returns
    -------
    rows : list of dict
    best : GaussianMixtureEM
        The fit with the lowest BIC.
    """
    rows, best, best_bic = [], None, float("inf")
    for covariance_type in covariance_types:
        for k in ks:
            em = GaussianMixtureEM(
                k, covariance_type=covariance_type, n_init=5, tol=1e-6, max_iter=1000,
                random_state=0,
            ).fit(X)
            bic = em.bic(X)
            rows.append(
                {
                    "covariance": covariance_type,
                    "K": k,
                    "log_lik": em.score(X) * len(X),
                    "BIC": bic,
                    "AIC": em.aic(X),
                    "ICL": em.icl(X),
                    "iterations": em.n_iter_,
                }
            )
            if bic < best_bic:
                best, best_bic = em, bic
    return rows, best


def _run_demo(console: Console) -> None:
    X = load_faithful()
    rows, best = em_table(X)
    table = Table(title="EM on Old Faithful (272 eruptions); lower BIC/AIC/ICL is better")
    for column in rows[0]:
        table.add_column(column, justify="right")
    best_bic = min(row["BIC"] for row in rows)
    for row in rows:
        style = "bold green" if row["BIC"] == best_bic else None
        table.add_row(
            row["covariance"], str(row["K"]), f"{row['log_lik']:.1f}",
            f"{row['BIC']:.1f}", f"{row['AIC']:.1f}", f"{row['ICL']:.1f}",
            str(row["iterations"]), style=style,
        )
    console.print(table)
    params = Table(
        title=f"Best by BIC: K={best.n_components}, {best.covariance_type} covariance"
    )
    params.add_column("component", justify="right")
    params.add_column("weight", justify="right")
    for name in X.columns:
        params.add_column(f"mean {name}", justify="right")
    for k, (weight, mean) in enumerate(zip(best.weights_, best.means_)):
        params.add_row(str(k), f"{weight:.3f}", *(f"{m:.3f}" for m in mean))
    console.print(params)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``bayesgmm`` command."""
    parser = argparse.ArgumentParser(
        prog="bayesgmm", description="Bayesian Gaussian mixtures on CSV files."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="analyse the bundled Old Faithful data")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    console = Console()
    try:
        match args.command:
            case "demo":
                _run_demo(console)
    except (DataValidationError, FileNotFoundError) as error:
        print(f"bayesgmm: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
