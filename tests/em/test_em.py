"""Statistical and numerical properties of the EM fitter."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture

from bayesgmm.datasets import load_faithful, make_mixture
from bayesgmm.em import GaussianMixtureEM, em_step, get_family, n_parameters
from bayesgmm.em._algorithm import state_from_responsibilities
from bayesgmm.em._initialization import _squared_distances, lloyd

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


def overlapping_data(rng, n_samples=600, n_features=3):
    """Three overlapping clusters, so EM needs many iterations."""
    centres = np.array([[0.0] * n_features, [1.5] * n_features, [0.0, 2.5] + [0.0] * (n_features - 2)])
    labels = rng.integers(3, size=n_samples)
    return centres[labels] + rng.normal(size=(n_samples, n_features))


def sklearn_start(X, n_components, covariance_type):
    """Parameters after one sklearn step from random data points: a shared start."""
    start = GaussianMixture(
        n_components, covariance_type=covariance_type, init_params="random_from_data",
        max_iter=1, random_state=3,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start.fit(X)
    return dict(weights_init=start.weights_, means_init=start.means_, precisions_init=start.precisions_)


def both_traces(X, covariance_type, reg_covar, n_iter=25):
    init = sklearn_start(X, 3, covariance_type)
    common = dict(covariance_type=covariance_type, tol=0.0, max_iter=n_iter, reg_covar=reg_covar, **init)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = GaussianMixtureEM(3, **common).fit(X)
        peer = GaussianMixture(3, **common).fit(X)
    return ours, peer


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_per_iteration_log_likelihood_matches_sklearn(rng, covariance_type):
    # Pre-standardised data: bayesgmm's relative reg_covar then equals sklearn's
    # absolute one, so both run the same arithmetic. 1e-8 relative leaves ~7
    # orders of magnitude for rounding differences (observed: ~1e-15).
    X = overlapping_data(rng)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    ours, peer = both_traces(X, covariance_type, reg_covar=1e-6)
    assert len(ours.lower_bounds_) == len(peer.lower_bounds_) == 25
    np.testing.assert_allclose(ours.lower_bounds_, peer.lower_bounds_, rtol=1e-8)
    np.testing.assert_allclose(ours.means_, peer.means_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ours.covariances_, peer.covariances_, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag"])
def test_matches_sklearn_on_raw_units_without_regularisation(covariance_type):
    # With reg_covar=0 EM is equivariant under per-feature scaling, so the
    # internal standardisation must not change a single iteration.
    X = load_faithful().to_numpy()
    ours, peer = both_traces(X, covariance_type, reg_covar=0.0, n_iter=15)
    np.testing.assert_allclose(ours.lower_bounds_, peer.lower_bounds_, rtol=1e-8)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("init_params", ["k-means++", "kmeans", "random", "random_from_data"])
def test_log_likelihood_never_decreases(rng, covariance_type, init_params):
    X = overlapping_data(rng)
    em = GaussianMixtureEM(4, covariance_type=covariance_type, init_params=init_params, tol=1e-10, max_iter=300, random_state=1).fit(X)
    steps = np.diff(em.lower_bounds_)
    # EM is monotone in exact arithmetic; allow rounding of a sum of 600 terms.
    assert steps.min() > -1e-12 * abs(em.lower_bound_)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_shift_moves_only_the_means(rng, covariance_type):
    X = overlapping_data(rng)
    base = GaussianMixtureEM(3, covariance_type=covariance_type, random_state=0).fit(X)
    shifted = GaussianMixtureEM(3, covariance_type=covariance_type, random_state=0).fit(X + 1e3)
    np.testing.assert_allclose(shifted.means_, base.means_ + 1e3, rtol=1e-9)
    np.testing.assert_allclose(shifted.covariances_, base.covariances_, rtol=1e-7)
    np.testing.assert_allclose(shifted.weights_, base.weights_, rtol=1e-9)
    assert shifted.score(X + 1e3) == pytest.approx(base.score(X), rel=1e-9)


@pytest.mark.parametrize("factor", [1e-6, 1e6])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_scaling_gives_finite_equivariant_results(rng, covariance_type, factor):
    X = overlapping_data(rng)
    base = GaussianMixtureEM(3, covariance_type=covariance_type, random_state=0).fit(X)
    scaled = GaussianMixtureEM(3, covariance_type=covariance_type, random_state=0).fit(X * factor)
    assert np.all(np.isfinite(scaled.means_)) and np.all(np.isfinite(scaled.covariances_))
    np.testing.assert_allclose(scaled.means_, base.means_ * factor, rtol=1e-7, atol=1e-9 * factor)
    np.testing.assert_allclose(scaled.covariances_, base.covariances_ * factor**2, rtol=1e-7)
    # Densities change by the Jacobian: log p(cx) = log p(x) - D log c.
    expected = base.score(X) - X.shape[1] * np.log(factor)
    assert scaled.score(X * factor) == pytest.approx(expected, rel=1e-9)
    np.testing.assert_array_equal(scaled.predict(X * factor), base.predict(X))


def test_features_on_very_different_scales(rng):
    X = overlapping_data(rng)
    mixed = X * np.array([1e-6, 1.0, 1e6])
    base = GaussianMixtureEM(3, random_state=0).fit(X)
    fitted = GaussianMixtureEM(3, random_state=0).fit(mixed)
    assert adjusted_rand_score(base.predict(X), fitted.predict(mixed)) == 1.0


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_recovers_separated_blobs(covariance_type):
    means = [[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]]
    X, labels = make_mixture(900, [0.3, 0.3, 0.4], means, np.tile(np.eye(2), (3, 1, 1)), random_state=4)
    em = GaussianMixtureEM(3, covariance_type=covariance_type, n_init=3, random_state=0)
    assert adjusted_rand_score(labels, em.fit_predict(X)) > 0.95


def test_fit_predict_equals_fit_then_predict(rng):
    X = overlapping_data(rng)
    labels = GaussianMixtureEM(3, random_state=5).fit_predict(X)
    np.testing.assert_array_equal(labels, GaussianMixtureEM(3, random_state=5).fit(X).predict(X))


def test_bic_parameter_counts():
    counts = {c: n_parameters(c, 2, 5) for c in COVARIANCE_TYPES}
    assert counts == {"full": 41, "tied": 26, "diag": 21, "spherical": 13}


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_criteria_match_sklearn_definitions(covariance_type):
    X = load_faithful()
    em = GaussianMixtureEM(2, covariance_type=covariance_type, random_state=0).fit(X)
    n = len(X)
    total = em.score(X) * n
    p = n_parameters(covariance_type, 2, 2)
    assert em.bic(X) == pytest.approx(-2 * total + p * np.log(n))
    assert em.aic(X) == pytest.approx(-2 * total + 2 * p)
    hard = em.predict_proba(X).max(axis=1)
    assert em.icl(X) == pytest.approx(em.bic(X) - 2 * np.log(hard).sum())
    assert em.icl(X) >= em.bic(X)


def test_faithful_agrees_with_sklearn_final_fit():
    X = load_faithful()
    ours = GaussianMixtureEM(2, n_init=5, tol=1e-8, max_iter=500, random_state=0).fit(X)
    peer = GaussianMixture(2, n_init=5, tol=1e-8, max_iter=500, random_state=0).fit(X)
    assert ours.score(X) == pytest.approx(peer.score(X), rel=1e-6)
    order = np.argsort(ours.means_[:, 0]), np.argsort(peer.means_[:, 0])
    np.testing.assert_allclose(ours.means_[order[0]], peer.means_[order[1]], rtol=1e-4)


def test_convergence_warning_says_what_to_change(rng):
    X = overlapping_data(rng)
    with pytest.warns(ConvergenceWarning, match="Increase max_iter or tol, try more n_init"):
        GaussianMixtureEM(3, max_iter=2, tol=0.0, random_state=0).fit(X)


def test_duplicate_points_give_a_valid_fit_or_a_clear_error():
    X = np.repeat(np.array([[0.0, 0.0], [5.0, 1.0], [1.0, 6.0]]), 20, axis=0)
    em = GaussianMixtureEM(3, random_state=0).fit(X)
    assert np.all(np.isfinite(em.score_samples(X)))
    assert adjusted_rand_score(np.repeat([0, 1, 2], 20), em.predict(X)) == 1.0


def test_more_components_than_distinct_points():
    X = np.repeat(np.array([[0.0, 0.0], [5.0, 1.0]]), 10, axis=0)
    try:
        em = GaussianMixtureEM(4, random_state=0).fit(X)
    except ValueError as error:
        assert "reg_covar" in str(error)
    else:
        assert np.all(np.isfinite(em.score_samples(X)))
        np.testing.assert_allclose(em.weights_.sum(), 1.0)


def test_ill_defined_covariance_error_names_reg_covar():
    X = np.repeat(np.array([[0.0, 0.0], [5.0, 1.0]]), 10, axis=0)
    with pytest.raises(ValueError, match="larger reg_covar"):
        GaussianMixtureEM(2, reg_covar=0.0, init_params="random", random_state=0).fit(X)


def test_user_initial_values_are_validated(rng):
    X = overlapping_data(rng)
    with pytest.raises(ValueError, match=r"means_init must have shape \(3, 3\)"):
        GaussianMixtureEM(3, means_init=np.zeros((2, 3))).fit(X)
    with pytest.raises(ValueError, match="sum to 1"):
        GaussianMixtureEM(3, weights_init=[0.5, 0.5, 0.5]).fit(X)
    with pytest.raises(ValueError, match="covariance_type must be one of"):
        GaussianMixtureEM(3, covariance_type="banded").fit(X)


def test_max_iter_zero_returns_the_user_start(rng):
    X = overlapping_data(rng)
    init = sklearn_start(X, 3, "full")
    em = GaussianMixtureEM(3, max_iter=0, **init).fit(X)
    np.testing.assert_allclose(em.means_, init["means_init"], rtol=1e-12)
    np.testing.assert_allclose(em.precisions_, init["precisions_init"], rtol=1e-10)


def test_chunk_size_does_not_change_the_result(rng):
    X = overlapping_data(rng)
    small = GaussianMixtureEM(3, chunk_size=7, random_state=2).fit(X)
    large = GaussianMixtureEM(3, chunk_size=10_000, random_state=2).fit(X)
    np.testing.assert_allclose(small.lower_bounds_, large.lower_bounds_, rtol=1e-12)


def test_kmeans_distances_are_euclidean_and_lloyd_stops_at_its_fixed_point(rng):
    # Away from the origin |x|^2 - 2 x.c + |c|^2 cancels ~1e6: 1e-10 absolute.
    X = overlapping_data(rng) + 1e3
    centres = X[:3]
    direct = ((X[:, None, :] - centres[None]) ** 2).sum(axis=2)
    np.testing.assert_allclose(_squared_distances(X, centres), direct, rtol=1e-9, atol=1e-8)
    assert (_squared_distances(X, X) >= 0.0).all()
    labels = lloyd(X, centres)
    means = np.array([X[labels == k].mean(axis=0) for k in range(3)])
    np.testing.assert_array_equal(np.argmin(_squared_distances(X, means), axis=1), labels)


def test_em_step_is_a_pure_function(rng):
    X = overlapping_data(rng)
    responsibilities = rng.dirichlet(np.ones(3), size=len(X))
    state = state_from_responsibilities(X, responsibilities, "full", 1e-6)
    copy = [np.copy(a) for a in state]
    new_state, info = em_step(X, state, covariance_type="full", reg_covar=1e-6)
    for before, after in zip(copy, state):
        np.testing.assert_array_equal(before, after)
    assert np.isfinite(info.log_likelihood)
    assert new_state.weights.sum() == pytest.approx(1.0)


def test_sample_draws_from_the_fitted_mixture():
    X = load_faithful()
    em = GaussianMixtureEM(2, random_state=0).fit(X)
    draws, labels = em.sample(20_000)
    assert draws.shape == (20_000, 2) and labels.shape == (20_000,)
    # Monte Carlo error of a component mean with ~7000 draws is < 0.02 sd.
    for k in range(2):
        sd = np.sqrt(np.diag(em.covariances_[k]))
        np.testing.assert_allclose(draws[labels == k].mean(axis=0), em.means_[k], atol=0.05 * sd.max())
    assert np.bincount(labels).tolist() == pytest.approx((em.weights_ * 20_000).tolist(), rel=0.05)


def test_dense_covariances_for_every_family():
    for covariance_type in COVARIANCE_TYPES:
        em = GaussianMixtureEM(2, covariance_type=covariance_type, random_state=0).fit(load_faithful())
        dense = get_family(covariance_type).dense(em.covariances_, 2, 2)
        assert dense.shape == (2, 2, 2)
        np.testing.assert_allclose(np.linalg.inv(dense), get_family("full").dense(
            em.precisions_ if covariance_type == "full" else np.linalg.inv(dense), 2, 2), rtol=1e-8)
        # compact is dense's inverse: back to the family's (scikit-learn's) shape.
        np.testing.assert_array_equal(get_family(covariance_type).compact(dense), em.covariances_)


def test_faithful_at_least_as_good_as_mclust():
    # mclust 6 on faithful reports BIC (its sign: higher is better) of
    # -2322.192 for VVV,2 (full, K=2) and -2314.386 for EEE,3 (tied, K=3).
    X = load_faithful()
    full = GaussianMixtureEM(2, n_init=10, tol=1e-8, max_iter=2000, random_state=0).fit(X)
    tied = GaussianMixtureEM(3, covariance_type="tied", n_init=10, tol=1e-8, max_iter=2000, random_state=0).fit(X)
    assert full.bic(X) == pytest.approx(2322.192, abs=0.01)
    assert tied.bic(X) <= 2314.386 + 0.01
