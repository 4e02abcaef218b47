"""BayesianGMM under scikit-learn's contract, its posterior predictive and summaries.

API tests use short runs (100-200 draws): they test wiring and shapes, and
the statistical properties that hold for any reasonable posterior; the
sampler itself is never mocked.
"""

import arviz as az
import matplotlib
import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

from bayesgmm import BayesianGMM, load
from bayesgmm.bayes import diagnostics_reported
from bayesgmm.datasets import load_faithful

matplotlib.use("Agg")

QUICK = dict(draws=100, tune=100, chains=2, em_n_init=1, progressbar=False)

CHECK_EXEMPTIONS = {
    "check_sample_weight_equivalence_on_dense_data": (
        "27 rows of 30 features: refused on purpose (more free parameters per component than "
        "rows, so the posterior would restate the prior; _checks.py explains the remedy)"),
    "check_dtype_object": (
        "56 rows of 10 features: the same refusal of an unidentified full-covariance model"),
    "check_fit2d_1sample": (
        "one row is refused by the same identifiability check, whose message names rows and "
        "parameters rather than sklearn's '1 sample' wording"),
}


@parametrize_with_checks(
    [BayesianGMM(draws=50, tune=50, chains=1, em_n_init=1, progressbar=False, random_state=0)],
    expected_failed_checks=lambda estimator: CHECK_EXEMPTIONS,
)
def test_sklearn_estimator_checks(estimator, check):
    # 50 draws of one chain fail the convergence gates; the warning says so, by name.
    with diagnostics_reported():
        check(estimator)


@pytest.fixture(scope="module")
def faithful():
    return load_faithful()


@pytest.fixture(scope="module")
def fitted(faithful):
    with diagnostics_reported():
        return BayesianGMM(2, random_state=3, **QUICK).fit(faithful)


def test_cross_validation_and_grid_search_run(faithful):
    model = BayesianGMM(2, draws=200, tune=200, chains=2, progressbar=False, random_state=0)
    with diagnostics_reported():
        scores = cross_val_score(model, faithful, cv=3)
        search = GridSearchCV(BayesianGMM(random_state=0, **QUICK),
                              {"n_components": [1, 2]}, cv=2).fit(faithful)
    assert scores.shape == (3,) and np.all(np.isfinite(scores))
    # Faithful is bimodal in both columns: two components predict held-out rows better.
    assert search.best_params_ == {"n_components": 2}


def test_score_is_the_mean_predictive_log_density(fitted, faithful):
    assert fitted.score(faithful) == pytest.approx(fitted.score_samples(faithful).mean())
    with diagnostics_reported():
        pipeline = make_pipeline(FunctionTransformer(), BayesianGMM(2, random_state=3, **QUICK))
        assert pipeline.fit(faithful).score(faithful) == pytest.approx(fitted.score(faithful))


def test_fit_predict_equals_fit_then_predict(faithful):
    with diagnostics_reported():
        labels = BayesianGMM(2, random_state=5, **QUICK).fit_predict(faithful)
        refit = BayesianGMM(2, random_state=5, **QUICK).fit(faithful)
    np.testing.assert_array_equal(labels, refit.predict(faithful))
    np.testing.assert_array_equal(refit.labels_, labels)


@pytest.mark.parametrize("method", ["predict", "score", "score_samples", "summary"])
def test_unfitted_model_raises_not_fitted(method, faithful):
    args = () if method == "summary" else (faithful,)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        getattr(BayesianGMM(), method)(*args)
    assert not hasattr(BayesianGMM(), "labels_")


def test_point_summaries_are_posterior_means(fitted):
    posterior = fitted.idata_.posterior
    np.testing.assert_allclose(fitted.weights_, posterior["weights"].mean(("chain", "draw")))
    np.testing.assert_allclose(fitted.means_, posterior["means"].mean(("chain", "draw")))
    np.testing.assert_allclose(fitted.covariances_,
                               posterior["covariances"].mean(("chain", "draw")))
    assert fitted.noise_weight_ is None


