"""Every bad input gets a message naming the problem and the fix."""

import re

import numpy as np
import pandas as pd
import pytest

from bayesgmm._checks import DataValidationError, as_generator, check_X, match_features
from bayesgmm._workload import check_workload
from bayesgmm.em import GaussianMixtureEM


def test_dataframe_keeps_names_and_converts_to_float():
    frame = pd.DataFrame({"a": [1, 2, 3], "b": [0.5, 1.5, 2.0], "flag": [True, False, True]})
    checked = check_X(frame)
    assert checked.feature_names == ["a", "b", "flag"]
    assert checked.values.dtype == np.float64
    assert checked.values.flags.c_contiguous
    np.testing.assert_array_equal(checked.values[:, 2], [1.0, 0.0, 1.0])


def test_lists_and_numeric_object_arrays_are_accepted():
    checked = check_X([[1, 2], [3, 5]])
    assert checked.feature_names == ["x0", "x1"]
    as_objects = np.array([[1.0, 2.0], [3.0, 5.0]], dtype=object)
    np.testing.assert_array_equal(check_X(as_objects).values, [[1, 2], [3, 5]])


def test_nan_names_column_count_rows_and_fix():
    frame = pd.DataFrame({"eruptions": [1.0, 2.0, 3.0, 4.0], "waiting": [1.0, np.nan, 2.0, np.nan]})
    with pytest.raises(DataValidationError, match=r"column 'waiting' has 2 NaN values \(rows 1, 3\); drop or impute"):
        check_X(frame)


def test_inf_is_rejected_with_the_column():
    X = np.ones((4, 2)) * np.arange(4)[:, None]
    X[2, 0] = -np.inf
    with pytest.raises(DataValidationError, match=r"column 'x0' has 1 inf value \(row 2\)"):
        check_X(X)


def test_many_bad_rows_are_summarised():
    X = np.arange(40.0).reshape(20, 2)
    X[::2, 1] = np.nan
    with pytest.raises(DataValidationError, match=r"10 NaN values \(rows 0, 2, 4, 6, 8 and 5 more\)"):
        check_X(X)


def test_non_numeric_column_is_named():
    frame = pd.DataFrame({"size": [1.0, 2.0, 3.0], "species": ["setosa", "virginica", "setosa"]})
    with pytest.raises(DataValidationError, match=r"column 'species' is not numeric.*'setosa'.*encode it as numbers"):
        check_X(frame)


def test_numeric_strings_are_converted():
    frame = pd.DataFrame({"a": ["1.5", "2", "3"], "b": [1, 2, 4]})
    np.testing.assert_array_equal(check_X(frame).values[:, 0], [1.5, 2.0, 3.0])


@pytest.mark.parametrize("empty", [np.empty((0, 2)), pd.DataFrame({"a": []}), []])
def test_empty_input(empty):
    with pytest.raises(DataValidationError, match="empty|0 feature|1-D"):
        check_X(empty)


def test_no_columns():
    with pytest.raises(DataValidationError, match=r"0 feature\(s\)"):
        check_X(np.empty((5, 0)))


def test_one_dimensional_input_says_how_to_reshape():
    with pytest.raises(DataValidationError, match=r"reshape\(-1, 1\)"):
        check_X(np.arange(5.0))
    with pytest.raises(DataValidationError, match="to_frame"):
        check_X(pd.Series([1.0, 2.0], name="velocity"))


def test_fewer_rows_than_components():
    with pytest.raises(DataValidationError, match="n_samples = 2 and n_components = 3"):
        check_X(np.array([[0.0], [1.0]]), n_components=3)


def test_constant_column_is_rejected_with_the_fix():
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "unit": [7.0, 7.0, 7.0]})
    with pytest.raises(DataValidationError, match=r"column 'unit' is constant \(every value is 7\).*Drop the column"):
        check_X(frame)


