"""The compiled log density equals the PyMC specification, term by term and as a whole."""

from typing import NamedTuple

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
from bayesgmm._kernel.missing import missing_statistics
from bayesgmm.datasets import load_faithful
from bayesgmm.model import build_model
from bayesgmm.parameters import Layout, spiral_indices, unconstrained_to_parameters
from bayesgmm.priors import INVERSE_GAMMA_SHAPE, SCALE_PRIORS, GMMPriors
from bayesgmm.scaling import model_noise_log_density, model_noise_log_sides, model_scale
from bayesgmm.selection import SPARSE_CONCENTRATION


class Case(NamedTuple):
    """One whole-model agreement check: the model, its priors, and how far out theta is drawn."""

    n_components: int
    n_features: int
    covariance_type: str
    scale_prior: str
    standardize: bool
    weight_concentration: float | tuple[float, ...] = 1.5
    lkj_eta: float = 3.0
    theta_sd: float = 0.7
    noise: bool = False
    missing: float = 0.0  # share of values removed at random (every row keeps one)
    weighted: bool = False  # frequency weights: fractional, some 0, mean about 1.5


# theta is drawn with standard deviation 0.7 near the prior's bulk; 4 to 6 reaches the far
# tails: entries out to +-20, so scales from 1e-7 to 1e7, weights down to 1e-16 and
# |correlations| up to 0.999.
FAR_TAIL_SD = 4.0

