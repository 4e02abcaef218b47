"""The Bayesian model with values missing at random, end to end (real sampler, no mocks)."""

import arviz as az
import numpy as np
import pandas as pd
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal, norm

from bayesgmm import BayesianGMM, load
from bayesgmm._checks import DataValidationError
from bayesgmm.bayes import diagnostics_reported
from bayesgmm.io import ModelFileError, check_model_tree
from bayesgmm.loo import _RefitWrapper, _Unconstrained
from bayesgmm.posterior import OBSERVED

FAST = dict(draws=500, tune=500, chains=4, progressbar=False)
CENTRES = np.array([[-4.0, 0.0, 0.0], [0.0, 4.0, 0.0], [4.0, 0.0, 4.0]])
SHARE_MISSING = 0.15


def three_clusters(n_samples=450, seed=0):
    """Three unit-variance clusters in 3-D (sorted by their first coordinate), a share removed."""
    rng = np.random.default_rng(seed)
    complete = CENTRES[rng.integers(3, size=n_samples)] + rng.normal(size=(n_samples, 3))
    removed = rng.random(complete.shape) < SHARE_MISSING
    removed[removed.all(axis=1), 0] = False  # every row keeps an observed value
    X = complete.copy()
    X[removed] = np.nan
    return X, complete, removed


@pytest.fixture(scope="module")
def missing_fit():
    X, complete, removed = three_clusters()
    model = BayesianGMM(3, missing="marginalize", random_state=0, **FAST).fit(X)
    return X, complete, removed, model


def draw_parameters(model, draws):
    posterior = model.idata_.posterior.to_dataset().stack(sample=("chain", "draw"))
    return [(posterior["weights"].values[:, s], posterior["means"].values[:, :, s],
             posterior["covariances"].values[:, :, :, s]) for s in draws]


def marginal_log_mixture(row, weights, means, covariances):
    """``log sum_k w_k N(x_o | mu_ko, Sigma_k,oo)`` with scipy, for one row with NaN."""
    observed = ~np.isnan(row)
    return logsumexp([np.log(w) + multivariate_normal(m[observed],
                                                      c[np.ix_(observed, observed)])
                      .logpdf(row[observed])
                      for w, m, c in zip(weights, means, covariances)])


# ---------------------------------------------------------------- fitting
def test_three_clusters_are_recovered_with_fifteen_percent_of_values_missing(missing_fit):
    X, _, removed, model = missing_fit
    assert 0.12 < removed.mean() < 0.18
    assert model.diagnostics_.ok
    means = model.idata_.posterior["means"]
    centre, spread = means.mean(("chain", "draw")).values, means.std(("chain", "draw")).values
    order = np.argsort(centre[:, 0])
    # ~150 points per cluster of sd 1, a share of them partly observed: the posterior sd of a
    # mean is ~0.09, so 0.35 is about 4 sd.
    np.testing.assert_allclose(centre[order], CENTRES, atol=0.35)
    # The posterior covers the truth: every true mean within 4 posterior sds (1e-4 per tail).
    assert np.all(np.abs(centre[order] - CENTRES) < 4 * spread[order])


def test_stored_log_likelihood_of_rows_with_nan_is_the_marginal_mixture(missing_fit):
    X, _, _, model = missing_fit
    stored = model.idata_.log_likelihood[OBSERVED].stack(sample=("chain", "draw")).values
    rows = np.flatnonzero(np.isnan(X).any(axis=1))[:25]
    draws = [0, 777, 1999]
    for s, (weights, means, covariances) in zip(draws, draw_parameters(model, draws)):
        expected = [marginal_log_mixture(X[i], weights, means, covariances) for i in rows]
        np.testing.assert_allclose(stored[rows, s], expected, rtol=1e-10)
    assert np.isfinite(stored).all()


