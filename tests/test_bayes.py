"""End-to-end tests of BayesianGMM with the real sampler (no mocks)."""

import warnings

import numpy as np
import pandas as pd
import pytest

from bayesgmm import BayesianGMM, GMMPriors, load
from bayesgmm._checks import DataValidationError
from bayesgmm.datasets import load_faithful, make_mixture
from bayesgmm.io import ModelFileError

# Short but converged runs: Faithful K=2 passes every gate with these.
FAST = dict(draws=1000, tune=500, chains=4, progressbar=False)


def separated_mixture(n_components, n_features, n_samples=400, seed=0):
    """Clusters 10 standard deviations apart, correlated when D > 1."""
    rng = np.random.default_rng(seed)
    weights = np.array([0.5, 0.3, 0.2][:n_components])
    weights /= weights.sum()
    means = np.zeros((n_components, n_features))
    means[:, 0] = 10.0 * np.arange(n_components)
    if n_features > 1:
        means[:, 1] = rng.normal(size=n_components)
    scales = np.linspace(0.8, 1.5, n_features)
    correlation = np.full((n_features, n_features), 0.4) + 0.6 * np.eye(n_features)
    covariance = correlation * np.outer(scales, scales)
    covariances = np.stack([covariance * (1 + 0.3 * k) for k in range(n_components)])
    X, labels = make_mixture(n_samples, weights, means, covariances, random_state=seed)
    return X, labels, weights, means, covariances


def posterior_summary(fitted, name):
    draws = fitted.idata_.posterior[name]
    return draws.mean(("chain", "draw")).values, draws.std(("chain", "draw")).values


@pytest.mark.parametrize("n_features", [1, 2, 3])
@pytest.mark.parametrize("n_components", [1, 2, 3])
def test_recovers_known_mixture(n_components, n_features):
    X, _, weights, means, covariances = separated_mixture(n_components, n_features)
    fitted = BayesianGMM(n_components, random_state=1, progressbar=False).fit(X)
    # The fit itself warns (and pytest turns that into an error) if any
    # diagnostic gate fails; check the headline one explicitly too.
    assert fitted.diagnostics_.table.loc["rhat", "value"] < 1.01 or n_components * n_features == 1
    order = np.argsort(posterior_summary(fitted, "means")[0][:, 0])
    # Tolerance: 4 posterior standard deviations (a true value outside that
    # has probability < 1e-4 per parameter under a calibrated posterior) plus
    # 2% of the scale for Monte Carlo error of the posterior mean.
    for name, truth in (("weights", weights), ("means", means), ("covariances", covariances)):
        mean, sd = posterior_summary(fitted, name)
        mean, sd = mean[order], sd[order]
        scale = np.abs(truth).max()
        assert np.all(np.abs(mean - truth) <= 4 * sd + 0.02 * scale), name


def test_datatree_layout_and_provenance():
    X = load_faithful()
    fitted = BayesianGMM(2, random_state=0, **FAST).fit(X)
    tree = fitted.idata_
    assert {"posterior", "sample_stats", "log_likelihood", "observed_data"} <= set(tree.children)
    posterior = tree.posterior
    assert posterior["weights"].dims == ("chain", "draw", "component")
    assert posterior["means"].dims == ("chain", "draw", "component", "feature")
    assert posterior["scales"].dims == ("chain", "draw", "component", "feature")
    assert posterior["correlations"].dims == ("chain", "draw", "component", "feature", "feature2")
    assert list(posterior["feature"].values) == ["eruptions", "waiting"]
    assert tree.log_likelihood["x"].dims == ("chain", "draw", "obs")
    assert tree.observed_data["x"].shape == (272, 2)
    np.testing.assert_array_equal(tree.observed_data["x"].values, X.to_numpy())
    assert GMMPriors.from_json(tree.attrs["priors"]) == GMMPriors()
    assert len(tree.attrs["data_sha256"]) == 64
    assert tree.attrs["method"] == "nuts" and tree.attrs["random_state"] == 0
    # Scales are standard deviations in data units, consistent with covariances.
    np.testing.assert_allclose(
        posterior["scales"].values ** 2,
        np.diagonal(posterior["covariances"].values, axis1=-2, axis2=-1),
    )


def test_random_state_makes_draws_reproducible():
    X = load_faithful()
    first = BayesianGMM(2, random_state=3, **FAST).fit(X).idata_.posterior
    second = BayesianGMM(2, random_state=3, **FAST).fit(X).idata_.posterior
    other = BayesianGMM(2, random_state=4, **FAST).fit(X).idata_.posterior
    assert first.identical(second)
    assert not np.array_equal(first["means"].values, other["means"].values)


