"""Standardisation and the model's scale."""

from functools import reduce

import numpy as np
import pytest

from bayesgmm import GMMPriors
from bayesgmm.scaling import (
    add_bulk_moments,
    bulk_fences,
    bulk_moments,
    centre_and_scale,
    column_quartiles,
    model_scale,
    standardization,
)


def with_missing(values, rng, share=0.1):
    values = values.copy()
    values[rng.random(values.shape) < share] = np.nan
    values[np.isnan(values).all(axis=1), 0] = 0.5
    return values


def test_standardization_modes(rng):
    X = rng.normal(loc=[5.0, -2.0], scale=[3.0, 0.5], size=(500, 2))
    centre, scale = standardization(X, "feature")
    np.testing.assert_allclose(((X - centre) / scale).std(axis=0), 1.0)
    _, common = standardization(X, "common")
    assert common[0] == common[1] == np.sqrt(X.var(axis=0).mean())
    assert standardization(X[:1], "feature")[1].tolist() == [1.0, 1.0]


def test_model_scale_follows_the_standardize_setting(rng):
    X = rng.normal(loc=100.0, scale=10.0, size=(50, 2))
    standard = model_scale(X, GMMPriors(), 2)
    np.testing.assert_allclose(standard.values, (X - X.mean(0)) / X.std(0))
    np.testing.assert_allclose(standard.resolved.mean_loc, 0.0)
    raw = model_scale(X, GMMPriors(standardize=False), 2)
    np.testing.assert_array_equal(raw.values, X)
    np.testing.assert_array_equal(raw.centre, 0.0)
    np.testing.assert_allclose(raw.resolved.mean_loc, X.mean(0))


def test_weighted_quartiles_are_scale_free_and_close_to_the_repeated_rows(rng):
    values = with_missing(rng.normal(size=(200, 3)), rng)
    weights = rng.integers(0, 4, size=200).astype(float)
    quartiles = np.array(column_quartiles(values, weights))
    np.testing.assert_array_equal(np.array(column_quartiles(values, 0.01 * weights)), quartiles)
    # Within one gap between order statistics of the repeated rows' linear quartiles.
    repeated = np.repeat(values, weights.astype(int), axis=0)
    np.testing.assert_allclose(quartiles, np.nanpercentile(repeated, [25.0, 75.0], axis=0),
                               atol=0.1)


@pytest.mark.parametrize("scale_mode", ["feature", "common"])
def test_weighted_standardization_is_that_of_repeated_rows(rng, scale_mode):
    values = np.vstack([rng.normal(size=(60, 2)), [[1e4, -1e4]]])  # a far row outside the bulk
    weights = rng.integers(1, 5, size=61).astype(float)
    repeated = np.repeat(values, weights.astype(int), axis=0)
    np.testing.assert_allclose(standardization(values, scale_mode, weights),
                               standardization(repeated, scale_mode), rtol=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
def test_bulk_moments_of_blocks_combine_into_those_of_all_rows(rng, weighted):
    # A Dask fit's standardisation: fences once, moments per chunk, combined.
    values = rng.normal(size=(500, 3)) * [1.0, 1e-3, 1e3] + [0.0, 1e6, -5.0]
    values = with_missing(values, rng)
    values[7] = [1e9, -1e9, 1e12]  # outside every fence
    weights = rng.integers(0, 4, size=500).astype(float) if weighted else None

    def rows(start, stop):
        return values[start:stop], None if weights is None else weights[start:stop]

    fences = bulk_fences(values, weights)
    blocks = [bulk_moments(*rows(start, start + 70), fences, fences.middle)
              for start in range(0, 500, 70)]
    empty = bulk_moments(*rows(0, 0), fences, fences.middle)
    combined = reduce(add_bulk_moments, [empty, *blocks, empty])
    for scale_mode in ("feature", "common"):
        np.testing.assert_allclose(centre_and_scale(combined, scale_mode),
                                   standardization(values, scale_mode, weights), rtol=1e-12)
