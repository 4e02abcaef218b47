"""The ``bayesgmm`` command line: demo, fit, compare, predict, diagnose.

Every user error (missing or empty file, non-numeric or missing column, NaN
rows, K larger than N, an unreadable model file, an output that already
exists, a run folder in use by another run) exits with status 2 and one line
on stderr, without a traceback.  Outputs are never overwritten without
``--force``, and ``predict`` never overwrites an input column.  A data file's
separator and decimal mark are detected (``--sep``/``--decimal`` override
them).  ``diagnose`` exits with 1 when a convergence check fails, so scripts
can test it.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import matplotlib
import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from bayesgmm._checks import MISSING_OPTIONS, SEED_LIMIT
from bayesgmm._version import __version__
from bayesgmm.em import em_grid
from bayesgmm.inference import METHODS
from bayesgmm.parameters import COVARIANCE_TYPES

__all__ = ["main", "UserError"]


class UserError(Exception):
    """A problem the user can fix; printed as one line, exit status 2."""


# ---------------------------------------------------------------- inputs
SEPARATORS = ",;\t|"
SEPARATOR_NAMES = {",": "','", ";": "';'", "\t": "tab", "|": "'|'"}
DECIMAL_COMMA = re.compile(r"[+-]?[0-9]*,[0-9]+(?:[eE][+-]?[0-9]+)?")
SNIFF_BYTES = 64 * 1024
SNIFF_LINES = 50


class CsvFormat(NamedTuple):
    """How a CSV file separates fields and writes decimals."""

    sep: str
    decimal: str


def _head_lines(path: Path) -> list[str]:
    """The first complete lines of ``path``, decoded leniently, for sniffing only."""
    with path.open("rb") as stream:
        chunk = stream.read(SNIFF_BYTES)
    lines = chunk.decode("utf-8", errors="replace").splitlines()
    if len(chunk) == SNIFF_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut in the middle
    return [line for line in lines if line.strip()][:SNIFF_LINES]


def sniff_csv_format(path, sep: str | None = None, decimal: str | None = None) -> CsvFormat:
    """Detect the separator and the decimal mark of a CSV file from its first lines.

    Parameters
    ----------
    path : str or path-like
    sep : str, optional
        The field separator; detected among ``,`` ``;`` tab and ``|`` when not given
        (``,`` when nothing is conclusive).
    decimal : str, optional
        The decimal mark; when not given, ``,`` if the separator is not ``,`` and
        data fields look like ``1,5``, else ``.``.  In a comma-separated file a
        quoted ``"1,234"`` may be a thousands separator, so ``,`` is never guessed
        there.

    Returns
    -------
    CsvFormat
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file.")
    lines = _head_lines(path) if sep is None or decimal is None else []
    if sep is None:
        try:
            sep = csv.Sniffer().sniff("\n".join(lines), delimiters=SEPARATORS).delimiter
        except csv.Error:  # one column, or nothing conclusive: the CSV default
            sep = ","
    if decimal is None:
        fields = (field.strip() for row in csv.reader(lines[1:], delimiter=sep) for field in row)
        decimal = "," if sep != "," and any(map(DECIMAL_COMMA.fullmatch, fields)) else "."
    return CsvFormat(sep, decimal)


def _refuse_wrong_separator(path: Path, frame: pd.DataFrame, sep: str) -> None:
    """Refuse a single column whose name holds another separator: ``sep`` was wrong."""
    if len(frame.columns) == 1:
        name = str(frame.columns[0])
        other = next((mark for mark in SEPARATORS if mark != sep and mark in name), None)
        if other is not None:
            shown = "\\t" if other == "\t" else other
            raise UserError(f"{path} looks {SEPARATOR_NAMES[other]}-separated (its header is "
                            f"{name!r}); pass --sep '{shown}' (and --decimal ',' for decimal "
                            "commas).")


def _refuse_decimal_commas(path: Path, frame: pd.DataFrame) -> None:
    """Refuse text columns whose every value is a number written with a decimal comma."""
    for column in frame.columns:
        values = frame[column].dropna()
        if values.empty or pd.api.types.is_numeric_dtype(values.dtype):
            continue
        if values.astype(str).str.strip().str.fullmatch(DECIMAL_COMMA).all():
            raise UserError(f"column {column!r} of {path} holds numbers with decimal commas "
                            f"(like {values.iloc[0]!r}); pass --decimal ','.")


