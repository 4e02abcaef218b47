"""float32 in, float32 out, computed in float64 (the decision in bayesgmm.em._dtype)."""

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs

from bayesgmm.em import GaussianMixtureEM

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]
ARRAYS = ["weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"]


@pytest.fixture(scope="module")
def float32_data():
    # Shifted by 1000: where float32 arithmetic loses most (module notes of _dtype).
    X, _ = make_blobs(2000, 3, centers=3, random_state=0)
    return (X + 1000.0).astype(np.float32)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_fit_is_the_float64_fit_rounded(float32_data, covariance_type):
    settings = dict(n_components=3, covariance_type=covariance_type, tol=1e-7,
                    max_iter=500, random_state=0)
    single = GaussianMixtureEM(**settings).fit(float32_data)
    double = GaussianMixtureEM(**settings).fit(float32_data.astype(np.float64))
    for name in ARRAYS:
        assert getattr(single, name).dtype == np.float32, name
        np.testing.assert_array_equal(
            getattr(single, name), getattr(double, name).astype(np.float32), err_msg=name
        )
    # Same iterations, same log-likelihood: EM itself ran in float64 both times.
    assert single.n_iter_ == double.n_iter_
    assert single.lower_bound_ == double.lower_bound_


def test_outputs_follow_numpy_promotion(float32_data):
    em = GaussianMixtureEM(3, random_state=0).fit(float32_data)
    as_double = float32_data.astype(np.float64)
    assert em.predict_proba(float32_data).dtype == np.float32
    assert em.score_samples(float32_data).dtype == np.float32
    assert em.sample(5)[0].dtype == np.float32
    assert em.predict_proba(as_double).dtype == np.float64
    assert em.score_samples(as_double).dtype == np.float64
    np.testing.assert_allclose(em.score_samples(float32_data), em.score_samples(as_double),
                               rtol=1e-6)
    assert isinstance(em.score(float32_data), float)
    # Labels come from the float64 responsibilities, whatever the output dtype.
    np.testing.assert_array_equal(em.predict(float32_data), em.predict(as_double))
    double_model = GaussianMixtureEM(3, random_state=0).fit(as_double)
    assert double_model.predict_proba(float32_data).dtype == np.float64


def test_float32_dataframe_and_integers(float32_data):
    frame = pd.DataFrame(float32_data, columns=["a", "b", "c"])
    assert GaussianMixtureEM(2, random_state=0).fit(frame).means_.dtype == np.float32
    mixed = frame.astype({"c": np.float64})
    assert GaussianMixtureEM(2, random_state=0).fit(mixed).means_.dtype == np.float64
    integers = np.round(float32_data * 100).astype(np.int64)
    assert GaussianMixtureEM(2, random_state=0).fit(integers).means_.dtype == np.float64


def test_float32_with_missing_values_imputes_in_float32(float32_data):
    X = float32_data.copy()
    X[::7, 1] = np.nan
    em = GaussianMixtureEM(3, missing="marginalize", random_state=0).fit(X)
    assert em.means_.dtype == np.float32
    imputed = em.impute(X)
    assert imputed.dtype == np.float32
    assert not np.isnan(imputed).any()
