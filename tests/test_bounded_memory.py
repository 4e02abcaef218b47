"""Bounded memory: the pointwise log-likelihood over the budget, streamed LOO, weights, thinning.

The same fit is made twice with the same seed: once keeping its
``log_likelihood`` group (Old Faithful is far below the budget) and once with
the budget patched to 0, so the second is a large-data model in miniature.
Sampling does not depend on the budget, so both hold the same draws and every
streamed number can be checked against ArviZ on the stored matrix.
"""

import dataclasses

import arviz as az
import numpy as np
import pytest
import xarray as xr
from scipy.special import logsumexp

import bayesgmm._workload as workload
from bayesgmm import BayesianGMM, load
from bayesgmm.bayes import diagnostics_reported
from bayesgmm.cli import main
from bayesgmm.datasets import load_faithful
from bayesgmm.density import loo_predictive_density
from bayesgmm.io import ModelFileError, save_datatree
from bayesgmm.likelihood import thin_draws
from bayesgmm.loo import (
    _moment_matched,
    _quiet,
    _Unconstrained,
    kfold_loo,
    pointwise_loo,
    psis_loo,
    reported_arviz_warnings,
    waic,
)
from bayesgmm.membership import membership_arrays
from bayesgmm.posterior import (
    OBSERVED,
    POINTWISE_STORED_ATTR,
    TOTAL_LOG_LIKELIHOOD,
    stored_sample_weight,
)
from bayesgmm.psis import relative_efficiency, streamed_psis
from bayesgmm.report import write_report

# Short runs: these tests compare computations on the same draws, not convergence.
SHORT = dict(chains=2, draws=300, tune=300, method="nuts", random_state=0, progressbar=False)
EXACT = dict(rtol=1e-10, atol=1e-10)


def fit(X, over_budget=False):
    with diagnostics_reported(), pytest.MonkeyPatch.context() as patch:
        if over_budget:
            patch.setattr(workload, "LOG_LIKELIHOOD_BUDGET", 0)
        return BayesianGMM(2, **SHORT).fit(X)


@pytest.fixture(scope="module")
def pair():
    X = load_faithful()
    return X.to_numpy(), fit(X), fit(X, over_budget=True)


@pytest.fixture(scope="module")
def weighted():
    X = load_faithful().to_numpy()
    weights = np.random.default_rng(5).integers(0, 4, size=len(X)).astype(float)
    with diagnostics_reported():
        model = BayesianGMM(2, **SHORT).fit(X, sample_weight=weights)
    return X, weights, model


def az_loo(tree):
    with reported_arviz_warnings():
        return az.loo(tree, var_name=OBSERVED, pointwise=True)


def test_small_data_keep_the_group_and_large_data_do_not(pair):
    _, stored, streamed = pair
    assert "log_likelihood" in stored.idata_.children
    assert stored.idata_.attrs[POINTWISE_STORED_ATTR] == 1
    assert "log_likelihood" not in streamed.idata_.children
    assert streamed.idata_.attrs[POINTWISE_STORED_ATTR] == 0
    # Same draws either way; the per-draw total is kept in both.
    np.testing.assert_array_equal(stored.idata_.posterior["means"].values,
                                  streamed.idata_.posterior["means"].values)
    total = stored.idata_.log_likelihood[OBSERVED].values.sum(axis=-1)
    for model in (stored, streamed):
        np.testing.assert_allclose(model.idata_.sample_stats[TOTAL_LOG_LIKELIHOOD].values,
                                   total, rtol=1e-12)
    assert stored.diagnose().table.equals(streamed.diagnose().table)


def test_the_budget_is_32_mib_and_counts_every_draw_and_row():
    assert workload.LOG_LIKELIHOOD_BUDGET * 8 == 32 * 2**20
    assert workload.keeps_pointwise_log_likelihood(4000, 272)
    assert not workload.keeps_pointwise_log_likelihood(4000, 100_000)


