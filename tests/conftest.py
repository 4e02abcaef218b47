"""Shared fixtures: one seeded generator per test, non-interactive plotting."""

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")


@pytest.fixture
def rng():
    """A fixed-seed generator, so every stochastic test is reproducible."""
    return np.random.default_rng(20261129)
