"""The compiled log density equals the PyMC specification, term by term and as a whole."""

import numpy as np
import pymc as pm
import pytest
from pymc.blocking import DictToArrayBijection
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from bayesgmm._checks import check_X
from bayesgmm._kernel import logp_and_grad, pack_block
from bayesgmm._kernel import priors as terms
from bayesgmm._kernel.layout import Field, Section, pack, section
from bayesgmm._kernel.likelihood import covariance_factors, mixture_statistics
from bayesgmm.datasets import load_faithful
from bayesgmm.model import build_model
from bayesgmm.parameters import Layout, spiral_indices, unconstrained_to_parameters
from bayesgmm.priors import SCALE_PRIORS, GMMPriors
from bayesgmm.scaling import model_scale

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

# Same formulas in a different summation order: agreement to ~1e-12 relative.
LOGP_TOLERANCE = dict(rel=1e-11, abs=1e-9)
GRAD_TOLERANCE = dict(rtol=1e-9, atol=1e-8)


def case_data(n_features, rng):
    faithful = load_faithful()
    if n_features <= 2:
        return faithful.iloc[:, -n_features:]
    extra = rng.normal(size=(len(faithful), n_features - 2))
    return np.column_stack([faithful.to_numpy(), extra])


def model_values(X, priors, n_components):
    """The data on the model's scale and the resolved priors, as the model sees them."""
    values, _, _, resolved = model_scale(check_X(X, n_components=n_components).values,
                                         priors, n_components)
    return values, resolved


def pymc_reference(model):
    """PyMC's logp and gradient in the model's unconstrained space."""
    # FAST_COMPILE: the numba linker (PyTensor 3 default) needs ~10 s per graph.
    reference = model.logp_dlogp_function(ravel_inputs=True, mode="FAST_COMPILE")
    reference.set_extra_values({})
    return reference


def assert_agrees(kernel, reference, points):
    for theta in points:
        expected_logp, expected_grad = reference(theta)
        logp, grad = kernel(theta)
        assert logp == pytest.approx(expected_logp, **LOGP_TOLERANCE)
        np.testing.assert_allclose(grad, expected_grad, **GRAD_TOLERANCE)


# ---------------------------------------------------------------- whole model
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c)))
def test_matches_pymc_logp_and_gradient(rng, case):
    n_components, n_features, covariance_type, scale_prior, standardize = case
    X = case_data(n_features, rng)
    priors = GMMPriors(scale_prior=scale_prior, standardize=standardize, weight_concentration=1.5, lkj_eta=3.0)
    model = build_model(X, n_components, priors, covariance_type)
    values, resolved = model_values(X, priors, n_components)
    block = pack_block(values, resolved, n_components, covariance_type)
    layout = Layout(n_components, n_features, covariance_type)
    point = model.initial_point()
    assert DictToArrayBijection.map({v.name: point[v.name] for v in model.value_vars}).data.size == layout.size
    points = rng.normal(scale=0.7, size=(4, layout.size))
    assert_agrees(lambda theta: logp_and_grad(theta, block), pymc_reference(model), points)


def test_gradient_matches_finite_differences(rng):
    X = case_data(3, rng)
    values, resolved = model_values(X, GMMPriors(), 3)
    block = pack_block(values, resolved, 3, "full")
    theta = rng.normal(scale=0.5, size=Layout(3, 3, "full").size)
    _, grad = logp_and_grad(theta, block)
    step = 1e-6
    numeric = np.array([
        (logp_and_grad(theta + step * e, block)[0] - logp_and_grad(theta - step * e, block)[0]) / (2 * step)
        for e in np.eye(theta.size)
    ])
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-4)


# ---------------------------------------------------------------- prior terms
def test_dirichlet_simplex_term_matches_pymc(rng):
    concentration = np.array([0.7, 1.5, 3.0, 2.0])
    with pm.Model() as model:
        pm.Dirichlet("weights", a=concentration)
    constant = terms.dirichlet_constant(concentration)

    def kernel(free):
        logp, log_weights = terms.dirichlet_simplex(free, concentration, constant, 0.0)
        grad = np.zeros_like(free)
        # No data: the counts are zero and only the prior's pseudo-counts remain.
        terms.simplex_gradient(grad, concentration, np.zeros(4), 0, log_weights)
        np.testing.assert_allclose(np.exp(log_weights).sum(), 1.0)
        return logp, grad

    assert_agrees(kernel, pymc_reference(model), rng.normal(size=(4, 3)))


def test_normal_means_term_matches_pymc(rng):
    loc, scale = np.array([0.5, -1.0, 2.0]), np.array([2.0, 0.3, 1.0])
    with pm.Model() as model:
        pm.Normal("means", mu=loc, sigma=scale, shape=(2, 3))

    def kernel(free):
        grad = np.zeros_like(free)
        logp, means = terms.normal_means(free, grad, loc, scale, 2, 0.0)
        np.testing.assert_array_equal(means.ravel(), free)
        return logp, grad

    assert_agrees(kernel, pymc_reference(model), rng.normal(size=(4, 6)))