def test_complex_data_is_rejected():
    with pytest.raises(DataValidationError, match="Complex data not supported"):
        check_X(np.ones((3, 1)) * 1j)


def test_estimator_uses_the_checks():
    frame = pd.DataFrame({"a": [1.0, np.nan, 3.0, 4.0], "b": [1.0, 2.0, 3.0, 5.0]})
    with pytest.raises(DataValidationError, match="column 'a' has 1 NaN value"):
        GaussianMixtureEM(2).fit(frame)
    fitted = GaussianMixtureEM(1).fit(frame.dropna())
    with pytest.raises(DataValidationError, match="column 'b' has 1 NaN value"):
        fitted.predict(pd.DataFrame({"a": [1.0], "b": [np.nan]}))
    with (
        pytest.warns(UserWarning, match="does not have valid feature names"),
        pytest.raises(ValueError, match="X has 1 features, but GaussianMixtureEM is expecting 2"),
    ):
        fitted.predict(np.ones((3, 1)))


@pytest.mark.parametrize(("column", "words"), [
    (pd.date_range("2024-01-01", periods=4, freq="h"), "dates and times"),
    (pd.date_range("2024-01-01", periods=4, freq="h", tz="Europe/Paris"), "dates and times"),
    (pd.to_timedelta([1, 2, 3, 5], unit="h"), "durations"),
    (pd.period_range("2024-01", periods=4, freq="M"), "periods"),
    (pd.Series(pd.date_range("2024-01-01", periods=4), dtype=object), "dates and times"),
])
def test_dates_times_and_durations_are_refused_not_read_as_epoch_numbers(column, words):
    frame = pd.DataFrame({"size": [1.0, 2.0, 3.0, 5.0], "when": column})
    with pytest.raises(DataValidationError,
                       match=rf"column 'when' holds {words}.*Convert it to a number yourself"):
        check_X(frame)


def test_numpy_datetime_arrays_are_refused_with_the_column():
    dates = np.array([["2024-01-01"], ["2024-01-02"]], dtype="datetime64[D]")
    with pytest.raises(DataValidationError, match="column 'x0' holds dates and times"):
        check_X(dates)


def test_duplicated_column_names_are_refused_wherever_data_come_in():
    from bayesgmm.bayes import BayesianGMM

    values = np.array([[0.0, 1.0, 2.0], [1.0, 0.5, 3.0], [2.0, 2.0, 1.0], [3.0, 1.5, 0.0]])
    duplicated = pd.DataFrame(values, columns=["a", "b", "a"])
    message = r"duplicated column names: 'a' \(2 times\).*Rename them"
    with pytest.raises(DataValidationError, match=message):
        check_X(duplicated)
    with pytest.raises(DataValidationError, match=message):
        GaussianMixtureEM(1).fit(duplicated)
    with pytest.raises(DataValidationError, match=message):
        BayesianGMM(1, progressbar=False).fit(duplicated)
    fitted = GaussianMixtureEM(1).fit(pd.DataFrame(values, columns=["a", "b", "c"]))
    with pytest.raises(DataValidationError, match=message):
        fitted.predict(duplicated.set_axis(["a", "b", "a"], axis=1))
    with pytest.raises(DataValidationError, match=message):
        match_features(duplicated, ["a", "b"])


@pytest.mark.parametrize("magnitude", [1e-300, 1.0, 1e200, 1.7e308])
def test_constancy_is_exact_at_any_magnitude(magnitude):
    frame = pd.DataFrame({"varies": [0.0, 1.0, 2.0], "flat": [magnitude] * 3})
    every_value = re.escape(f"every value is {magnitude:g}")
    with pytest.raises(DataValidationError, match=f"column 'flat' is constant \\({every_value}"):
        check_X(frame)


@pytest.mark.parametrize(("scale", "fix"), [(1e200, r"divide it by 1e\+201"),
                                            (1e-165, r"multiply it by 1e\+165")])
