"""The uniform noise component of GaussianMixtureEM (R's mclust ``noise``)."""

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from bayesgmm.em import GaussianMixtureEM, em_step, get_family, n_parameters
from bayesgmm.em._algorithm import (
    add_noise_component,
    log_prob_and_responsibilities,
    state_from_responsibilities,
)
from bayesgmm.em._estimator import noise_start
from bayesgmm.noise import NOISE_LABEL

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]
BOX_LOW, BOX_HIGH = np.array([-20.0, -20.0]), np.array([28.0, 20.0])


def clusters_with_background(seed=0, n_per_cluster=225, n_background=50):
    """Clusters at (0, 0) and (8, 0), sd 1, plus 10% uniform points over a wide box."""
    rng = np.random.default_rng(seed)
    X = np.vstack([
        rng.normal([0.0, 0.0], 1.0, (n_per_cluster, 2)),
        rng.normal([8.0, 0.0], 1.0, (n_per_cluster, 2)),
        rng.uniform(BOX_LOW, BOX_HIGH, (n_background, 2)),
    ])
    truth = np.repeat([0, 1, NOISE_LABEL], [n_per_cluster, n_per_cluster, n_background])
    return X, truth


def fit_with_noise(X, covariance_type="full", **settings):
    return GaussianMixtureEM(
        2, covariance_type=covariance_type, noise=True, n_init=5, random_state=0, **settings
    ).fit(X)


def mixture_density_by_hand(em, X):
    """``noise_weight_ / V + sum_k weights_[k] N(x | means_[k], covariances_[k])``."""
    n_components, n_features = em.means_.shape
    covariances = get_family(em.covariance_type).dense(em.covariances_, n_components, n_features)
    gaussian = sum(
        weight * multivariate_normal(mean, covariance).pdf(X)
        for weight, mean, covariance in zip(em.weights_, em.means_, covariances)
    )
    return gaussian + em.noise_weight_ * np.exp(-em.noise_log_volume_)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_noise_recovers_the_clusters_and_labels_the_background(covariance_type):
    X, truth = clusters_with_background()
    em = fit_with_noise(X, covariance_type)
    means = em.means_[np.argsort(em.means_[:, 0])]
    # 225 points per cluster: a mean coordinate has a standard error of
    # 1/15 ~ 0.07; 0.3 leaves room for the few background points that fall
    # inside a cluster (observed over 30 data seeds: at most 0.2).
    np.testing.assert_allclose(means, [[0.0, 0.0], [8.0, 0.0]], atol=0.3)
    labels = em.predict(X)
    # The clusters cover ~2% of the box: background points inside them are
    # rightly taken by the cluster (observed: 86-96% labelled noise).
    assert np.mean(labels[truth == NOISE_LABEL] == NOISE_LABEL) > 0.8
    assert np.mean(labels[truth != NOISE_LABEL] == NOISE_LABEL) < 0.01
    # True fraction 50/500; the ambiguous background points move it by ~0.01.
    assert em.noise_weight_ == pytest.approx(0.1, abs=0.03)
    assert em.weights_.sum() + em.noise_weight_ == pytest.approx(1.0, abs=1e-12)


def test_the_start_puts_sparse_points_in_the_noise_and_clusters_outside_it():
    X, truth = clusters_with_background()
    Z = (X - X.mean(axis=0)) / X.std(axis=0)
    log_density = -np.log(np.ptp(Z, axis=0)).sum()
    start = noise_start(Z, log_density, n_components=2)
    assert np.mean(start.points[truth == NOISE_LABEL]) > 0.8
    assert np.mean(start.points[truth != NOISE_LABEL]) < 0.01
    assert start.weight == np.mean(start.points)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("init_params", ["kmeans", "random"])
