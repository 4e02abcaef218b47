"""The command line end to end in a temporary folder, and every user-error path."""

import io
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from bayesgmm.bayes import BayesianGMM
from bayesgmm.cli import LOCK_NAME, build_parser, main, prepare_output_dir, read_csv
from bayesgmm.datasets import load_faithful
from bayesgmm.diagnostics import Diagnostics

FAST = ["--draws", "1000", "--tune", "500", "--chains", "4", "--seed", "0"]
SMALL = ["--draws", "100", "--tune", "100", "--chains", "2", "--seed", "0"]  # API checks only


@pytest.fixture
def faithful_csv(tmp_path):
    path = tmp_path / "faithful.csv"
    frame = load_faithful()
    frame.insert(0, "id", np.arange(len(frame)))
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def fitted_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    data = folder / "faithful.csv"
    load_faithful().to_csv(data, index=False)
    assert main(["--quiet", "fit", str(data), "--k", "2", "--out", str(folder / "run"), *FAST]) == 0
    return folder / "run", data


def run_error(capsys, argv):
    code = main(argv)
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    return code, lines


def test_fit_writes_model_report_and_figures(fitted_run):
    run, _ = fitted_run
    for name in ("model.nc", "report.md", "clusters.png", "membership_intervals.png",
                 "rank.png", "trace.png"):
        assert (run / name).is_file(), name
    report = (run / "report.md").read_text()
    for section in ("## Data", "## Parameters", "## Diagnostics", "## Figures"):
        assert section in report


def test_predict_keeps_input_columns_and_adds_memberships(fitted_run, tmp_path, faithful_csv):
    run, _ = fitted_run
    out = tmp_path / "memberships.csv"
    assert main(["predict", str(run / "model.nc"), str(faithful_csv), "--out", str(out)]) == 0
    result = pd.read_csv(out)
    original = pd.read_csv(faithful_csv)
    pd.testing.assert_frame_equal(result[original.columns], original)
    np.testing.assert_allclose(result[["prob_0", "prob_1"]].sum(axis=1), 1.0)
    for column in ("prob_0_lower", "prob_0_upper", "entropy", "mutual_information", "label",
                   "confidence", "anomaly_score", "anomaly_lower", "anomaly_upper"):
        assert column in result.columns
    assert (result["mutual_information"] >= 0).all()


def test_diagnose_prints_the_table(fitted_run, capsys):
    run, _ = fitted_run
    assert main(["diagnose", str(run / "model.nc")]) == 0
    assert "rhat" in capsys.readouterr().out


def test_outputs_are_never_overwritten_without_force(fitted_run, tmp_path, capsys):
    run, data = fitted_run
    code, lines = run_error(capsys, ["--quiet", "fit", str(data), "--k", "2", "--out", str(run), *FAST])
    assert code == 2 and len(lines) == 1 and "--force" in lines[0]
    out = tmp_path / "keep.csv"
    out.write_text("precious")
    code, lines = run_error(capsys, ["predict", str(run / "model.nc"), str(data), "--out", str(out)])
    assert code == 2 and "--force" in lines[0]
    assert out.read_text() == "precious"


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such file"),
        ("", "is empty"),
        ("eruptions,waiting\n", "no data rows"),
        ("eruptions,kind\n1.0,a\n2.0,b\n3.0,a\n", "column 'kind' is not numeric"),
        ("eruptions,waiting\n1.0,2.0\n,3.0\n2.0,5.0\n", "column 'eruptions' has 1 NaN value"),
        ("a,b\n1,2\n3,5\n", "n_samples = 2 and n_components = 3"),
        ("\x00\xff\xfe binary junk \x00", "cannot be read as CSV|not numeric|no data rows"),
    ],
)
def test_fit_user_errors_exit_2_with_one_line(tmp_path, capsys, content, message):
    data = tmp_path / "data.csv"
    if content is not None:
        data.write_bytes(content.encode("latin-1"))
    code, lines = run_error(capsys, ["--quiet", "fit", str(data), "--k", "3", "--out", str(tmp_path / "run"), *FAST])
    assert code == 2
    assert len(lines) == 1, lines
    assert pytest.importorskip("re").search(message, lines[0]), lines[0]
    assert "Traceback" not in lines[0]


