"""The command line end to end in a temporary folder, and every user-error path."""

import numpy as np
import pandas as pd
import pytest

from bayesgmm.cli import main
from bayesgmm.datasets import load_faithful

FAST = ["--draws", "1000", "--tune", "500", "--chains", "4", "--seed", "0"]


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