def test_log_likelihood_never_decreases_with_noise(covariance_type, init_params):
    X, _ = clusters_with_background(seed=1)
    em = GaussianMixtureEM(
        3, covariance_type=covariance_type, init_params=init_params, noise=True,
        tol=1e-10, max_iter=300, random_state=1,
    ).fit(X)
    steps = np.diff(em.lower_bounds_)
    assert len(steps) > 10
    # EM is monotone in exact arithmetic; allow rounding of a sum of 500 terms.
    assert steps.min() > -1e-12 * abs(em.lower_bound_)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_the_m_step_fits_gaussians_from_their_own_columns_only(rng, covariance_type):
    X, _ = clusters_with_background()
    gaussian = state_from_responsibilities(X, rng.dirichlet(np.ones(2), size=len(X)),
                                           covariance_type, 0.0)
    state = add_noise_component(gaussian, 0.2, -np.log(np.prod(BOX_HIGH - BOX_LOW)))
    responsibilities = log_prob_and_responsibilities(X, state, covariance_type)[1]
    new_state, _ = em_step(X, state, covariance_type=covariance_type, reg_covar=0.0)
    counts = responsibilities.sum(axis=0)
    np.testing.assert_allclose(new_state.weights, counts[:2] / len(X), rtol=1e-12)
    assert new_state.noise.weight == pytest.approx(counts[2] / len(X), rel=1e-12)
    means = responsibilities[:, :2].T @ X / counts[:2, None]
    np.testing.assert_allclose(new_state.means, means, rtol=1e-10)
    scatter = np.stack([
        (responsibilities[:, k, None] * (X - means[k])).T @ (X - means[k]) for k in range(2)
    ])
    expected = {
        "full": scatter / counts[:2, None, None],
        "tied": scatter.sum(axis=0) / counts[:2].sum(),
        "diag": np.diagonal(scatter, axis1=1, axis2=2) / counts[:2, None],
        "spherical": np.diagonal(scatter, axis1=1, axis2=2).mean(axis=1) / counts[:2],
    }[covariance_type]
    np.testing.assert_allclose(new_state.covariances, expected, rtol=1e-9)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_score_samples_is_the_log_of_the_mixture_density_by_hand(covariance_type):
    X, _ = clusters_with_background()
    em = fit_with_noise(X, covariance_type)
    assert em.noise_log_volume_ == pytest.approx(np.log(np.ptp(X, axis=0)).sum(), rel=1e-14)
    new = np.array([[0.5, -0.5], [4.0, 1.0], [25.0, -18.0], [-100.0, 60.0]])
    for points in (X, new):
        np.testing.assert_allclose(
            em.score_samples(points), np.log(mixture_density_by_hand(em, points)), rtol=1e-10
        )
    assert em.score(X) == pytest.approx(np.log(mixture_density_by_hand(em, X)).mean(), rel=1e-10)


def test_predict_proba_has_a_noise_column_last_and_rows_summing_to_one():
    X, _ = clusters_with_background()
    em = fit_with_noise(X)
    probabilities = em.predict_proba(X)
    assert probabilities.shape == (len(X), 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-12)
    most_probable = probabilities.argmax(axis=1)
    np.testing.assert_array_equal(em.predict(X), np.where(most_probable == 2, NOISE_LABEL,
                                                          most_probable))
    np.testing.assert_array_equal(em.fit_predict(X), em.predict(X))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_criteria_count_the_noise_weight_as_one_more_parameter(covariance_type):
    X, _ = clusters_with_background()
    em = fit_with_noise(X, covariance_type)
    n_samples, total = len(X), em.score(X) * len(X)
    n_params = n_parameters(covariance_type, 2, 2) + 1
    assert em.bic(X) == pytest.approx(-2 * total + n_params * np.log(n_samples), rel=1e-12)
    assert em.aic(X) == pytest.approx(-2 * total + 2 * n_params, rel=1e-12)
    most_probable = em.predict_proba(X).max(axis=1)
    assert em.icl(X) == pytest.approx(em.bic(X) - 2 * np.log(most_probable).sum(), rel=1e-12)


def test_a_user_noise_volume_sets_the_noise_density():
    X, _ = clusters_with_background()
    volume = 1e4
    em = fit_with_noise(X, noise_volume=volume)
    assert em.noise_log_volume_ == np.log(volume)
    # 1e3 away from both clusters, only the noise term is left of the density.
    far = np.array([[1e3, 1e3]])
    assert em.score_samples(far)[0] == pytest.approx(np.log(em.noise_weight_) - np.log(volume),
                                                     rel=1e-12)
    np.testing.assert_allclose(em.score_samples(X), np.log(mixture_density_by_hand(em, X)),
                               rtol=1e-10)