def test_streamed_psis_loo_equals_az_loo_on_the_stored_matrix(pair):
    _, stored, streamed = pair
    reference = az_loo(stored.idata_)
    outcome = psis_loo(streamed)
    assert outcome.method == "psis"
    for name in ("elpd", "se", "p", "good_k", "n_samples", "n_data_points"):
        assert getattr(outcome.elpd, name) == pytest.approx(getattr(reference, name),
                                                            rel=1e-10, abs=1e-10), name
    np.testing.assert_allclose(outcome.elpd.elpd_i.values, reference.elpd_i.values, **EXACT)
    np.testing.assert_allclose(outcome.elpd.pareto_k.values, reference.pareto_k.values, **EXACT)
    # ArviZ's comparison takes the streamed result as it is.
    with reported_arviz_warnings():
        table = az.compare({"stored": reference, "streamed": outcome.elpd})
    assert table["elpd_diff"].abs().max() < 1e-10


def test_psis_does_not_depend_on_the_block_size(pair):
    X, _, streamed = pair
    posterior = streamed.idata_.posterior.to_dataset()
    arguments = (X, streamed._parameters, 2, relative_efficiency(posterior), 0.9)
    whole, blocks = streamed_psis(*arguments), streamed_psis(*arguments, budget=5000)
    for a, b in zip(whole, blocks, strict=True):
        np.testing.assert_allclose(a, b, **EXACT)


def test_streamed_waic_equals_waic_of_the_matrix(pair):
    _, stored, streamed = pair
    log_lik = stored.idata_.log_likelihood[OBSERVED].values.reshape(600, -1)
    expected = waic(log_lik)
    for got, want in zip(psis_loo(streamed).waic, expected, strict=True):
        assert got == pytest.approx(want, rel=1e-10)


def test_moment_matching_on_flagged_batches_equals_arviz_on_the_whole_tree(pair, monkeypatch):
    X, stored, streamed = pair
    pointwise = pointwise_loo(streamed)
    threshold = np.sort(pointwise.pareto_k)[-5] - 1e-9  # flag the five highest k-hat
    monkeypatch.setattr("bayesgmm.loo.LOG_LIKELIHOOD_BUDGET", 1200)  # batches of 2 points
    matched = _moment_matched(streamed, X, pointwise, threshold, None)
    mapping = _Unconstrained(stored, X)
    with np.errstate(over="ignore"):
        expected = _quiet(az.loo_moment_match, stored.idata_, az_loo(stored.idata_),
                          log_prob_upars_fn=mapping.log_prob, log_lik_i_upars_fn=mapping.log_lik_i,
                          upars=mapping.upars(stored.idata_.posterior.to_dataset()),
                          var_name=OBSERVED, pointwise=True, k_threshold=threshold)
    np.testing.assert_allclose(matched.elpd, expected.elpd_i.values, **EXACT)
    np.testing.assert_allclose(matched.pareto_k, expected.pareto_k.values, **EXACT)
    assert not np.allclose(matched.pareto_k, pointwise.pareto_k)  # something was matched


def test_training_anomaly_scores_are_the_same_without_the_group(pair):
    _, stored, streamed = pair
    # The scores as computed from the stored matrix and ArviZ's weights.
    reference = az_loo(stored.idata_)
    log_lik = stored.idata_.log_likelihood[OBSERVED].values.reshape(600, -1)
    log_weights = reference.log_weights.transpose("chain", "draw", "obs").values.reshape(600, -1)
    expected = loo_predictive_density(log_lik, log_weights, stored.interval)
    for model in (stored, streamed):
        scores = model.anomaly_scores()
        np.testing.assert_allclose(scores["score"].values, -expected.log_density, **EXACT)
        np.testing.assert_allclose(scores["lower"].values, -expected.upper, **EXACT)
        np.testing.assert_allclose(scores["pareto_k"].values, reference.pareto_k.values, **EXACT)