def read_csv(path, columns: str | None = None, sep: str | None = None,
             decimal: str | None = None, numeric: list[str] | None = None) -> pd.DataFrame:
    """Read a CSV of numeric columns, optionally selecting ``columns`` (comma-separated).

    The separator and the decimal mark are detected by :func:`sniff_csv_format`
    unless ``sep`` or ``decimal`` is given.  ``numeric`` names the columns that
    must hold numbers (default: every column returned).
    """
    path = Path(path)
    csv_format = sniff_csv_format(path, sep, decimal)
    try:
        frame = pd.read_csv(path, sep=csv_format.sep, decimal=csv_format.decimal)
    except pd.errors.EmptyDataError:
        raise UserError(f"{path} is empty; it needs a header row and data rows.") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise UserError(f"{path} cannot be read as CSV ({type(error).__name__}); check that "
                        f"it is a text file with fields separated by {csv_format.sep!r}, or "
                        "pass --sep.") from None
    if frame.empty:
        raise UserError(f"{path} has a header but no data rows.")
    _refuse_wrong_separator(path, frame, csv_format.sep)
    if columns:
        wanted = [c.strip() for c in columns.split(",") if c.strip()]
        missing = [c for c in wanted if c not in frame.columns]
        if missing:
            raise UserError(f"{path} has no column {missing[0]!r}; available: "
                            f"{', '.join(map(str, frame.columns))}.")
        frame = frame[wanted]
    numeric = frame.columns if numeric is None else frame.columns.intersection(numeric)
    _refuse_decimal_commas(path, frame[numeric])
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


LOCK_NAME = ".bayesgmm.lock"


def _process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs; assumed so when it cannot be checked safely."""
    if pid == os.getpid() or os.name == "nt":  # os.kill(pid, 0) would signal on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def _lock_owner(lock: Path) -> int | None:
    """The process id written in ``lock``; None when it is unreadable or not yet written."""
    try:
        pid = int(lock.read_text().strip())
    except ValueError:
        return None
    return pid if pid > 0 else None  # os.kill(0 or -1, 0) would reach other processes


def _take_over_stale(lock: Path, owner: int) -> None:
    """Remove the lock of dead process ``owner``, unless another run replaced it meanwhile."""
    aside = lock.with_name(f"{LOCK_NAME}.{os.getpid()}")
    try:
        os.replace(lock, aside)  # atomic: of two runs taking over, one moves the stale lock
    except FileNotFoundError:
        return
    try:
        if _lock_owner(aside) != owner:  # a live run's fresh lock: put it back
            with contextlib.suppress(FileExistsError):
                os.link(aside, lock)
            return
        print(f"bayesgmm: note: {lock.parent} was locked by pid {owner}, which is no longer "
              "running; taking it over.", file=sys.stderr)
    finally:
        aside.unlink(missing_ok=True)


def _claim_folder(folder: Path) -> Path:
    """Create ``folder``'s lock file holding this process id, atomically.

    A lock of a live process is refused; one left by a process that died is
    taken over with a note on stderr.  Returns the lock file's path.
    """
    lock = folder / LOCK_NAME
    owner = None
    for _ in range(3):
        try:
            handle = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                owner = _lock_owner(lock)
            except FileNotFoundError:  # its run has just ended
                continue
            if owner is None or _process_alive(owner):
                break
            _take_over_stale(lock, owner)
            continue
        with os.fdopen(handle, "w") as stream:
            stream.write(f"{os.getpid()}\n")
        return lock
    raise UserError(f"{folder} is in use by another bayesgmm run (pid {owner or 'unknown'}); "
                    f"choose another --out, or delete {lock} if no run is using it.")


@contextlib.contextmanager
def prepare_output_dir(path, force: bool) -> Iterator[Path]:
    """Claim a run folder for the duration of a ``with`` block.

    The folder is created if needed; a non-empty one is refused without
    ``force``.  A lock file holding this process id marks the claim, so a
    second run given the same folder at the same time stops with exit 2
    instead of mixing its files with the first; the lock is removed on exit.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path} exists and is not a folder; choose another --out.")
    path.mkdir(parents=True, exist_ok=True)
    lock = _claim_folder(path)
    try:
        from bayesgmm.io import TEMP_SUFFIX  # io imports netCDF4: not at CLI start

        if not force and any(entry.name != LOCK_NAME and not entry.name.endswith(TEMP_SUFFIX)
                             for entry in path.iterdir()):
            raise UserError(f"{path} already exists and is not empty; pass --force to "
                            "overwrite its files, or choose another --out.")
        yield path
    finally:
        lock.unlink(missing_ok=True)


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