def log_joint_by_hand(row, model):
    """``log w_k + log N(x_o | mu_ko, Sigma_k,oo)`` for every draw, with numpy's linear algebra."""
    posterior = (model.idata_.posterior.to_dataset().stack(sample=("chain", "draw"))
                 .transpose("sample", ...))
    observed = np.flatnonzero(~np.isnan(row))
    covariances = posterior["covariances"].values[:, :, observed][:, :, :, observed]
    deviations = row[observed] - posterior["means"].values[:, :, observed]
    squared = np.einsum("skd,skd->sk", deviations,
                        np.linalg.solve(covariances, deviations[..., None])[..., 0])
    log_det = np.linalg.slogdet(covariances)[1]
    return (np.log(posterior["weights"].values)
            - 0.5 * (observed.size * np.log(2 * np.pi) + log_det + squared))


def test_predictions_on_new_rows_with_nan_use_the_observed_marginals(missing_fit):
    _, _, _, model = missing_fit
    new = np.array([[np.nan, 3.5, np.nan], [4.2, np.nan, 3.9], [-0.5, 2.0, 1.0]])
    expected = []
    for row in new:
        joint = log_joint_by_hand(row, model)
        expected.append(np.exp(joint - logsumexp(joint, axis=1, keepdims=True)).mean(axis=0))
    np.testing.assert_allclose(model.predict_proba(new), expected, atol=1e-10)
    # A DataFrame is matched to the features by name, its NaN kept.
    frame = pd.DataFrame(new[:, ::-1], columns=model.feature_names_in_[::-1])
    np.testing.assert_array_equal(model.predict_proba(frame), model.predict_proba(new))
    assert model.predict(new).tolist() == np.argmax(expected, axis=1).tolist()
    summary = model.membership_summary(new)
    np.testing.assert_allclose(summary["prob"].values, expected, atol=1e-10)
    cocluster = model.coclustering(new)
    assert cocluster.shape == (3, 3) and np.all((cocluster >= 0) & (cocluster <= 1))


def test_in_sample_density_of_a_training_row_is_its_mean_stored_likelihood(missing_fit):
    X, _, _, model = missing_fit
    stored = model.idata_.log_likelihood[OBSERVED].values.reshape(-1, len(X))
    rows = np.flatnonzero(np.isnan(X).any(axis=1))[:10]
    expected = logsumexp(stored[:, rows], axis=0) - np.log(stored.shape[0])
    np.testing.assert_allclose(model.score_samples(X[rows]), expected, rtol=1e-10)
    scores = model.anomaly_scores()
    assert np.isfinite(scores["score"].values).all()


def test_psis_loo_and_the_moment_matching_density_handle_rows_with_nan(missing_fit):
    X, _, _, model = missing_fit
    loo = az.loo(model.idata_, var_name=OBSERVED)
    assert np.isfinite(loo.elpd)
    # Moment matching re-evaluates the sampled density: it must be the one nutpie sampled.
    mapping = _Unconstrained(model, X)
    posterior = model.idata_.posterior.isel(draw=slice(0, 20))
    upars = mapping.upars(posterior.to_dataset())
    lp = model.idata_.sample_stats["lp"].isel(draw=slice(0, 20)).values
    np.testing.assert_allclose(mapping.log_prob(upars).values, lp, rtol=1e-6)
    row = int(np.flatnonzero(np.isnan(X).any(axis=1))[0])
    stored = model.idata_.log_likelihood[OBSERVED].isel(draw=slice(0, 20), obs=row).values
    np.testing.assert_allclose(mapping.log_lik_i(upars, row).values, stored, rtol=1e-8)


def test_kfold_refits_keep_the_missing_setting(missing_fit):
    X, _, _, model = missing_fit
    wrapper = _RefitWrapper(model.set_params(draws=200, tune=200), X)
    held_out = np.flatnonzero(np.isnan(X).any(axis=1))[:5]
    train, excluded = wrapper.sel_observations(held_out)
    try:
        refit = wrapper.sample(train)
    finally:
        model.set_params(**FAST)
    assert refit.missing == "marginalize" and np.isnan(train).any()
    log_lik = wrapper.log_likelihood__i(excluded, wrapper.get_inference_data(refit))
    assert log_lik.shape[-1] == 5 and np.isfinite(log_lik.values).all()