@pytest.mark.parametrize("covariance_type, shape", [
    ("tied", (2, 2)), ("diag", (2, 2)), ("spherical", (2,)),
])
def test_covariances_have_sklearns_shape(covariance_type, shape, faithful):
    with diagnostics_reported():
        model = BayesianGMM(2, covariance_type=covariance_type, random_state=0,
                            **QUICK).fit(faithful)
    assert model.covariances_.shape == shape
    full = model.idata_.posterior["covariances"].mean(("chain", "draw")).values
    expected = {"tied": full[0], "diag": np.diagonal(full, axis1=1, axis2=2),
                "spherical": full[:, 0, 0]}[covariance_type]
    np.testing.assert_allclose(model.covariances_, expected)


def test_sample_draws_from_the_posterior_predictive(fitted):
    values, labels = fitted.sample(20_000)
    assert values.shape == (20_000, 2) and set(np.unique(labels)) == {0, 1}
    # Component shares follow the posterior-mean weights: binomial sd ~0.0034 at n=2e4.
    np.testing.assert_allclose(np.bincount(labels) / labels.size, fitted.weights_, atol=0.015)
    # Predictive mean = sum_k w_k mu_k averaged over draws; sd of the estimate ~0.1 s / min.
    np.testing.assert_allclose(values.mean(axis=0), fitted.weights_ @ fitted.means_,
                               rtol=0.01)
    again, _ = fitted.sample(5)
    np.testing.assert_array_equal(again, fitted.sample(5)[0])  # integer random_state


def test_sample_labels_noise_points(faithful):
    with diagnostics_reported():
        model = BayesianGMM(2, noise=True, random_state=0, **QUICK).fit(faithful)
    values, labels = model.sample(5000, random_state=1)
    noise = labels == -1
    assert 0 < noise.sum() < 5000
    box = model._parameters.noise.box
    assert np.all((values[noise] >= box.lower) & (values[noise] <= box.upper))


def test_posterior_predictive_group_and_arviz(fitted, tmp_path):
    tree = fitted.sample_posterior_predictive(random_state=0)
    replicate = tree.posterior_predictive["x"]
    assert replicate.dims == ("chain", "draw", "obs", "feature")
    assert replicate.shape == (2, 100, 272, 2)
    # Replicates resemble the data: per-feature means agree within a few percent.
    np.testing.assert_allclose(replicate.mean(("chain", "draw", "obs")),
                               tree.observed_data["x"].mean("obs"), rtol=0.03)
    az.plot_ppc_dist(tree)
    pit = fitted.loo_pit()
    assert pit.dims == ("obs", "feature")
    # A well specified two-component fit: each feature's LOO-PIT is near uniform
    # (Kolmogorov-Smirnov distance below 0.1; its 5% critical value at n=272 is 0.082).
    for column in pit.values.T:
        grid = np.sort(column)
        assert np.max(np.abs(grid - (np.arange(grid.size) + 0.5) / grid.size)) < 0.1
    fitted.save(tmp_path / "model.nc")
    loaded = load(tmp_path / "model.nc")
    np.testing.assert_array_equal(loaded.idata_.posterior_predictive["x"], replicate)


def test_posterior_predictive_over_budget_is_refused(fitted, monkeypatch):
    monkeypatch.setattr("bayesgmm._posterior_queries.PREDICTIVE_BUDGET", 1000)
    with pytest.raises(ValueError, match="use model.sample"):
        fitted.sample_posterior_predictive()


def test_summary_leaves_out_constant_entries(fitted):
    table = fitted.summary()
    assert list(table.index) == [
        "weights[0]", "weights[1]", "means[0, eruptions]", "means[0, waiting]",
        "means[1, eruptions]", "means[1, waiting]", "scales[0, eruptions]",
        "scales[0, waiting]", "scales[1, eruptions]", "scales[1, waiting]",
        "correlations[0, eruptions, waiting]", "correlations[1, eruptions, waiting]",
    ]
    assert {"mean", "sd", "ess_bulk", "ess_tail", "r_hat", "eti94_lb", "eti94_ub"} <= set(
        table.columns)
    assert table["r_hat"].notna().all() and table.dtypes.map(pd.api.types.is_float_dtype).all()
    np.testing.assert_allclose(table.loc["means[1, waiting]", "mean"], fitted.means_[1, 1])


def test_html_display_of_a_fitted_model(fitted):
    html = fitted._repr_html_()
    assert "2, covariance full" in html and "nuts (nutpie)" in html
    assert "means[0, eruptions]" in html and "gates" in html
    assert "(fitted)" not in BayesianGMM()._repr_html_()