def test_wrong_column_name(tmp_path, capsys, faithful_csv):
    code, lines = run_error(capsys, ["--quiet", "fit", str(faithful_csv), "--k", "2", "--columns",
                                     "eruptions,wait", "--out", str(tmp_path / "run"), *FAST])
    assert code == 2 and "no column 'wait'" in lines[0] and "available" in lines[0]


def test_unreadable_model_file(tmp_path, capsys, faithful_csv):
    junk = tmp_path / "model.nc"
    junk.write_text("not a model")
    for argv in (["diagnose", str(junk)],
                 ["predict", str(junk), str(faithful_csv), "--out", str(tmp_path / "m.csv")]):
        code, lines = run_error(capsys, argv)
        assert code == 2 and len(lines) == 1 and "not a readable bayesgmm model" in lines[0]


def test_predict_needs_the_model_columns(fitted_run, tmp_path, capsys):
    run, _ = fitted_run
    data = tmp_path / "other.csv"
    pd.DataFrame({"eruptions": [1.0, 2.0]}).to_csv(data, index=False)
    code, lines = run_error(capsys, ["predict", str(run / "model.nc"), str(data), "--out", str(tmp_path / "m.csv")])
    assert code == 2 and "no column 'waiting'" in lines[0]


def test_bad_k_range(tmp_path, capsys, faithful_csv):
    code, lines = run_error(capsys, ["compare", str(faithful_csv), "--k", "one-six", "--out", str(tmp_path / "r")])
    assert code == 2 and "range like 1-6" in lines[0]


def test_bad_numeric_options_exit_2(tmp_path, capsys, faithful_csv):
    for option in (["--draws", "0"], ["--chains", "zero"], ["--tune", "-1"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["fit", str(faithful_csv), "--k", "2", "--out", str(tmp_path / "r"), *option])
        assert exit_info.value.code == 2
        assert "Traceback" not in capsys.readouterr().err


def test_demo_does_not_overwrite_without_force(tmp_path, capsys):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "report.md").write_text("keep me")
    code, lines = run_error(capsys, ["--quiet", "demo", "--out", str(out)])
    assert code == 2 and "--force" in lines[0]
    assert (out / "report.md").read_text() == "keep me"


def test_degenerate_data_is_a_one_line_error(tmp_path, capsys):
    data = tmp_path / "dup.csv"
    pd.DataFrame({"a": [1.0, 1.0, 1.0, 2.0] * 5, "b": [0.0, 0.0, 0.0, 1.0] * 5}).to_csv(data, index=False)
    code, lines = run_error(capsys, ["--quiet", "fit", str(data), "--k", "3", "--out", str(tmp_path / "r"), *FAST])
    assert code in (0, 2)
    if code == 2:
        assert len(lines) == 1 and "Traceback" not in lines[0]


# ---------------------------------------------------------------- separators and decimal marks
@pytest.mark.parametrize("sep, decimal", [(";", ","), (";", "."), ("\t", ","), ("|", "."), (",", ".")])
def test_separator_and_decimal_mark_are_detected(tmp_path, sep, decimal):
    data = tmp_path / "data.csv"
    load_faithful().to_csv(data, index=False, sep=sep, decimal=decimal)
    frame = read_csv(data)
    pd.testing.assert_frame_equal(frame, load_faithful(), check_dtype=False)


def test_semicolon_csv_with_decimal_commas_fits_the_right_features(tmp_path, capsys):
    data = tmp_path / "data.csv"
    load_faithful().to_csv(data, index=False, sep=";", decimal=",")
    out = tmp_path / "run"
    assert main(["--quiet", "fit", str(data), "--k", "2", "--out", str(out), *SMALL]) == 0
    from bayesgmm.bayes import load

    features = load(out / "model.nc").idata_.posterior["feature"].values
    assert list(features) == ["eruptions", "waiting"]


def test_a_wrong_explicit_separator_is_refused_naming_the_right_one(tmp_path, capsys):
    data = tmp_path / "data.csv"
    data.write_text("a;b\n1,5;2\n3,5;4\n2,5;1\n")
    code, lines = run_error(capsys, ["--quiet", "fit", str(data), "--sep", ",", "--k", "1",
                                     "--out", str(tmp_path / "run"), *SMALL])
    assert code == 2 and len(lines) == 1
    assert "looks ';'-separated" in lines[0] and "--sep ';'" in lines[0] and "--decimal ','" in lines[0]


