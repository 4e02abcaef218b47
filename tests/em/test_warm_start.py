"""warm_start and verbose, with scikit-learn's semantics."""

import re
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from bayesgmm.em import GaussianMixtureEM

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]
FITTED = ["weights_", "means_", "covariances_", "precisions_cholesky_", "noise_weight_"]


def three_clusters(seed=0, n_per_cluster=200):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [4.0, 1.0], [1.0, 5.0]])
    return np.vstack([rng.normal(centre, 1.0, size=(n_per_cluster, 2)) for centre in centres])


def fit_quietly(em, X, **fit_args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return em.fit(X, **fit_args)


@pytest.mark.parametrize(
    "settings",
    [{"covariance_type": kind} for kind in COVARIANCE_TYPES]
    + [{"noise": True}, {"missing": "marginalize"}, {"weighted": True}],
    ids=[*COVARIANCE_TYPES, "noise", "missing", "weighted"],
)
def test_warm_fits_in_steps_follow_one_run(settings):
    # Three warm fits of 2 iterations follow the one path of 6 iterations
    # (the start moves onto the same standardised scale: equal to rounding).
    X = three_clusters()
    settings = dict(settings)
    fit_args = {}
    if settings.pop("weighted", False):
        fit_args["sample_weight"] = np.random.default_rng(1).integers(1, 4, len(X))
    if settings.get("missing") == "marginalize":
        X[::5, 0] = np.nan
    # tol=0: neither stops early.
    one_run = fit_quietly(GaussianMixtureEM(3, max_iter=6, tol=0.0, random_state=0, **settings),
                          X, **fit_args)
    warm = GaussianMixtureEM(3, max_iter=2, tol=0.0, random_state=0, warm_start=True,
                             **settings)
    for _ in range(3):
        fit_quietly(warm, X, **fit_args)
    for name in FITTED:
        np.testing.assert_allclose(getattr(warm, name), getattr(one_run, name),
                                   rtol=1e-9, atol=1e-12, err_msg=name)
    assert warm.lower_bound_ == pytest.approx(one_run.lower_bound_, rel=1e-12)


def test_warm_start_ignores_n_init_and_detects_convergence(capsys):
    X = three_clusters()
    em = GaussianMixtureEM(3, n_init=4, warm_start=True, random_state=0, verbose=1).fit(X)
    assert capsys.readouterr().out.count("Initialization ") == 2 * 4
    assert em.converged_
    em.fit(X)
    # One run, measured from the previous lower_bound_: converged within a step or two.
    assert capsys.readouterr().out.count("Initialization ") == 2
    assert em.converged_ and em.n_iter_ <= 2


def test_warm_start_on_other_data_starts_from_the_previous_solution():
    # Other rows standardise differently; the first step still scores the
    # previous solution, in the data's units.
    X = three_clusters()
    other = three_clusters(seed=1)[::3] * 2.0
    em = GaussianMixtureEM(3, warm_start=True, random_state=0).fit(X)
    previous_score = em.score(other)
    fit_quietly(em, other)
    assert em.lower_bounds_[0] == pytest.approx(previous_score, rel=1e-12)


def test_each_warm_fit_that_stops_at_max_iter_warns():
    X = three_clusters()
    em = GaussianMixtureEM(3, max_iter=1, tol=0.0, warm_start=True, random_state=0)
    with pytest.warns(ConvergenceWarning, match="the best of n_init=1 initialisations"):
        em.fit(X)
    for _ in range(2):
        with pytest.warns(ConvergenceWarning, match="the warm-started run"):
            em.fit(X)


def test_warm_start_refuses_a_changed_model():
    X = three_clusters()
    em = GaussianMixtureEM(3, warm_start=True, random_state=0).fit(X)
    em.set_params(n_components=2)
    with pytest.raises(ValueError, match="warm_start=False"):
        em.fit(X)


def test_log_likelihood_never_decreases_one_warm_step_at_a_time():
    X = three_clusters()
    em = GaussianMixtureEM(3, max_iter=1, tol=1e-8, reg_covar=0.0, warm_start=True,
                           random_state=0)
    scores = [fit_quietly(em, X).score(X) for _ in range(30)]
    assert np.all(np.diff(scores) >= -1e-12)


def test_verbose_prints_what_sklearn_prints(capsys):
    X = three_clusters()
    settings = dict(n_components=3, tol=1e-6, random_state=0, verbose_interval=2)
    GaussianMixture(verbose=2, **settings).fit(X)
    sklearn_lines = capsys.readouterr().out.splitlines()
    em = GaussianMixtureEM(verbose=2, **settings).fit(X)
    lines = capsys.readouterr().out.splitlines()

    def shapes(printed):
        return [re.sub(r"-?\d+(\.\d+)?", "#", line) for line in printed]

    assert shapes(lines)[:2] == shapes(sklearn_lines)[:2]
    assert shapes(lines)[-1] == shapes(sklearn_lines)[-1]
    assert lines[-1].endswith(f"lower bound {em.lower_bound_:.5f}.")
    assert len(lines) == 2 + em.n_iter_ // 2
    GaussianMixtureEM(verbose=1, **settings).fit(X)
    assert capsys.readouterr().out.splitlines() == [
        "Initialization 0", *[f"  Iteration {i}" for i in range(2, em.n_iter_ + 1, 2)],
        "Initialization converged.",
    ]


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [("warm_start", 1, TypeError), ("verbose", -1, ValueError),
     ("verbose_interval", 0, ValueError)],
)
def test_bad_settings_are_refused(name, value, error):
    with pytest.raises(error, match=name):
        GaussianMixtureEM(**{name: value}).fit(three_clusters())