CASES = [
    Case(3, 2, "full", "half_normal", True),
    Case(2, 2, "diag", "exponential", True),
    Case(1, 2, "full", "lognormal", False),
    Case(3, 1, "full", "half_normal", True),
    Case(2, 3, "full", "exponential", False),
    Case(4, 4, "full", "lognormal", True),
    Case(2, 3, "diag", "half_normal", True),
    # LKJ shapes: uniform over correlation matrices, and mass pushed towards +-1.
    Case(3, 2, "full", "half_normal", True, lkj_eta=1.0),
    Case(2, 3, "full", "exponential", False, lkj_eta=0.5),
    Case(3, 4, "full", "lognormal", True, lkj_eta=0.5),
    # Asymmetric Dirichlet concentrations.
    Case(2, 2, "full", "lognormal", True, weight_concentration=(1.0, 30.0)),
    Case(3, 2, "diag", "half_normal", False, weight_concentration=(0.5, 2.0, 10.0)),
    # One component and one feature: no weights and no correlations to sample.
    Case(1, 1, "full", "half_normal", True),
    Case(1, 1, "diag", "exponential", False),
    # The sparse prior of compare_k.
    Case(4, 2, "full", "half_normal", True, weight_concentration=SPARSE_CONCENTRATION),
    Case(3, 3, "diag", "lognormal", True, weight_concentration=SPARSE_CONCENTRATION),
    # Far tails.
    Case(3, 2, "full", "half_normal", True, theta_sd=4.0),
    Case(2, 2, "diag", "exponential", True, theta_sd=5.0),
    Case(2, 3, "full", "exponential", False, lkj_eta=0.5, theta_sd=6.0),
    Case(4, 4, "full", "lognormal", True, SPARSE_CONCENTRATION, lkj_eta=0.5, theta_sd=6.0),
    Case(3, 2, "full", "half_normal", False, (1.0, 30.0, 2.0), lkj_eta=1.0, theta_sd=5.0),
    Case(2, 1, "full", "half_normal", False, (1.0, 30.0), theta_sd=6.0),
    Case(1, 1, "full", "lognormal", True, theta_sd=6.0),
    # The default scale prior (inverse-gamma), across the same kinds of cases.
    Case(3, 2, "full", "inverse_gamma", True),
    Case(2, 3, "diag", "inverse_gamma", False, weight_concentration=(1.0, 30.0)),
    Case(1, 1, "full", "inverse_gamma", True),
    Case(4, 3, "full", "inverse_gamma", True, SPARSE_CONCENTRATION, lkj_eta=0.5),
    Case(3, 2, "full", "inverse_gamma", False, lkj_eta=1.0, theta_sd=5.0),
    # Shared structures: one covariance for all components (tied), one scale per
    # component (spherical); with K = 1, D = 1 and K = D, where the set counts coincide.
    Case(3, 2, "tied", "inverse_gamma", True),
    Case(2, 3, "tied", "half_normal", False, lkj_eta=0.5),
    Case(3, 3, "tied", "lognormal", True, (1.0, 30.0, 2.0)),
    Case(1, 2, "tied", "exponential", True),
    Case(2, 1, "tied", "inverse_gamma", False),
    Case(4, 4, "tied", "inverse_gamma", True, SPARSE_CONCENTRATION, lkj_eta=0.5, theta_sd=5.0),
    Case(3, 2, "spherical", "inverse_gamma", True),
    Case(2, 3, "spherical", "half_normal", False),
    Case(3, 3, "spherical", "lognormal", True, (0.5, 2.0, 10.0)),
    Case(1, 2, "spherical", "exponential", True),
    Case(2, 1, "spherical", "inverse_gamma", False),
    Case(4, 3, "spherical", "inverse_gamma", True, SPARSE_CONCENTRATION, theta_sd=5.0),
    # A uniform noise component, its weight the last of the Dirichlet: every structure,
    # one component (the noise weight is then the only free weight) and far tails.
    Case(3, 2, "full", "inverse_gamma", True, noise=True),
    Case(1, 2, "full", "half_normal", False, noise=True),
    Case(2, 3, "tied", "lognormal", True, (1.0, 30.0), noise=True),
    Case(3, 2, "diag", "exponential", False, noise=True),
    Case(2, 3, "spherical", "inverse_gamma", True, noise=True),
    Case(4, 2, "full", "inverse_gamma", True, SPARSE_CONCENTRATION, theta_sd=5.0, noise=True),
    # Missing values, marginalised: every structure, K = 1 and K > 1, with and without
    # standardisation and noise, far tails.  With D = 1 no value can be missing (a row needs
    # one), so that case checks that the setting leaves complete data alone.
    Case(3, 2, "full", "inverse_gamma", True, missing=0.2),
    Case(1, 2, "full", "half_normal", False, missing=0.2),
    Case(2, 3, "full", "lognormal", True, lkj_eta=0.5, missing=0.3),
    Case(2, 1, "full", "inverse_gamma", True, missing=0.2),
    Case(3, 3, "tied", "inverse_gamma", True, missing=0.2),
    Case(2, 2, "tied", "exponential", False, missing=0.3),
    Case(2, 3, "diag", "exponential", False, missing=0.2),
    Case(1, 3, "diag", "inverse_gamma", True, missing=0.3),
    Case(3, 2, "spherical", "inverse_gamma", True, missing=0.2),
    Case(2, 3, "spherical", "half_normal", False, missing=0.3),
    Case(3, 2, "full", "inverse_gamma", True, noise=True, missing=0.2),
    Case(1, 3, "full", "lognormal", False, noise=True, missing=0.2),
    Case(2, 3, "tied", "lognormal", True, (1.0, 30.0), noise=True, missing=0.3),
    Case(3, 3, "diag", "exponential", False, noise=True, missing=0.2),
    Case(2, 2, "spherical", "inverse_gamma", True, noise=True, missing=0.2),
    Case(3, 2, "full", "half_normal", True, theta_sd=4.0, missing=0.2),
    Case(2, 3, "full", "exponential", False, lkj_eta=0.5, theta_sd=6.0, noise=True, missing=0.3),
    # Frequency weights (a potential in PyMC), alone and with every other term.
    Case(3, 2, "full", "half_normal", True, weighted=True),
    Case(2, 3, "tied", "lognormal", True, (1.0, 30.0), weighted=True),
    Case(3, 2, "diag", "exponential", False, weighted=True),
    Case(2, 3, "spherical", "inverse_gamma", True, weighted=True),
    Case(3, 2, "full", "inverse_gamma", True, noise=True, weighted=True),
    Case(2, 3, "full", "lognormal", True, missing=0.2, weighted=True),
    Case(3, 3, "diag", "half_normal", True, noise=True, missing=0.3, weighted=True),
    Case(2, 3, "full", "exponential", False, lkj_eta=0.5, theta_sd=6.0, noise=True, missing=0.3,
         weighted=True),
]