def test_without_nan_both_settings_give_the_same_fit_bit_for_bit():
    _, complete, _ = three_clusters(n_samples=200, seed=1)
    with diagnostics_reported():  # short runs: only their equality matters here
        fits = [BayesianGMM(3, missing=missing, random_state=3, draws=100, tune=100, chains=2,
                            progressbar=False).fit(complete)
                for missing in ("reject", "marginalize")]
    first, second = (fit.idata_ for fit in fits)
    for group in ("posterior", "log_likelihood", "sample_stats"):
        for name, variable in first[group].to_dataset().items():
            np.testing.assert_array_equal(variable.values, second[group][name].values)


@pytest.mark.slow
@pytest.mark.parametrize("noise", [False, True])
def test_the_pymc_engine_samples_the_same_posterior_with_missing_values(noise):
    X, _, _ = three_clusters(n_samples=200, seed=4)
    settings = dict(missing="marginalize", noise=noise, random_state=0, **FAST)
    pymc = BayesianGMM(3, engine="pymc", **settings).fit(X)
    nutpie = BayesianGMM(3, **settings).fit(X)
    # ~65 points per cluster: posterior sd of a mean ~0.13; two independent runs of 2000
    # draws differ in their posterior means by Monte Carlo error only (~0.01).
    np.testing.assert_allclose(pymc.idata_.posterior["means"].mean(("chain", "draw")),
                               nutpie.idata_.posterior["means"].mean(("chain", "draw")),
                               atol=0.05)


# ---------------------------------------------------------------- imputation
def test_impute_passes_observed_values_through(missing_fit):
    X, _, removed, model = missing_fit
    imputed = model.impute(X, random_state=0)
    assert imputed["mean"].dims == ("obs", "feature")
    for name in ("mean", "lower", "upper"):
        np.testing.assert_array_equal(imputed[name].values[~removed], X[~removed])
    np.testing.assert_array_equal(imputed["imputed"].values, removed)
    assert np.isfinite(imputed["mean"].values).all()
    assert np.all(imputed["lower"].values[removed] < imputed["upper"].values[removed])


def test_impute_intervals_cover_the_removed_values_at_about_the_nominal_rate(missing_fit):
    X, complete, removed, model = missing_fit
    imputed = model.impute(X, random_state=1)
    truth = complete[removed]
    covered = (imputed["lower"].values[removed] <= truth) & (truth <= imputed["upper"].values[removed])
    # ~200 removed values: the binomial sd of the coverage around 0.94 is ~0.017, and the
    # Monte Carlo error of the quantiles (2000 draws) adds ~0.004 per tail; 0.06 is ~3 sd.
    assert removed.sum() > 150
    assert abs(covered.mean() - model.interval) < 0.06


def test_imputed_mean_matches_the_conditional_mean_by_hand_when_the_posterior_is_tight():
    # Two components, each with correlation 0.8 between the coordinates; 1000 points make the
    # posterior tight (sd of the means and regression slopes ~0.05), so the predictive mean
    # (averaged over draws) and the conditional mean at the posterior mean differ only to
    # second order in that sd (< 0.01).
    rng = np.random.default_rng(5)
    true_means = np.array([[0.0, 0.0], [3.0, 6.0]])
    labels = rng.random(1000) < 0.4
    X = np.where(labels[:, None], true_means[1], true_means[0]) + rng.multivariate_normal(
        [0, 0], [[1.0, 0.8], [0.8, 1.0]], size=1000)
    model = BayesianGMM(2, random_state=0, **FAST).fit(X)
    posterior = model.idata_.posterior.mean(("chain", "draw"))
    weights, means = posterior["weights"].values, posterior["means"].values
    covariances = posterior["covariances"].values
    np.testing.assert_allclose(means, true_means, atol=0.2)
    first = np.array([-1.0, 1.5, 2.2, 4.0])
    imputed = model.impute(np.column_stack([first, np.full(4, np.nan)]), random_state=0)
    # By hand: responsibilities from the marginals of the first coordinate, then each
    # component's conditional mean mu_2 + S_21 / S_11 (x_1 - mu_1).
    joint = np.log(weights) + norm.logpdf(first[:, None], means[:, 0],
                                          np.sqrt(covariances[:, 0, 0]))
    responsibilities = np.exp(joint - logsumexp(joint, axis=1, keepdims=True))
    slopes = covariances[:, 1, 0] / covariances[:, 0, 0]
    conditional = means[:, 1] + slopes * (first[:, None] - means[:, 0])
    expected = (responsibilities * conditional).sum(axis=1)
    assert 0.05 < responsibilities[1, 0] < 0.95  # one point where the components share it
    np.testing.assert_allclose(imputed["mean"].values[:, 1], expected, atol=0.03)
    # Where one component takes the point, the interval is its conditional normal's, mean +-
    # 1.88 conditional sd (~0.6).  The 3% quantile of 2000 predictive draws has a Monte Carlo
    # sd of sqrt(0.03 * 0.97 / 2000) / phi(1.88) * 0.6 = 0.034; 0.12 is 3.5 sd.
    sides = [0, 3]
    conditional_sd = np.sqrt(covariances[:, 1, 1] - slopes * covariances[:, 1, 0])
    half_width = norm.ppf(0.97) * conditional_sd[responsibilities[sides].argmax(axis=1)]
    np.testing.assert_allclose(imputed["upper"].values[sides, 1] - expected[sides], half_width,
                               atol=0.12)
    np.testing.assert_allclose(expected[sides] - imputed["lower"].values[sides, 1], half_width,
                               atol=0.12)


