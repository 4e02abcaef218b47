"""Standardisation and the model's scale."""

import numpy as np

from bayesgmm import GMMPriors
from bayesgmm.scaling import model_scale, standardization


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