def test_pointwise_log_likelihood_matches_the_em_scale():
    X = load_faithful()
    fitted = BayesianGMM(2, random_state=0, **FAST).fit(X)
    mean_loglik = fitted.idata_.log_likelihood["x"].values.sum(-1).mean()
    from bayesgmm import GaussianMixtureEM
    em_loglik = GaussianMixtureEM(2, n_init=5, random_state=0).fit(X).score(X) * len(X)
    # The posterior mean log-likelihood sits about p/2 = 5.5 nats below the
    # maximum (a chi-square with p = 11 degrees of freedom, halved).
    assert em_loglik - 15 < mean_loglik < em_loglik


def test_membership_on_fitted_model():
    X, labels, *_ = separated_mixture(2, 2)
    fitted = BayesianGMM(2, random_state=0, **FAST).fit(X)
    summary = fitted.membership_summary(X)
    np.testing.assert_allclose(summary["prob"].sum("component"), 1.0)
    assert float(summary["confidence"].min()) > 0.99
    assert float(summary["mutual_information"].min()) >= 0.0
    midpoint = np.array([[5.0, float(X[:, 1].mean())]])
    assert float(fitted.membership_summary(midpoint)["confidence"][0]) < 0.99
    assert np.array_equal(fitted.predict(X), summary["label"].values)
    from sklearn.metrics import adjusted_rand_score
    assert adjusted_rand_score(labels, fitted.predict(X)) == 1.0


def test_density_and_anomaly_scores_on_new_data():
    X, *_ = separated_mixture(2, 2)
    fitted = BayesianGMM(2, random_state=0, **FAST).fit(X)
    new = np.array([[0.0, 0.0], [10.0, 0.0], [5.0, 30.0]])
    log_density = fitted.score_samples(new)
    anomaly = fitted.anomaly_scores(new)
    np.testing.assert_allclose(anomaly["score"].values, -log_density)
    assert np.all(anomaly["lower"] <= anomaly["upper"])
    assert anomaly["score"].values[2] > anomaly["score"].values[:2].max() + 20


def test_nuts_and_advi_agree_on_separated_data():
    X, *_ = separated_mixture(2, 2, n_samples=500)
    nuts = BayesianGMM(2, random_state=0, progressbar=False).fit(X)
    advi = BayesianGMM(2, method="fullrank_advi", random_state=0, progressbar=False).fit(X)
    nuts_mean, nuts_sd = posterior_summary(nuts, "means")
    advi_mean, _ = posterior_summary(advi, "means")
    # Both approximate the same, nearly Gaussian posterior: means agree to
    # well within half a posterior standard deviation (~0.03 data units).
    assert np.all(np.abs(nuts_mean - advi_mean) < 0.5 * nuts_sd + 0.01)
    assert advi.idata_.posterior.sizes["chain"] == 1
    assert advi.diagnose().ok


def test_mean_field_advi_runs_through_the_same_pipeline():
    X = load_faithful()
    advi = BayesianGMM(2, method="advi", random_state=0, progressbar=False, draws=500).fit(X)
    assert advi.idata_.log_likelihood["x"].shape == (1, 500, 272)
    assert "vi_trace" in advi.idata_.children
    np.testing.assert_allclose(advi.predict_proba(X).sum(axis=1), 1.0)


def test_pymc_engine_runs_from_the_em_start():
    X = load_faithful()
    fitted = BayesianGMM(2, engine="pymc", random_state=0, **FAST).fit(X)
    mean, _ = posterior_summary(fitted, "means")
    np.testing.assert_allclose(np.sort(mean[:, 1]), [54.5, 80.0], atol=1.0)


def test_advi_is_not_offered_on_the_pymc_engine():
    with pytest.raises(ValueError, match="ADVI runs on bayesgmm's compiled density"):
        BayesianGMM(2, method="advi", engine="pymc", progressbar=False).fit(load_faithful())


def test_one_feature_works_without_lkj():
    X = load_faithful()[["waiting"]]
    fitted = BayesianGMM(2, random_state=0, **FAST).fit(X)
    assert fitted.idata_.posterior["correlations"].shape[-2:] == (1, 1)
    assert "correlations_cholesky" not in [v.name for v in __import__("bayesgmm").build_model(X, 2).free_RVs]


def test_diag_covariance_has_zero_correlations():
    fitted = BayesianGMM(2, covariance_type="diag", random_state=0, **FAST).fit(load_faithful())
    correlations = fitted.idata_.posterior["correlations"].values
    np.testing.assert_array_equal(correlations[..., 0, 1], 0.0)


def test_raw_scale_priors_are_used_exactly():
    from bayesgmm import build_model

    priors = GMMPriors(mean_loc=0.0, mean_scale=2.0, scale_scale=2.0, weight_concentration=5.0, standardize=False)
    model = build_model(np.random.default_rng(0).normal(size=(50, 2)), 2, priors)
    point = {"means": np.array([[0.5, -1.0], [1.0, 2.0]])}
    from scipy.stats import norm
    logp = model.compile_logp(vars=[model["means"]], jacobian=False, mode="FAST_COMPILE")
    full_point = {**model.initial_point(), **point}
    assert logp(full_point) == pytest.approx(norm(0, 2).logpdf(point["means"]).sum())