@pytest.mark.parametrize("noise_volume", [None, 1e4])
def test_sample_draws_noise_uniformly_from_a_box_of_the_noise_volume(noise_volume):
    X, _ = clusters_with_background()
    em = fit_with_noise(X, noise_volume=noise_volume)
    draws, labels = em.sample(20_000)
    noise = draws[labels == NOISE_LABEL]
    # Binomial sd of the noise count: sqrt(20000 * 0.1 * 0.9) ~ 42, i.e. 2%.
    assert len(noise) == pytest.approx(20_000 * em.noise_weight_, rel=0.1)
    assert np.all(labels[-len(noise):] == NOISE_LABEL)
    sides = np.ptp(noise, axis=0)
    # ~2000 uniform draws reach within 0.5% of each side's end.
    assert np.exp(np.log(sides).sum()) == pytest.approx(np.exp(em.noise_log_volume_), rel=0.02)
    centre = 0.5 * (noise.min(axis=0) + noise.max(axis=0))
    np.testing.assert_allclose(centre, 0.5 * (X.min(axis=0) + X.max(axis=0)),
                               atol=0.01 * sides.max())
    data_sides = np.ptp(X, axis=0)
    assert sides[0] / sides[1] == pytest.approx(data_sides[0] / data_sides[1], rel=0.02)


@pytest.mark.parametrize(
    ("settings", "error", "fix"),
    [
        (dict(noise="yes"), TypeError, "noise must be True or False"),
        (dict(noise=1), TypeError, "noise must be True or False"),
        (dict(noise=True, noise_volume=-1.0), ValueError, "finite positive number"),
        (dict(noise=True, noise_volume=np.inf), ValueError, "finite positive number"),
        (dict(noise=True, noise_volume="big"), TypeError, "positive number or None"),
        (dict(noise_volume=10.0), ValueError, "Pass noise=True as well, or drop noise_volume"),
    ],
)
def test_bad_noise_settings_are_refused_with_the_fix(settings, error, fix):
    X, _ = clusters_with_background()
    with pytest.raises(error, match=fix):
        GaussianMixtureEM(2, **settings).fit(X)


def test_a_flat_bounding_box_asks_for_a_noise_volume():
    with pytest.raises(ValueError, match="Pass noise_volume="):
        GaussianMixtureEM(1, noise=True).fit([[1.0, 2.0]])
    em = GaussianMixtureEM(1, noise=True, noise_volume=4.0).fit([[1.0, 2.0]])
    assert np.isfinite(em.score_samples([[1.0, 2.0]])).all()


def test_noise_false_is_the_fit_without_the_parameter_bit_for_bit():
    X, _ = clusters_with_background()
    plain = GaussianMixtureEM(3, random_state=0).fit(X)
    explicit = GaussianMixtureEM(3, noise=False, random_state=0).fit(X)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "lower_bounds_"):
        np.testing.assert_array_equal(getattr(explicit, name), getattr(plain, name))
    np.testing.assert_array_equal(explicit.predict_proba(X), plain.predict_proba(X))
    assert explicit.predict_proba(X).shape == (len(X), 3)
    assert explicit.noise_weight_ == 0.0 and explicit.noise_log_volume_ is None
    assert explicit.bic(X) == plain.bic(X)
    assert NOISE_LABEL not in explicit.predict(X)
    np.testing.assert_array_equal(explicit.sample(100)[0], plain.sample(100)[0])


def test_refitting_without_noise_drops_the_noise_component():
    X, _ = clusters_with_background()
    em = fit_with_noise(X)
    em.set_params(noise=False).fit(X)
    assert em.noise_weight_ == 0.0 and em.noise_log_volume_ is None
    assert em.predict_proba(X).shape == (len(X), 2)
    assert em.weights_.sum() == pytest.approx(1.0)


def test_the_fit_is_deterministic_under_random_state():
    X, _ = clusters_with_background()
    first, second = fit_with_noise(X), fit_with_noise(X)
    np.testing.assert_array_equal(first.means_, second.means_)
    assert first.noise_weight_ == second.noise_weight_


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_a_far_new_point_is_noise_with_finite_scores(covariance_type):
    X, _ = clusters_with_background()
    em = fit_with_noise(X, covariance_type)
    far = np.array([[1e6, -1e6], [1e300, 1e300], [-1e300, 5.0]])
    np.testing.assert_array_equal(em.predict(far), NOISE_LABEL)
    probabilities = em.predict_proba(far)
    assert np.all(np.isfinite(probabilities))
    np.testing.assert_allclose(probabilities[:, -1], 1.0)
    # Gaussian densities there are below exp(-1e11): the noise term is all.
    np.testing.assert_allclose(em.score_samples(far),
                               np.log(em.noise_weight_) - em.noise_log_volume_, rtol=1e-12)

