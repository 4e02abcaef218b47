"""Every bad input gets a message naming the problem and the fix."""

import numpy as np
import pandas as pd
import pytest

from bayesgmm._checks import DataValidationError, check_X
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
