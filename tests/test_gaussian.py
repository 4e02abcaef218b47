"""The shared Gaussian density and responsibilities."""

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from bayesgmm.gaussian import LOG_2PI, MAX_MAHALANOBIS, log_gaussian_full, normalize


def random_covariances(rng, shape, n_features):
    factors = rng.normal(size=shape + (n_features, n_features))
    return factors @ np.swapaxes(factors, -1, -2) + np.eye(n_features)


def upper_precision_cholesky(covariances):
    return np.swapaxes(np.linalg.inv(np.linalg.cholesky(covariances)), -1, -2)


def test_density_matches_scipy_for_every_component(rng):
    X = rng.normal(size=(40, 3))
    means = rng.normal(size=(4, 3))
    covariances = random_covariances(rng, (4,), 3)
    density = log_gaussian_full(X, means, upper_precision_cholesky(covariances))
    expected = np.column_stack([multivariate_normal(m, c).logpdf(X)
                                for m, c in zip(means, covariances, strict=True)])
    np.testing.assert_allclose(density, expected, rtol=1e-12)


def test_batched_density_equals_one_call_per_draw(rng):
    X = rng.normal(size=(25, 2))
    means = rng.normal(size=(6, 3, 2))
    precisions = upper_precision_cholesky(random_covariances(rng, (6, 3), 2))
    batched = log_gaussian_full(X, means, precisions)
    assert batched.shape == (6, 25, 3)
    for s in range(6):
        np.testing.assert_allclose(batched[s], log_gaussian_full(X, means[s], precisions[s]),
                                   rtol=1e-13)


def test_normalize_is_log_sum_exp_and_rows_sum_to_one(rng):
    joint = rng.normal(scale=30.0, size=(5, 7, 4))
    log_norm, responsibilities = normalize(joint)
    np.testing.assert_allclose(log_norm, logsumexp(joint, axis=-1), rtol=1e-13)
    np.testing.assert_allclose(responsibilities.sum(axis=-1), 1.0, rtol=1e-13)
    np.testing.assert_allclose(responsibilities, np.exp(joint - log_norm[..., None]), rtol=1e-12)


def test_normalize_keeps_zero_weight_components_at_zero():
    log_norm, responsibilities = normalize(np.array([[-np.inf, np.log(0.5)]]))
    assert responsibilities.tolist() == [[0.0, 1.0]]
    assert log_norm[0] == np.log(0.5)


def plain_log_gaussian_full(X, means, precisions_cholesky):
    """The formula as scikit-learn writes it, with no far-point handling: the oracle for EM."""
    *batch, n_components, n_features = means.shape
    stacked = np.swapaxes(precisions_cholesky, -3, -2).reshape(
        *batch, n_features, n_components * n_features)
    projected = X @ stacked
    projected -= np.einsum("...kd,...kde->...ke", means, precisions_cholesky).reshape(
        *batch, 1, n_components * n_features)
    mahalanobis = np.square(projected).reshape(*batch, X.shape[0], n_components,
                                               n_features).sum(axis=-1)
    log_det = np.log(np.diagonal(precisions_cholesky, axis1=-2, axis2=-1)).sum(axis=-1)
    return -0.5 * (n_features * LOG_2PI + mahalanobis) + log_det[..., None, :]


def test_ordinary_densities_are_bit_identical_to_the_plain_formula(rng):
    # EM must match scikit-learn per iteration: the far-point branch may not
    # touch a single bit of ordinary entries.
    X = rng.normal(scale=50.0, size=(300, 3))
    means = rng.normal(size=(5, 4, 3))
    precisions = upper_precision_cholesky(random_covariances(rng, (5, 4), 3))
    np.testing.assert_array_equal(log_gaussian_full(X, means, precisions),
                                  plain_log_gaussian_full(X, means, precisions))


def test_far_points_have_finite_densities_that_fall_along_their_direction(rng):
    means = rng.normal(size=(3, 2))
    precisions = upper_precision_cholesky(random_covariances(rng, (3,), 2))
    direction = np.array([0.6, -0.8])
    distances = np.logspace(3, 308, 400)
    density = log_gaussian_full(distances[:, None] * direction, means, precisions)
    assert np.all(np.isfinite(density))
    assert np.all(density >= -MAX_MAHALANOBIS)
    assert np.all(np.diff(density, axis=0) <= 0)


def test_density_is_continuous_at_the_compression_limit():
    limit = np.sqrt(MAX_MAHALANOBIS)
    X = np.array([[limit * (1 - 1e-9)], [limit * (1 + 1e-9)]])
    below, above = log_gaussian_full(X, np.zeros((1, 1)), np.ones((1, 1, 1)))[:, 0]
    assert below > above
    np.testing.assert_allclose([below, above], -0.5 * MAX_MAHALANOBIS, rtol=1e-6)


@pytest.mark.parametrize(("point", "direction"), [
    ([3e200, -1e200, 2e200], [3.0, -1.0, 2.0]),
    ([1e155, 0.0, 0.0], [1.0, 0.0, 0.0]),
    ([np.inf, -np.inf, 5.0], [1.0, -1.0, 0.0]),  # infinite coordinates dominate
])
def test_far_point_belongs_to_the_component_nearest_in_mahalanobis_distance(rng, point,
                                                                             direction):
    # The limit as the point goes to infinity along its direction: the
    # Mahalanobis terms, of order |x|^2, swamp weights and determinants.
    means = rng.normal(size=(4, 3))
    precisions = upper_precision_cholesky(random_covariances(rng, (4,), 3))
    point, direction = np.array([point]), np.array([direction])
    nearest = np.argmin(np.square(np.einsum("nd,kde->nke", direction, precisions)).sum(-1))
    joint = log_gaussian_full(point, means, precisions) + np.log([0.7, 0.1, 0.1, 0.1])
    log_norm, responsibilities = normalize(joint)
    assert np.isfinite(log_norm).all()
    np.testing.assert_array_equal(responsibilities[0], np.eye(4)[nearest])


def test_normalize_gives_uniform_responsibilities_when_no_component_has_density():
    log_norm, responsibilities = normalize(np.array([[-np.inf, -np.inf, -np.inf],
                                                     [0.0, -np.inf, np.log(3.0)]]))
    assert log_norm[0] == -np.inf
    np.testing.assert_allclose(responsibilities[0], 1 / 3)
    np.testing.assert_allclose(responsibilities[1], [0.25, 0.0, 0.75])
