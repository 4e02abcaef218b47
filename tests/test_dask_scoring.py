"""Scoring Dask input with a fitted BayesianGMM: lazy results equal to the numpy path.

Every test runs on a two-process ``dask.distributed`` cluster and on the
synchronous scheduler.  One short fit serves them all (these tests compare
two computations on the same draws, not convergence).
"""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bayesgmm import BayesianGMM
from bayesgmm.bayes import diagnostics_reported
from bayesgmm.datasets import load_faithful

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

EXACT = dict(rtol=1e-12, atol=1e-12)

# No warning filter: the cluster below starts and shuts down without a warning
# here (checked with -W error); any new one should be named when it appears.


@pytest.fixture(scope="module")
def model():
    with diagnostics_reported():
        return BayesianGMM(2, method="nuts", chains=2, draws=200, tune=200, random_state=0,
                           progressbar=False).fit(load_faithful())


@pytest.fixture
def client(dask_client):
    """The session's LocalCluster (tests/conftest.py)."""
    return dask_client


@pytest.fixture(params=["distributed", "sync"])
def scheduler(request, client):
    """Compute with the cluster, or with the synchronous scheduler."""
    if request.param == "distributed":
        return {}
    return {"scheduler": "sync"}


@pytest.fixture(scope="module")
def data():
    frame = load_faithful()
    return frame, da.from_array(frame.to_numpy(), chunks=(50, 2))


def test_predictions_are_lazy_and_equal_the_numpy_path(model, data, scheduler):
    frame, rows = data
    proba = model.predict_proba(rows)
    labels = model.predict(rows)
    density = model.score_samples(rows)
    for result in (proba, labels, density):
        assert isinstance(result, da.Array)
    np.testing.assert_allclose(proba.compute(**scheduler), model.predict_proba(frame), **EXACT)
    np.testing.assert_array_equal(labels.compute(**scheduler), model.predict(frame))
    assert labels.dtype == np.int64
    np.testing.assert_allclose(density.compute(**scheduler), model.score_samples(frame),
                               **EXACT)


def test_membership_summary_is_a_lazy_dataset_equal_to_the_numpy_one(model, data, scheduler):
    frame, rows = data
    lazy = model.membership_summary(rows)
    assert all(isinstance(variable.data, da.Array) for variable in lazy.data_vars.values())
    computed = lazy.compute(**scheduler)
    expected = model.membership_summary(frame)
    assert list(computed.data_vars) == list(expected.data_vars)
    for name in expected.data_vars:
        np.testing.assert_allclose(computed[name].values, expected[name].values, **EXACT)
        assert computed[name].dims == expected[name].dims
    np.testing.assert_array_equal(computed["label"].values, expected["label"].values)
    xr.testing.assert_equal(computed.coords.to_dataset(), expected.coords.to_dataset())


def test_anomaly_scores_and_thinning(model, data, scheduler):
    frame, rows = data
    lazy = model.anomaly_scores(rows, max_draws=100)
    assert isinstance(lazy["score"].data, da.Array)
    expected = model.anomaly_scores(frame, max_draws=100)
    for name in ("score", "lower", "upper"):
        np.testing.assert_allclose(lazy[name].compute(**scheduler).values,
                                   expected[name].values, **EXACT)


def test_a_dask_dataframe_is_matched_by_column_name(model, data, scheduler):
    frame, _ = data
    shuffled = frame[["waiting", "eruptions"]].assign(extra=1.0)
    partitions = dd.from_pandas(shuffled, npartitions=3)
    np.testing.assert_allclose(model.predict_proba(partitions).compute(**scheduler),
                               model.predict_proba(frame), **EXACT)
    with pytest.raises(ValueError, match="lacks the fitted columns"):
        model.predict(dd.from_pandas(frame[["waiting"]], npartitions=2))


def test_bad_rows_fail_when_computed_with_the_numpy_message(model, data, scheduler):
    frame, _ = data
    values = frame.to_numpy().copy()
    values[7, 0] = np.nan
    lazy = model.predict(da.from_array(values, chunks=(50, 2)))
    with pytest.raises(ValueError, match="missing"):
        lazy.compute(**scheduler)
    with pytest.raises(ValueError, match="columns"):
        model.predict(da.zeros((10, 3), chunks=(5, 3)))


def test_the_draws_enter_the_graph_once(model, data):
    _, rows = data
    graph = dict(model.predict_proba(rows).__dask_graph__())
    shared = [key for key in graph if str(key).startswith("ModelParameters-")]
    calls = [task for key, task in graph.items()
             if isinstance(key, tuple) and str(key[0]).startswith("call-")]
    # One node holds the draws; every chunk's task depends on it.
    assert len(shared) == 1 and len(calls) == rows.numblocks[0]
    assert all(shared[0] in task.dependencies for task in calls)


def test_importing_bayesgmm_does_not_import_dask():
    code = "import sys, bayesgmm; print(any(m.split('.')[0] == 'dask' for m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"


def test_numpy_and_pandas_input_are_unchanged(model):
    frame = load_faithful()
    assert isinstance(model.predict_proba(frame), np.ndarray)
    assert isinstance(model.membership_summary(frame)["prob"].data, np.ndarray)
    assert isinstance(model.predict(pd.DataFrame(frame)), np.ndarray)


def test_a_noise_model_gets_its_noise_columns_on_dask(client):
    frame = load_faithful()
    with diagnostics_reported():
        noisy = BayesianGMM(2, noise=True, method="nuts", chains=1, draws=100, tune=100,
                            random_state=0, progressbar=False).fit(frame)
    rows = da.from_array(frame.to_numpy(), chunks=(100, 2))
    lazy, expected = noisy.membership_summary(rows), noisy.membership_summary(frame)
    assert {"p_noise", "p_noise_lower", "p_noise_upper"} <= set(lazy.data_vars)
    computed = lazy.compute(scheduler="sync")
    for name in expected.data_vars:
        np.testing.assert_allclose(computed[name].values, expected[name].values, **EXACT)
    np.testing.assert_array_equal(noisy.predict(rows).compute(), noisy.predict(frame))