def _gate_value(value, threshold) -> str:
    """A diagnostic value with enough digits never to print like a threshold it differs from.

    R-hat 1.013 printed to three digits reads "1.01", the very threshold it
    fails; digits are added until the printed value differs from it.
    """
    from bayesgmm.report import format_value

    text = format_value(value)
    if not isinstance(value, (float, np.floating)) or not np.isfinite(value) or value == threshold:
        return text
    digits = 3
    while float(text) == float(threshold) and digits < 17:
        digits += 1
        text = f"{value:.{digits}g}"
    return text


def _print_diagnostics(console, model) -> bool:
    diagnostics = model.diagnose()
    frame = diagnostics.table.copy()
    frame.index.name = "check"
    frame["value"] = [_gate_value(value, threshold)
                      for value, threshold in zip(frame["value"], frame["threshold"])]
    _print_frame(console, frame, "Diagnostics")
    for remedy in diagnostics.remedies:
        console.print(f"- {remedy}")
    return diagnostics.ok


# ---------------------------------------------------------------- commands
def _fit_model(frame, args, k):
    from bayesgmm.bayes import BayesianGMM, diagnostics_reported

    model = BayesianGMM(
        k, covariance_type=args.covariance, noise=args.noise, missing=args.missing,
        method=args.method,
        draws=args.draws, tune=args.tune, chains=args.chains, random_state=args.seed,
        progressbar=not args.quiet,
    )
    with diagnostics_reported():  # the table printed after the fit says what failed
        return model.fit(frame)


def command_fit(args, console) -> int:
    """``bayesgmm fit``: fit, save model.nc, write the report."""
    from bayesgmm.report import write_report

    frame = read_csv(args.data, args.columns, args.sep, args.decimal)
    with prepare_output_dir(args.out, args.force) as out:
        model = _fit_model(frame, args, args.k)
        model.save(out / "model.nc", overwrite=True)
        report = write_report(out, model, frame,
                              title=f"bayesgmm fit of {Path(args.data).name}")
        _print_diagnostics(console, model)
    console.print(f"saved {out / 'model.nc'} and {report}")
    return 0


