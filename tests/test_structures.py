"""The four covariance structures of the Bayesian model: shared sets, recovery, round trips."""

import numpy as np
import pytest
import xarray as xr

from bayesgmm import BayesianGMM, GaussianMixtureEM, GMMPriors, build_model, load
from bayesgmm._kernel import logp_and_grad
from bayesgmm.datasets import load_faithful, make_mixture
from bayesgmm.fitting import prepare_problem
from bayesgmm.inference import _pymc_start, parameters_from_pymc
from bayesgmm.parameters import (
    COVARIANCE_TYPES,
    Layout,
    parameter_matrix,
    parameters_to_unconstrained,
    unconstrained_to_parameters,
)

FAST = dict(draws=600, tune=500, chains=4, progressbar=False)


def structured_mixture(covariance_type, seed=0, n_samples=500):
    """Three clusters 8 sds apart whose covariances have the given structure."""
    rng = np.random.default_rng(seed)
    means = np.array([[0.0, 0.0], [8.0, 1.0], [0.0, 9.0]])
    if covariance_type == "tied":
        covariances = np.broadcast_to([[1.0, 0.5], [0.5, 2.0]], (3, 2, 2))
    else:
        covariances = np.array([0.6, 1.0, 1.8])[:, None, None] * np.eye(2)
    weights = np.array([0.5, 0.3, 0.2])
    X, _ = make_mixture(n_samples, weights, means, covariances, random_state=rng)
    return X, weights, means, covariances


@pytest.mark.parametrize("covariance_type", ["tied", "spherical"])
def test_recovers_a_mixture_of_its_own_structure(covariance_type):
    X, weights, means, covariances = structured_mixture(covariance_type)
    fitted = BayesianGMM(3, covariance_type=covariance_type, random_state=1, **FAST).fit(X)
    posterior = fitted.idata_.posterior
    order = np.argsort(posterior["means"].mean(("chain", "draw")).values @ [1.0, 10.0])
    truth_order = np.argsort(means @ [1.0, 10.0])
    # As in test_bayes.test_recovers_known_mixture: 4 posterior sds plus 2% of the scale.
    for name, truth in (("weights", weights), ("means", means), ("covariances", covariances)):
        mean = posterior[name].mean(("chain", "draw")).values[order]
        sd = posterior[name].std(("chain", "draw")).values[order]
        truth = np.asarray(truth)[truth_order]
        assert np.all(np.abs(mean - truth) <= 4 * sd + 0.02 * np.abs(truth).max()), name


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_each_structure_agrees_with_its_em_fit_on_faithful(covariance_type):
    X = load_faithful()
    fitted = BayesianGMM(2, covariance_type=covariance_type, random_state=0, **FAST).fit(X)
    em = GaussianMixtureEM(2, covariance_type=covariance_type, n_init=5, random_state=0).fit(X)
    posterior_means = fitted.idata_.posterior["means"].mean(("chain", "draw")).values
    posterior_sd = fitted.idata_.posterior["means"].std(("chain", "draw")).values
    order = np.argsort(posterior_means[:, 0])
    em_order = np.argsort(em.means_[:, 0])
    # 272 rows: the posterior mean is within a few posterior sds of the EM maximum
    # (the weakly informative prior shifts it by far less than one sd).
    assert np.all(np.abs(posterior_means[order] - em.means_[em_order]) < 3 * posterior_sd[order])


def test_shared_values_are_shared_in_the_posterior():
    X = load_faithful()
    tied = BayesianGMM(3, covariance_type="tied", random_state=0, **FAST).fit(X)
    posterior = tied.idata_.posterior
    for name in ("scales", "correlations", "covariances"):
        values = posterior[name].values
        np.testing.assert_array_equal(values, np.broadcast_to(values[:, :, :1], values.shape))
    spherical = BayesianGMM(3, covariance_type="spherical", random_state=0, **FAST).fit(X)
    # One common scale standardises every feature, so a spherical component is
    # spherical in the user's units too: its scales agree across features.
    scales = spherical.idata_.posterior["scales"].values
    np.testing.assert_array_equal(scales, np.broadcast_to(scales[..., :1], scales.shape))
    np.testing.assert_array_equal(spherical.idata_.posterior["correlations"].values[..., 0, 1], 0.0)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_transforms_round_trip_for_every_structure(rng, covariance_type):
    layout = Layout(3, 3, covariance_type)
    theta = rng.normal(size=(5, layout.size))
    parameters = unconstrained_to_parameters(theta, layout)
    assert parameters.scales.shape == (5, 3, 3)
    assert parameters.correlation_cholesky.shape == (5, 3, 3, 3)
    np.testing.assert_allclose(parameters_to_unconstrained(parameters, layout), theta,
                               atol=1e-12)