def case_weights(n_samples, rng):
    """Frequency weights: about a fifth 0 (rows dropped), the rest uniform on [0.5, 3.5)."""
    weights = rng.uniform(0.5, 3.5, size=n_samples)
    weights[rng.random(n_samples) < 0.2] = 0.0
    return weights

# Same formulas in a different summation order: agreement to ~1e-12 relative.
LOGP_TOLERANCE = dict(rel=1e-11, abs=1e-9)
GRAD_TOLERANCE = dict(rtol=1e-9, atol=1e-8)
# In the far tails logp and the largest gradient entries reach 1e16, and logp still agrees to
# LOGP_TOLERANCE (seen: below 3e-14 relative).  A gradient entry, though, can be a small
# difference of terms as large as the largest entry (e.g. a correlation entry,
# (G_ij - L_ij * inner) / norm, with G and inner of the size of the whitened residuals squared):
# it then agrees only to a few ulps of that largest entry, not of itself (seen: an entry of 487
# off by 9e-5, i.e. 2e-7 of itself, beside a largest entry of 1e14).  So far-tail gradients
# also get an absolute tolerance of 1e-11 times their largest entry (seen: at most 3e-14).  The
# prior terms, negligible beside such a likelihood there, are checked by the near cases and by
# the term tests below.
FAR_TAIL_GRAD_TOLERANCE = 1e-11


def case_data(n_features, rng):
    faithful = load_faithful()
    if n_features <= 2:
        return faithful.iloc[:, -n_features:]
    extra = rng.normal(size=(len(faithful), n_features - 2))
    return np.column_stack([faithful.to_numpy(), extra])


def remove_values(X, share, rng):
    """``X`` with about ``share`` of its values set to NaN at random; every row keeps one."""
    values = np.array(X, dtype=np.float64)
    removed = rng.random(values.shape) < share
    removed[np.arange(len(values)), rng.integers(values.shape[1], size=len(values))] = False
    values[removed] = np.nan
    return values


def model_values(X, priors, n_components, covariance_type="full"):
    """The data on the model's scale and the resolved priors, as the model sees them."""
    values, _, _, resolved = model_scale(check_X(X, n_components=n_components).values,
                                         priors, n_components, covariance_type)
    return values, resolved


def pymc_reference(model):
    """PyMC's logp and gradient in the model's unconstrained space."""
    # FAST_COMPILE: the numba linker (PyTensor 3 default) needs ~10 s per graph.
    reference = model.logp_dlogp_function(ravel_inputs=True, mode="FAST_COMPILE")
    reference.set_extra_values({})
    return reference


def assert_agrees(kernel, reference, points, gradient_tolerance_of_largest=0.0):
    """Equal logp and gradients at every point; both finite there.

    ``gradient_tolerance_of_largest`` widens the gradient's absolute tolerance to that
    fraction of the largest entry (see FAR_TAIL_GRAD_TOLERANCE).
    """
    for theta in points:
        expected_logp, expected_grad = reference(theta)
        logp, grad = kernel(theta)
        assert np.isfinite(expected_logp) and np.isfinite(logp)
        assert np.all(np.isfinite(expected_grad)) and np.all(np.isfinite(grad))
        assert logp == pytest.approx(expected_logp, **LOGP_TOLERANCE)
        atol = max(GRAD_TOLERANCE["atol"],
                   gradient_tolerance_of_largest * np.max(np.abs(expected_grad)))
        np.testing.assert_allclose(grad, expected_grad, rtol=GRAD_TOLERANCE["rtol"], atol=atol)