# ---------------------------------------------------------------- model file
def test_save_and_load_keep_the_missing_values(missing_fit, tmp_path):
    X, _, _, model = missing_fit
    path = model.save(tmp_path / "missing.nc")
    loaded = load(path)
    assert loaded.missing == "marginalize"
    stored = loaded.idata_.observed_data[OBSERVED].values
    np.testing.assert_array_equal(np.isnan(stored), np.isnan(X))
    np.testing.assert_array_equal(stored[~np.isnan(X)], X[~np.isnan(X)])
    new = X[:20]
    # Bit for bit as the same tree rebuilt in memory; to rounding as the fitted model (whose
    # correlation factors were not recomputed from the stored correlations).
    rebuilt = BayesianGMM.from_datatree(model.idata_)
    np.testing.assert_array_equal(loaded.predict_proba(new), rebuilt.predict_proba(new))
    np.testing.assert_array_equal(loaded.impute(new, random_state=2)["upper"].values,
                                  rebuilt.impute(new, random_state=2)["upper"].values)
    np.testing.assert_allclose(loaded.predict_proba(new), model.predict_proba(new),
                               rtol=1e-12, atol=1e-15)


def test_a_file_with_nan_whose_settings_refuse_them_is_refused(missing_fit):
    _, _, _, model = missing_fit
    tree = model.idata_.copy()
    tree.attrs = {**tree.attrs,
                  "params": tree.attrs["params"].replace('"marginalize"', '"reject"')}
    with pytest.raises(ModelFileError, match="NaN.*missing='reject'"):
        check_model_tree(tree)


# ---------------------------------------------------------------- errors
def test_nan_with_the_default_setting_is_refused_naming_the_option():
    X, _, _ = three_clusters(n_samples=60)
    with pytest.raises(DataValidationError, match="missing='marginalize'"):
        BayesianGMM(2, progressbar=False).fit(X)


def test_new_rows_with_nan_are_refused_by_a_model_fitted_with_reject():
    _, complete, _ = three_clusters(n_samples=100, seed=2)
    with diagnostics_reported():  # a short run: only its refusal matters here
        model = BayesianGMM(3, random_state=0, draws=100, tune=100, chains=2,
                            progressbar=False).fit(complete)
    with pytest.raises(DataValidationError, match="missing='marginalize'"):
        model.predict(np.array([[0.0, np.nan, 1.0]]))
    # Imputing is what NaN are for: it works whatever the setting.
    assert np.isfinite(model.impute(np.array([[0.0, np.nan, 1.0]]))["mean"].values).all()


def test_an_invalid_missing_option_and_an_empty_row_are_refused():
    X, _, _ = three_clusters(n_samples=60)
    with pytest.raises(ValueError, match="missing must be one of"):
        BayesianGMM(2, missing="drop").fit(X)
    X[3] = np.nan
    with pytest.raises(DataValidationError, match="no observed value"):
        BayesianGMM(2, missing="marginalize", progressbar=False).fit(X)