def test_free_parameters_are_named_once():
    layout = Layout(2, 2, "tied")
    parameters = unconstrained_to_parameters(np.zeros(layout.size), layout)
    names, matrix = parameter_matrix(parameters, "tied", ["a", "b"])
    assert names == ["weights[0]", "means[0, a]", "means[0, b]", "weights[1]", "means[1, a]",
                     "means[1, b]", "scales[a]", "scales[b]", "correlations[b, a]"]
    layout = Layout(2, 2, "spherical")
    parameters = unconstrained_to_parameters(np.zeros(layout.size), layout)
    names, _ = parameter_matrix(parameters, "spherical", ["a", "b"])
    assert names == ["weights[0]", "means[0, a]", "means[0, b]", "scales[0]", "weights[1]",
                     "means[1, a]", "means[1, b]", "scales[1]"]
    # Free parameters counted once: the unconstrained length, less the simplex's missing one.
    assert len(names) == layout.size + 1


@pytest.mark.parametrize("covariance_type", ["tied", "spherical"])
def test_pymc_start_and_draws_map_to_the_same_point(covariance_type):
    X = load_faithful()
    problem = prepare_problem(X, n_components=2, covariance_type=covariance_type,
                              priors=GMMPriors(), em_n_init=2, rng=np.random.default_rng(0))
    model = build_model(X, 2, GMMPriors(), covariance_type)
    start = _pymc_start(model, problem.start, problem.layout)
    # PyMC's logp at the start equals the compiled density's: the same point.
    point = {}
    for rv in model.free_RVs:
        transform = model.rvs_to_transforms[rv]
        value = start[rv.name]
        value_var = model.rvs_to_values[rv]
        point[value_var.name] = (transform.forward(value).eval() if transform is not None
                                 else value)
    assert model.compile_logp()(point) == pytest.approx(
        logp_and_grad(problem.start, problem.block)[0], rel=1e-9)
    posterior = xr.Dataset({name: (("chain", "draw") + tuple(f"d{i}" for i in range(
        np.ndim(value))), np.asarray(value)[None, None]) for name, value in start.items()})
    if "correlations_cholesky" not in posterior:
        posterior["correlations_cholesky"] = (("chain", "draw", "f", "g"), np.eye(2)[None, None])
    drawn = parameters_from_pymc(posterior, problem.layout)
    expected = unconstrained_to_parameters(problem.start, problem.layout)
    np.testing.assert_allclose(drawn.scales[0, 0], expected.scales, rtol=1e-12)
    np.testing.assert_allclose(drawn.correlation_cholesky[0, 0],
                               expected.correlation_cholesky, atol=1e-12)


def test_spherical_needs_one_scale_scale():
    with pytest.raises(ValueError, match="needs one scale_scale"):
        BayesianGMM(2, covariance_type="spherical", priors=GMMPriors(scale_scale=(0.5, 1.0)),
                    progressbar=False).fit(load_faithful())


@pytest.mark.parametrize("covariance_type", ["tied", "spherical"])
def test_shared_structures_survive_save_and_load(tmp_path, covariance_type):
    X = load_faithful()
    fitted = BayesianGMM(2, covariance_type=covariance_type, random_state=0, **FAST).fit(X)
    fitted.save(tmp_path / "model.nc")
    loaded = load(tmp_path / "model.nc")
    assert loaded.covariance_type == covariance_type
    # The file stores the posterior in float64; recomputing from it is exact up to rounding.
    np.testing.assert_allclose(loaded.predict_proba(X), fitted.predict_proba(X), rtol=1e-12,
                               atol=1e-15)