def command_compare(args, console) -> int:
    """``bayesgmm compare``: compare K, fit the chosen one, write the report."""
    from bayesgmm.report import write_report
    from bayesgmm.selection import compare_k

    frame = read_csv(args.data, args.columns, args.sep, args.decimal)
    ks = parse_k_range(args.k)
    with prepare_output_dir(args.out, args.force) as out:
        selection = compare_k(frame, ks, covariance_type=args.covariance, noise=args.noise,
                              missing=args.missing,
                              draws=args.draws,
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


PREDICTION_PREFIX = "bayesgmm_"


def prediction_table(model, features: pd.DataFrame) -> pd.DataFrame:
    """The columns ``bayesgmm predict`` adds: memberships, uncertainty, anomaly scores.

    Parameters
    ----------
    model : BayesianGMM
        A fitted model.
    features : DataFrame of shape (n_samples, n_features)
        The model's feature columns.

    Returns
    -------
    DataFrame of shape (n_samples, n_columns)
        ``prob_<k>``, ``prob_<k>_lower``, ``prob_<k>_upper`` per component, then
        ``p_noise``, ``p_noise_lower``, ``p_noise_upper`` for a model with a
        noise component (whose points get ``label`` -1), then
        ``entropy``, ``expected_entropy``, ``mutual_information``, ``label``,
        ``confidence``, ``anomaly_score``, ``anomaly_lower``, ``anomaly_upper``;
        indexed like ``features``.
    """
    summary = model.membership_summary(features)
    anomaly = model.anomaly_scores(features)
    columns = {}
    for k in summary["component"].values:
        columns[f"prob_{k}"] = summary["prob"].sel(component=k).values
        columns[f"prob_{k}_lower"] = summary["prob_lower"].sel(component=k).values
        columns[f"prob_{k}_upper"] = summary["prob_upper"].sel(component=k).values
    for name in ("p_noise", "p_noise_lower", "p_noise_upper"):
        if name in summary:
            columns[name] = summary[name].values
    for name in ("entropy", "expected_entropy", "mutual_information", "label", "confidence"):
        columns[name] = summary[name].values
    columns["anomaly_score"] = anomaly["score"].values
    columns["anomaly_lower"] = anomaly["lower"].values
    columns["anomaly_upper"] = anomaly["upper"].values
    return pd.DataFrame(columns, index=features.index)


def _refuse_non_finite(predictions: pd.DataFrame, data) -> None:
    """Refuse predictions with NaN or infinite values: they would be written as blank cells."""
    finite = np.isfinite(predictions.to_numpy(dtype=float)).all(axis=1)
    if finite.all():
        return
    rows = np.flatnonzero(~finite) + 1
    shown = ", ".join(map(str, rows[:5])) + (f" and {len(rows) - 5} more" if len(rows) > 5 else "")
    raise UserError(f"the model produced non-finite probabilities or scores for rows {shown} of "
                    f"{data} (counting data rows from 1); check those rows for extreme values, "
                    "or re-fit the model.")


def _without_collisions(predictions: pd.DataFrame, frame: pd.DataFrame, data, console):
    """Prefix every prediction column when one of them is already a column of the input."""
    clashes = [name for name in predictions.columns if name in frame.columns]
    if not clashes:
        return predictions
    prefixed = predictions.add_prefix(PREDICTION_PREFIX)
    still = [name for name in prefixed.columns if name in frame.columns]
    if still:
        raise UserError(f"{data} already has columns {clashes[0]!r} and {still[0]!r}, the "
                        "plain and the prefixed name of a column predict writes; rename or "
                        "drop one of them.")
    console.print(f"note: {data} already has column {clashes[0]!r}; the new columns are "
                  f"prefixed {PREDICTION_PREFIX!r} so that no input column is overwritten.")
    return prefixed


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
    csv_format = sniff_csv_format(args.data, args.sep, args.decimal)
    frame = read_csv(args.data, sep=csv_format.sep, decimal=csv_format.decimal, numeric=names)
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise UserError(f"{args.data} has no column {missing[0]!r}, which the model was "
                        f"fitted on (needs: {', '.join(names)}).")
    predictions = prediction_table(model, frame[names])
    _refuse_non_finite(predictions, args.data)
    predictions = _without_collisions(predictions, frame, args.data, console)
    result = pd.concat([frame, predictions], axis=1)
    result.to_csv(out, index=False, sep=csv_format.sep, decimal=csv_format.decimal)
    console.print(f"wrote {len(result)} rows to {out}")
    return 0


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
    from bayesgmm.report import parameter_table, write_report
    from bayesgmm.selection import compare_k

    began = time.perf_counter()
    frame = load_faithful()
    with prepare_output_dir(args.out, args.force) as out:
        rows, best = em_grid(frame)
        em_frame = pd.DataFrame(rows).set_index("covariance")
        _print_frame(console, em_frame, "EM on Old Faithful (lower BIC/AIC/ICL is better)",
                     digits=6)
        console.print(f"EM: best BIC is K={best.n_components} with {best.covariance_type} "
                      "covariance.")
        selection = compare_k(frame, range(1, 5), random_state=0, progressbar=not args.quiet)
        _print_frame(console, selection.view(), "Bayesian comparison of K (full covariance)")
        console.print(selection.rule)
        if selection.best_k is None:
            raise UserError("every K failed to fit; see the error column above.")
        model = selection.fits[selection.best_k]
        _print_frame(console, parameter_table(model), f"Posterior, K = {selection.best_k}")
        summary = model.membership_summary(frame)
        uncertain = int((summary["confidence"] < 0.9).sum())
        console.print(f"{uncertain} of {len(frame)} eruptions have membership confidence "
                      "below 0.9.")
        _print_diagnostics(console, model)
        model.save(out / "model.nc", overwrite=True)
        report = write_report(out, model, frame, selection=selection, em_rows=rows,
                              title="bayesgmm demo: Old Faithful")
    console.print(f"report: {report} ({time.perf_counter() - began:.0f} s)")
    return 0


# ---------------------------------------------------------------- parser


def _integer(low: int, high: int | None = None):
    """Argparse type: a whole number >= ``low`` (and < ``high``), else a one-line message."""
    def parse(text: str) -> int:
        shown = text if len(text) <= 30 else f"{text[:27]}..."
        if not re.fullmatch(r"[+-]?[0-9]+", text.strip()):
            raise argparse.ArgumentTypeError(f"{shown!r} is not a whole number")
        try:
            value = int(text)
        except ValueError:  # more digits than Python converts
            raise argparse.ArgumentTypeError(f"{shown!r} is too large") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {shown}")
        if high is not None and value >= high:
            raise argparse.ArgumentTypeError(f"must be below {high}, got {shown}")
        return value
    return parse


def _separator(text: str) -> str:
    """Argparse type of ``--sep``: one punctuation character, or ``tab``."""
    if text.lower() in ("tab", "\\t", "\t"):
        return "\t"
    if len(text) != 1 or text.isalnum() or text in "\"'.\r\n ":
        raise argparse.ArgumentTypeError(f"{text!r} is not a separator; use one character "
                                         "such as ',' or ';', or 'tab'")
    return text


def _add_csv_options(parser) -> None:
    parser.add_argument("--sep", type=_separator,
                        help="field separator of the data file: ',', ';', 'tab' or '|' "
                             "(default: detected from its first lines)")
    parser.add_argument("--decimal", choices=[".", ","], metavar="{.|,}",
                        help="decimal mark of the data file (default: ',' when the separator "
                             "is not ',' and values look like 1,5; else '.')")


def _add_sampling_options(parser, with_method: bool = True) -> None:
    if with_method:
        parser.add_argument(
            "--method", choices=METHODS, default="auto",
            help="auto: NUTS below 50,000 rows, the Laplace approximation from there on")
    parser.add_argument("--covariance", choices=COVARIANCE_TYPES, default="full")
    parser.add_argument("--noise", action="store_true",
                        help="add a uniform noise component for scattered outliers "
                             "(labelled -1)")
    parser.add_argument("--missing", choices=MISSING_OPTIONS, default="reject",
                        help="empty cells: refuse them (default) or fit with them, "
                             "marginalised (assumed missing at random)")
    parser.add_argument("--draws", type=_integer(1), default=1000)
    parser.add_argument("--tune", type=_integer(1), default=1000)
    parser.add_argument("--chains", type=_integer(1), default=4)
    parser.add_argument("--seed", type=_integer(0, SEED_LIMIT), default=0,
                        help="random seed, 0 <= seed < 2**63")
    parser.add_argument("--columns", help="comma-separated columns to use (default: all)")
    _add_csv_options(parser)
    parser.add_argument("--out", required=True,
                        help="run folder for model.nc and the report; one run at a time")
    parser.add_argument("--force", action="store_true", help="overwrite existing outputs")


def _subcommand(commands, name: str, summary: str, details: str = ""):
    """A subcommand's parser; ``--quiet`` is accepted after the subcommand too."""
    parser = commands.add_parser(name, help=summary, description=f"{summary}. {details}")
    parser.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="no progress bars")
    return parser


