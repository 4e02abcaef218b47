"""The shared Gaussian density and responsibilities."""

import numpy as np
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from bayesgmm.gaussian import log_gaussian_full, normalize


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
