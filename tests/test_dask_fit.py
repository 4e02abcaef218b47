"""The Bayesian fit of a Dask array: Laplace on every row, the rows left on the workers."""

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest

from bayesgmm import BayesianGMM
from bayesgmm.dask_fit import DaskDensity, _chunk_block
from bayesgmm.fitting import prepare_problem
from bayesgmm.laplace import ShardedDensity
from bayesgmm.priors import GMMPriors


def clusters(n_samples, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_samples, 2)) * [1.0, 0.5]
    X[rng.random(n_samples) < 0.4] += [5.0, 3.0]
    return X


@pytest.fixture(params=["synchronous", "distributed"])
def scheduler(request):
    """The synchronous scheduler, or two worker processes (the session's LocalCluster)."""
    if request.param == "distributed":
        request.getfixturevalue("dask_client")
        yield
        return
    with dask.config.set(scheduler="synchronous"):
        yield


def test_dask_density_is_the_in_memory_density():
    X = clusters(3000)
    weights = np.random.default_rng(1).uniform(0.5, 2.0, len(X))
    problem = prepare_problem(X, n_components=2, covariance_type="full", priors=GMMPriors(),
                              em_n_init=2, rng=np.random.default_rng(0), sample_weight=weights)
    chunks = da.from_array(X, chunks=(700, 2))
    chunk_weights = da.from_array(weights, chunks=(700,))
    blocks = [dask.delayed(_chunk_block)(c, w, problem.scaled.centre, problem.scaled.scale,
                                         problem.scaled.resolved, problem.layout)
              for c, w in zip(chunks.to_delayed().ravel(), chunk_weights.to_delayed().ravel())]
    density = DaskDensity(blocks, problem.pack_rows(np.arange(0)))
    memory = ShardedDensity([problem.block], problem.pack_rows(np.arange(0)))
    thetas = problem.start + np.random.default_rng(2).normal(scale=0.1, size=(3, problem.start.size))
    for theta in thetas:
        value, grad = density(theta)
        expected_value, expected_grad = memory(theta)
        assert value == pytest.approx(expected_value, rel=1e-12)
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(density.log_densities(thetas), memory.log_densities(thetas),
                               rtol=1e-12)
    memory.close()


def test_dask_fit_agrees_with_the_in_memory_laplace_fit(scheduler):
    # Up to SAMPLE_ROWS rows the sample is every row: the same problem, the same mode
    # and curvature; the draws differ only by the generator's stream (Monte Carlo error
    # of a mean over 2000 draws: 0.02 sd; tolerance 0.15 sd).
    X = clusters(4000, seed=3)
    fitted = [BayesianGMM(2, method="laplace", draws=2000, random_state=0, progressbar=False)
              .fit(data) for data in (da.from_array(X, chunks=(1000, 2)), X)]
    assert fitted[0].idata_.attrs["method"] == "laplace"
    assert fitted[0].idata_["laplace"].attrs["observed_rows"] == "sample"
    means = [f.idata_.posterior["means"] for f in fitted]
    sd = means[1].std(("chain", "draw")).values
    shift = np.abs(means[0].mean(("chain", "draw")).values
                   - means[1].mean(("chain", "draw")).values) / sd
    assert shift.max() < 0.15
    ratio = means[0].std(("chain", "draw")).values / sd
    assert 0.9 < ratio.min() and ratio.max() < 1.1


def test_dask_dataframe_keeps_the_column_names():
    X = pd.DataFrame(clusters(2000, seed=4), columns=["eruptions", "waiting"])
    model = BayesianGMM(2, draws=200, random_state=0, progressbar=False).fit(
        dd.from_pandas(X, npartitions=3))
    assert list(model.feature_names_in_) == ["eruptions", "waiting"]
    labels = model.predict(X)
    assert set(np.unique(labels)) == {0, 1}


@pytest.mark.parametrize("settings, message", [
    ({"method": "nuts"}, "method='laplace'"),
    ({"noise": True}, "noise=True"),
])
def test_dask_input_refuses_what_it_cannot_do(settings, message):
    X = da.from_array(clusters(500), chunks=(100, 2))
    with pytest.raises(ValueError, match=message):
        BayesianGMM(2, progressbar=False, **settings).fit(X)


def test_dask_input_with_nan_is_refused_with_the_fix():
    values = clusters(500)
    values[123, 1] = np.nan
    with pytest.raises(ValueError, match="drop or impute"):
        BayesianGMM(2, progressbar=False).fit(da.from_array(values, chunks=(100, 2)))


def test_dask_fit_predict_labels_every_row_lazily():
    X = clusters(3000)
    with dask.config.set(scheduler="synchronous"):
        chunks = da.from_array(X, chunks=(1000, 2))
        model = BayesianGMM(2, draws=200, random_state=0, progressbar=False)
        labels = model.fit_predict(chunks)
        assert isinstance(labels, da.Array) and labels.compute().shape == (3000,)
    # The fit keeps a sample of the rows, so labels_ would not be every row's.
    with pytest.raises(AttributeError, match="call predict"):
        _ = model.labels_
