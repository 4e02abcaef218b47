"""Co-clustering, occupied-component and 2-D density plots of real small fits."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.contour import ContourSet  # noqa: E402

from bayesgmm import BayesianGMM, plots  # noqa: E402
from bayesgmm._plots_clustering import coclustering_order  # noqa: E402
from bayesgmm._plots_density import ENCLOSED, density_grid, feature_pair  # noqa: E402
from bayesgmm.bayes import diagnostics_reported  # noqa: E402
from bayesgmm.datasets import load_faithful, load_galaxies, make_mixture  # noqa: E402
from bayesgmm.priors import GMMPriors  # noqa: E402

# Short runs: the plots are checked against the fit's own summaries, not the
# posterior's accuracy, so the convergence warnings of 100 draws are silenced.
SHORT = dict(draws=100, tune=100, chains=2, random_state=0, progressbar=False)


def short_fit(n_components, X, **settings):
    with diagnostics_reported():
        return BayesianGMM(n_components, **{**SHORT, **settings}).fit(X)


@pytest.fixture(scope="module")
def faithful_model():
    return short_fit(2, load_faithful())


@pytest.fixture(scope="module")
def three_feature_model():
    X, _ = make_mixture(200, [0.5, 0.5], [[0, 0, 0], [6, 6, 6]], np.tile(np.eye(3), (2, 1, 1)), 0)
    return short_fit(2, X), X


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def contour_sets(ax):
    return [artist for artist in ax.collections if isinstance(artist, ContourSet)]


# ------------------------------------------------------------------ co-clustering
def test_coclustering_order_groups_labels_noise_last_confident_first():
    labels = np.array([2, -1, 0, 2, 0, 1, -1, 0])
    confidence = np.array([0.7, 0.9, 0.5, 0.99, 0.8, 0.6, 0.4, 0.95])
    order = coclustering_order(labels, confidence)
    np.testing.assert_array_equal(labels[order], [0, 0, 0, 1, 2, 2, -1, -1])
    for label in (0, 2, -1):
        within = confidence[order][labels[order] == label]
        assert np.all(np.diff(within) <= 0)
    assert sorted(order.tolist()) == list(range(labels.size))


def test_coclustering_plot_is_the_matrix_ordered_by_cluster(faithful_model):
    X = load_faithful()
    summary = faithful_model.membership_summary(X)
    labels = summary["label"].values
    order = coclustering_order(labels, summary["confidence"].values)
    ax = plots.plot_coclustering(faithful_model, X)
    shown = np.asarray(ax.images[0].get_array())
    np.testing.assert_allclose(shown, faithful_model.coclustering(X)[np.ix_(order, order)])
    # Each cluster's points form one run, so the diagonal blocks are the clusters.
    runs = labels[order][np.r_[True, labels[order][1:] != labels[order][:-1]]]
    assert len(runs) == len(set(runs)) == 2
    n_first = int((labels == runs[0]).sum())
    # Faithful's two clusters are clear: bright diagonal blocks, dark elsewhere.
    assert shown[:n_first, :n_first].mean() > 0.9 and shown[n_first:, n_first:].mean() > 0.9
    assert shown[:n_first, n_first:].mean() < 0.1
    # One horizontal and one vertical boundary, between the two blocks.
    boundaries = sorted({*(line.get_ydata()[0] for line in ax.lines[::2]),
                         *(line.get_xdata()[0] for line in ax.lines[1::2])})
    assert boundaries == [n_first - 0.5]
    colorbar = ax.images[0].colorbar
    assert colorbar.ax.get_ylabel() == "P(two points share a component)"
    assert shown.min() >= 0.0 and shown.max() <= 1.0 + 1e-12


def test_coclustering_plot_defaults_to_training_data_and_checks_features(faithful_model):
    ax = plots.plot_coclustering(faithful_model, max_draws=20)
    assert ax.images[0].get_array().shape == (272, 272)
    with pytest.raises(ValueError, match="waiting"):
        plots.plot_coclustering(faithful_model, load_faithful()[["eruptions"]])


# ------------------------------------------------------------------ occupied components
def test_occupied_components_bars_are_the_posterior_and_sum_to_one():
    sparse = short_fit(4, load_faithful(), priors=GMMPriors(weight_concentration=0.01))
    ax = plots.plot_occupied_components(sparse, random_state=3)
    heights = np.array([bar.get_height() for bar in ax.patches])
    expected = sparse.occupied_components(random_state=3)
    np.testing.assert_allclose(heights, expected.to_numpy())
    assert heights.sum() == pytest.approx(1.0)
    np.testing.assert_array_equal([bar.get_x() + bar.get_width() / 2 for bar in ax.patches],
                                  [1, 2, 3, 4])
    assert "occupied components" in ax.get_xlabel()
    assert ax.get_ylabel() == "posterior probability"


def test_occupied_components_of_new_data_uses_that_data(faithful_model):
    subset = load_faithful().iloc[:60]
    ax = plots.plot_occupied_components(faithful_model, subset, random_state=1)
    np.testing.assert_allclose([bar.get_height() for bar in ax.patches],
                               faithful_model.occupied_components(subset, random_state=1))


# ------------------------------------------------------------------ 2-D density
def test_density_contours_share_levels_with_the_dashed_band(faithful_model):
    ax = plots.plot_density_contours(faithful_model, grid_size=25)
    solid, lower, upper = contour_sets(ax)
    assert len(solid.levels) == len(ENCLOSED)
    np.testing.assert_array_equal(lower.levels, solid.levels)
    np.testing.assert_array_equal(upper.levels, solid.levels)
    # matplotlib gives a line style as (offset, dash pattern), the pattern None when solid.
    assert all(dashes is not None for band in (lower, upper)
               for _, dashes in band.get_linestyles())
    assert all(dashes is None for _, dashes in solid.get_linestyles())
    # Default levels: the solid contour of each share encloses that share of the points.
    X = load_faithful()
    point_density = faithful_model.density_summary(X)["log_density"].values
    inside = [(point_density >= level).mean() for level in solid.levels]
    np.testing.assert_allclose(inside, ENCLOSED, atol=0.01)
    points = ax.collections[-1].get_offsets()
    np.testing.assert_array_equal(points, X.to_numpy())
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("eruptions", "waiting")


def test_density_grid_agrees_with_density_summary(faithful_model):
    X = load_faithful().to_numpy()
    grid = density_grid(faithful_model, X, (0, 1), 6)
    x_mesh, y_mesh = np.meshgrid(grid.x, grid.y)
    summary = faithful_model.density_summary(np.column_stack([x_mesh.ravel(), y_mesh.ravel()]))
    for name in ("log_density", "lower", "upper"):
        np.testing.assert_allclose(getattr(grid, name).ravel(), summary[name].values)
    assert np.all(grid.lower <= grid.log_density) and np.all(grid.log_density <= grid.upper)
    assert grid.x[0] < X[:, 0].min() and grid.y[-1] > X[:, 1].max()


def test_density_contours_of_two_of_three_features_draw_the_marginal(three_feature_model):
    model, X = three_feature_model
    ax = plots.plot_density_contours(model, features=("x2", 0), levels=4)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x2", "x0")
    assert "marginal" in ax.get_title()
    assert len(contour_sets(ax)) == 3
    np.testing.assert_array_equal(ax.collections[-1].get_offsets(), X[:, [2, 0]])
    # A marginal density integrates to about 1 over a grid that covers the data
    # (the grid misses the far tails, hence the tolerance).
    grid = density_grid(model, X, (2, 0), 60)
    mass = np.exp(grid.log_density).sum() * np.diff(grid.x)[0] * np.diff(grid.y)[0]
    assert mass == pytest.approx(1.0, abs=0.03)


def test_density_contours_of_a_noise_model_merge_tied_levels():
    # A fifth of the points are uniform noise: the noise component gives them
    # one equal density, so the 99% and 95% quantiles of the points' densities tie.
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0.0, 1.0, (80, 3)), rng.normal(8.0, 1.0, (80, 3)),
                   rng.uniform(-30.0, 40.0, (40, 3))])
    model = short_fit(2, X, noise=True, tune=150)
    ax = plots.plot_density_contours(model, features=(0, 1))
    solid, lower, upper = contour_sets(ax)
    assert np.all(np.diff(solid.levels) > 0) and len(solid.levels) < len(ENCLOSED)
    np.testing.assert_array_equal(upper.levels, solid.levels)
    shares = [float(label.get_text().split("%")[0]) / 100
              for label in solid.colorbar.ax.get_yticklabels()]
    assert shares == sorted(shares, reverse=True) and shares[0] == pytest.approx(1.0)


@pytest.mark.parametrize(("features", "message"), [
    (None, r"has 3 features .*pass features=\(first, second\)"),
    (("x0",), "a pair of feature names or positions"),
    ("x0", "a pair of feature names or positions"),
    (("x0", "height"), "no feature 'height'"),
    (("x0", 5), "position 5 is out of range"),
    (("x1", 1), "repeats 'x1'"),
])
def test_density_contours_refuse_unclear_features(three_feature_model, features, message):
    model, _ = three_feature_model
    with pytest.raises(ValueError, match=message):
        plots.plot_density_contours(model, features=features)


def test_density_contours_send_a_one_feature_model_to_the_1d_plot():
    with pytest.raises(ValueError, match="plot_density_1d"):
        feature_pair(["velocity"], None)
    model = short_fit(2, load_galaxies() / 1000)
    with pytest.raises(ValueError, match="plot_density_1d"):
        plots.plot_density_contours(model)


def test_density_contours_take_new_points_by_name(faithful_model):
    frame = load_faithful().iloc[:40][["waiting", "eruptions"]]
    ax = plots.plot_density_contours(faithful_model, frame, grid_size=10, levels=[-8.0, -5.0])
    np.testing.assert_array_equal(contour_sets(ax)[0].levels, [-8.0, -5.0])
    np.testing.assert_array_equal(ax.collections[-1].get_offsets(),
                                  frame[["eruptions", "waiting"]].to_numpy())
    with pytest.raises(ValueError, match="grid_size"):
        plots.plot_density_contours(faithful_model, grid_size=1)