def test_magnitudes_float64_cannot_fit_are_refused_with_the_factor(scale, fix):
    frame = pd.DataFrame({"a": [1.0, 2.0, 4.0, 8.0], "b": [3.0, 1.0, 2.0, 0.5]}) * scale
    with pytest.raises(DataValidationError, match=rf"column 'a' .*Rescale the column, e.g. {fix}"):
        check_X(frame)
    # Prediction takes any finite point: far points keep defined densities.
    np.testing.assert_array_equal(check_X(frame, reject_constant=False).values, frame.to_numpy())


@pytest.mark.parametrize("random_state", ["abc", -1, 1.5, True, [1, 2]])
def test_random_state_errors_say_what_is_accepted(random_state):
    with pytest.raises(ValueError, match="random_state must be None, a non-negative int, "
                                         "a numpy Generator or RandomState, got"):
        as_generator(random_state)


def test_accepted_random_states_give_reproducible_generators():
    generator = np.random.default_rng(3)
    assert as_generator(generator) is generator
    assert as_generator(np.int64(7)).random() == as_generator(7).random()
    assert as_generator(np.random.RandomState(0)).random() == as_generator(
        np.random.RandomState(0)).random()
    assert isinstance(as_generator(None), np.random.Generator)


@pytest.mark.parametrize(("ks", "message"), [
    ("1-3", r"got '1-3'; pass ks=range\(1, 4\)"),
    (3, r"got 3; pass ks=range\(1, 4\) to compare K = 1, 2, 3, or \[3\]"),
    ([2.5], r"got \[2.5\] \(2.5 is not a positive integer\)"),
    ([0, 2], r"got \[0, 2\] \(0 is not a positive integer\)"),
    ([], r"got \[\] \(it is empty\)"),
])
def test_ks_must_be_an_iterable_of_positive_integers(ks, message):
    from bayesgmm.selection import compare_k

    with pytest.raises(ValueError, match=rf"ks must be an iterable of positive integers, {message}"):
        compare_k(np.arange(20.0).reshape(10, 2) ** 1.5, ks)


def test_ks_accepts_numpy_integers_and_whole_floats():
    from bayesgmm.selection import _sweep_settings

    ks, _, seeds = _sweep_settings(np.array([3, 1]), 1, 4000, {})
    assert ks == [1, 3] and len(seeds) == 3
    assert _sweep_settings([np.int64(2), 4.0], 1, 4000, {})[0] == [2, 4]


@pytest.mark.parametrize(("covariance_type", "fix"), [
    ("full", r"at most 3 \(e.g. sklearn.decomposition.PCA\), or use covariance_type='diag' "
             r"with at most 5 columns"),
    ("diag", r"at most 5 \(e.g. sklearn.decomposition.PCA\)\."),
])
def test_more_parameters_per_component_than_rows_is_refused_before_any_work(covariance_type,
                                                                            fix):
    with pytest.raises(ValueError, match=rf"X has 10 rows and 1000 columns.*{fix}"):
        check_workload(10, 1000, 2, draws=1000, chains=4, covariance_type=covariance_type)


def test_diag_is_suggested_when_it_fits_the_rows():
    with pytest.raises(ValueError, match=r"230 free parameters.*or use covariance_type='diag'\."):
        check_workload(100, 20, 3, draws=1000, chains=4, covariance_type="full")
    check_workload(100, 20, 3, draws=1000, chains=4, covariance_type="diag")


def test_draws_that_cannot_fit_in_memory_are_refused_with_the_largest_that_can():
    with pytest.raises(ValueError, match=r"draws=1000000000 with chains=4 .*GiB.*Lower draws to "
                                         r"at most \d+ per chain"):
        check_workload(272, 2, 2, draws=10**9, chains=4, covariance_type="full")
    check_workload(272, 2, 2, draws=1000, chains=4, covariance_type="full")
