"""Distributed EM on Dask: the in-memory fit, reached by per-chunk statistics."""

import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning

from bayesgmm.em import GaussianMixtureEM, _distributed
from bayesgmm.validation.scale_data import synthetic_clusters

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]
N_SAMPLES, CHUNK = 20_000, 5_000
FITTED = ["weights_", "means_", "covariances_", "precisions_cholesky_", "noise_weight_"]


@pytest.fixture
def synchronous():
    with dask.config.set(scheduler="synchronous"):
        yield


@pytest.fixture(scope="module")
def data():
    return synthetic_clusters(N_SAMPLES, seed=1)[0]


def dask_rows(X):
    return da.from_array(X, chunks=(CHUNK, -1))


def explicit_start(X, covariance_type):
    """Two EM steps from k-means: one start that both fits share."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = GaussianMixtureEM(4, covariance_type=covariance_type, max_iter=2,
                                  random_state=0).fit(X)
    return dict(weights_init=start.weights_, means_init=start.means_,
                precisions_init=start.precisions_)


def assert_same_fit(distributed_fit, memory_fit, rtol=1e-10, parameter_rtol=1e-8):
    np.testing.assert_allclose(distributed_fit.lower_bounds_, memory_fit.lower_bounds_, rtol=rtol)
    for name in FITTED:
        np.testing.assert_allclose(getattr(distributed_fit, name), getattr(memory_fit, name),
                                   rtol=parameter_rtol, atol=1e-10, err_msg=name)


# ---------------------------------------------------------------- on a LocalCluster
# ``dask_client`` (tests/conftest.py): one cluster for the session, shared with other files.
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_distributed_em_reaches_the_in_memory_log_likelihood(dask_client, data, covariance_type):
    # Same start, same standardisation (20k rows: the fences' sample is every
    # row), statistics added in another order: the traces agree to rounding
    # (observed: ~1e-15 relative).
    settings = dict(covariance_type=covariance_type, tol=1e-8, max_iter=200,
                    **explicit_start(data, covariance_type))
    memory = GaussianMixtureEM(4, **settings).fit(data)
    spread = GaussianMixtureEM(4, **settings).fit(dask_rows(data))
    assert spread.n_iter_ == memory.n_iter_ and spread.converged_
    assert_same_fit(spread, memory)


def test_random_start_on_dask_is_the_in_memory_start(dask_client, data):
    # Up to SAMPLE_ROWS rows the initialiser sees every row with the same generator.
    settings = dict(n_init=2, random_state=3, tol=1e-6)
    assert_same_fit(GaussianMixtureEM(4, **settings).fit(dask_rows(data)),
                    GaussianMixtureEM(4, **settings).fit(data))


def test_dask_weights_on_the_cluster(dask_client, data):
    weights = np.random.default_rng(2).integers(0, 4, N_SAMPLES).astype(float)
    settings = dict(random_state=0, tol=1e-6)
    spread = GaussianMixtureEM(4, **settings).fit(
        dask_rows(data), sample_weight=da.from_array(weights, chunks=3_000))
    assert_same_fit(spread, GaussianMixtureEM(4, **settings).fit(data, sample_weight=weights))


def test_predictions_are_lazy_chunk_by_chunk_and_match(dask_client, data):
    em = GaussianMixtureEM(4, random_state=0).fit(data)
    rows = dask_rows(data)
    log_density, proba, labels = em.score_samples(rows), em.predict_proba(rows), em.predict(rows)
    for lazy in (log_density, proba, labels):
        assert isinstance(lazy, da.Array) and lazy.numblocks[0] == N_SAMPLES // CHUNK
    np.testing.assert_allclose(log_density.compute(), em.score_samples(data), rtol=1e-14)
    np.testing.assert_allclose(proba.compute(), em.predict_proba(data), rtol=1e-12, atol=1e-300)
    np.testing.assert_array_equal(labels.compute(), em.predict(data))
    score = em.score(rows)
    assert isinstance(score, float) and score == pytest.approx(em.score(data), rel=1e-14)


# ---------------------------------------------------------------- synchronous scheduler
@pytest.mark.parametrize("settings", [
    {"noise": True},
    {"missing": "marginalize"},
    {"missing": "marginalize", "noise": True, "covariance_type": "diag"},
])
def test_noise_and_missing_values_on_dask(synchronous, data, settings):
    X = np.vstack([data[:4_000], np.random.default_rng(4).uniform(-10.0, 16.0, (200, 5))])
    if settings.get("missing"):
        X = X.copy()
        X[np.random.default_rng(5).random(X.shape) < 0.05] = np.nan
        X[np.isnan(X).all(axis=1), 0] = 0.0
    em = dict(random_state=0, tol=1e-6, **settings)
    memory = GaussianMixtureEM(4, **em).fit(X)
    spread = GaussianMixtureEM(4, **em).fit(da.from_array(X, chunks=(1_100, -1)))
    assert_same_fit(spread, memory)
    assert spread.noise_log_volume_ == memory.noise_log_volume_
    rows = da.from_array(X, chunks=1_000)
    np.testing.assert_allclose(spread.score_samples(rows).compute(), memory.score_samples(X),
                               rtol=1e-12)
    np.testing.assert_array_equal(spread.predict(rows).compute(), memory.predict(X))
    assert spread.predict_proba(rows).shape == memory.predict_proba(X).shape


def test_far_component_is_centred_on_dask_too(synchronous):
    # A tight component far from the origin: its second moments are redone
    # about its mean in a second pass over the chunks (tests/test_outliers.py).
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0.0, 1.0, (300, 2)), rng.normal(10.0, 1.0, (300, 2)),
                   1e6 + rng.normal(0.0, 1e-3, (40, 2))])
    em = dict(random_state=0, tol=1e-8, max_iter=300)
    memory = GaussianMixtureEM(3, **em).fit(X)
    spread = GaussianMixtureEM(3, **em).fit(da.from_array(X, chunks=(150, -1)))
    assert np.isclose(memory.means_, 1e6, rtol=1e-6).all(axis=1).any()
    # The far component's spread (1e-3 at 1e6) is ~1e9 times finer than its
    # distance: one ulp of difference in the standardisation's scale moves its
    # standardised rows by ~1e-7 of its sd, hence the looser parameter check.
    assert_same_fit(spread, memory, rtol=1e-9, parameter_rtol=1e-6)


def test_dataframe_input_keeps_the_feature_names(synchronous, data):
    frame = pd.DataFrame(data[:3_000], columns=list("abcde"))
    lazy = dd.from_pandas(frame, npartitions=3)
    spread = GaussianMixtureEM(3, random_state=0).fit(lazy)
    memory = GaussianMixtureEM(3, random_state=0).fit(frame)
    assert list(spread.feature_names_in_) == list("abcde")
    assert_same_fit(spread, memory, rtol=1e-9)
    weighted = GaussianMixtureEM(3, random_state=0).fit(lazy, sample_weight=lazy["a"].abs())
    assert_same_fit(weighted, GaussianMixtureEM(3, random_state=0).fit(
        frame, sample_weight=frame["a"].abs()), rtol=1e-9)
    # Columns are matched by name: an extra column and another order are fine.
    shuffled = lazy.assign(extra=1.0)[["extra", "e", "d", "c", "b", "a"]]
    np.testing.assert_array_equal(spread.predict(shuffled).compute(), memory.predict(frame))


def test_one_compute_per_iteration(synchronous, data):
    from dask.callbacks import Callback

    class CountComputes(Callback):
        count = 0

        def _start(self, dsk):
            CountComputes.count += 1

    with CountComputes():
        em = GaussianMixtureEM(4, random_state=0, tol=1e-6).fit(dask_rows(data))
    # Before EM: persist the rows, summarise and check them (with the start
    # sample), sum the bulk, persist the standardised rows.
    assert CountComputes.count == em.n_iter_ + 4


def test_a_larger_table_starts_from_a_sample_deterministically(synchronous, data, monkeypatch):
    monkeypatch.setattr(_distributed, "SAMPLE_ROWS", 2_000)
    rows = dask_rows(data)
    em = dict(random_state=7, tol=1e-9, max_iter=500)
    first = GaussianMixtureEM(4, **em).fit(rows)
    again = GaussianMixtureEM(4, **em).fit(rows)
    memory = GaussianMixtureEM(4, **em).fit(data)
    for name in FITTED:
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    # Another start (a sample), the same optimum: the fences from the sample's
    # quartiles class every value as the exact ones do on these data.
    assert first.lower_bound_ == pytest.approx(memory.lower_bound_, rel=1e-10)


# ---------------------------------------------------------------- errors
def test_missing_value_is_refused_naming_its_rows(synchronous, data):
    X = data[:2_000].copy()
    X[1_234, 2] = np.nan
    with pytest.raises(ValueError, match=r"rows 1000 to 1499 .*row 0 is row 1000.* NaN value "
                                         r"\(row 234\).*missing='marginalize'"):
        GaussianMixtureEM(2).fit(da.from_array(X, chunks=(500, -1)))


@pytest.mark.parametrize("weights, message", [
    (lambda n: np.r_[np.ones(n - 1), -1.0], "must be non-negative"),
    (lambda n: np.r_[np.ones(n - 1), np.nan], "must be finite"),
    (lambda n: np.zeros(n), "zero for every row"),
    (lambda n: np.ones(n + 1), "one entry per row of X"),
])
def test_bad_dask_weights_are_refused(synchronous, data, weights, message):
    X = data[:2_000]
    bad = da.from_array(weights(len(X)), chunks=500)
    with pytest.raises(ValueError, match=message):
        GaussianMixtureEM(2).fit(da.from_array(X, chunks=(500, -1)), sample_weight=bad)


def test_constant_column_is_refused(synchronous, data):
    X = data[:2_000].copy()
    X[:, 1] = 3.0
    with pytest.raises(ValueError, match="column 'x1' is constant"):
        GaussianMixtureEM(2).fit(da.from_array(X, chunks=(500, -1)))


def test_impute_of_dask_rows_goes_chunk_by_chunk(synchronous, data):
    X = data[:1_000].copy()
    X[::7, 3] = np.nan
    em = GaussianMixtureEM(3, random_state=0).fit(data[:1_000])
    rows = da.from_array(X, chunks=(250, -1))
    with pytest.raises(TypeError, match=r"X.map_blocks\(em.impute"):
        em.impute(rows)
    np.testing.assert_array_equal(rows.map_blocks(em.impute, dtype=float).compute(), em.impute(X))


def test_predicting_on_other_columns_is_refused(data):
    em = GaussianMixtureEM(2, random_state=0).fit(data[:500])
    with pytest.raises(ValueError, match="X has 4 features, but the model is expecting 5"):
        em.predict(da.from_array(data[:100, :4], chunks=50))


def test_dask_weights_need_dask_rows(data):
    with pytest.raises(TypeError, match="pass X as a Dask array"):
        GaussianMixtureEM(2).fit(data, sample_weight=da.ones(len(data), chunks=CHUNK))


def test_dask_is_not_imported_with_the_package():
    code = "import sys, bayesgmm, bayesgmm.em; print('dask' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"