def test_bad_input_goes_through_the_checks():
    frame = load_faithful()
    frame.loc[3, "waiting"] = np.nan
    with pytest.raises(DataValidationError, match="column 'waiting' has 1 NaN value"):
        BayesianGMM(2, **FAST).fit(frame)
    with pytest.raises(DataValidationError, match="n_samples = 2 and n_components = 3"):
        BayesianGMM(3, **FAST).fit(np.array([[0.0], [1.0]]))
    with pytest.raises(ValueError, match="method must be one of"):
        BayesianGMM(2, method="gibbs").fit(load_faithful())


def test_new_data_must_have_the_fitted_columns():
    fitted = BayesianGMM(2, random_state=0, **FAST).fit(load_faithful())
    with pytest.raises(DataValidationError, match="expecting 2 features"):
        fitted.predict(np.ones((3, 3)))
    with pytest.raises(AttributeError, match="not fitted yet"):
        BayesianGMM(2).predict(np.ones((3, 2)))


def test_save_load_round_trip_is_identical(tmp_path):
    fitted = BayesianGMM(2, random_state=0, **FAST).fit(load_faithful())
    path = fitted.save(tmp_path / "model.nc")
    loaded = load(path)
    assert loaded.idata_.identical(fitted.idata_)
    for group in fitted.idata_.groups:
        assert loaded.idata_[group].identical(fitted.idata_[group]), group
        assert dict(loaded.idata_[group].attrs) == dict(fitted.idata_[group].attrs)
    X = load_faithful()
    np.testing.assert_allclose(loaded.predict_proba(X), fitted.predict_proba(X))
    np.testing.assert_allclose(loaded.score_samples(X), fitted.score_samples(X))


def test_saving_never_overwrites_without_permission(tmp_path):
    fitted = BayesianGMM(2, random_state=0, **FAST).fit(load_faithful())
    path = tmp_path / "model.nc"
    path.write_text("precious user data")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        fitted.save(path)
    assert path.read_text() == "precious user data"
    fitted.save(path, overwrite=True)
    assert load(path).idata_.identical(fitted.idata_)


def test_corrupt_missing_and_newer_files_are_clear_errors(tmp_path):
    fitted = BayesianGMM(2, random_state=0, **FAST).fit(load_faithful())
    good = fitted.save(tmp_path / "model.nc")
    truncated = tmp_path / "truncated.nc"
    truncated.write_bytes(good.read_bytes()[:2000])
    junk = tmp_path / "junk.nc"
    junk.write_text("eruptions,waiting\n1,2\n")
    for path in (truncated, junk):
        with pytest.raises(ModelFileError, match="not a readable bayesgmm model file"):
            load(path)
    with pytest.raises(ModelFileError, match="No model file"):
        load(tmp_path / "missing.nc")
    newer = fitted.idata_.copy()
    newer.attrs["bayesgmm_format_version"] = 99
    newer.to_netcdf(tmp_path / "newer.nc", engine="netcdf4")
    with pytest.raises(ModelFileError, match="newer than this installation"):
        load(tmp_path / "newer.nc")


def test_failed_gates_warn_once_in_plain_words():
    X = load_faithful()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        BayesianGMM(3, draws=30, tune=30, chains=2, random_state=0, progressbar=False).fit(X)
    messages = [str(w.message) for w in caught if "convergence checks" in str(w.message)]
    assert len(messages) == 1
    assert "increase draws" in messages[0]


def test_dataframe_columns_become_feature_coordinates():
    frame = pd.DataFrame({"height": np.r_[np.zeros(40), np.full(40, 8.0)] + np.random.default_rng(0).normal(size=80),
                          "weight": np.random.default_rng(1).normal(size=80)})
    fitted = BayesianGMM(2, random_state=0, **FAST).fit(frame)
    assert list(fitted.idata_.posterior["feature"].values) == ["height", "weight"]


def test_shift_and_scale_of_the_data_map_draws_exactly():
    # With standardize=True the model sees the same standardised data, so the
    # same seed gives the same draws on the model scale; every summary must
    # map through x -> a + b x exactly (up to rounding).
    X = load_faithful().to_numpy()
    base = BayesianGMM(2, random_state=5, **FAST).fit(X).idata_.posterior
    moved = BayesianGMM(2, random_state=5, **FAST).fit(100.0 + 1000.0 * X).idata_.posterior
    np.testing.assert_allclose(moved["means"], 100.0 + 1000.0 * base["means"], rtol=1e-9)
    np.testing.assert_allclose(moved["scales"], 1000.0 * base["scales"], rtol=1e-9)
    np.testing.assert_allclose(moved["weights"], base["weights"], rtol=1e-9)
    np.testing.assert_allclose(moved["correlations"], base["correlations"], atol=1e-9)