READING = ("The data file's separator (',', ';', tab, '|') and decimal mark are detected; "
           "override them with --sep and --decimal.")
PREDICT_DETAILS = (
    "Writes the input columns, then prob_<k>, prob_<k>_lower, prob_<k>_upper per component "
    "(and p_noise, p_noise_lower, p_noise_upper for a model fitted with --noise, label -1 for "
    "its points), "
    "entropy, expected_entropy, mutual_information, label, confidence, anomaly_score, "
    "anomaly_lower and anomaly_upper, with the input's separator and decimal mark. Input "
    "columns are never overwritten: if one has any of these names, every new column is "
    f"prefixed '{PREDICTION_PREFIX}'. Exits 2 if the model gives non-finite values. "
)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of the ``bayesgmm`` command."""
    parser = argparse.ArgumentParser(
        prog="bayesgmm", description="Bayesian Gaussian mixtures on CSV files."
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--version", action="version", version=f"bayesgmm {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = _subcommand(commands, "demo", "full analysis of the bundled Old Faithful data")
    demo.add_argument("--out", default="reports/demo")
    demo.add_argument("--force", action="store_true", help="overwrite an existing report")
    fit = _subcommand(commands, "fit", "fit one model and write model.nc and a report", READING)
    fit.add_argument("data")
    fit.add_argument("--k", type=_integer(1), required=True, help="number of components")
    _add_sampling_options(fit)
    compare = _subcommand(commands, "compare", "compare numbers of components", READING)
    compare.add_argument("data")
    compare.add_argument("--k", default="1-6", help="range like 1-6 or list like 2,3,5")
    compare.add_argument("--jobs", type=_integer(1), default=1, help="parallel processes")
    _add_sampling_options(compare, with_method=False)
    predict = _subcommand(commands, "predict", "memberships and anomaly scores per row",
                          PREDICT_DETAILS + READING)
    predict.add_argument("model")
    predict.add_argument("data")
    _add_csv_options(predict)
    predict.add_argument("--out", required=True, help="CSV file to write")
    predict.add_argument("--force", action="store_true", help="overwrite an existing --out")
    diagnose = _subcommand(commands, "diagnose", "convergence diagnostics of a saved model",
                           "Exits 1 when a check fails.")
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