def test_a_model_without_the_group_saves_loads_predicts_and_reports(pair, tmp_path):
    X, stored, streamed = pair
    small, large = stored.save(tmp_path / "stored.nc"), streamed.save(tmp_path / "streamed.nc")
    assert large.stat().st_size < small.stat().st_size - 600 * 272 * 8 * 0.9
    loaded = load(large)
    assert "log_likelihood" not in loaded.idata_.children
    assert loaded.idata_.attrs[POINTWISE_STORED_ATTR] == 0
    assert loaded.diagnose().table.equals(streamed.diagnose().table)
    # Loading recomputes the Cholesky factors: equal to rounding.
    np.testing.assert_allclose(loaded.anomaly_scores()["score"].values,
                               streamed.anomaly_scores()["score"].values, **EXACT)
    assert psis_loo(loaded).elpd.elpd == pytest.approx(psis_loo(streamed).elpd.elpd, rel=1e-12)
    report = write_report(tmp_path / "report", loaded, load_faithful())
    assert "over the" in report.read_text()
    assert main(["diagnose", str(large)]) in (0, 1)
    assert main(["predict", str(large), str(_csv(tmp_path)), "--out",
                 str(tmp_path / "predicted.csv")]) == 0


def _csv(folder):
    path = folder / "faithful.csv"
    load_faithful().to_csv(path, index=False)
    return path


def test_the_stored_flag_must_agree_with_the_groups(pair, tmp_path):
    _, stored, streamed = pair

    def flagged(tree, value):
        copy = tree.copy(deep=True)
        copy.attrs[POINTWISE_STORED_ATTR] = value
        return copy

    for tree, value, message in ((stored.idata_, 0, "has a 'log_likelihood'"),
                                 (streamed.idata_, 1, "lacks a 'log_likelihood'"),
                                 (streamed.idata_, 7, "not 0 or 1")):
        path = save_datatree(flagged(tree, value), tmp_path / f"flag{value}.nc", overwrite=True)
        with pytest.raises(ModelFileError, match=message):
            load(path)


def test_weights_are_stored_and_round_trip(weighted, tmp_path):
    X, weights, model = weighted
    np.testing.assert_array_equal(stored_sample_weight(model.idata_), weights)
    loaded = load(model.save(tmp_path / "weighted.nc"))
    np.testing.assert_array_equal(stored_sample_weight(loaded.idata_), weights)
    total = model.idata_.log_likelihood[OBSERVED].values @ weights
    np.testing.assert_allclose(model.idata_.sample_stats[TOTAL_LOG_LIKELIHOOD].values, total,
                               rtol=1e-12)
    assert stored_sample_weight(load_faithful_model(tmp_path).idata_) is None


def load_faithful_model(tmp_path):
    with diagnostics_reported():
        model = BayesianGMM(1, method="nuts", chains=1, draws=50, tune=50, progressbar=False,
                            random_state=0).fit(load_faithful(), sample_weight=np.ones(272))
    return load(model.save(tmp_path / "ones.nc"))


def test_weighted_loo_equals_loo_of_the_rows_repeated(weighted):
    X, weights, model = weighted
    outcome = psis_loo(model)
    # The same posterior with each row's log-likelihood repeated w_i times (0: dropped).
    repeated = np.repeat(np.arange(len(X)), weights.astype(int))
    log_lik = model.idata_.log_likelihood[OBSERVED].isel(obs=repeated)
    expanded = xr.DataTree.from_dict({
        "posterior": model.idata_.posterior.to_dataset(),
        "log_likelihood": xr.Dataset({OBSERVED: log_lik.assign_coords(obs=np.arange(
            repeated.size))})})
    expected = az_loo(expanded)
    for name in ("elpd", "se", "p"):
        assert getattr(outcome.elpd, name) == pytest.approx(getattr(expected, name), rel=1e-10)
    # Per row: the per-copy value; a row of weight 0 gets its plain predictive density.
    absent = weights == 0
    np.testing.assert_allclose(outcome.elpd.elpd_i.values[repeated], expected.elpd_i.values,
                               **EXACT)
    plain = model.idata_.log_likelihood[OBSERVED].values.reshape(600, -1)[:, absent]
    np.testing.assert_allclose(outcome.elpd.elpd_i.values[absent],
                               logsumexp(plain, axis=0) - np.log(600), **EXACT)
    assert np.isnan(outcome.elpd.pareto_k.values[absent]).all()


