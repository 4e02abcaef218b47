"""The large-N methods: Laplace at the mode, coreset NUTS, and method="auto"."""

import numpy as np
import pytest

from bayesgmm import BayesianGMM, inference
from bayesgmm._kernel import logp_and_grad
from bayesgmm.bayes import diagnostics_reported
from bayesgmm.coreset import CoresetWarning, lightweight_coreset
from bayesgmm.fitting import prepare_problem
from bayesgmm.laplace import ShardedDensity, finite_difference_hessian, newton_mode
from bayesgmm.priors import GMMPriors


def two_clusters(n_samples, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.random(n_samples) < 0.4
    X = rng.normal(size=(n_samples, 2)) * [1.0, 0.5]
    X[labels] += [5.0, 3.0]
    return X


@pytest.fixture(scope="module")
def problem():
    return prepare_problem(two_clusters(3000), n_components=2, covariance_type="full",
                           priors=GMMPriors(), em_n_init=2, rng=np.random.default_rng(0))


def test_sharded_density_is_the_whole_density(problem):
    n_samples = problem.data.values.shape[0]
    shards = [problem.pack_rows(rows) for rows in np.array_split(np.arange(n_samples), 3)]
    density = ShardedDensity(shards, problem.pack_rows(np.arange(0)))
    theta = problem.start + np.random.default_rng(1).normal(scale=0.1, size=problem.start.size)
    value, grad = density(theta)
    expected_value, expected_grad = logp_and_grad(theta, problem.block)
    density.close()
    assert value == pytest.approx(expected_value, rel=1e-12)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-9, atol=1e-9)


def test_pack_rows_scales_the_weights(problem):
    # m rows weighted N / m: the log-likelihood part is scaled, the prior is not.
    rows = np.arange(0, 3000, 2)
    half, _ = logp_and_grad(problem.start, problem.pack_rows(rows, 2.0))
    same, _ = logp_and_grad(problem.start, problem.pack_rows(np.r_[rows, rows]))
    assert half == pytest.approx(same, rel=1e-12)


def test_newton_reaches_a_zero_gradient(problem):
    density = lambda theta: logp_and_grad(theta, problem.block)
    hessian = finite_difference_hessian(density, problem.start)
    mode, steps = newton_mode(density, np.linalg.cholesky(-hessian), problem.start)
    _, start_grad = density(problem.start)
    _, grad = density(mode)
    # The distance to the exact mode in posterior sds, sqrt(g^T (-H)^-1 g): at most 1e-4 sd
    # (Newton stops when half its square, the decrement, is below 1e-10 nats).
    covariance = np.linalg.inv(-hessian)
    assert np.sqrt(grad @ covariance @ grad) < 1e-4
    assert np.sqrt(start_grad @ covariance @ start_grad) > 1e-3  # there was a way to go
    assert steps <= 10


@pytest.fixture(scope="module")
def faithful_like():
    return two_clusters(3000, seed=3)


def test_laplace_matches_nuts_where_the_posterior_is_gaussian(faithful_like):
    # 3000 rows, 2 separated components: the posterior is close to Gaussian, so the
    # Laplace approximation's means lie within 0.35 NUTS sds of NUTS's (NUTS's own Monte
    # Carlo error on a mean is ~0.03 sd at 2000 draws; the mode-mean gap is O(1/sqrt(N)) sd)
    # and its sds within 20% (the Gaussian in log-scale space vs the true skew).
    nuts = BayesianGMM(2, method="nuts", chains=2, draws=1000, tune=500, random_state=0,
                       progressbar=False).fit(faithful_like)
    laplace = BayesianGMM(2, method="laplace", draws=2000, random_state=0,
                          progressbar=False).fit(faithful_like)
    assert laplace.idata_.attrs["method"] == "laplace"
    assert laplace.diagnostics_.ok
    for name in ("weights", "means", "covariances"):
        reference = nuts.idata_.posterior[name]
        candidate = laplace.idata_.posterior[name]
        sd = reference.std(("chain", "draw")).values
        shift = np.abs(candidate.mean(("chain", "draw")).values
                       - reference.mean(("chain", "draw")).values) / np.where(sd > 0, sd, 1)
        assert shift.max() < 0.35, name
        ratio = candidate.std(("chain", "draw")).values[sd > 0] / sd[sd > 0]
        assert 0.8 < ratio.min() and ratio.max() < 1.2, name