# ---------------------------------------------------------------- whole model
def case_id(case):
    """E.g. ``3-2-full-half_normal-True-1.5-3-0.7``; a concentration vector is joined by ``_``."""
    def text(value):
        if isinstance(value, tuple):
            return "_".join(map(text, value))
        return f"{value:g}" if isinstance(value, float) else str(value)

    return "-".join(map(text, case))


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_matches_pymc_logp_and_gradient(rng, case):
    X = case_data(case.n_features, rng)
    missing = "reject"
    if case.missing:
        X, missing = remove_values(X, case.missing, rng), "marginalize"
    row_weights = case_weights(len(X), rng) if case.weighted else None
    priors = GMMPriors(scale_prior=case.scale_prior, standardize=case.standardize,
                       weight_concentration=case.weight_concentration, lkj_eta=case.lkj_eta,
                       noise_concentration=0.7)
    model = build_model(X, case.n_components, priors, case.covariance_type, noise=case.noise,
                        missing=missing, sample_weight=row_weights)
    checked = check_X(X, n_components=case.n_components, missing=missing).values
    values, _, scale, resolved = model_scale(checked, priors, case.n_components,
                                             case.covariance_type, row_weights)
    noise_log_density = model_noise_log_density(checked, scale, case.noise, None)
    block = pack_block(values, resolved, case.n_components, case.covariance_type,
                       noise_log_density, model_noise_log_sides(checked, scale, case.noise, None),
                       row_weights)
    layout = Layout(case.n_components, case.n_features, case.covariance_type,
                    noise_log_density)
    point = model.initial_point()
    assert DictToArrayBijection.map({v.name: point[v.name] for v in model.value_vars}).data.size == layout.size
    # The first 4 points are those the test drew when it had 4; PyMC's compile dominates the time.
    points = rng.normal(scale=case.theta_sd, size=(25, layout.size))
    far_tail = case.theta_sd >= FAR_TAIL_SD
    assert_agrees(lambda theta: logp_and_grad(theta, block), pymc_reference(model), points,
                  FAR_TAIL_GRAD_TOLERANCE if far_tail else 0.0)


