"""The Bayesian model's uniform noise component, end to end (real sampler, no mocks)."""

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from bayesgmm import BayesianGMM, GMMPriors, build_model, load
from bayesgmm._kernel import logp_and_grad
from bayesgmm.datasets import load_faithful
from bayesgmm.fitting import prepare_problem
from bayesgmm.inference import _pymc_start
from bayesgmm.noise import NOISE_LABEL, NoiseComponent
from bayesgmm.parameters import ModelParameters
from bayesgmm.relabel import relabel_parameters

FAST = dict(draws=500, tune=500, chains=4, progressbar=False)
NOISE_SHARE = 0.1
BOX = (-20.0, 30.0)


def clusters_in_background(seed=0, n_cluster=150):
    """Two tight clusters and 10% uniform background over a 50 x 50 box."""
    rng = np.random.default_rng(seed)
    clusters = np.vstack([rng.normal([0.0, 0.0], 1.0, (n_cluster, 2)),
                          rng.normal([10.0, 8.0], 1.0, (n_cluster, 2))])
    n_noise = int(round(NOISE_SHARE * 2 * n_cluster / (1 - NOISE_SHARE)))
    background = rng.uniform(*BOX, size=(n_noise, 2))
    return np.vstack([clusters, background]), 2 * n_cluster


@pytest.fixture(scope="module")
def noisy_fit():
    X, n_clustered = clusters_in_background()
    return X, n_clustered, BayesianGMM(2, noise=True, random_state=0, **FAST).fit(X)


def test_clusters_are_recovered_and_the_background_is_called_noise(noisy_fit):
    X, n_clustered, model = noisy_fit
    posterior = model.idata_.posterior
    means = posterior["means"].mean(("chain", "draw")).values
    order = np.argsort(means[:, 0])
    # 150 points per cluster of sd 1: the posterior sd of a mean is ~0.08; 0.3 is ~4 sd.
    np.testing.assert_allclose(means[order], [[0.0, 0.0], [10.0, 8.0]], atol=0.3)
    labels = model.predict(X)
    background = labels[n_clustered:]
    # Background points that happen to fall inside a cluster are rightly claimed by it.
    assert np.mean(background == NOISE_LABEL) > 0.85
    assert np.mean(labels[:n_clustered] == NOISE_LABEL) < 0.02
    share = posterior["noise_weight"].values
    true_share = (len(X) - n_clustered) / len(X)
    low, high = np.quantile(share, [0.005, 0.995])
    assert low < true_share < high


def test_memberships_carry_p_noise_with_its_interval(noisy_fit):
    X, _, model = noisy_fit
    summary = model.membership_summary(X)
    assert summary["prob"].shape == (len(X), 2)
    total = summary["prob"].sum("component").values + summary["p_noise"].values
    np.testing.assert_allclose(total, 1.0)
    assert np.all(summary["p_noise_lower"] <= summary["p_noise"] + 1e-12)
    assert np.all(summary["p_noise"] <= summary["p_noise_upper"] + 1e-12)
    noise_points = summary["label"].values == NOISE_LABEL
    assert np.all(summary["p_noise"].values[noise_points] >= summary["prob"].max(
        "component").values[noise_points])
    assert model.predict_proba(X).shape == (len(X), 3)


def test_stored_log_likelihood_includes_the_noise_term(noisy_fit):
    X, _, model = noisy_fit
    posterior = model.idata_.posterior
    log_volume = np.log(np.ptp(X, axis=0)).sum()
    assert posterior["noise_weight"].attrs["log_density"] == pytest.approx(-log_volume)
    stored = model.idata_.log_likelihood["x"].values
    for chain, draw in [(0, 0), (2, 137)]:
        at = dict(chain=chain, draw=draw)
        joint = [np.log(posterior["weights"].isel(**at).values[k])
                 + multivariate_normal(posterior["means"].isel(**at).values[k],
                                       posterior["covariances"].isel(**at).values[k]).logpdf(X)
                 for k in range(2)]
        joint.append(np.full(len(X), np.log(posterior["noise_weight"].isel(**at).values)
                             - log_volume))
        np.testing.assert_allclose(stored[chain, draw], logsumexp(joint, axis=0), rtol=1e-10)


def test_anomaly_scores_and_far_points_use_the_noise(noisy_fit):
    X, _, model = noisy_fit
    far = np.array([[1e6, -1e6], [0.0, 0.0]])
    assert model.predict(far).tolist()[0] == NOISE_LABEL
    scores = model.anomaly_scores(far)["score"].values
    # A far point's density is the noise's w / V, never below it: a finite score.
    assert np.all(np.isfinite(scores)) and scores[0] > scores[1]


def test_noise_survives_save_and_load(tmp_path, noisy_fit):
    X, _, model = noisy_fit
    model.save(tmp_path / "model.nc")
    loaded = load(tmp_path / "model.nc")
    assert loaded.noise is True
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X), rtol=1e-12,
                               atol=1e-15)


def test_relabelling_never_moves_the_noise():
    rng = np.random.default_rng(0)
    parameters = ModelParameters(rng.dirichlet([1, 1, 1], size=5)[:, :2], rng.normal(size=(5, 2, 2)),
                                 np.ones((5, 2, 2)), np.broadcast_to(np.eye(2), (5, 2, 2, 2)),
                                 NoiseComponent(rng.uniform(size=5), -3.0))
    swapped = relabel_parameters(parameters, np.tile([1, 0], (5, 1)))
    np.testing.assert_array_equal(swapped.noise.weight, parameters.noise.weight)
    np.testing.assert_array_equal(swapped.weights, parameters.weights[:, ::-1])


@pytest.mark.filterwarnings("ignore::bayesgmm.bayes.DiagnosticsWarning")
def test_user_noise_volume_sets_the_density():
    # A short run: only the stored density is checked here, not convergence.
    X, _ = clusters_in_background(seed=1, n_cluster=60)
    model = BayesianGMM(2, noise=True, noise_volume=1e4, random_state=0, draws=100, tune=200,
                        chains=2, progressbar=False).fit(X)
    assert model.idata_.posterior["noise_weight"].attrs["log_density"] == pytest.approx(
        -np.log(1e4))


@pytest.mark.parametrize("settings, message", [
    (dict(noise_volume=10.0), "only fitted with noise=True"),
    (dict(noise="yes"), "noise must be True or False"),
    (dict(noise=True, noise_volume=-1.0), "finite positive number"),
])
def test_bad_noise_settings_name_the_fix(settings, message):
    with pytest.raises((ValueError, TypeError), match=message):
        BayesianGMM(2, progressbar=False, **settings).fit(load_faithful())


def test_pymc_specification_with_noise_matches_the_start():
    X = load_faithful()
    problem = prepare_problem(X, n_components=2, covariance_type="full", priors=GMMPriors(),
                              em_n_init=2, rng=np.random.default_rng(0), noise=True)
    model = build_model(X, 2, GMMPriors(), "full", noise=True)
    start = _pymc_start(model, problem.start, problem.layout)
    point = {}
    for rv in model.free_RVs:
        transform = model.rvs_to_transforms[rv]
        value = start[rv.name]
        point[model.rvs_to_values[rv].name] = (transform.forward(value).eval()
                                               if transform is not None else value)
    assert model.compile_logp()(point) == pytest.approx(
        logp_and_grad(problem.start, problem.block)[0], rel=1e-9)
