"""Plots render under Agg and reports write their files."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from bayesgmm import BayesianGMM, plots  # noqa: E402
from bayesgmm.datasets import load_faithful, load_galaxies, make_mixture  # noqa: E402
from bayesgmm.report import parameter_table, write_report  # noqa: E402

FAST = dict(draws=1000, tune=500, chains=4, progressbar=False, random_state=0)


@pytest.fixture(scope="module")
def faithful_model():
    return BayesianGMM(2, **FAST).fit(load_faithful())


def test_cluster_plot_has_ellipses_and_labels(faithful_model):
    grid = plots.plot_clusters(faithful_model, n_ellipse_draws=5)
    ax = grid[0]
    assert len(ax.patches) == 2 * (5 + 1)
    assert ax.get_xlabel() == "eruptions" and ax.get_ylabel() == "waiting"
    plt.close("all")


def test_cluster_plot_uses_feature_pairs_when_d_above_two():
    X, _ = make_mixture(200, [0.5, 0.5], [[0, 0, 0], [6, 6, 6]], np.tile(np.eye(3), (2, 1, 1)), 0)
    model = BayesianGMM(2, **FAST).fit(X)
    grid = plots.plot_clusters(model, n_ellipse_draws=3)
    assert sum(ax.get_visible() for ax in grid) == 3
    plt.close("all")


def test_membership_interval_plot(faithful_model):
    ax = plots.plot_membership_intervals(faithful_model, n_points=10)
    assert 5 <= len(ax.get_yticks()) <= 10
    plt.close("all")


def test_density_plot_with_band():
    model = BayesianGMM(2, **FAST).fit(load_galaxies() / 1000)
    ax = plots.plot_density_1d(model)
    assert len(ax.collections) >= 1 and ax.get_xlabel() == "velocity"
    plt.close("all")


def test_arviz_rank_and_trace_plots(faithful_model, tmp_path):
    for function in (plots.plot_rank, plots.plot_trace):
        collection = function(faithful_model)
        collection.savefig(tmp_path / "figure.png")
        assert (tmp_path / "figure.png").stat().st_size > 1000
    plt.close("all")


def test_parameter_table_rows(faithful_model):
    table = parameter_table(faithful_model)
    assert "means[0, waiting]" in table.index
    assert "correlations[1, waiting, eruptions]" in table.index
    assert (table["94% lower"] <= table["mean"]).all() and (table["mean"] <= table["94% upper"]).all()


def test_report_files_exist(faithful_model, tmp_path):
    path = write_report(tmp_path, faithful_model, load_faithful())
    text = path.read_text()
    for name in ("clusters.png", "membership_intervals.png", "rank.png", "trace.png"):
        assert (tmp_path / name).is_file()
        assert f"({name})" in text
    assert "All checks passed." in text


def test_cluster_plot_of_a_one_feature_model_is_its_density():
    model = BayesianGMM(2, **FAST).fit(load_galaxies() / 1000)
    axes = plots.plot_clusters(model)
    assert axes[0].get_xlabel() == "velocity"
    plt.close("all")


@pytest.mark.filterwarnings("ignore::bayesgmm.bayes.DiagnosticsWarning")
def test_cluster_plot_draws_noise_points_grey():
    # A short run: only the colours are checked here.
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0.0, 1.0, (80, 2)), rng.normal(8.0, 1.0, (80, 2)),
                   rng.uniform(-30.0, 40.0, (20, 2))])
    model = BayesianGMM(2, noise=True, draws=150, tune=200, chains=2, random_state=0,
                        progressbar=False).fit(X)
    labels = model.predict(X)
    ax = plots.plot_clusters(model, X)[0]
    colours = ax.collections[0].get_facecolors()[:, :3]
    grey = np.all(np.isclose(colours, plots.NOISE_COLOUR), axis=1)
    np.testing.assert_array_equal(grey, labels == -1)
    assert grey.sum() >= 15
    plt.close("all")


def test_markdown_table_gives_each_index_level_a_column():
    import pandas as pd

    from bayesgmm.report import markdown_table

    index = pd.MultiIndex.from_tuples([("full", 1), ("tied", 2)], names=["covariance_type", "K"])
    lines = markdown_table(pd.DataFrame({"elpd_loo": [-1.5, -2.25]}, index=index)).splitlines()
    assert lines[0] == "| covariance_type | K | elpd_loo |"
    assert lines[1] == "|---|---|---|"
    assert lines[3].startswith("| tied | 2 | ")
