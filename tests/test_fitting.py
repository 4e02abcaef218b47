"""Each step of a Bayesian fit on its own, and fit as their composition."""

import itertools

import numpy as np
import pytest
import xarray as xr

from bayesgmm import BayesianGMM, GMMPriors
from bayesgmm.datasets import load_faithful
from bayesgmm.em import reference_em
from bayesgmm.fitting import (
    assemble_datatree,
    em_start_parameters,
    exchangeable_groups,
    prepare_problem,
    prior_label_order,
    relabel_sample,
    sample_problem,
)
from bayesgmm.inference import PosteriorSample, SamplerSettings
from bayesgmm.likelihood import pointwise_log_likelihood
from bayesgmm.parameters import (
    flatten_draws,
    to_data_units,
    to_model_units,
    unconstrained_to_parameters,
)

SETTINGS = dict(draws=200, tune=200, chains=2, random_state=3, progressbar=False)


SYMMETRIC = GMMPriors()
ASYMMETRIC = GMMPriors(weight_concentration=(1.0, 30.0))


def faithful_problem(n_components=2, seed=0, priors=SYMMETRIC):
    return prepare_problem(load_faithful(), n_components=n_components, covariance_type="full",
                           priors=priors, em_n_init=5, rng=np.random.default_rng(seed))


def test_problem_holds_the_em_start_in_both_units():
    problem = faithful_problem()
    values = problem.data.values
    assert problem.data.feature_names == ["eruptions", "waiting"]
    np.testing.assert_allclose(problem.scaled.values.mean(axis=0), 0.0, atol=1e-12)
    # The start is the reference EM solution (seeded by the same generator),
    # and its unconstrained form differs from it only by the 1e-6 nudge.
    seed = int(np.random.default_rng(0).integers(2**31 - 1))
    em = reference_em(problem.scaled.values, 2, "full", n_init=5, random_state=seed)
    np.testing.assert_allclose(problem.em_start.means,
                               problem.scaled.centre + em.means_ * problem.scaled.scale)
    start = unconstrained_to_parameters(problem.start, problem.layout)
    model_units = to_model_units(problem.em_start, problem.scaled.centre, problem.scaled.scale)
    np.testing.assert_allclose(start.means, model_units.means, atol=1e-5)
    assert problem.block.ndim == 1 and values.shape == (272, 2)


def test_em_start_weights_stay_inside_the_simplex():
    X = np.vstack([np.random.default_rng(0).normal(size=(200, 2)), [[50.0, 50.0]]])
    start = em_start_parameters(X, 3, "diag", n_init=3, seed=0)
    assert start.weights.min() > 0 and start.weights.sum() == pytest.approx(1.0)
    np.testing.assert_array_equal(start.correlation_cholesky, np.broadcast_to(np.eye(2), (3, 2, 2)))


def test_a_start_with_non_finite_density_is_a_clear_error_before_sampling(monkeypatch):
    import bayesgmm.fitting as fitting

    def collapsed(values, n_components, covariance_type, n_init, seed, noise_log_density,
                  sample_weight):
        start = em_start_parameters(values, n_components, covariance_type, n_init, seed,
                                    noise_log_density, sample_weight)
        return start._replace(scales=np.where(np.arange(n_components)[:, None] == 0, np.nan,
                                              start.scales))

    # A component whose scale EM could not estimate.
    monkeypatch.setattr(fitting, "em_start_parameters", collapsed)
    with pytest.raises(ValueError, match="cannot support 3 components"):
        faithful_problem(n_components=3)


def swapped_sample(problem, n_chains=2, n_draws=50, seed=0):
    """Draws scattered around the EM start, with the labels of every other draw swapped."""
    rng = np.random.default_rng(seed)
    start = problem.start
    theta = start + 0.01 * rng.normal(size=(n_chains, n_draws, start.size))
    parameters = unconstrained_to_parameters(theta, problem.layout)
    swapped = [np.array(a) for a in parameters[:4]]
    for a in swapped:
        a[:, ::2] = a[:, ::2, ::-1]
    draws = type(parameters)(*swapped)
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((n_chains, n_draws), bool))})
    return PosteriorSample(draws, stats, {}, 0.0)


def test_relabelling_step_undoes_label_switching():
    problem = faithful_problem()
    sample = swapped_sample(problem)
    relabelled, summary, sample = relabel_sample(problem, sample, "stephens")
    assert summary.n_draws == 100 and summary.n_permuted == 50 and summary.converged
    # Every relabelled draw sits next to the EM start, component by component.
    gap = np.abs(relabelled.means - problem.em_start.means) / problem.scaled.scale
    assert gap.max() < 0.1


def test_assembled_tree_stores_the_log_likelihood_of_the_relabelled_draws():
    problem = faithful_problem()
    sample = swapped_sample(problem)
    relabelled, _, sample = relabel_sample(problem, sample, "pivot")
    tree = assemble_datatree(problem, relabelled, sample, {"method": "nuts"})
    expected = pointwise_log_likelihood(problem.data.values, flatten_draws(relabelled))
    np.testing.assert_allclose(tree.log_likelihood["x"].values.reshape(100, -1), expected)
    np.testing.assert_array_equal(tree.observed_data["x"].values, problem.data.values)


