"""Membership summaries and predictive densities from posterior draws."""

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from bayesgmm.density import predictive_density
from bayesgmm.likelihood import log_joint, pointwise_log_likelihood
from bayesgmm.membership import coclustering_matrix, entropy, membership_arrays
from bayesgmm.parameters import ModelParameters


def draws_around(means, rng, n_draws=200, spread=0.1, weights=(0.5, 0.5)):
    n_components, n_features = np.shape(means)
    return ModelParameters(
        np.tile(weights, (n_draws, 1)),
        np.asarray(means) + spread * rng.normal(size=(n_draws, n_components, n_features)),
        np.ones((n_draws, n_components, n_features)),
        np.broadcast_to(np.eye(n_features), (n_draws, n_components, n_features, n_features)).copy(),
    )


def test_log_joint_matches_scipy(rng):
    parameters = draws_around([[0.0, 0.0], [3.0, 1.0]], rng, n_draws=3)
    parameters = parameters._replace(scales=np.exp(0.3 * rng.normal(size=(3, 2, 2))))
    X = rng.normal(size=(5, 2))
    joint = log_joint(X, parameters)
    for s in range(3):
        for k in range(2):
            expected = np.log(parameters.weights[s, k]) + multivariate_normal(
                parameters.means[s, k], parameters.covariances[s, k]).logpdf(X)
            np.testing.assert_allclose(joint[s, :, k], expected, rtol=1e-12)


def test_membership_rows_are_probabilities(rng):
    parameters = draws_around([[0.0, 0.0], [2.0, 0.0]], rng, spread=0.3)
    X = rng.normal(size=(50, 2)) * 2
    summary = membership_arrays(X, parameters)
    np.testing.assert_allclose(summary.prob.sum(axis=1), 1.0)
    assert np.all((summary.prob >= 0) & (summary.prob <= 1))
    assert np.all(summary.prob_lower <= summary.prob + 1e-12)
    assert np.all(summary.prob <= summary.prob_upper + 1e-12)
    assert np.all(summary.mutual_information >= 0)
    np.testing.assert_allclose(summary.entropy, entropy(summary.prob))
    np.testing.assert_allclose(summary.mutual_information, summary.entropy - summary.expected_entropy, atol=1e-12)


def test_separated_points_are_confident_and_the_middle_is_not(rng):
    parameters = draws_around([[0.0, 0.0], [10.0, 0.0]], rng)
    far = np.array([[0.0, 0.0], [10.0, 0.0]])
    middle = np.array([[5.0, 0.0]])
    assert membership_arrays(far, parameters).confidence.min() > 0.99
    assert membership_arrays(middle, parameters).confidence[0] < 0.9


def test_epistemic_doubt_grows_with_parameter_uncertainty(rng):
    point = np.array([[2.5, 0.0]])
    sure = membership_arrays(point, draws_around([[0.0, 0.0], [5.0, 0.0]], rng, spread=0.01))
    unsure = membership_arrays(point, draws_around([[0.0, 0.0], [5.0, 0.0]], rng, spread=1.5))
    assert sure.mutual_information[0] < 1e-3
    assert unsure.mutual_information[0] > 10 * sure.mutual_information[0]
    # The point sits halfway: aleatoric doubt is near its maximum log(2) either way.
    assert sure.expected_entropy[0] == pytest.approx(np.log(2), abs=0.01)


def test_streaming_budget_does_not_change_results(rng):
    parameters = draws_around([[0.0, 0.0], [2.0, 1.0]], rng, spread=0.5)
    X = rng.normal(size=(40, 2))
    small = membership_arrays(X, parameters, budget=500)
    large = membership_arrays(X, parameters, budget=10**8)
    for a, b in zip(small, large):
        np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(
        pointwise_log_likelihood(X, parameters, budget=500), pointwise_log_likelihood(X, parameters)
    )


def test_coclustering_is_a_probability_matrix(rng):
    parameters = draws_around([[0.0, 0.0], [6.0, 0.0]], rng)
    X = np.array([[0.0, 0.0], [0.1, 0.0], [6.0, 0.0], [3.0, 0.0]])
    matrix = coclustering_matrix(X, parameters, budget=100)
    np.testing.assert_allclose(matrix, matrix.T)
    np.testing.assert_allclose(np.diag(matrix), 1.0)
    assert matrix[0, 1] > 0.99 and matrix[0, 2] < 0.01
    assert 0.3 < matrix[0, 3] < 0.7
    np.testing.assert_allclose(matrix, coclustering_matrix(X, parameters))


def test_predictive_density_is_log_mean_exp_over_draws(rng):
    parameters = draws_around([[0.0, 0.0], [3.0, 0.0]], rng, spread=0.4)
    X = rng.normal(size=(20, 2)) * 3
    density = predictive_density(X, parameters)
    per_draw = pointwise_log_likelihood(X, parameters)
    np.testing.assert_allclose(density.log_density, logsumexp(per_draw, axis=0) - np.log(per_draw.shape[0]))
    assert np.all(density.lower <= density.upper)
    # Jensen: the predictive density is at least the mean of per-draw log densities.
    assert np.all(density.log_density >= per_draw.mean(axis=0) - 1e-12)


def test_occupied_components_counts_only_used_components(rng):
    from bayesgmm.membership import occupied_component_counts

    parameters = draws_around([[0.0, 0.0], [8.0, 0.0], [50.0, 50.0]], rng, weights=(0.5, 0.5 - 1e-12, 1e-12))
    X = np.vstack([rng.normal(size=(30, 2)), rng.normal(size=(30, 2)) + [8.0, 0.0]])
    counts = occupied_component_counts(X, parameters, rng)
    assert counts.shape == (200,)
    assert np.all(counts == 2)