def test_quoted_decimal_commas_ask_for_the_decimal_option(tmp_path, capsys):
    data = tmp_path / "data.csv"
    data.write_text('a,b\n"1,5","2,5"\n"3,5","4,5"\n')
    code, lines = run_error(capsys, ["--quiet", "fit", str(data), "--k", "1",
                                     "--out", str(tmp_path / "run"), *SMALL])
    assert code == 2 and len(lines) == 1 and "pass --decimal ','" in lines[0]
    frame = read_csv(data, decimal=",")  # the option the message names reads it
    np.testing.assert_allclose(frame.to_numpy(), [[1.5, 2.5], [3.5, 4.5]])


def test_predict_reads_and_writes_the_input_separator_and_decimal_mark(fitted_run, tmp_path):
    run, _ = fitted_run
    data = tmp_path / "data.csv"
    load_faithful().to_csv(data, index=False, sep=";", decimal=",")
    out = tmp_path / "memberships.csv"
    assert main(["predict", str(run / "model.nc"), str(data), "--out", str(out)]) == 0
    result = pd.read_csv(out, sep=";", decimal=",")
    pd.testing.assert_frame_equal(result[["eruptions", "waiting"]], load_faithful(), check_dtype=False)
    np.testing.assert_allclose(result[["prob_0", "prob_1"]].sum(axis=1), 1.0)


# ---------------------------------------------------------------- one run per output folder
HOLD_FOLDER = """
import sys
from bayesgmm.cli import prepare_output_dir
with prepare_output_dir(sys.argv[1], force=False):
    print("claimed", flush=True)
    sys.stdin.readline()
"""


def test_an_output_folder_in_use_by_another_run_is_refused(tmp_path, capsys, faithful_csv):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_FOLDER, str(out)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "claimed"
        code, lines = run_error(capsys, ["--quiet", "fit", str(faithful_csv), "--k", "2",
                                         "--out", str(out), "--force", *SMALL])
        assert code == 2 and len(lines) == 1
        assert f"in use by another bayesgmm run (pid {holder.pid})" in lines[0]
        assert "choose another --out" in lines[0]
    finally:
        holder.communicate("\n", timeout=60)
    assert holder.returncode == 0
    assert not (out / LOCK_NAME).exists()  # released when the holding run ends


def test_a_stale_lock_of_a_dead_process_is_taken_over_with_a_note(tmp_path, capsys):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK_NAME).write_text(dead.stdout)
    with prepare_output_dir(out, force=False) as claimed:
        assert (claimed / LOCK_NAME).read_text().strip() == str(os.getpid())
    assert f"locked by pid {dead.stdout.strip()}, which is no longer running" in capsys.readouterr().err
    assert not (out / LOCK_NAME).exists()


# ---------------------------------------------------------------- predict outputs
def test_predict_never_overwrites_input_columns(fitted_run, tmp_path, faithful_csv, capsys):
    run, _ = fitted_run
    data = tmp_path / "labelled.csv"
    original = pd.read_csv(faithful_csv).assign(label="mine", prob_0=-1.0)
    original.to_csv(data, index=False)
    out = tmp_path / "memberships.csv"
    assert main(["predict", str(run / "model.nc"), str(data), "--out", str(out)]) == 0
    assert "prefixed 'bayesgmm_'" in capsys.readouterr().out
    result = pd.read_csv(out)
    pd.testing.assert_frame_equal(result[original.columns], original)
    np.testing.assert_allclose(result[["bayesgmm_prob_0", "bayesgmm_prob_1"]].sum(axis=1), 1.0)
    assert "bayesgmm_label" in result.columns and "entropy" not in result.columns
    again = tmp_path / "again.csv"  # prefixed and plain names both taken: refuse
    code, lines = run_error(capsys, ["predict", str(run / "model.nc"), str(out), "--out", str(again)])
    assert code == 2 and len(lines) == 1 and "rename or drop" in lines[0]
    assert not again.exists()


