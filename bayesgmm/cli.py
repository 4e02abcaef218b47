"""The ``bayesgmm`` command line: demo, fit, compare, predict, diagnose.

Every user error (missing or empty file, non-numeric or missing column, NaN
rows, K larger than N, an unreadable model file, an output that already
exists) exits with status 2 and one line on stderr, without a traceback.
Outputs are never overwritten without ``--force``.  ``diagnose`` exits with 1
when a convergence check fails, so scripts can test it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import matplotlib
import pandas as pd
from rich.console import Console
from rich.table import Table

from bayesgmm.em import em_grid

__all__ = ["main", "UserError"]


class UserError(Exception):
    """A problem the user can fix; printed as one line, exit status 2."""


# ---------------------------------------------------------------- inputs
def read_csv(path, columns: str | None = None) -> pd.DataFrame:
    """Read a CSV of numeric columns, optionally selecting ``columns`` (comma-separated)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file.")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise UserError(f"{path} is empty; it needs a header row and data rows.") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise UserError(f"{path} cannot be read as CSV ({type(error).__name__}); check that "
                        "it is a comma-separated text file.") from None
    if frame.empty:
        raise UserError(f"{path} has a header but no data rows.")
    if columns:
        wanted = [c.strip() for c in columns.split(",") if c.strip()]
        missing = [c for c in wanted if c not in frame.columns]
        if missing:
            raise UserError(f"{path} has no column {missing[0]!r}; available: "
                            f"{', '.join(map(str, frame.columns))}.")
        frame = frame[wanted]
    return frame


def parse_k_range(text: str) -> list[int]:
    """``"1-6"`` -> [1..6]; ``"2,3,5"`` -> [2, 3, 5]."""
    try:
        if "-" in text:
            low, high = (int(part) for part in text.split("-", 1))
            values = list(range(low, high + 1))
        else:
            values = [int(part) for part in text.split(",")]
    except ValueError:
        raise UserError(f"--k {text!r} is not a range like 1-6 or a list like 2,3,5.") from None
    if not values or min(values) < 1:
        raise UserError(f"--k {text!r} must contain positive numbers of components.")
    return values