SCALE_DISTRIBUTIONS = {
    "half_normal": lambda tau: pm.HalfNormal("scales", sigma=tau, shape=(2, 3)),
    "exponential": lambda tau: pm.Exponential("scales", scale=tau, shape=(2, 3)),
    "lognormal": lambda tau: pm.LogNormal("scales", mu=np.log(tau), sigma=np.float64(1.0),
                                          shape=(2, 3)),
}


@pytest.mark.parametrize("scale_prior", list(SCALE_DISTRIBUTIONS))
def test_log_scales_term_matches_pymc(rng, scale_prior):
    tau = np.array([0.5, 1.0, 3.0])
    with pm.Model() as model:
        SCALE_DISTRIBUTIONS[scale_prior](tau)

    def kernel(free):
        grad = np.zeros_like(free)
        logp, scales = terms.log_scales(free, grad, tau, SCALE_PRIORS.index(scale_prior), 2, 0.0)
        np.testing.assert_allclose(np.log(scales).ravel(), free)
        return logp, grad

    assert_agrees(kernel, pymc_reference(model), rng.normal(size=(4, 6)))


@pytest.mark.parametrize("n_features", [2, 3, 4])
def test_lkj_cholesky_term_matches_pymc(rng, n_features):
    n_components, eta = 2, 2.5
    with pm.Model() as model:
        pm.LKJCorr("correlations_cholesky", n=n_features, eta=np.float64(eta), size=n_components)
    rows, cols = spiral_indices(n_features)
    constant = terms.lkj_log_normaliser(eta, n_features)
    layout = Layout(n_components, n_features, "full")

    def kernel(free):
        grad = np.zeros_like(free)
        logp, chol, _ = terms.lkj_cholesky(free, grad, rows.astype(float), cols.astype(float),
                                           eta, constant, n_components, n_features, 0.0)
        # The same factor as the numpy backward transform of bayesgmm.parameters.
        theta = np.concatenate([np.zeros(layout.size - free.size), free])
        expected = unconstrained_to_parameters(theta, layout).correlation_cholesky
        np.testing.assert_allclose(chol, expected, rtol=1e-14)
        return logp, grad

    assert_agrees(kernel, pymc_reference(model), rng.normal(size=(4, layout.n_triangle * n_components)))


def test_lkj_cholesky_term_without_free_entries_is_the_identity():
    logp, chol, row_norms = terms.lkj_cholesky(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0),
                                               2.0, 0.0, 3, 2, 1.5)
    assert logp == 1.5
    np.testing.assert_array_equal(chol, np.broadcast_to(np.eye(2), (3, 2, 2)))
    np.testing.assert_array_equal(row_norms, 1.0)


# ---------------------------------------------------------------- likelihood
def test_mixture_statistics_term_matches_scipy(rng):
    X = rng.normal(size=(50, 3))
    layout = Layout(3, 3, "full")
    parameters = unconstrained_to_parameters(rng.normal(scale=0.5, size=layout.size), layout)
    factors, log_component = covariance_factors(
        np.log(parameters.weights), parameters.scales, parameters.correlation_cholesky,
        np.ones((3, 3)),
    )
    loglik, statistics = mixture_statistics(X.ravel(), parameters.means, factors.cholesky,
                                            log_component, 0.0)
    joint = np.log(parameters.weights) + np.column_stack([
        multivariate_normal(mean, covariance).logpdf(X)
        for mean, covariance in zip(parameters.means, parameters.covariances)
    ])
    assert loglik == pytest.approx(logsumexp(joint, axis=1).sum(), rel=1e-12)
    responsibilities = np.exp(joint - logsumexp(joint, axis=1, keepdims=True))
    np.testing.assert_allclose(statistics.counts, responsibilities.sum(axis=0), rtol=1e-12)


# ---------------------------------------------------------------- the block
def test_block_sections_read_back_what_was_packed(rng):
    X = rng.normal(size=(7, 3))
    resolved = GMMPriors(weight_concentration=(1.0, 2.0)).resolve(2, np.zeros(3), np.ones(3))
    block = pack_block(X, resolved, 2, "full")
    np.testing.assert_array_equal(section(block, Section.DATA), X.ravel())
    np.testing.assert_array_equal(section(block, Section.WEIGHT_CONCENTRATION), [1.0, 2.0])
    np.testing.assert_array_equal(section(block, Section.TRIANGLE_ROWS), spiral_indices(3)[0])
    assert block[Field.N_SAMPLES] == 7


def test_pack_refuses_a_missing_entry():
    with pytest.raises(ValueError, match="Section entries missing: \\['DATA'\\]"):
        pack({f: 0.0 for f in Field}, {s: np.zeros(1) for s in Section if s != Section.DATA},
             Layout(1, 1, "diag"))