def test_moment_matching_density_equals_the_samplers():
    from bayesgmm.loo import _Unconstrained

    fitted = BayesianGMM(2, random_state=0, **FAST).fit(load_faithful())
    X = fitted.idata_.observed_data["x"].values
    mapping = _Unconstrained(fitted, X)
    posterior = fitted.idata_.posterior.isel(draw=slice(0, 20))
    upars = mapping.upars(posterior.to_dataset())
    lp = fitted.idata_.sample_stats["lp"].isel(draw=slice(0, 20)).values
    # Relabelling only permutes components; the density is label-invariant,
    # except that the Dirichlet prior is symmetric here (alpha = 1), so the
    # sampler's lp must be reproduced to rounding.
    np.testing.assert_allclose(mapping.log_prob(upars).values, lp, rtol=1e-9)
    log_lik = fitted.idata_.log_likelihood["x"].isel(draw=slice(0, 20)).values[..., 7]
    np.testing.assert_allclose(mapping.log_lik_i(upars, 7).values, log_lik, rtol=1e-9)


def test_loaded_model_keeps_every_setting(tmp_path):
    fitted = BayesianGMM(2, interval=0.8, relabel="pivot", em_n_init=3, random_state=7,
                         **FAST).fit(load_faithful())
    loaded = load(fitted.save(tmp_path / "model.nc"))
    assert loaded.get_params(deep=False) == fitted.get_params(deep=False)
    summary = loaded.membership_summary(load_faithful())
    assert summary.attrs["interval"] == 0.8


def test_altered_model_file_is_rejected(tmp_path):
    fitted = BayesianGMM(2, random_state=0, **FAST).fit(load_faithful())
    tampered = fitted.idata_.copy()
    tampered["observed_data"]["x"].values[0, 0] += 1.0
    tampered.to_netcdf(tmp_path / "tampered.nc", engine="netcdf4")
    with pytest.raises(ModelFileError, match="do not match its recorded SHA-256"):
        load(tmp_path / "tampered.nc")
    stripped = fitted.idata_.copy()
    del stripped.attrs["params"]
    stripped.to_netcdf(tmp_path / "stripped.nc", engine="netcdf4")
    with pytest.raises(ModelFileError, match="lacks or garbles its settings"):
        load(tmp_path / "stripped.nc")


def test_new_dataframe_columns_are_matched_by_name():
    frame = load_faithful()
    fitted = BayesianGMM(2, random_state=0, **FAST).fit(frame)
    swapped = frame[["waiting", "eruptions"]]
    np.testing.assert_allclose(fitted.predict_proba(swapped), fitted.predict_proba(frame))
    with pytest.raises(DataValidationError, match="no column 'waiting'"):
        fitted.predict(frame[["eruptions"]].assign(other=1.0))


def test_bad_settings_fail_before_sampling():
    X = load_faithful()
    for settings, message in (({"target_accept": 95}, "target_accept must lie in"),
                              ({"cores": 0}, "cores must be an integer >= 1"),
                              ({"tune": -1}, "tune must be an integer")):
        with pytest.raises(ValueError, match=message):
            BayesianGMM(2, **settings).fit(X)
    with pytest.raises(ValueError, match="must be finite"):
        GMMPriors(mean_scale=float("nan"))
    # numpy scalars are accepted and stored as plain numbers.
    assert GMMPriors(weight_concentration=np.int64(2)).to_json()


def test_coclustering_through_the_model():
    X, labels, *_ = separated_mixture(2, 2, n_samples=60)
    fitted = BayesianGMM(2, random_state=0, **FAST).fit(X)
    matrix = fitted.coclustering(X)
    same = labels[:, None] == labels[None, :]
    assert matrix[same].min() > 0.99 and matrix[~same].max() < 0.01


@pytest.mark.slow
def test_faithful_three_components_converge_with_longer_chains():
    # K = 3 over-fits Old Faithful: the third component's location is weakly
    # identified and mixes slowly (R-hat ~1.03 with 1000 draws), and drifting
    # towards a tiny weight makes a funnel (divergences at target_accept 0.9).
    # Longer chains with smaller steps must pass every gate.
    fitted = BayesianGMM(3, draws=10_000, tune=2000, target_accept=0.95, random_state=1,
                         progressbar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted.fit(load_faithful())
    table = fitted.diagnostics_.table["value"]
    assert table["rhat"] < 1.01 and table["rhat_log_lik"] < 1.01
    assert table["divergences"] == 0
