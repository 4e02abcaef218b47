"""Extreme magnitudes: refused with the fix, or handled; never NaN, never a wrong message."""

import numpy as np
import pandas as pd
import pytest

from bayesgmm._checks import DataValidationError
from bayesgmm.bayes import BayesianGMM
from bayesgmm.density import predictive_density
from bayesgmm.em import GaussianMixtureEM
from bayesgmm.likelihood import pointwise_log_likelihood
from bayesgmm.membership import coclustering_matrix, membership_arrays
from bayesgmm.parameters import ModelParameters

FAR_POINTS = np.array([[1e154, 0.0], [-1e200, 3e199], [0.0, 1e300], [-1.7e308, 1.7e308],
                       [1.0, 0.5]])
"""Points beyond the squares float64 can hold, and one ordinary point."""


def two_blobs(rng):
    return np.vstack([rng.normal(0.0, 1.0, (60, 2)), rng.normal(6.0, 1.0, (60, 2))])


@pytest.mark.parametrize("scale", [1e-200, 1e-165, 1e-140, 1e140, 1e153, 1e200])
def test_em_fit_scales_with_the_data_or_is_refused_with_the_fix(rng, scale):
    X = two_blobs(rng)
    reference = GaussianMixtureEM(2, random_state=0).fit(X)
    try:
        scaled = GaussianMixtureEM(2, random_state=0).fit(X * scale)
    except DataValidationError as error:
        assert "Rescale the column" in str(error)
        assert not 1e-150 < scale < 1e150, "refused data float64 can fit"
        return
    # Standardising inside makes EM equivariant: only the units change.
    np.testing.assert_allclose(scaled.means_ / scale, reference.means_, rtol=1e-8)
    np.testing.assert_array_equal(scaled.predict(X * scale), reference.predict(X))


@pytest.mark.parametrize("scale", [1e200, 1e-165])
def test_bayesian_fit_at_extreme_magnitude_names_the_users_column(scale):
    frame = pd.DataFrame({"a": [1.0, 2.0, 4.0, 8.0, 3.0], "b": [3.0, 1.0, 2.0, 0.5, 5.0]})
    with pytest.raises(DataValidationError, match="column 'a' .*Rescale the column") as caught:
        BayesianGMM(1, progressbar=False).fit(frame * scale)
    assert "constant" not in str(caught.value)


def test_em_far_new_points_get_probabilities_and_finite_scores(rng):
    em = GaussianMixtureEM(2, random_state=0).fit(two_blobs(rng))
    probabilities = em.predict_proba(FAR_POINTS)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    assert np.all((probabilities >= 0.0) & (probabilities <= 1.0))
    scores = em.score_samples(FAR_POINTS)
    assert np.all(np.isfinite(scores))
    # Farther is less likely, even beyond float64's squares.
    assert scores[-1] > scores[0] > scores[2]


def draws_around(rng, n_draws=40):
    means = np.array([[0.0, 0.0], [5.0, 1.0]]) + 0.1 * rng.normal(size=(n_draws, 2, 2))
    correlation = np.linalg.cholesky(np.array([[1.0, 0.4], [0.4, 1.0]]))
    return ModelParameters(np.tile([0.3, 0.7], (n_draws, 1)), means,
                           np.exp(0.2 * rng.normal(size=(n_draws, 2, 2))),
                           np.broadcast_to(correlation, (n_draws, 2, 2, 2)).copy())


def test_bayesian_far_points_get_memberships_and_anomaly_scores(rng):
    parameters = draws_around(rng)
    membership = membership_arrays(FAR_POINTS, parameters)
    np.testing.assert_allclose(membership.prob.sum(axis=1), 1.0)
    assert np.all(np.isfinite(membership.entropy))
    anomaly = -predictive_density(FAR_POINTS, parameters).log_density
    assert not np.isnan(anomaly).any() and np.all(anomaly > 0.0)
    assert anomaly[2] > anomaly[0] > anomaly[-1]
    assert np.all(np.isfinite(pointwise_log_likelihood(FAR_POINTS, parameters)))
    coclustering = coclustering_matrix(FAR_POINTS, parameters)
    assert np.all((coclustering >= 0.0) & (coclustering <= 1.0 + 1e-12))


@pytest.mark.parametrize("covariance_type", ["tied", "diag", "spherical"])
def test_every_em_family_scores_far_new_points_without_nan(covariance_type):
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (100, 2)), rng.normal(10, 1, (100, 2))])
    em = GaussianMixtureEM(2, covariance_type=covariance_type, random_state=0).fit(X)
    new = np.array([[1e200, 1e200], [-1e300, 5.0], [1e160, 0.0], [0.0, 0.0]])
    probabilities, scores = em.predict_proba(new), em.score_samples(new)
    assert np.all(np.isfinite(probabilities)) and np.allclose(probabilities.sum(axis=1), 1.0)
    assert np.all(np.isfinite(scores)) and np.all(scores[:3] < scores[3])
