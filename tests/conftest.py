"""Shared fixtures: one seeded generator per test, non-interactive plotting."""

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")


@pytest.fixture
def rng():
    """A fixed-seed generator, so every stochastic test is reproducible."""
    return np.random.default_rng(20261129)


@pytest.fixture(scope="session")
def dask_client():
    """A LocalCluster of two single-threaded worker processes, shared by the Dask tests.

    The scheduler serves its HTTP routes even without a dashboard, on 8787 by
    default: a random port keeps it from clashing with another cluster here.
    """
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None,
                                       scheduler_kwargs={"dashboard_address": ":0"})
    with distributed.Client(cluster) as client:
        yield client
    cluster.close()
