"""GaussianMixtureEM with values missing at random (missing="marginalize")."""

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from bayesgmm._checks import DataValidationError, check_X
from bayesgmm.em import GaussianMixtureEM, get_family
from bayesgmm.em._algorithm import (
    expected_sufficient_statistics,
    log_prob_and_responsibilities,
    state_from_responsibilities,
)
from bayesgmm.em._missing import missingness_patterns
from bayesgmm.scaling import standardization

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]
MEANS = np.array([[0.0, 0.0, 0.0], [4.0, 4.0, 0.0], [0.0, 4.0, 4.0]])
COVARIANCE = np.array([[1.0, 0.5, 0.2], [0.5, 1.0, 0.3], [0.2, 0.3, 1.0]])


def three_clusters(seed, n_samples=1500):
    """Three correlated 3-D clusters, and a copy with 20% of the values removed.

    Values are removed completely at random, except that a row never loses
    all three (one of them is put back).
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(3, size=n_samples)
    X = MEANS[labels] + rng.multivariate_normal(np.zeros(3), COVARIANCE, size=n_samples)
    removed = rng.random(X.shape) < 0.2
    removed[removed.all(axis=1), rng.integers(3)] = False
    return X, np.where(removed, np.nan, X)


def largest_mean_difference(means, reference):
    """Largest coordinate difference after matching components (label-free)."""
    distances = ((means[:, None, :] - reference[None, :, :]) ** 2).sum(axis=-1)
    rows, columns = linear_sum_assignment(distances)
    return float(np.abs(means[rows] - reference[columns]).max())


def fit(X, **settings):
    return GaussianMixtureEM(3, n_init=3, random_state=0, **settings).fit(X)


def mixture_log_density_by_hand(X, weights, means, covariances):
    """``log sum_k w_k N(x_o | mu_o, S_oo)`` row by row, with scipy."""
    result = []
    for row in X:
        observed = ~np.isnan(row)
        terms = [
            np.log(weight) + multivariate_normal(mean[observed],
                                                 covariance[np.ix_(observed, observed)]).logpdf(row[observed])
            for weight, mean, covariance in zip(weights, means, covariances)
        ]
        result.append(logsumexp(terms))
    return np.array(result)


def dense(em):
    return get_family(em.covariance_type).dense(em.covariances_, *em.means_.shape)


def random_state(rng, covariance_type, n_components=2, n_features=3):
    X = rng.normal(size=(200, n_features)) @ rng.normal(size=(n_features, n_features))
    responsibilities = rng.dirichlet(np.ones(n_components), size=len(X))
    return state_from_responsibilities(X, responsibilities, covariance_type, 1e-6)


# ---------------------------------------------------------------- (1) recovery
def test_marginalizing_recovers_the_means_and_beats_complete_cases_and_mean_imputation():
    X, with_missing = three_clusters(seed=0)
    complete_data = fit(X)
    marginalized = fit(with_missing, missing="marginalize")
    complete_cases = fit(with_missing[~np.isnan(with_missing).any(axis=1)])
    mean_imputed = fit(np.where(np.isnan(with_missing), np.nanmean(with_missing, axis=0), with_missing))
    # ~400 observed values per cluster and coordinate: a mean coordinate has a
    # standard error of ~0.05; 0.2 is four of them (seeds 0-29: at most 0.154).
    assert largest_mean_difference(marginalized.means_, MEANS) < 0.2
    errors = {name: largest_mean_difference(em.means_, complete_data.means_)
              for name, em in [("marginalized", marginalized), ("complete cases", complete_cases),
                               ("mean imputed", mean_imputed)]}
    # Seed 0: 0.044, 0.062 and 1.17.  Over seeds 0-29, marginalising was closer
    # to the complete-data fit than complete cases in 29 of 30 (mean 0.042 vs
    # 0.079; complete cases keep only ~51% of the rows) and than mean
    # imputation in all 30 (which distorts the clusters: mean error 1.19).
    assert errors["marginalized"] < errors["complete cases"] < errors["mean imputed"]


# ---------------------------------------------------------------- (2) monotone
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_log_likelihood_never_decreases_with_missing_values(covariance_type):
    _, with_missing = three_clusters(seed=1, n_samples=600)
    em = GaussianMixtureEM(4, covariance_type=covariance_type, missing="marginalize", tol=1e-10,
                           max_iter=300, random_state=1).fit(with_missing)
    steps = np.diff(em.lower_bounds_)
    assert em.n_iter_ > 10
    # EM is monotone in exact arithmetic; allow rounding of a sum of 600 terms.
    assert steps.min() > -1e-12 * abs(em.lower_bound_)


# ---------------------------------------------------------------- (3) E-step density
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_e_step_density_is_the_mixture_of_marginals_over_observed_coordinates(rng, covariance_type):
    state = random_state(rng, covariance_type)
    X = rng.normal(size=(7, 3))
    X[[0, 3], 1] = np.nan
    X[[1, 4], 0] = np.nan
    X[2, [0, 2]] = np.nan
    covariances = get_family(covariance_type).dense(state.covariances, 2, 3)
    log_norm, responsibilities = log_prob_and_responsibilities(
        X, state, covariance_type, missingness_patterns(X)
    )
    expected = mixture_log_density_by_hand(X, state.weights, state.means, covariances)
    np.testing.assert_allclose(log_norm, expected, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(responsibilities.sum(axis=1), 1.0, rtol=1e-12)


# ---------------------------------------------------------------- (4) expected statistics
@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_expected_statistics_of_one_row_match_a_hand_computation(rng, covariance_type):
    state = random_state(rng, covariance_type)
    row = np.array([[0.7, np.nan, -0.4]])
    observed, missing = [0, 2], [1]
    statistics = expected_sufficient_statistics(
        row, missingness_patterns(row), state, covariance_type
    )
    covariances = get_family(covariance_type).dense(state.covariances, 2, 3)
    joint = [np.log(w) + multivariate_normal(mu[observed], S[np.ix_(observed, observed)]).logpdf(row[0, observed])
             for w, mu, S in zip(state.weights, state.means, covariances)]
    responsibility = np.exp(joint[1] - logsumexp(joint))
    mu, S = state.means[1], covariances[1]
    S_mo, S_oo = S[np.ix_(missing, observed)], S[np.ix_(observed, observed)]
    completed = row[0].copy()
    completed[missing] = mu[missing] + S_mo @ np.linalg.solve(S_oo, row[0, observed] - mu[observed])
    conditional = np.zeros((3, 3))
    conditional[np.ix_(missing, missing)] = S[np.ix_(missing, missing)] - S_mo @ np.linalg.solve(S_oo, S_mo.T)
    second = responsibility * (np.outer(completed - mu, completed - mu) + conditional)
    if covariance_type == "diag":
        # Diagonal covariance: the missing value's conditional mean is mu_m and
        # its conditional variance the component's variance.
        assert completed[1] == mu[1] and conditional[1, 1] == S[1, 1]
        second = np.diag(second)
    np.testing.assert_allclose(statistics.counts[1], responsibility, rtol=1e-12)
    np.testing.assert_allclose(statistics.first_moments[1], responsibility * completed, rtol=1e-12)
    np.testing.assert_allclose(statistics.second_moments[1], second, rtol=1e-10, atol=1e-14)
    np.testing.assert_array_equal(statistics.shift, state.means)


# ---------------------------------------------------------------- (5) complete data
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("noise", [False, True])
def test_without_missing_values_both_settings_give_the_same_fit_bit_for_bit(covariance_type, noise):
    X, _ = three_clusters(seed=2, n_samples=400)
    fits = [GaussianMixtureEM(3, covariance_type=covariance_type, noise=noise, missing=missing,
                              random_state=0).fit(X) for missing in ("reject", "marginalize")]
    for attribute in ("weights_", "means_", "covariances_", "precisions_cholesky_", "lower_bounds_",
                      "noise_weight_"):
        np.testing.assert_array_equal(getattr(fits[0], attribute), getattr(fits[1], attribute))
    np.testing.assert_array_equal(fits[0].score_samples(X), fits[1].score_samples(X))
    np.testing.assert_array_equal(fits[0].predict_proba(X), fits[1].predict_proba(X))


# ---------------------------------------------------------------- (6) impute
def test_impute_keeps_observed_values_and_fills_conditional_expectations():
    X, _ = three_clusters(seed=3, n_samples=500)
    em = GaussianMixtureEM(2, random_state=0).fit(X[:, :2])
    rows = np.array([[0.3, np.nan], [np.nan, 3.1], [2.0, 1.0], [np.nan, -0.5]])
    imputed = em.impute(rows)
    observed = ~np.isnan(rows)
    np.testing.assert_array_equal(imputed[observed], rows[observed])
    for row, result in zip(rows, imputed):
        o, m = np.flatnonzero(~np.isnan(row)), np.flatnonzero(np.isnan(row))
        if m.size == 0:
            continue
        # p(k | x_o) from the 1-D marginals, then the regression of x_m on x_o.
        joint = np.array([np.log(w) + multivariate_normal(mu[o], S[np.ix_(o, o)]).logpdf(row[o])
                          for w, mu, S in zip(em.weights_, em.means_, em.covariances_)])
        probabilities = np.exp(joint - logsumexp(joint))
        conditional_means = [mu[m] + S[np.ix_(m, o)] @ np.linalg.solve(S[np.ix_(o, o)], row[o] - mu[o])
                             for mu, S in zip(em.means_, em.covariances_)]
        np.testing.assert_allclose(result[m], probabilities @ np.array(conditional_means), rtol=1e-10)


def test_impute_works_on_a_model_fitted_either_way_and_returns_an_array():
    X, with_missing = three_clusters(seed=4, n_samples=400)
    rejecting = GaussianMixtureEM(3, random_state=0).fit(X)
    marginalizing = GaussianMixtureEM(3, random_state=0, missing="marginalize").fit(with_missing)
    frame = pd.DataFrame(with_missing[:20], columns=["a", "b", "c"])
    for em in (rejecting, marginalizing):
        imputed = em.impute(with_missing[:20])
        assert isinstance(imputed, np.ndarray) and not np.isnan(imputed).any()
        np.testing.assert_array_equal(em.impute(X[:20]), X[:20])
    np.testing.assert_array_equal(GaussianMixtureEM(3, random_state=0).fit(
        pd.DataFrame(X, columns=["a", "b", "c"])).impute(frame), rejecting.impute(with_missing[:20]))


# ---------------------------------------------------------------- (7) errors
def test_nan_with_missing_reject_names_the_option():
    _, with_missing = three_clusters(seed=5, n_samples=50)
    with pytest.raises(DataValidationError, match=r"NaN value.*drop or impute them before fitting, "
                       r"e\.g\. df\.dropna\(\), or pass missing='marginalize' to fit with the "
                       r"missing values \(assumed missing at random\)\."):
        GaussianMixtureEM(2).fit(with_missing)
    fitted = GaussianMixtureEM(2, random_state=0).fit(np.nan_to_num(with_missing))
    with pytest.raises(DataValidationError, match="missing='marginalize'"):
        fitted.predict(with_missing)


def test_other_callers_keep_todays_nan_message():
    with pytest.raises(DataValidationError) as error:
        check_X(np.array([[1.0, np.nan], [2.0, 3.0]]))
    assert str(error.value) == ("column 'x1' has 1 NaN value (row 0); drop or impute them "
                                "before fitting, e.g. df.dropna().")


def test_rows_and_columns_with_every_value_missing_are_refused():
    X, _ = three_clusters(seed=6, n_samples=50)
    X[[4, 9], :] = np.nan
    em = GaussianMixtureEM(2, missing="marginalize")
    with pytest.raises(DataValidationError, match=r"no observed value in rows 4, 9 .*dropna\(how='all'\)"):
        em.fit(X)
    fitted = em.fit(np.delete(X, [4, 9], axis=0))
    for method in (fitted.predict, fitted.score_samples, fitted.impute):
        with pytest.raises(DataValidationError, match="no observed value in row 0"):
            method(np.full((1, 3), np.nan))
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [np.nan] * 3, "c": [0.0, 5.0, 1.0]})
    with pytest.raises(DataValidationError, match="column 'b' has no observed value.*Drop the column"):
        GaussianMixtureEM(1, missing="marginalize").fit(frame)


def test_constant_columns_and_infinities_are_still_refused_with_missing_values():
    frame = pd.DataFrame({"a": [1.0, np.nan, 1.0, 1.0], "b": [0.0, 2.0, np.nan, 5.0]})
    with pytest.raises(DataValidationError, match="column 'a' is constant"):
        GaussianMixtureEM(1, missing="marginalize").fit(frame)
    frame["a"] = [1.0, np.nan, np.inf, 2.0]
    with pytest.raises(DataValidationError, match="column 'a' has 1 inf value"):
        GaussianMixtureEM(1, missing="marginalize").fit(frame)


def test_an_invalid_missing_option_is_refused():
    with pytest.raises(ValueError, match=r"missing must be one of \('reject', 'marginalize'\), got 'drop'"):
        GaussianMixtureEM(1, missing="drop").fit(np.eye(3))


# ---------------------------------------------------------------- (8) prediction
def test_new_rows_with_missing_values_are_scored_by_their_observed_marginals():
    _, with_missing = three_clusters(seed=7, n_samples=600)
    em = fit(with_missing * [1.0, 10.0, 0.1] + [5.0, 0.0, -3.0], missing="marginalize")
    new = np.array([[0.0, np.nan, -3.0], [np.nan, 40.0, np.nan], [4.0, 35.0, -2.8], [np.nan, 5.0, -2.5]])
    expected = mixture_log_density_by_hand(new, em.weights_, em.means_, dense(em))
    # In data units: the Jacobian counts the observed coordinates only.
    np.testing.assert_allclose(em.score_samples(new), expected, rtol=1e-10)
    probabilities = em.predict_proba(new)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(em.predict(new), probabilities.argmax(axis=1))
    # The criteria use the observed-data log-likelihood.
    n_parameters = 3 * (1 + 3 + 6) - 1
    assert em.bic(new) == pytest.approx(-2 * expected.sum() + n_parameters * np.log(4), rel=1e-10)
    assert em.score(new) == pytest.approx(expected.mean(), rel=1e-10)


def test_a_complete_row_scores_the_same_beside_rows_with_missing_values():
    X, with_missing = three_clusters(seed=8, n_samples=300)
    em = fit(with_missing, missing="marginalize")
    mixed = np.vstack([X[:5], with_missing[:20]])
    np.testing.assert_allclose(em.score_samples(mixed)[:5], em.score_samples(X[:5]), rtol=1e-12)
    assert em.__sklearn_tags__().input_tags.allow_nan
    assert not GaussianMixtureEM().__sklearn_tags__().input_tags.allow_nan


# ---------------------------------------------------------------- (9) noise
def test_noise_component_is_marginalised_as_its_box():
    rng = np.random.default_rng(9)
    low, high = np.array([-20.0, -20.0]), np.array([28.0, 20.0])
    X = np.vstack([rng.normal([0.0, 0.0], 1.0, (225, 2)), rng.normal([8.0, 0.0], 1.0, (225, 2)),
                   rng.uniform(low, high, (50, 2))])
    with_missing = np.where(rng.random(X.shape) < 0.1, np.nan, X)
    with_missing[np.isnan(with_missing).all(axis=1), 0] = X[np.isnan(with_missing).all(axis=1), 0]
    em = GaussianMixtureEM(2, noise=True, missing="marginalize", n_init=3, tol=1e-10,
                           max_iter=500, random_state=0).fit(with_missing)
    assert np.diff(em.lower_bounds_).min() > -1e-12 * abs(em.lower_bound_)
    # Same tolerance as the complete-data noise tests (standard error ~0.07).
    np.testing.assert_allclose(em.means_[np.argsort(em.means_[:, 0])], [[0, 0], [8, 0]], atol=0.3)
    # The noise over a row's observed coordinates is 1 / V_obs, the product of
    # the training box's sides along them.
    box_low, box_high = np.nanmin(with_missing, axis=0), np.nanmax(with_missing, axis=0)
    new = np.array([[1.0, np.nan], [np.nan, 0.5], [7.0, -1.0]])
    noise = [em.noise_weight_ / np.prod((box_high - box_low)[~np.isnan(row)]) for row in new]
    gaussian = np.exp(mixture_log_density_by_hand(new, em.weights_ / em.weights_.sum(), em.means_, dense(em)))
    expected = np.log(noise + em.weights_.sum() * gaussian)
    np.testing.assert_allclose(em.score_samples(new), expected, rtol=1e-10)
    # Imputation: the noise's conditional mean is the box's centre.
    probabilities = em.predict_proba(new[:1])[0]
    conditional = [mu[1] + S[1, 0] / S[0, 0] * (1.0 - mu[0]) for mu, S in zip(em.means_, em.covariances_)]
    centre = 0.5 * (box_low[1] + box_high[1])
    assert em.impute(new[:1])[0, 1] == pytest.approx(probabilities @ np.append(conditional, centre), rel=1e-10)


def test_a_fit_with_missing_values_is_deterministic_under_random_state():
    _, with_missing = three_clusters(seed=10, n_samples=300)
    first, second = [GaussianMixtureEM(3, init_params="random", missing="marginalize",
                                       random_state=4).fit(with_missing) for _ in range(2)]
    np.testing.assert_array_equal(first.means_, second.means_)
    np.testing.assert_array_equal(first.lower_bounds_, second.lower_bounds_)


def test_the_scale_em_runs_on_comes_from_the_observed_values():
    _, with_missing = three_clusters(seed=11, n_samples=300)
    with_missing[0, 0] = 1e6  # a far value, outside its column's bulk
    centre, scale = standardization(with_missing, "feature")
    bulk = with_missing.copy()
    bulk[0, 0] = np.nan
    for j in range(3):
        column = bulk[~np.isnan(bulk[:, j]), j]
        assert centre[j] == pytest.approx(column.mean(), rel=1e-12)
        assert scale[j] == pytest.approx(column.std(), rel=1e-12)
