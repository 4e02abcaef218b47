"""The compiled log density equals the PyMC specification, value and gradient."""

import numpy as np
import pytest
from pymc.blocking import DictToArrayBijection

from bayesgmm import logdensity as ld
from bayesgmm.datasets import load_faithful
from bayesgmm.model import build_model, model_data
from bayesgmm.priors import GMMPriors

CASES = [
    # (K, D, covariance, scale prior, standardize)
    (3, 2, "full", "half_normal", True),
    (2, 2, "diag", "exponential", True),
    (1, 2, "full", "lognormal", False),
    (3, 1, "full", "half_normal", True),
    (2, 3, "full", "exponential", False),
    (4, 4, "full", "lognormal", True),
    (2, 3, "diag", "half_normal", True),
]


def case_data(n_features, rng):
    faithful = load_faithful()
    if n_features <= 2:
        return faithful.iloc[:, -n_features:]
    extra = rng.normal(size=(len(faithful), n_features - 2))
    return np.column_stack([faithful.to_numpy(), extra])


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c)))
def test_matches_pymc_logp_and_gradient(rng, case):
    n_components, n_features, covariance_type, scale_prior, standardize = case
    X = case_data(n_features, rng)
    priors = GMMPriors(scale_prior=scale_prior, standardize=standardize, weight_concentration=1.5, lkj_eta=3.0)
    model = build_model(X, n_components, priors, covariance_type)
    values, _, _, resolved = model_data(X, priors, n_components)
    block = ld.pack_block(values, resolved, n_components, covariance_type)
    layout = ld.Layout(n_components, n_features, covariance_type)
    point = model.initial_point()
    assert DictToArrayBijection.map({v.name: point[v.name] for v in model.value_vars}).data.size == layout.size
    # FAST_COMPILE: the numba linker (PyTensor 3 default) needs ~10 s per graph.
    reference = model.logp_dlogp_function(ravel_inputs=True, mode="FAST_COMPILE")
    reference.set_extra_values({})
    for _ in range(4):
        theta = rng.normal(scale=0.7, size=layout.size)
        expected_logp, expected_grad = reference(theta)
        logp, grad = ld.logp_and_grad(theta, block)
        # Same formulas in a different summation order: agreement to ~1e-12 relative.
        assert logp == pytest.approx(expected_logp, rel=1e-11, abs=1e-9)
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-9, atol=1e-8)


def test_gradient_matches_finite_differences(rng):
    X = case_data(3, rng)
    values, _, _, resolved = model_data(X, GMMPriors(), 3)
    block = ld.pack_block(values, resolved, 3, "full")
    theta = rng.normal(scale=0.5, size=ld.Layout(3, 3, "full").size)
    _, grad = ld.logp_and_grad(theta, block)
    step = 1e-6
    numeric = np.array([
        (ld.logp_and_grad(theta + step * e, block)[0] - ld.logp_and_grad(theta - step * e, block)[0]) / (2 * step)
        for e in np.eye(theta.size)
    ])
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("n_features", [1, 2, 3, 4, 5])
def test_spiral_indices_cover_the_strict_lower_triangle(n_features):
    rows, cols = ld.spiral_indices(n_features)
    assert np.all(rows > cols)
    assert len(set(zip(rows.tolist(), cols.tolist()))) == n_features * (n_features - 1) // 2


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_transforms_round_trip(rng, covariance_type):
    layout = ld.Layout(3, 3, covariance_type)
    theta = rng.normal(size=layout.size)
    parameters = ld.unconstrained_to_parameters(theta, layout)
    np.testing.assert_allclose(parameters.weights.sum(), 1.0)
    np.testing.assert_allclose(np.diagonal(parameters.correlations, axis1=-2, axis2=-1), 1.0)
    np.testing.assert_allclose(ld.parameters_to_unconstrained(parameters, layout), theta, atol=1e-12)


def test_cfunc_entry_point_agrees_with_python_entry(rng):
    import ctypes

    X = case_data(2, rng)
    values, _, _, resolved = model_data(X, GMMPriors(), 2)
    block = ld.pack_block(values, resolved, 2, "full")
    theta = rng.normal(size=ld.Layout(2, 2, "full").size)
    grad = np.empty_like(theta)
    logp = np.empty(1)
    as_pointer = lambda a: a.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
    code = ld.gmm_logp_cfunc.ctypes(theta.size, as_pointer(theta), as_pointer(grad), as_pointer(logp), block.ctypes.data)
    expected, expected_grad = ld.logp_and_grad(theta, block)
    assert code == 0
    assert logp[0] == expected
    np.testing.assert_array_equal(grad, expected_grad)
