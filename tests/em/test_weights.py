"""Frequency weights in EM: a row of weight w counts as w copies of itself."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from bayesgmm.em import GaussianMixtureEM, reference_em
from bayesgmm.em._initialization import initial_responsibilities, kmeans_plusplus
from bayesgmm.em._noise_start import neighbour_radius, noise_start

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]
FITTED = ["weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_", "noise_weight_"]


def clustered_data(seed=0, n_samples=300, n_background=30):
    """Three overlapping clusters in 3-D and a few uniform background points."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 0.0], [1.5, 1.5, 1.5], [0.0, 2.5, 0.0]])
    X = centres[rng.integers(3, size=n_samples)] + rng.normal(size=(n_samples, 3))
    return np.vstack([X, rng.uniform(-8.0, 8.0, (n_background, 3))])


def with_missing(X, seed=1, share=0.1):
    rng = np.random.default_rng(seed)
    X = X.copy()
    X[rng.random(X.shape) < share] = np.nan
    X[np.isnan(X).all(axis=1), 0] = 0.5
    return X


def integer_weights(n_samples, seed=2):
    return np.random.default_rng(seed).integers(1, 4, size=n_samples).astype(float)


def shared_start(X, covariance_type, **settings):
    """Explicit starting values from two EM steps: weighted and repeated fits start alike."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = GaussianMixtureEM(3, covariance_type=covariance_type, max_iter=2, random_state=0,
                                  **settings).fit(X)
    return dict(weights_init=start.weights_ / start.weights_.sum(), means_init=start.means_,
                precisions_init=start.precisions_)


def assert_same_fit(first, second):
    for name in [*FITTED, "lower_bounds_", "n_iter_", "converged_"]:
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name), err_msg=name)


# ---------------------------------------------------------------- unit weights
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("settings", [{}, {"noise": True},
                                      {"missing": "marginalize", "noise": True}])
def test_unit_weights_are_the_unweighted_fit_bit_for_bit(covariance_type, settings):
    X = clustered_data()
    if settings.get("missing"):
        X = with_missing(X)
    em = dict(covariance_type=covariance_type, n_init=2, random_state=3, **settings)
    plain = GaussianMixtureEM(3, **em).fit(X)
    ones = GaussianMixtureEM(3, **em).fit(X, sample_weight=np.ones(len(X)))
    assert_same_fit(plain, ones)
    np.testing.assert_array_equal(plain.score_samples(X), ones.score_samples(X))


# ---------------------------------------------------------------- repetition
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("settings", [{}, {"noise": True},
                                      {"missing": "marginalize"},
                                      {"missing": "marginalize", "noise": True}])
def test_integer_weights_equal_repeated_rows(covariance_type, settings):
    X = clustered_data()
    if settings.get("missing"):
        X = with_missing(X)
    weights = integer_weights(len(X))
    repeated = np.repeat(X, weights.astype(int), axis=0)
    # Fixed iterations (tol=0) so that both traces have the same length; from one
    # explicit start, on the same (weighted) standardisation, they differ by the
    # order of summation only (observed: ~1e-13 after 150 steps).
    em = dict(covariance_type=covariance_type, tol=0.0, max_iter=150,
              **shared_start(X, covariance_type, **settings), **settings)
    weighted = GaussianMixtureEM(3, **em).fit(X, sample_weight=weights)
    copies = GaussianMixtureEM(3, **em).fit(repeated)
    for name in FITTED:
        np.testing.assert_allclose(getattr(weighted, name), getattr(copies, name), rtol=1e-6,
                                   atol=1e-9, err_msg=name)
    np.testing.assert_allclose(weighted.lower_bounds_, copies.lower_bounds_, rtol=1e-8)
    assert weighted.bic(X, weights) == pytest.approx(copies.bic(repeated), rel=1e-8)
    assert weighted.icl(X, weights) == pytest.approx(copies.icl(repeated), rel=1e-8)
    assert weighted.aic(X, weights) == pytest.approx(copies.aic(repeated), rel=1e-8)


def test_converged_weighted_fit_reaches_the_repeated_rows_optimum():
    # Default settings but a tight tolerance, and a random start in each: the
    # starts differ (module notes of _initialization), the optimum does not.
    X = clustered_data(n_background=0)
    weights = integer_weights(len(X))
    em = dict(tol=1e-10, max_iter=2000, n_init=5, random_state=0)
    weighted = GaussianMixtureEM(3, **em).fit(X, sample_weight=weights)
    copies = GaussianMixtureEM(3, **em).fit(np.repeat(X, weights.astype(int), axis=0))
    assert weighted.lower_bound_ == pytest.approx(copies.lower_bound_, rel=1e-8)
    order = np.argsort(weighted.means_[:, 0]), np.argsort(copies.means_[:, 0])
    np.testing.assert_allclose(weighted.means_[order[0]], copies.means_[order[1]], rtol=1e-5)


# ---------------------------------------------------------------- zero weights
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("settings", [{}, {"noise": True, "missing": "marginalize"}])
def test_zero_weight_removes_the_row(covariance_type, settings):
    X = with_missing(clustered_data()) if settings else clustered_data()
    # A far point with weight 0 would move the standardisation and the noise box.
    X = np.vstack([X, [[50.0, -40.0, 30.0]]])
    weights = np.ones(len(X))
    weights[[0, 5, 17, len(X) - 1]] = 0.0
    em = dict(covariance_type=covariance_type, n_init=2, random_state=4, **settings)
    weighted = GaussianMixtureEM(3, **em).fit(X, sample_weight=weights)
    removed = GaussianMixtureEM(3, **em).fit(X[weights > 0])
    assert_same_fit(weighted, removed)
    assert weighted.noise_log_volume_ == removed.noise_log_volume_


def test_reference_em_passes_the_weights_on():
    X = clustered_data()
    weights = np.ones(len(X))
    weights[:50] = 0.0
    weighted = reference_em(X, 2, n_init=2, random_state=0, sample_weight=weights)
    removed = reference_em(X[50:], 2, n_init=2, random_state=0)
    assert_same_fit(weighted, removed)


# ---------------------------------------------------------------- scale of weights
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("factor", [0.01, 3.7])
def test_scaling_every_weight_leaves_the_fit_unchanged(covariance_type, factor):
    # Frequency weights scale the likelihood, not its maximiser; the random
    # start draws proportionally to the weights, so it is unchanged too.  Not
    # exactly scale-free: the quartiles that set the standardisation's fences
    # interpolate at (total weight - 1) * q (as np.percentile on repeated
    # rows), so a value within that shift of a fence could change sides (none
    # here), and the noise start counts neighbours in units of weight.  Fixed
    # iterations (tol=0): a stop decision at tol could flip on rounding.
    X = clustered_data()
    weights = np.random.default_rng(5).uniform(0.2, 3.0, len(X))
    em = dict(covariance_type=covariance_type, tol=0.0, max_iter=60, n_init=2, random_state=6)
    base = GaussianMixtureEM(3, **em).fit(X, sample_weight=weights)
    scaled = GaussianMixtureEM(3, **em).fit(X, sample_weight=factor * weights)
    for name in FITTED:
        # Rounding of sums over 330 rows, carried through the iterations.
        np.testing.assert_allclose(getattr(scaled, name), getattr(base, name), rtol=1e-8,
                                   atol=1e-12, err_msg=name)
    np.testing.assert_allclose(scaled.lower_bounds_, base.lower_bounds_, rtol=1e-10)


# ---------------------------------------------------------------- monotone
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("settings", [{}, {"noise": True, "missing": "marginalize"}])
@pytest.mark.parametrize("init_params", ["kmeans", "random"])
def test_weighted_log_likelihood_never_decreases(covariance_type, settings, init_params):
    X = with_missing(clustered_data()) if settings else clustered_data()
    weights = np.random.default_rng(7).exponential(size=len(X))
    em = GaussianMixtureEM(4, covariance_type=covariance_type, init_params=init_params,
                           tol=1e-10, max_iter=300, random_state=1, **settings)
    em.fit(X, sample_weight=weights)
    steps = np.diff(em.lower_bounds_)
    # EM is monotone in exact arithmetic; allow rounding of a sum of 330 terms.
    assert steps.min() > -1e-12 * abs(em.lower_bound_)


def test_fit_predict_with_weights_is_fit_then_predict():
    X = clustered_data()
    weights = integer_weights(len(X))
    labels = GaussianMixtureEM(3, random_state=0).fit_predict(X, sample_weight=weights)
    fitted = GaussianMixtureEM(3, random_state=0).fit(X, sample_weight=weights)
    np.testing.assert_array_equal(labels, fitted.predict(X))


def test_weights_pull_the_fit():
    # A second cluster of 20 rows weighted 10 each weighs as much as 200 rows.
    rng = np.random.default_rng(8)
    X = np.vstack([rng.normal(0.0, 1.0, (200, 2)), rng.normal(6.0, 1.0, (20, 2))])
    weights = np.r_[np.ones(200), np.full(20, 10.0)]
    em = GaussianMixtureEM(2, random_state=0).fit(X, sample_weight=weights)
    np.testing.assert_allclose(np.sort(em.weights_), [0.5, 0.5], atol=1e-6)


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("weights, message", [
    (lambda n: np.r_[-1.0, np.ones(n - 1)], "must be non-negative"),
    (lambda n: np.r_[np.nan, np.ones(n - 1)], "must be finite"),
    (lambda n: np.zeros(n), "zero for every row"),
    (lambda n: np.ones(n + 1), "one entry per row of X"),
    (lambda n: np.ones((n, 2)), "one entry per row of X"),
])
def test_bad_weights_are_refused_with_the_fix(weights, message):
    X = clustered_data()
    with pytest.raises(ValueError, match=message):
        GaussianMixtureEM(2).fit(X, sample_weight=weights(len(X)))


def test_fewer_weighted_rows_than_components_is_refused():
    X = clustered_data()
    weights = np.zeros(len(X))
    weights[:2] = 1.0
    with pytest.raises(ValueError, match="n_samples >= n_components"):
        GaussianMixtureEM(3).fit(X, sample_weight=weights)


def test_criteria_refuse_bad_weights():
    X = clustered_data()
    em = GaussianMixtureEM(2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="one entry per row of X"):
        em.bic(X, sample_weight=np.ones(3))


# ---------------------------------------------------------------- the pieces
def test_weighted_neighbour_radius_and_noise_start_are_those_of_repeated_rows(rng):
    Z = rng.normal(size=(80, 2))
    weights = rng.integers(1, 4, size=80).astype(float)
    repeated = np.repeat(Z, weights.astype(int), axis=0)
    first_copy = np.r_[0, np.cumsum(weights.astype(int))[:-1]]
    for neighbours in [1, 3, 10]:
        np.testing.assert_array_equal(
            neighbour_radius(Z, weights, neighbours),
            neighbour_radius(repeated, np.ones(len(repeated)), neighbours)[first_copy],
        )
    weighted = noise_start(Z, -3.0, 2, weights)
    copies = noise_start(repeated, -3.0, 2)
    assert weighted.points.any()
    np.testing.assert_array_equal(weighted.points, copies.points[first_copy])
    assert weighted.weight == pytest.approx(copies.weight, rel=1e-15)


def test_fractional_weights_below_one_still_reach_the_neighbour_count(rng):
    Z = rng.normal(size=(30, 2))
    radius = neighbour_radius(Z, np.full(30, 0.25), 2.0)
    # Weight 2 needs the 8 nearest others at 0.25 each.
    expected = np.sort(np.linalg.norm(Z[:, None] - Z[None], axis=2), axis=1)[:, 8]
    np.testing.assert_allclose(radius, expected)


@pytest.mark.parametrize("method", ["k-means++", "kmeans", "random_from_data"])
def test_weighted_initialisers_never_seed_on_rows_of_weight_zero(rng, method):
    X = rng.normal(size=(50, 2))
    weights = np.zeros(50)
    weights[:3] = 1.0
    seeds = kmeans_plusplus(X, 3, rng, weights)
    assert set(seeds.tolist()) == {0, 1, 2}
    responsibilities = initial_responsibilities(X, 3, method, rng, weights)
    assert sorted(responsibilities[:3].argmax(axis=1).tolist()) == [0, 1, 2]