def prepare_output_dir(path, force: bool) -> Path:
    """Create a run folder, refusing to reuse a non-empty one without ``--force``."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path} exists and is not a folder; choose another --out.")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise UserError(f"{path} already exists and is not empty; pass --force to overwrite "
                        "its files, or choose another --out.")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _check_new_file(path, force: bool) -> Path:
    path = Path(path)
    if path.exists() and not force:
        raise UserError(f"{path} already exists; pass --force to overwrite it.")
    if not path.parent.exists():
        raise UserError(f"the folder {path.parent} does not exist.")
    return path


def _print_frame(console, frame: pd.DataFrame, title: str, digits: int = 3) -> None:
    table = Table(title=title, show_lines=False)
    table.add_column(frame.index.name or "")
    for column in frame.columns:
        table.add_column(str(column), justify="right")
    from bayesgmm.report import format_value

    for index, row in frame.iterrows():
        table.add_row(str(index), *(format_value(value, digits) for value in row))
    console.print(table)


# ---------------------------------------------------------------- commands
def _fit_model(frame, args, k):
    from bayesgmm.bayes import BayesianGMM, diagnostics_reported

    model = BayesianGMM(
        k, covariance_type=args.covariance, method=args.method, draws=args.draws,
        tune=args.tune, chains=args.chains, random_state=args.seed,
        progressbar=not args.quiet,
    )
    with diagnostics_reported():  # the table printed after the fit says what failed
        return model.fit(frame)


def command_fit(args, console) -> int:
    """``bayesgmm fit``: fit, save model.nc, write the report."""
    from bayesgmm.report import write_report

    frame = read_csv(args.data, args.columns)
    out = prepare_output_dir(args.out, args.force)
    model = _fit_model(frame, args, args.k)
    model.save(out / "model.nc", overwrite=True)
    report = write_report(out, model, frame, title=f"bayesgmm fit of {Path(args.data).name}")
    _print_diagnostics(console, model)
    console.print(f"saved {out / 'model.nc'} and {report}")
    return 0


def command_compare(args, console) -> int:
    """``bayesgmm compare``: compare K, fit the chosen one, write the report."""
    from bayesgmm.report import write_report
    from bayesgmm.selection import compare_k

    frame = read_csv(args.data, args.columns)
    ks = parse_k_range(args.k)
    out = prepare_output_dir(args.out, args.force)
    selection = compare_k(frame, ks, covariance_type=args.covariance, draws=args.draws,
                          tune=args.tune, chains=args.chains, random_state=args.seed,
                          progressbar=not args.quiet, n_jobs=args.jobs)
    _print_frame(console, selection.view(), f"K comparison (chosen K = {selection.best_k})")
    selection.table.to_csv(out / "k_comparison.csv")
    if selection.best_k is None:
        raise UserError("every K failed to fit; see the error column in k_comparison.csv.")
    model = selection.fits[selection.best_k]
    model.save(out / "model.nc", overwrite=True)
    report = write_report(out, model, frame, selection=selection,
                          title=f"bayesgmm K comparison on {Path(args.data).name}")
    console.print(f"{selection.rule}\nsaved {out / 'model.nc'} and {report}")
    return 0


def command_predict(args, console) -> int:
    """``bayesgmm predict``: memberships, intervals and anomaly scores per row."""
    from bayesgmm.bayes import load
    from bayesgmm.io import ModelFileError

    out = _check_new_file(args.out, args.force)
    try:
        model = load(args.model)
    except ModelFileError as error:
        raise UserError(str(error)) from None
    names = [str(name) for name in model.idata_.posterior["feature"].values]
    frame = read_csv(args.data)
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise UserError(f"{args.data} has no column {missing[0]!r}, which the model was "
                        f"fitted on (needs: {', '.join(names)}).")
    summary = model.membership_summary(frame[names])
    anomaly = model.anomaly_scores(frame[names])
    result = frame.copy()
    for k in summary["component"].values:
        result[f"prob_{k}"] = summary["prob"].sel(component=k).values
        result[f"prob_{k}_lower"] = summary["prob_lower"].sel(component=k).values
        result[f"prob_{k}_upper"] = summary["prob_upper"].sel(component=k).values
    for name in ("entropy", "expected_entropy", "mutual_information", "label", "confidence"):
        result[name] = summary[name].values
    result["anomaly_score"] = anomaly["score"].values
    result["anomaly_lower"] = anomaly["lower"].values
    result["anomaly_upper"] = anomaly["upper"].values
    result.to_csv(out, index=False)
    console.print(f"wrote {len(result)} rows to {out}")
    return 0


def _print_diagnostics(console, model) -> bool:
    diagnostics = model.diagnose()
    frame = diagnostics.table.copy()
    frame.index.name = "check"
    _print_frame(console, frame, "Diagnostics")
    for remedy in diagnostics.remedies:
        console.print(f"- {remedy}")
    return diagnostics.ok


def command_diagnose(args, console) -> int:
    """``bayesgmm diagnose``: print the diagnostics of a saved model."""
    from bayesgmm.bayes import load
    from bayesgmm.io import ModelFileError

    try:
        model = load(args.model)
    except ModelFileError as error:
        raise UserError(str(error)) from None
    return 0 if _print_diagnostics(console, model) else 1


def command_demo(args, console) -> int:
    """``bayesgmm demo``: EM table, K comparison, NUTS fit and report on Old Faithful."""
    from bayesgmm.datasets import load_faithful
    from bayesgmm.report import write_report
    from bayesgmm.selection import compare_k

    began = time.perf_counter()
    frame = load_faithful()
    out = prepare_output_dir(args.out, args.force)
    rows, best = em_grid(frame)
    em_frame = pd.DataFrame(rows).set_index("covariance")
    _print_frame(console, em_frame, "EM on Old Faithful (lower BIC/AIC/ICL is better)", digits=6)
    console.print(f"EM: best BIC is K={best.n_components} with {best.covariance_type} covariance.")
    selection = compare_k(frame, range(1, 5), random_state=0, progressbar=not args.quiet)
    _print_frame(console, selection.view(), "Bayesian comparison of K (full covariance)")
    console.print(selection.rule)
    if selection.best_k is None:
        raise UserError("every K failed to fit; see the error column above.")
    model = selection.fits[selection.best_k]
    from bayesgmm.report import parameter_table

    _print_frame(console, parameter_table(model), f"Posterior, K = {selection.best_k}")
    summary = model.membership_summary(frame)
    uncertain = int((summary["confidence"] < 0.9).sum())
    console.print(f"{uncertain} of {len(frame)} eruptions have membership confidence below 0.9.")
    _print_diagnostics(console, model)
    model.save(out / "model.nc", overwrite=True)
    report = write_report(out, model, frame, selection=selection, em_rows=rows,
                          title="bayesgmm demo: Old Faithful")
    console.print(f"report: {report} ({time.perf_counter() - began:.0f} s)")
    return 0


# ---------------------------------------------------------------- parser
def _integer(low: int):
    """Argparse type: an integer >= ``low``, with a one-line message otherwise."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    return parse


