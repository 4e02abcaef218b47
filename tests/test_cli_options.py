"""Command-line options: global flags in either position, sampler settings, weights, table digits."""

import io
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from bayesgmm._cli_parser import build_parser, model_settings
from bayesgmm._version import __version__
from bayesgmm.bayes import load
from bayesgmm.cli import _k_table_gates, _print_frame, main
from bayesgmm.datasets import load_faithful

SMALL = ["--draws", "100", "--tune", "100", "--chains", "2", "--seed", "0"]  # API checks only
COMMANDS = [["demo"], ["diagnose", "m.nc"], ["predict", "m.nc", "d.csv", "--out", "o.csv"],
            ["fit", "d.csv", "--k", "2", "--out", "r"], ["compare", "d.csv", "--out", "r"]]
FITTING_COMMANDS = [command for command in COMMANDS if command[0] in ("demo", "fit", "compare")]
SAMPLER_OPTIONS = ["--cores", "1", "--target-accept", "0.95", "--max-treedepth", "8",
                   "--mass-matrix", "low_rank", "--scale-prior", "lognormal"]


@pytest.fixture
def weighted_csv(tmp_path):
    frame = load_faithful()
    frame["count"] = np.random.default_rng(0).integers(1, 4, len(frame))
    path = tmp_path / "weighted.csv"
    frame.to_csv(path, index=False)
    return path


def run_error(capsys, argv):
    code = main(argv)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return code, lines


# ---------------------------------------------------------------- global flags
@pytest.mark.parametrize("command", COMMANDS)
def test_version_is_accepted_before_and_after_the_subcommand(command, capsys):
    for argv in (["--version", *command], [*command, "--version"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 0
        assert capsys.readouterr().out.strip() == f"bayesgmm {__version__}"


def test_the_installed_entry_point_prints_the_version():
    executable = shutil.which("bayesgmm", path=str(Path(sys.executable).parent))
    if executable is None:
        pytest.skip("the bayesgmm console script is not installed next to this Python")
    result = subprocess.run([executable, "--version"], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"bayesgmm {__version__}"


def test_fit_with_quiet_after_the_subcommand_runs_end_to_end(tmp_path, capsys):
    data = tmp_path / "faithful.csv"
    load_faithful().to_csv(data, index=False)
    run = tmp_path / "r"
    assert main(["fit", str(data), "--k", "2", "--out", str(run), "--quiet", *SMALL]) == 0
    captured = capsys.readouterr()
    assert f"saved {run / 'model.nc'}" in captured.out and "Diagnostics" in captured.out
    assert captured.err == ""  # no progress bars
    assert (run / "report.md").is_file()
    assert load(run / "model.nc").n_components == 2


# ---------------------------------------------------------------- sampler settings
@pytest.mark.parametrize("command", FITTING_COMMANDS)
def test_sampler_options_become_model_settings_only_when_given(command):
    parser = build_parser()
    assert not {"cores", "target_accept", "max_treedepth", "mass_matrix",
                "priors"} & set(model_settings(parser.parse_args(command)))
    settings = model_settings(parser.parse_args([*command, *SAMPLER_OPTIONS]))
    assert {name: settings[name] for name in ("cores", "target_accept", "max_treedepth",
                                              "mass_matrix")} == {
        "cores": 1, "target_accept": 0.95, "max_treedepth": 8, "mass_matrix": "low_rank"}
    assert settings["priors"].scale_prior == "lognormal"


def test_sampler_options_and_weights_reach_the_saved_model(tmp_path, weighted_csv):
    run = tmp_path / "r"
    assert main(["--quiet", "fit", str(weighted_csv), "--k", "2", "--out", str(run),
                 "--sample-weight", "count", *SAMPLER_OPTIONS, *SMALL]) == 0
    model = load(run / "model.nc")
    assert (model.cores, model.target_accept, model.max_treedepth, model.mass_matrix) == (
        1, 0.95, 8, "low_rank")
    assert model.priors.scale_prior == "lognormal"
    assert list(model.idata_.observed_data["feature"].values) == ["eruptions", "waiting"]
    np.testing.assert_array_equal(model.idata_.constant_data["sample_weight"].values,
                                  pd.read_csv(weighted_csv)["count"].to_numpy())


@pytest.mark.parametrize("option, value, expected", [
    ("--target-accept", "1", "strictly between 0 and 1"),
    ("--target-accept", "0", "strictly between 0 and 1"),
    ("--target-accept", "nan", "strictly between 0 and 1"),
    ("--target-accept", "high", "strictly between 0 and 1"),
    ("--cores", "0", "at least 1"),
    ("--max-treedepth", "2.5", "not a whole number"),
    ("--mass-matrix", "dense", "invalid choice"),
    ("--scale-prior", "gamma", "invalid choice"),
])
def test_bad_sampler_options_exit_2_naming_the_option(tmp_path, capsys, weighted_csv, option,
                                                      value, expected):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", str(weighted_csv), "--k", "2", "--out", str(tmp_path / "r"), option, value])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert f"argument {option}" in error and expected in error and len(error) < 200
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------- sample weights
@pytest.mark.parametrize("options, expected", [
    (["--sample-weight", "weight"], "has no column 'weight' for --sample-weight"),
    (["--sample-weight", "count", "--columns", "eruptions,count"], "leave it out of --columns"),
    (["--sample-weight", "count", "--columns", "count"], "leave it out of --columns"),
])
def test_a_wrong_weight_column_is_a_one_line_error(tmp_path, capsys, weighted_csv, options,
                                                   expected):
    code, lines = run_error(capsys, ["fit", str(weighted_csv), "--k", "2", "--out",
                                     str(tmp_path / "r"), *options, *SMALL])
    assert code == 2 and len(lines) == 1 and expected in lines[0]


def test_a_file_of_weights_alone_has_no_features(tmp_path, capsys):
    data = tmp_path / "weights.csv"
    pd.DataFrame({"count": [1, 2, 3]}).to_csv(data, index=False)
    code, lines = run_error(capsys, ["fit", str(data), "--k", "1", "--out",
                                     str(tmp_path / "r"), "--sample-weight", "count"])
    assert code == 2 and len(lines) == 1 and "at least one feature column" in lines[0]


def test_negative_weights_are_a_one_line_error_naming_the_row(tmp_path, capsys, weighted_csv):
    frame = pd.read_csv(weighted_csv)
    frame.loc[3, "count"] = -1
    frame.to_csv(weighted_csv, index=False)
    code, lines = run_error(capsys, ["fit", str(weighted_csv), "--k", "2", "--out",
                                     str(tmp_path / "r"), "--sample-weight", "count", *SMALL])
    assert code == 2 and len(lines) == 1 and "non-negative" in lines[0] and "row 3" in lines[0]


# ---------------------------------------------------------------- table digits
def test_k_table_r_hat_never_prints_like_its_threshold():
    table = pd.DataFrame({"elpd_loo": [-1000.04, -990.5], "max_rhat": [1.013, 1.0099],
                          "p_occupied": [0.0104, 0.5]}, index=pd.Index([1, 2], name="K"))
    stream = io.StringIO()
    _print_frame(Console(file=stream, width=200), table, "K", gates=_k_table_gates())
    rows = {line.split()[1]: line.split()[3::2] for line in stream.getvalue().splitlines()
            if line.startswith("│")}
    assert rows == {"1": ["-1000.0", "1.013", "0.0104"], "2": ["-990.5", "1.0099", "0.5"]}
