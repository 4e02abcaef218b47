"""A few far rows next to real clusters: found clusters, far rows on their own.

One far point used to inflate every feature's sd, the unit of both EM's
``reg_covar`` and the Bayesian priors, until the clusters looked like one
point and merged.  The scale now comes from each column's bulk, and the
arithmetic that a far, tight component stresses is done centred.
"""

import numpy as np
import pytest

from bayesgmm import BayesianGMM, GMMPriors
from bayesgmm.em import GaussianMixtureEM
from bayesgmm.em._algorithm import centre_far_components, sufficient_statistics
from bayesgmm.em._covariance import get_family
from bayesgmm.fitting import PRIOR_REACH, within_prior_reach
from bayesgmm.gaussian import log_gaussian_full
from bayesgmm.parameters import ModelParameters
from bayesgmm.scaling import model_scale, standardization


def clusters_and_far_point(distance, rng=None):
    rng = np.random.default_rng(0) if rng is None else rng
    blobs = [rng.normal(0.0, 1.0, (100, 2)), rng.normal(10.0, 1.0, (100, 2))]
    return np.vstack([*blobs, [[distance, distance]]])


def assert_clusters_found_and_far_point_alone(labels):
    near_origin, near_ten, far = labels[:100], labels[100:200], labels[200]
    assert len(set(near_origin)) == 1 and len(set(near_ten)) == 1
    assert len({near_origin[0], near_ten[0], far}) == 3