@pytest.mark.parametrize("missing", [0.0, 0.3])
@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_gradient_matches_finite_differences(rng, covariance_type, missing):
    X = case_data(3, rng)
    noise_log_density = noise_log_sides = None
    if missing:
        X = remove_values(X, missing, rng)
        noise_log_sides = rng.normal(size=3)
        noise_log_density = -noise_log_sides.sum()
    values, _, _, resolved = model_scale(X, GMMPriors(), 3, covariance_type)
    block = pack_block(values, resolved, 3, covariance_type, noise_log_density, noise_log_sides)
    theta = rng.normal(scale=0.5, size=Layout(3, 3, covariance_type, noise_log_density).size)
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
    "inverse_gamma": lambda tau: pm.InverseGamma(
        "scales", alpha=np.float64(INVERSE_GAMMA_SHAPE), beta=tau, shape=(2, 3)),
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
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("with_noise", [False, True])
def test_mixture_statistics_term_matches_scipy(rng, with_noise, weighted):
    X = rng.normal(size=(50, 3))
    layout = Layout(3, 3, "full", noise_log_density=-2.5 if with_noise else None)
    parameters = unconstrained_to_parameters(rng.normal(scale=0.5, size=layout.size), layout)
    factors, log_component = covariance_factors(
        np.log(parameters.weights), parameters.scales, parameters.correlation_cholesky,
        np.ones((3, 3)),
    )
    log_noise = np.log(parameters.noise.weight) - 2.5 if with_noise else -np.inf
    row_weights = case_weights(len(X), rng) if weighted else np.zeros(0)
    loglik, statistics = mixture_statistics(X.ravel(), row_weights, parameters.means,
                                            factors.cholesky, log_component, log_noise, 0.0)
    counted = row_weights if weighted else np.ones(len(X))
    joint = np.log(parameters.weights) + np.column_stack([
        multivariate_normal(mean, covariance).logpdf(X)
        for mean, covariance in zip(parameters.means, parameters.covariances)
    ])
    if with_noise:
        joint = np.column_stack([joint, np.full(len(X), log_noise)])
    assert loglik == pytest.approx(counted @ logsumexp(joint, axis=1), rel=1e-12)
    responsibilities = np.exp(joint - logsumexp(joint, axis=1, keepdims=True))
    expected_counts = counted @ responsibilities
    if not with_noise:
        expected_counts = np.append(expected_counts, 0.0)
    np.testing.assert_allclose(statistics.counts, expected_counts, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("with_noise", [False, True])
def test_missing_statistics_term_matches_scipy_marginals(rng, with_noise, weighted):
    X = remove_values(rng.normal(size=(60, 3)), 0.4, rng)
    log_sides = np.log([2.0, 3.0, 4.0]) if with_noise else None
    layout = Layout(3, 3, "full", noise_log_density=-np.log(24.0) if with_noise else None)
    parameters = unconstrained_to_parameters(rng.normal(scale=0.5, size=layout.size), layout)
    factors, _ = covariance_factors(np.log(parameters.weights), parameters.scales,
                                    parameters.correlation_cholesky, np.ones((3, 3)))
    log_noise = np.log(parameters.noise.weight) - np.log(24.0) if with_noise else -np.inf
    row_weights = case_weights(len(X), rng) if weighted else None
    block = pack_block(X, GMMPriors().resolve(3, np.zeros(3), np.ones(3)), 3, "full",
                       layout.noise_log_density, log_sides, row_weights)
    complete_counts = rng.uniform(size=4)
    loglik, statistics = missing_statistics(
        section(block, Section.PATTERNS), section(block, Section.INCOMPLETE_DATA),
        section(block, Section.INCOMPLETE_WEIGHTS), np.log(parameters.weights), parameters.means, factors.cholesky, log_noise,
        complete_counts, np.zeros(9), 0.0)
    incomplete = np.isnan(X).any(axis=1)
    joint = []
    for row in X[incomplete]:
        observed = ~np.isnan(row)
        densities = [multivariate_normal(mean[observed], covariance[np.ix_(observed, observed)])
                     .logpdf(row[observed])
                     for mean, covariance in zip(parameters.means, parameters.covariances)]
        noise = [log_noise + np.log([2.0, 3.0, 4.0])[~observed].sum()] if with_noise else []
        joint.append([*(np.log(parameters.weights) + densities), *noise])
    joint = np.array(joint)
    assert incomplete.sum() > 30
    counted = row_weights[incomplete] if weighted else np.ones(incomplete.sum())
    assert loglik == pytest.approx(counted @ logsumexp(joint, axis=1), rel=1e-12)
    responsibilities = counted @ np.exp(joint - logsumexp(joint, axis=1, keepdims=True))
    expected = complete_counts + (responsibilities if with_noise else np.append(responsibilities, 0))
    np.testing.assert_allclose(statistics.counts, expected, rtol=1e-12)


# ---------------------------------------------------------------- the block
def test_block_sections_read_back_what_was_packed(rng):
    X = rng.normal(size=(7, 3))
    resolved = GMMPriors(weight_concentration=(1.0, 2.0)).resolve(2, np.zeros(3), np.ones(3))
    block = pack_block(X, resolved, 2, "full")
    np.testing.assert_array_equal(section(block, Section.DATA), X.ravel())
    np.testing.assert_array_equal(section(block, Section.WEIGHT_CONCENTRATION), [1.0, 2.0])
    np.testing.assert_array_equal(section(block, Section.TRIANGLE_ROWS), spiral_indices(3)[0])
    assert block[Field.N_SAMPLES] == 7


def test_complete_data_pack_no_patterns_and_incomplete_rows_leave_the_data_section(rng):
    X = rng.normal(size=(7, 3))
    resolved = GMMPriors().resolve(2, np.zeros(3), np.ones(3))
    block = pack_block(X, resolved, 2, "full")
    assert section(block, Section.PATTERNS).size == 0
    assert section(block, Section.INCOMPLETE_DATA).size == 0
    X[[1, 4], 0] = np.nan
    X[5, [0, 2]] = np.nan
    block = pack_block(X, resolved, 2, "full")
    np.testing.assert_array_equal(section(block, Section.DATA), X[[0, 2, 3, 6]].ravel())
    # One record per pattern: rows, observed count, noise extent, observed columns, -1 padding.
    np.testing.assert_array_equal(section(block, Section.PATTERNS).reshape(2, -1),
                                  [[1, 1, 0, 1, -1, -1], [2, 2, 0, 1, 2, -1]])
    np.testing.assert_array_equal(section(block, Section.INCOMPLETE_DATA),
                                  [X[5, 1], *X[1, 1:], *X[4, 1:]])
    assert block[Field.N_SAMPLES] == 7


def test_pack_refuses_a_missing_entry():
    with pytest.raises(ValueError, match="Section entries missing: \\['DATA'\\]"):
        pack({f: 0.0 for f in Field}, {s: np.zeros(1) for s in Section if s != Section.DATA},
             Layout(1, 1, "diag"))