def test_weighted_kfold_refits_with_the_weights_and_weights_the_totals(weighted, monkeypatch):
    X, weights, model = weighted
    fitted_weights = []
    original = BayesianGMM.fit

    def recording_fit(self, data, y=None, sample_weight=None):
        fitted_weights.append(sample_weight)
        return original(self, data, y, sample_weight=sample_weight)

    monkeypatch.setattr(BayesianGMM, "fit", recording_fit)
    outcome = kfold_loo(model.set_params(draws=100, tune=100))
    model.set_params(**{key: SHORT[key] for key in ("draws", "tune")})
    assert len(fitted_weights) == 10 and all(w is not None for w in fitted_weights)
    assert sum(w.sum() for w in fitted_weights) == pytest.approx(9 * weights.sum())
    kfold = outcome.elpd
    assert kfold.n_samples == 600
    assert kfold.elpd == pytest.approx((weights * kfold.elpd_i.values).sum(), rel=1e-12)
    assert kfold.p == pytest.approx((weights * kfold.p_kfold_i.values).sum(), rel=1e-12)


def test_thinned_scoring_uses_evenly_spaced_draws(pair):
    X, _, model = pair
    default = model.membership_summary(X)
    xr.testing.assert_identical(model.membership_summary(X, max_draws=None), default)
    xr.testing.assert_identical(model.membership_summary(X, max_draws=10**6), default)
    thinned = model.membership_summary(X, max_draws=50)
    expected = membership_arrays(X, thin_draws(model._parameters, 50), model.interval)
    np.testing.assert_allclose(thinned["prob"].values, expected.prob, **EXACT)
    np.testing.assert_array_equal(model.predict(X, max_draws=50),
                                  thinned["label"].values)
    assert model.predict_proba(X, max_draws=50).shape == (len(X), 2)
    assert model.score_samples(X, max_draws=50).shape == (len(X),)
    assert model.density_summary(X, max_draws=50)["log_density"].shape == (len(X),)
    assert model.coclustering(X[:5], max_draws=50).shape == (5, 5)
    assert np.isfinite(model.anomaly_scores(max_draws=100)["score"].values).all()
    assert np.isfinite(model.anomaly_scores(X, max_draws=100)["score"].values).all()
    for bad in (0, 2.5, True, "all"):
        with pytest.raises(ValueError, match="max_draws"):
            model.predict(X, max_draws=bad)


def test_thinning_keeps_first_last_and_spreads_evenly(pair):
    _, _, model = pair
    thinned = thin_draws(model._parameters, 4)
    np.testing.assert_array_equal(thinned.means, model._parameters.means[[0, 200, 399, 599]])


def test_the_memory_check_counts_only_the_kept_log_likelihood(monkeypatch):
    monkeypatch.setattr(workload, "_physical_memory", lambda: 4 * 2**30)
    # 1e5 rows x 4000 draws: 3.2 GB if kept, more than a quarter of 4 GiB; not kept now.
    workload.check_workload(100_000, 5, 4, draws=1000, chains=4, covariance_type="full")
    with pytest.raises(ValueError, match="Lower draws"):
        workload.check_workload(100_000, 5, 4, draws=10**6, chains=4, covariance_type="full")


def test_elpd_data_is_a_plain_arviz_record(pair):
    _, _, streamed = pair
    elpd = psis_loo(streamed).elpd
    assert isinstance(elpd, az.ELPDDataLOO) and elpd.log_weights is None
    assert dataclasses.replace(elpd, elpd=0.0).elpd == 0.0
    assert "elpd_loo" in str(elpd)


def test_files_from_before_the_budget_still_load_and_diagnose(pair, tmp_path):
    _, stored, _ = pair
    old = stored.idata_.copy(deep=True)
    del old.attrs[POINTWISE_STORED_ATTR]
    old["sample_stats"] = old["sample_stats"].to_dataset().drop_vars(TOTAL_LOG_LIKELIHOOD)
    loaded = load(save_datatree(old, tmp_path / "old.nc"))
    assert loaded.diagnose().table.equals(stored.diagnose().table)
    assert psis_loo(loaded).elpd.elpd == pytest.approx(psis_loo(stored).elpd.elpd, rel=1e-12)