def _add_sampling_options(parser, with_method: bool = True) -> None:
    if with_method:
        parser.add_argument("--method", choices=["nuts", "advi", "fullrank_advi"], default="nuts")
    parser.add_argument("--covariance", choices=["full", "diag"], default="full")
    parser.add_argument("--draws", type=_integer(1), default=1000)
    parser.add_argument("--tune", type=_integer(1), default=1000)
    parser.add_argument("--chains", type=_integer(1), default=4)
    parser.add_argument("--seed", type=_integer(0), default=0)
    parser.add_argument("--columns", help="comma-separated columns to use (default: all)")
    parser.add_argument("--out", required=True, help="run folder for model.nc and the report")
    parser.add_argument("--force", action="store_true", help="overwrite existing outputs")


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of the ``bayesgmm`` command."""
    parser = argparse.ArgumentParser(
        prog="bayesgmm", description="Bayesian Gaussian mixtures on CSV files."
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="full analysis of the bundled Old Faithful data")
    demo.add_argument("--out", default="reports/demo")
    demo.add_argument("--force", action="store_true", help="overwrite an existing report")
    fit = commands.add_parser("fit", help="fit one model and write model.nc and a report")
    fit.add_argument("data")
    fit.add_argument("--k", type=_integer(1), required=True, help="number of components")
    _add_sampling_options(fit)
    compare = commands.add_parser("compare", help="compare numbers of components")
    compare.add_argument("data")
    compare.add_argument("--k", default="1-6", help="range like 1-6 or list like 2,3,5")
    compare.add_argument("--jobs", type=_integer(1), default=1, help="parallel processes")
    _add_sampling_options(compare, with_method=False)
    predict = commands.add_parser("predict", help="memberships and anomaly scores per row")
    predict.add_argument("model")
    predict.add_argument("data")
    predict.add_argument("--out", required=True)
    predict.add_argument("--force", action="store_true")
    diagnose = commands.add_parser("diagnose", help="convergence diagnostics of a saved model")
    diagnose.add_argument("model")
    return parser


COMMANDS = {"demo": command_demo, "fit": command_fit, "compare": command_compare,
            "predict": command_predict, "diagnose": command_diagnose}


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    matplotlib.use("Agg")  # figures go to files; no display is needed or assumed
    args = build_parser().parse_args(argv)
    # Wide enough for the comparison tables when output is not a terminal.
    console = Console(width=max(120, shutil.get_terminal_size((120, 24)).columns))
    try:
        return COMMANDS[args.command](args, console)
    except (UserError, ValueError, OSError) as error:
        # ValueError covers DataValidationError, bad settings, ill-defined
        # covariances and unreadable model files; OSError covers missing,
        # unreadable or unwritable paths.  Each has a message that names the fix.
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"bayesgmm {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bayesgmm {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # last resort: never a bare traceback
        if os.environ.get("BAYESGMM_DEBUG"):
            raise
        print(f"bayesgmm {args.command}: internal error: {type(error).__name__}: {error} "
              "(set BAYESGMM_DEBUG=1 to see the traceback, and please report it)",
              file=sys.stderr)
        return 1


def entry_point() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
