"""The C entry point and sampling through nutpie with it."""

import ctypes

import numpy as np
import nutpie

from bayesgmm._kernel import gmm_logp_cfunc, logp_and_grad, pack_block
from bayesgmm._kernel.nutpie import THETA, compiled_model
from bayesgmm.datasets import load_faithful
from bayesgmm.parameters import Layout
from bayesgmm.priors import GMMPriors
from bayesgmm.scaling import model_scale


def faithful_block(n_components, covariance_type):
    values, _, _, resolved = model_scale(load_faithful().to_numpy(), GMMPriors(), n_components)
    return pack_block(values, resolved, n_components, covariance_type)


def call_cfunc(theta, block):
    """``gmm_logp_cfunc`` through ctypes, as nutpie calls it: (code, logp, grad)."""
    theta = np.ascontiguousarray(theta, dtype=np.float64)
    grad = np.empty_like(theta)
    logp = np.empty(1)
    as_pointer = lambda a: a.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
    code = gmm_logp_cfunc.ctypes(theta.size, as_pointer(theta), as_pointer(grad), as_pointer(logp), block.ctypes.data)
    return code, logp[0], grad


def test_cfunc_entry_point_agrees_with_python_entry(rng):
    block = faithful_block(2, "full")
    theta = rng.normal(size=Layout(2, 2, "full").size)
    code, logp, grad = call_cfunc(theta, block)
    expected, expected_grad = logp_and_grad(theta, block)
    assert code == 0
    assert logp == expected
    np.testing.assert_array_equal(grad, expected_grad)


def test_cfunc_returns_4_for_a_non_finite_density():
    block = faithful_block(2, "full")
    layout = Layout(2, 2, "full")
    theta = np.zeros(layout.size)
    theta[layout.slices["scales"]] = 800.0  # exp(800) overflows: infinite scales
    code, logp, _ = call_cfunc(theta, block)
    assert not np.isfinite(logp)
    assert code == 4


def test_nutpie_samples_through_the_compiled_model():
    n_chains, n_draws = 2, 30
    layout = Layout(2, 2, "full")
    start = np.zeros(layout.size)
    start[layout.slices["means"]] = [-1.0, -1.0, 1.0, 1.0]  # the two clusters, standardised
    trace = nutpie.sample(compiled_model(faithful_block(2, "full"), start.size, lambda seed: start.copy()), draws=n_draws,
                          tune=50, chains=n_chains, cores=1, seed=1, progress_bar=False)
    draws = trace.posterior[THETA].values
    assert draws.shape == (n_chains, n_draws, layout.size)
    assert np.all(np.isfinite(draws))
    assert np.ptp(draws, axis=1).min() > 0  # every coordinate moved in every chain