def test_predict_refuses_non_finite_probabilities(fitted_run, tmp_path, faithful_csv, capsys,
                                                  monkeypatch):
    run, _ = fitted_run
    summary = BayesianGMM.membership_summary

    def corrupt(self, X):  # stands in for a model whose draws give NaN for some rows
        result = summary(self, X)
        result["prob"][[2, 5]] = np.nan
        return result

    monkeypatch.setattr(BayesianGMM, "membership_summary", corrupt)
    out = tmp_path / "memberships.csv"
    code, lines = run_error(capsys, ["predict", str(run / "model.nc"), str(faithful_csv), "--out", str(out)])
    assert code == 2 and len(lines) == 1
    assert "non-finite probabilities or scores for rows 3, 6 " in lines[0] and "re-fit" in lines[0]
    assert not out.exists()


# ---------------------------------------------------------------- options
@pytest.mark.parametrize("command", [["demo"], ["diagnose", "m.nc"], ["predict", "m.nc", "d.csv", "--out", "o.csv"],
                                     ["fit", "d.csv", "--k", "2", "--out", "r"], ["compare", "d.csv", "--out", "r"]])
def test_quiet_is_accepted_before_and_after_the_subcommand(command):
    parser = build_parser()
    assert parser.parse_args(command).quiet is False
    assert parser.parse_args(["--quiet", *command]).quiet is True
    assert parser.parse_args([*command, "--quiet"]).quiet is True


@pytest.mark.parametrize("seed", [str(2**63), "-1", "1.5", "1e3", "\u0663", "9" * 5000])
def test_seed_must_be_a_non_negative_integer_below_2_63(tmp_path, capsys, faithful_csv, seed):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", str(faithful_csv), "--k", "2", "--out", str(tmp_path / "r"), "--seed", seed])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert "argument --seed" in error and len(error) < 200
    assert build_parser().parse_args(["fit", "d.csv", "--k", "2", "--out", "r", "--seed",
                                      str(2**63 - 1)]).random_state == 2**63 - 1


def test_diagnostic_values_never_print_like_the_threshold_they_fail(capsys):
    table = pd.DataFrame.from_dict({
        "rhat": {"value": 1.013, "threshold": 1.01, "ok": False, "assessed": True, "verdict": "x"},
        "rhat_log_lik": {"value": 1.0099, "threshold": 1.01, "ok": True, "assessed": True, "verdict": "x"},
        "ess_bulk": {"value": 399.96, "threshold": 400, "ok": False, "assessed": True, "verdict": "x"},
        "ebfmi": {"value": 0.8541, "threshold": 0.3, "ok": True, "assessed": True, "verdict": "x"},
    }, orient="index")
    model = SimpleNamespace(diagnose=lambda: Diagnostics(table, [], {}))
    stream = io.StringIO()
    from bayesgmm.cli import _print_diagnostics

    _print_diagnostics(Console(file=stream, width=200), model)
    rows = {line.split()[1]: line.split()[3] for line in stream.getvalue().splitlines()
            if line.startswith("│")}
    assert rows == {"rhat": "1.013", "rhat_log_lik": "1.0099", "ess_bulk": "399.96", "ebfmi": "0.854"}


def test_fit_and_predict_with_noise_and_empty_cells(tmp_path):
    rng = np.random.default_rng(0)
    frame = load_faithful()
    frame = frame.mask(rng.uniform(size=frame.shape) < 0.05)
    frame = frame[frame.notna().any(axis=1)]
    data = tmp_path / "holes.csv"
    frame.to_csv(data, index=False)
    run = tmp_path / "run"
    assert main(["--quiet", "fit", str(data), "--k", "2", "--noise", "--missing",
                 "marginalize", "--out", str(run), *SMALL]) == 0
    out = tmp_path / "predictions.csv"
    assert main(["--quiet", "predict", str(run / "model.nc"), str(data), "--out", str(out)]) == 0
    predictions = pd.read_csv(out)
    assert {"p_noise", "p_noise_lower", "p_noise_upper"} <= set(predictions.columns)
    assert predictions["prob_0"].notna().all() and len(predictions) == len(frame)


def test_empty_cells_are_refused_by_default_with_the_option_named(tmp_path, capsys):
    frame = load_faithful()
    frame.iloc[3, 1] = np.nan
    data = tmp_path / "holes.csv"
    frame.to_csv(data, index=False)
    code, lines = run_error(capsys, ["--quiet", "fit", str(data), "--k", "2", "--out",
                                     str(tmp_path / "run"), *SMALL])
    assert code == 2 and len(lines) == 1 and "missing='marginalize'" in lines[0]
