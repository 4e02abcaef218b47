"""The ``bayesgmm`` command line: demo, fit, compare, predict, diagnose.

Every user error (missing or empty file, non-numeric or missing column, NaN
rows, K larger than N, an unreadable model file, an output that already
exists, a run folder in use by another run) exits with status 2 and one line
on stderr, without a traceback.  Outputs are never overwritten without
``--force``, and ``predict`` never overwrites an input column.  A data file's
separator and decimal mark are detected (``--sep``/``--decimal`` override
them).  ``diagnose`` exits with 1 when a convergence check fails, so scripts
can test it.  Diagnostic values in printed tables carry enough digits never to
read like the threshold they fail.  The options are defined in
:mod:`bayesgmm._cli_parser`.
"""

from __future__ import annotations

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

from bayesgmm._cli_parser import PREDICTION_PREFIX, build_parser, model_settings
from bayesgmm.em import em_grid

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


def _print_frame(console, frame: pd.DataFrame, title: str, digits: int = 3,
                 gates: dict[str, float] | None = None) -> None:
    """Print ``frame`` as a table; ``gates`` maps columns to the threshold their values face."""
    from bayesgmm._format import format_value, gate_text

    gates = gates or {}
    table = Table(title=title, show_lines=False)
    table.add_column(frame.index.name or "")
    for column in frame.columns:
        table.add_column(str(column), justify="right")
    for index, row in frame.iterrows():
        table.add_row(str(index), *(gate_text(value, gates[column]) if column in gates
                                    else format_value(value, digits)
                                    for column, value in row.items()))
    console.print(table)


def _k_table_gates() -> dict[str, float]:
    """Thresholds of the K table's gate columns: the R-hat gates of each fit's diagnostics."""
    from bayesgmm.diagnostics import RHAT_MAX  # arviz_stats: not at CLI start

    return {"max_rhat": RHAT_MAX, "rhat_log_lik": RHAT_MAX}


def _print_diagnostics(console, model) -> bool:
    from bayesgmm._format import gate_table

    diagnostics = model.diagnose()
    frame = gate_table(diagnostics.table)
    frame.index.name = "check"
    _print_frame(console, frame, "Diagnostics")
    for remedy in diagnostics.remedies:
        console.print(f"- {remedy}")
    return diagnostics.ok


# ---------------------------------------------------------------- commands
def _features_and_weights(args) -> tuple[pd.DataFrame, pd.Series | None]:
    """The feature columns of ``fit``'s data file, and its ``--sample-weight`` column if any."""
    weight = args.sample_weight
    if weight is None:
        return read_csv(args.data, args.columns, args.sep, args.decimal), None
    columns = args.columns
    if columns:
        if weight in (name.strip() for name in columns.split(",")):
            raise UserError(f"--sample-weight {weight!r} is also listed in --columns; a weight "
                            "column is not a feature, so leave it out of --columns.")
        columns = f"{columns},{weight}"
    frame = read_csv(args.data, columns, args.sep, args.decimal)
    if weight not in frame.columns:
        raise UserError(f"{args.data} has no column {weight!r} for --sample-weight; available: "
                        f"{', '.join(map(str, frame.columns))}.")
    weights = frame.pop(weight)
    if frame.columns.empty:
        raise UserError(f"{args.data} has no column besides the --sample-weight column "
                        f"{weight!r}; it needs at least one feature column.")
    return frame, weights


def command_fit(args, console) -> int:
    """``bayesgmm fit``: fit, save model.nc, write the report."""
    from bayesgmm.bayes import BayesianGMM, diagnostics_reported
    from bayesgmm.report import write_report

    frame, weights = _features_and_weights(args)
    with prepare_output_dir(args.out, args.force) as out:
        model = BayesianGMM(args.k, progressbar=not args.quiet, **model_settings(args))
        with diagnostics_reported():  # the table printed after the fit says what failed
            model.fit(frame, sample_weight=None if weights is None else weights.to_numpy())
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
        selection = compare_k(frame, ks, progressbar=not args.quiet, n_jobs=args.jobs,
                              **model_settings(args))
        _print_frame(console, selection.view(), f"K comparison (chosen K = {selection.best_k})",
                     gates=_k_table_gates())
        selection.table.to_csv(out / "k_comparison.csv")
        if selection.best_k is None:
            raise UserError("every K failed to fit; see the error column in k_comparison.csv.")
        model = selection.fits[selection.best_k]
        model.save(out / "model.nc", overwrite=True)
        report = write_report(out, model, frame, selection=selection,
                              title=f"bayesgmm K comparison on {Path(args.data).name}")
    console.print(f"{selection.rule}\nsaved {out / 'model.nc'} and {report}")
    return 0


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
        selection = compare_k(frame, range(1, 5), random_state=0, progressbar=not args.quiet,
                              **model_settings(args))
        _print_frame(console, selection.view(), "Bayesian comparison of K (full covariance)",
                     gates=_k_table_gates())
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