def test_predictive_check_tree_is_bounded_and_leaves_the_model(fitted, monkeypatch):
    from bayesgmm.predictive import predictive_check_tree

    monkeypatch.setattr("bayesgmm.predictive.CHECK_ROWS", 100)
    before = set(fitted.idata_.children)
    tree = predictive_check_tree(fitted.idata_, fitted._parameters, np.random.default_rng(0))
    assert tree.posterior_predictive["x"].shape == (1, 50, 100, 2)
    np.testing.assert_array_equal(tree.observed_data["obs"], tree.posterior_predictive["obs"])
    assert set(fitted.idata_.children) == before
    az.plot_ppc_dist(tree, cols=["feature"])


def test_arviz_loo_pit_on_the_tree(faithful, fitted):
    from bayesgmm.predictive import pit_tree

    # One feature: ArviZ's own route works on idata_ as it is.
    with diagnostics_reported():
        one = BayesianGMM(2, random_state=0, **QUICK).fit(faithful[["waiting"]])
    one.sample_posterior_predictive()
    direct = az.loo_pit(one.idata_)["x"]
    np.testing.assert_allclose(direct.values, one.loo_pit().values)
    # Several features: arviz-stats expects one log-likelihood value per observed value,
    # a mixture has one per row; pit_tree repeats it along feature for the PIT plots.
    fitted.sample_posterior_predictive()
    az.plot_loo_pit(pit_tree(fitted.idata_))


def test_weighted_fits_get_a_weighted_predictive_check():
    from bayesgmm.predictive import predictive_check_tree

    rows = np.r_[np.full(150, -4.0), np.full(150, 4.0)][:, None]
    rows = rows + np.random.default_rng(0).normal(scale=0.5, size=rows.shape)
    weights = np.r_[np.full(150, 9.0), np.full(150, 1.0)]
    with diagnostics_reported():
        model = BayesianGMM(2, random_state=0, **QUICK).fit(rows, sample_weight=weights)
    tree = predictive_check_tree(model.idata_, model._parameters, np.random.default_rng(1))
    # The rows left of 0 carry 90% of the weight: the check's data and replicates agree
    # (binomial sd of a share from ~3000 rows: 0.006).
    observed_left = float((tree.observed_data["x"] < 0).mean())
    replicated_left = float((tree.posterior_predictive["x"] < 0).mean())
    assert observed_left == pytest.approx(0.9, abs=0.03)
    assert replicated_left == pytest.approx(0.9, abs=0.03)
    with pytest.raises(ValueError, match="frequency-weighted"):
        model.sample_posterior_predictive()


def test_loo_pit_leaves_out_rows_with_missing_values(faithful):
    values = faithful.to_numpy().copy()
    values[::10, 1] = np.nan
    with diagnostics_reported():
        model = BayesianGMM(2, missing="marginalize", random_state=0, **QUICK).fit(values)
    model.sample_posterior_predictive()
    pit = model.loo_pit()
    incomplete = np.isnan(values).any(axis=1)
    assert pit.shape == values.shape
    assert pit.isel(obs=np.flatnonzero(incomplete)).isnull().all()
    assert pit.isel(obs=np.flatnonzero(~incomplete)).notnull().all()


@pytest.mark.parametrize("covariance_type, scale_rows", [
    ("tied", ["scales[eruptions]", "scales[waiting]", "correlations[eruptions, waiting]"]),
    ("spherical", ["scales[0]", "scales[1]"]),
])
def test_summary_lists_shared_values_once(covariance_type, scale_rows, faithful):
    with diagnostics_reported():
        model = BayesianGMM(2, covariance_type=covariance_type, random_state=0,
                            **QUICK).fit(faithful)
    assert list(model.summary().index)[6:] == scale_rows


def test_sample_is_drawn_in_blocks(fitted, monkeypatch):
    expected = fitted.sample(1000, random_state=4)
    monkeypatch.setattr("bayesgmm.predictive._BLOCK_VALUES", 40)  # blocks of 10 points
    blocked = fitted.sample(1000, random_state=4)
    assert blocked[0].shape == (1000, 2)
    # The same generator consumed in blocks: a different but equally distributed sample.
    np.testing.assert_allclose(blocked[0].mean(axis=0), expected[0].mean(axis=0), rtol=0.05)
