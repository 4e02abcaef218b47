"""Frequency weights in the Bayesian fit: integer weights are rows repeated."""

import numpy as np
import pytest

from bayesgmm import BayesianGMM
from bayesgmm._kernel import logp_and_grad
from bayesgmm.fitting import prepare_problem
from bayesgmm.laplace import fit_laplace
from bayesgmm.parameters import Layout, unconstrained_to_parameters
from bayesgmm.priors import GMMPriors


@pytest.fixture(scope="module")
def weighted_data():
    rng = np.random.default_rng(4)
    X = np.vstack([rng.normal(size=(150, 2)), rng.normal(size=(100, 2)) * 0.5 + [4.0, 2.0]])
    weights = rng.integers(0, 4, size=len(X)).astype(float)
    return X, weights, np.repeat(X, weights.astype(int), axis=0)


def problems(X, weights, repeated, **settings):
    def prepare(values, sample_weight):
        return prepare_problem(values, n_components=2, covariance_type="full",
                               priors=GMMPriors(), em_n_init=3,
                               rng=np.random.default_rng(0), sample_weight=sample_weight,
                               **settings)

    return prepare(X, weights), prepare(repeated, None)


@pytest.mark.parametrize("settings", [{}, {"noise": True}])
def test_integer_weights_give_the_density_of_repeated_rows(weighted_data, settings):
    X, weights, repeated = weighted_data
    weighted, duplicated = problems(X, weights, repeated, **settings)
    # Same standardisation and priors (weighted quartiles, mean and sd) ...
    np.testing.assert_allclose(weighted.scaled.centre, duplicated.scaled.centre, rtol=1e-12)
    np.testing.assert_allclose(weighted.scaled.scale, duplicated.scaled.scale, rtol=1e-12)
    np.testing.assert_allclose(weighted.scaled.resolved.mean_scale,
                               duplicated.scaled.resolved.mean_scale, rtol=1e-12)
    # ... the same EM start up to label order (the same weighted maximum; EM's tolerance) ...
    np.testing.assert_allclose(np.sort(weighted.em_start.means, axis=0),
                               np.sort(duplicated.em_start.means, axis=0), atol=1e-4)
    # ... and the same log density and gradient everywhere (summation order only).
    rng = np.random.default_rng(1)
    for theta in weighted.start + rng.normal(scale=0.3, size=(5, weighted.start.size)):
        value, grad = logp_and_grad(theta, weighted.block)
        expected_value, expected_grad = logp_and_grad(theta, duplicated.block)
        assert value == pytest.approx(expected_value, rel=1e-11)
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-9, atol=1e-8)


def test_weighted_laplace_equals_repeated_rows(weighted_data):
    # Deterministic given the data: the same mode and curvature, up to label order, Newton's
    # tolerance and the finite-difference Hessian (both far below 1e-3 posterior sd).
    X, weights, repeated = weighted_data
    results = []
    for problem in problems(X, weights, repeated):
        laplace = fit_laplace(problem.start, problem.pack_rows, problem.data.values.shape[0],
                              np.random.default_rng(0))
        mode = unconstrained_to_parameters(laplace.mean, problem.layout)
        block = Layout(2, 2, "full").slices["means"]  # the means' coordinates in theta
        sds = np.sqrt(np.diag(laplace.chol @ laplace.chol.T))[block].reshape(2, 2)
        order = np.argsort(mode.means[:, 0])
        results.append((mode.means[order], sds[order]))
    (means, sds), (expected_means, expected_sds) = results
    assert (np.abs(means - expected_means) / expected_sds).max() < 1e-3
    np.testing.assert_allclose(sds, expected_sds, rtol=1e-3)


def test_unit_weights_are_the_unweighted_fit(weighted_data):
    X, _, _ = weighted_data
    fits = [BayesianGMM(2, method="laplace", draws=200, random_state=0, progressbar=False)
            .fit(X, sample_weight=sample_weight) for sample_weight in (None, np.ones(len(X)))]
    np.testing.assert_array_equal(fits[0].idata_.posterior["means"].values,
                                  fits[1].idata_.posterior["means"].values)


@pytest.mark.parametrize("sample_weight, message", [
    ([-1.0] + [1.0] * 249, "non-negative"),
    ([np.nan] + [1.0] * 249, "finite"),
    ([0.0] * 250, "zero for every row"),
    ([1.0] * 10, "one entry per row"),
])
def test_bad_weights_are_refused_before_any_work(weighted_data, sample_weight, message):
    X, _, _ = weighted_data
    with pytest.raises(ValueError, match=message):
        BayesianGMM(2, progressbar=False).fit(X, sample_weight=sample_weight)