def test_far_rows_do_not_set_the_centre_or_the_scale():
    X = clusters_and_far_point(1e6)
    centre, scale = standardization(X, "feature")
    np.testing.assert_allclose(centre, X[:-1].mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(scale, X[:-1].std(axis=0), rtol=1e-12)
    _, common = standardization(X, "common")
    np.testing.assert_allclose(common, np.sqrt(X[:-1].var(axis=0).mean()), rtol=1e-12)


def test_without_far_rows_the_scale_is_the_plain_sd_bit_for_bit(rng):
    X = rng.normal(size=(2000, 3)) * [1.0, 5.0, 100.0] + 7.0
    centre, scale = standardization(X, "feature")
    np.testing.assert_array_equal(centre, X.mean(axis=0))
    np.testing.assert_array_equal(scale, X.std(axis=0))


def test_a_column_with_most_values_tied_keeps_every_value_in_its_scale():
    column = np.r_[np.zeros(80), np.linspace(50.0, 100.0, 20)]
    centre, scale = standardization(column[:, None], "feature")
    assert centre[0] == column.mean() and scale[0] == column.std()


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("distance", [1e3, 1e5, 1e6, 1e12])
def test_em_finds_both_clusters_and_isolates_a_far_point(covariance_type, distance):
    X = clusters_and_far_point(distance)
    em = GaussianMixtureEM(3, covariance_type=covariance_type, random_state=0).fit(X)
    assert_clusters_found_and_far_point_alone(em.predict(X))
    centres = sorted(em.means_.tolist())
    np.testing.assert_allclose(centres[0], 0.0, atol=0.3)
    np.testing.assert_allclose(centres[1], 10.0, atol=0.3)
    np.testing.assert_allclose(centres[2], distance, rtol=1e-9)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_ordinary_statistics_are_not_recomputed(rng, covariance_type):
    X = rng.normal(size=(300, 3)) * 3.0 + 1.0
    responsibilities = rng.dirichlet(np.ones(2), size=300)
    statistics = sufficient_statistics(X, covariance_type, responsibilities=responsibilities)
    assert centre_far_components(X, statistics, covariance_type, 1e-6,
                                 responsibilities=responsibilities) is statistics


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_a_far_tight_component_gets_its_variance_to_full_precision(covariance_type):
    # Column 0 of the responsibilities holds one point 1e8 from the origin
    # with a spread of 1e-3: the one-pass formula would lose every digit.
    X = np.array([[1e8, 1e8], [1e8 + 1e-3, 1e8 - 1e-3], [1.0, 2.0], [2.0, 1.0], [0.0, 0.0]])
    responsibilities = np.array([[1, 0], [1, 0], [0, 1], [0, 1], [0, 1]], dtype=float)
    statistics = sufficient_statistics(X, covariance_type, responsibilities=responsibilities)
    centred = centre_far_components(X, statistics, covariance_type, 0.0,
                                    responsibilities=responsibilities)
    assert centred.shift is not None and centred.shift[1].tolist() == [0.0, 0.0]
    nk = centred.counts + 10 * np.finfo(float).eps
    means = centred.first_moments / nk[:, None]
    variances = get_family(covariance_type).covariances(
        centred.second_moments, nk, means - centred.shift, 0.0)
    expected = np.var(X[:2], axis=0)  # 2.5e-7 per coordinate
    far_variance = np.diagonal(variances[0]) if covariance_type == "full" else variances[0]
    np.testing.assert_allclose(far_variance, expected.mean() if covariance_type == "spherical"
                               else expected, rtol=1e-6)


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_expanded_density_of_a_far_tight_component_equals_the_centred_one(covariance_type):
    family = get_family(covariance_type)
    means = np.array([[2e5, 2e5], [0.0, 0.0]])
    precisions_cholesky = (np.array([[1e3, 1e3], [1.0, 1.0]]) if covariance_type == "diag"
                           else np.array([1e3, 1.0]))
    X = np.array([[2e5 + 1e-3, 2e5], [0.5, -0.5]])
    dense = (precisions_cholesky[:, :, None] * np.eye(2) if covariance_type == "diag"
             else precisions_cholesky[:, None, None] * np.eye(2))
    np.testing.assert_allclose(family.log_gaussian(X, means, precisions_cholesky),
                               log_gaussian_full(X, means, dense), rtol=1e-12)


def test_start_components_beyond_the_mean_prior_are_pulled_within_reach():
    # The clusters alone: their mean prior reaches 6 x 2 bulk sds.
    resolved = model_scale(clusters_and_far_point(1e6)[:-1], GMMPriors(), 3).resolved
    start = ModelParameters(np.array([0.5, 0.495, 0.005]),
                            np.array([[-1.0, -1.0], [1.0, 1.0], [1e5, -3.0]]),
                            np.array([[0.2, 0.2], [0.2, 0.2], [1e-3, 1e-3]]),
                            np.broadcast_to(np.eye(2), (3, 2, 2)))
    moved = within_prior_reach(start, resolved)
    reach = PRIOR_REACH * resolved.mean_scale
    np.testing.assert_array_equal(moved.means[:2], start.means[:2])
    np.testing.assert_array_equal(moved.scales[:2], start.scales[:2])
    assert moved.means[2].tolist() == [reach[0], -3.0]
    assert moved.scales[2, 0] == pytest.approx(1e5 - reach[0])
    assert moved.scales[2, 1] == 1e-3


@pytest.mark.filterwarnings("ignore::bayesgmm.bayes.DiagnosticsWarning")
@pytest.mark.parametrize("distance", [1e3, 1e6])
def test_bayesian_fit_finds_both_clusters_and_isolates_a_far_point(distance):
    # Divergences near the one-point component are reported, not tested here.
    X = clusters_and_far_point(distance)
    model = BayesianGMM(3, draws=300, tune=300, chains=2, random_state=0,
                        progressbar=False, target_accept=0.95).fit(X)
    labels = model.predict(X)
    assert_clusters_found_and_far_point_alone(labels)
    means = model.idata_.posterior["means"].mean(("chain", "draw")).values
    np.testing.assert_allclose(means[labels[0]], 0.0, atol=0.3)
    np.testing.assert_allclose(means[labels[100]], 10.0, atol=0.3)
    weights = model.idata_.posterior["weights"].mean(("chain", "draw")).values
    assert weights[labels[200]] < 0.05


def test_the_mean_prior_reaches_every_observed_value():
    X = clusters_and_far_point(1e6)
    scaled = model_scale(X, GMMPriors(), 3)
    reach = 3 * scaled.resolved.mean_scale * scaled.scale
    assert np.all(np.abs(X - scaled.centre) <= reach * (1 + 1e-12))
    # Ordinary data keep the default mean_scale of 2 exactly.
    assert model_scale(X[:-1], GMMPriors(), 3).resolved.mean_scale.tolist() == [2.0, 2.0]


@pytest.mark.filterwarnings("ignore::bayesgmm.bayes.DiagnosticsWarning")
def test_bayesian_fit_keeps_a_small_cluster_far_from_the_bulk():
    # Four points at 40 next to bulk data at 0-3: beyond the bulk's fences, yet a
    # cluster (EM finds it); the mean prior must reach it.
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(0, 1, 200), rng.normal(3, 1, 200), rng.normal(40, 1, 4)][:, None]
    model = BayesianGMM(3, draws=400, tune=400, chains=2, random_state=0,
                        progressbar=False).fit(X)
    means = model.idata_.posterior["means"].mean(("chain", "draw")).values.ravel()
    sds = np.sqrt(model.idata_.posterior["covariances"].mean(("chain", "draw")).values.ravel())
    far = np.argmax(means)
    assert abs(means[far] - 40.0) < 1.5 and sds[far] < 3.0