def test_laplace_records_its_check(faithful_like):
    model = BayesianGMM(2, method="laplace", draws=200, random_state=1,
                        progressbar=False).fit(faithful_like)
    check = model.idata_["laplace"]
    assert check["log_ratio"].size == 100
    assert np.isfinite(check["log_ratio"].values).all()
    assert list(model.diagnostics_.table.index) == ["khat"]
    assert model.idata_.posterior.sizes["chain"] == 1


def test_auto_runs_laplace_from_large_n(faithful_like, monkeypatch):
    monkeypatch.setattr(inference, "LARGE_N", 2000)
    model = BayesianGMM(2, draws=200, random_state=1, progressbar=False).fit(faithful_like)
    assert model.method == "auto"
    assert model.idata_.attrs["method"] == "laplace"
    monkeypatch.setattr(inference, "LARGE_N", 10**6)
    with diagnostics_reported():  # 100 draws: the gates may fail; the method is the point
        small = BayesianGMM(2, draws=100, tune=100, chains=2, random_state=1,
                            progressbar=False).fit(faithful_like)
    assert small.idata_.attrs["method"] == "nuts"


def test_laplace_refuses_a_non_concave_start():
    # Four components on two clusters: an empty or split component leaves a flat or
    # saddle-shaped posterior at the mode, which a Gaussian cannot describe.
    X = two_clusters(400, seed=5)
    with pytest.raises(ValueError, match="method='nuts'"):
        BayesianGMM(6, method="laplace", draws=100, random_state=0, progressbar=False,
                    priors=GMMPriors(weight_concentration=0.01)).fit(X)


def test_coreset_weights_estimate_sums_over_all_rows():
    rng = np.random.default_rng(0)
    X = two_clusters(20_000, seed=2)
    centres = np.array([[0.0, 0.0], [5.0, 3.0]])
    coreset = lightweight_coreset(X, centres, 4000, rng)
    # Unbiased: the weighted sum of any row function estimates its sum (5% at m = 4000).
    assert coreset.weights.sum() == pytest.approx(len(X), rel=0.05)
    squared = (X ** 2).sum(axis=1)
    assert coreset.weights @ squared[coreset.rows] == pytest.approx(squared.sum(), rel=0.05)
    weighted = lightweight_coreset(X, centres, 4000, rng, sample_weight=np.full(len(X), 2.0))
    assert weighted.weights.sum() == pytest.approx(2 * len(X), rel=0.05)


def test_coreset_refuses_missing_values():
    X = two_clusters(100)
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="missing"):
        lightweight_coreset(X, np.zeros((1, 2)), 10, np.random.default_rng(0))


def test_large_n_methods_refuse_the_pymc_engine(faithful_like):
    with pytest.raises(ValueError, match="engine='nutpie'"):
        BayesianGMM(2, method="laplace", engine="pymc", progressbar=False).fit(faithful_like)


def test_coreset_nuts_runs_and_warns_of_overconfidence(faithful_like):
    with pytest.warns(CoresetWarning, match="laplace"), diagnostics_reported():
        model = BayesianGMM(2, method="coreset_nuts", chains=2, draws=200, tune=200,
                            random_state=0, progressbar=False).fit(faithful_like)
    assert model.idata_.attrs["method"] == "coreset_nuts"
    coreset = model.idata_["coreset"]
    assert coreset["weights"].sum() == pytest.approx(len(faithful_like), rel=0.1)
    assert "rhat" in model.diagnostics_.table.index


def test_minibatch_advi_runs_with_its_check(faithful_like):
    model = BayesianGMM(2, method="minibatch_advi", draws=300, advi_iterations=2000,
                        random_state=0, progressbar=False).fit(faithful_like)
    assert model.idata_.attrs["method"] == "minibatch_advi"
    assert model.idata_["vi_trace"]["log_ratio"].size == 100
    assert "khat" in model.diagnostics_.table.index
    with pytest.raises(ValueError, match="sample_weight"):
        BayesianGMM(2, method="minibatch_advi", progressbar=False).fit(
            faithful_like, sample_weight=np.full(len(faithful_like), 2.0))