def test_fit_is_the_composition_of_the_steps():
    from bayesgmm.bayes import diagnostics_reported

    X = load_faithful()
    model = BayesianGMM(2, **SETTINGS)
    with diagnostics_reported():
        model.fit(X)
    rng = np.random.default_rng(SETTINGS["random_state"])
    problem = prepare_problem(X, n_components=2, covariance_type="full", priors=GMMPriors(),
                              em_n_init=5, rng=rng)
    settings = SamplerSettings("nuts", "nutpie", draws=200, tune=200, chains=2, cores=None,
                               target_accept=0.9, advi_iterations=10_000, progressbar=False)
    sample = sample_problem(problem, settings, rng)
    relabelled, summary, sample = relabel_sample(problem, sample, "stephens")
    np.testing.assert_array_equal(model.idata_.posterior["means"].values, relabelled.means)
    assert model.relabelling_ == summary


def test_relabelling_record_survives_save_and_load(tmp_path):
    from bayesgmm import load
    from bayesgmm.bayes import diagnostics_reported

    with diagnostics_reported():
        model = BayesianGMM(2, **SETTINGS).fit(load_faithful())
    model.save(tmp_path / "m.nc")
    assert load(tmp_path / "m.nc").relabelling_ == model.relabelling_


def dirichlet_log_prior(order, weights, concentration):
    """The Dirichlet log density (up to its constant) of ``weights`` relabelled by ``order``."""
    return ((concentration - 1) * np.log(weights[list(order)])).sum()


def test_prior_label_order_maximises_the_dirichlet_log_prior(rng):
    for _ in range(20):
        weights = rng.dirichlet(np.ones(5))
        # Repeated values included: ties among concentrations must not matter.
        concentration = rng.choice([0.5, 1.0, 3.0, 30.0], size=5)
        best = max(dirichlet_log_prior(p, weights, concentration)
                   for p in itertools.permutations(range(5)))
        order = prior_label_order(weights, concentration)
        assert sorted(order) == list(range(5))
        assert dirichlet_log_prior(order, weights, concentration) == pytest.approx(best)


def test_only_equal_concentrations_are_exchangeable():
    np.testing.assert_array_equal(exchangeable_groups(np.full(4, 0.5)), [0, 0, 0, 0])
    np.testing.assert_array_equal(exchangeable_groups(np.array([30.0, 1.0, 30.0])), [1, 0, 1])


@pytest.mark.parametrize("seed", range(4))
def test_asymmetric_prior_starts_in_the_labelling_it_prefers(seed):
    # The EM seeds differ, and so does EM's label order (seeds 0 and 2 find
    # the large cluster first); the start does not.
    problem = faithful_problem(seed=seed, priors=ASYMMETRIC)
    weights = problem.em_start.weights
    assert weights[1] > weights[0]
    # The unconstrained start and the relabelling pivot share that order.
    start = unconstrained_to_parameters(problem.start, problem.layout)
    model_units = to_model_units(problem.em_start, problem.scaled.centre, problem.scaled.scale)
    np.testing.assert_allclose(start.weights, weights, atol=1e-5)
    np.testing.assert_allclose(start.means, model_units.means, atol=1e-5)


def test_symmetric_prior_keeps_the_em_label_order():
    problem = faithful_problem()
    seed = int(np.random.default_rng(0).integers(2**31 - 1))
    em = em_start_parameters(problem.scaled.values, 2, "full", 5, seed)
    np.testing.assert_array_equal(problem.em_start.weights, em.weights)


def test_labels_with_different_priors_are_never_swapped():
    problem = faithful_problem(priors=ASYMMETRIC)
    sample = swapped_sample(problem)
    relabelled, summary, sample = relabel_sample(problem, sample, "stephens")
    # Every other draw has its labels swapped, and the prior tells them apart:
    # the swapped draws stay swapped.
    assert summary.n_permuted == 0
    in_data_units = to_data_units(sample.parameters, problem.scaled.centre, problem.scaled.scale)
    np.testing.assert_array_equal(relabelled.means, in_data_units.means)


def test_asymmetric_prior_puts_the_larger_weight_on_the_favoured_label():
    from bayesgmm.bayes import diagnostics_reported

    model = BayesianGMM(2, priors=ASYMMETRIC, draws=300, tune=300, chains=2, random_state=0,
                        progressbar=False)
    with diagnostics_reported():
        model.fit(load_faithful())
    # Faithful's two clusters hold about 36% and 64% of the eruptions; with
    # alpha = (1, 30) the posterior puts the large one on label 1 (the
    # swapped labelling is ~15 nats less probable).
    weights = model.idata_.posterior["weights"].mean(("chain", "draw")).values
    assert weights[1] > weights[0]
