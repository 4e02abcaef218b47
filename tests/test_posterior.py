"""DataTree assembly and the way back to arrays."""

import numpy as np

from bayesgmm.noise import NoiseComponent
from bayesgmm.parameters import Layout, flatten_draws, unconstrained_to_parameters
from bayesgmm.posterior import (
    OBSERVED,
    _posterior_dataset,
    build_datatree,
    parameters_from_posterior,
)


def tree_and_parameters(rng, chains=2, draws=5, n_components=3, n_features=2):
    layout = Layout(n_components, n_features, "full")
    parameters = unconstrained_to_parameters(
        rng.normal(size=(chains, draws, layout.size)), layout
    )
    import xarray as xr

    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((chains, draws), bool))})
    tree = build_datatree(
        parameters, sample_stats=stats,
        log_likelihood=rng.normal(size=(chains, draws, 11)),
        observed=rng.normal(size=(11, n_features)), feature_names=["u", "v"],
        attrs={"note": "test"},
    )
    return tree, parameters


def test_groups_coordinates_and_attributes(rng):
    tree, _ = tree_and_parameters(rng)
    assert {"posterior", "sample_stats", "log_likelihood", "observed_data"} <= set(tree.children)
    assert tree.posterior["means"].dims == ("chain", "draw", "component", "feature")
    assert list(tree.posterior["feature"].values) == ["u", "v"]
    assert tree.log_likelihood[OBSERVED].dims == ("chain", "draw", "obs")
    assert tree.attrs["note"] == "test" and "bayesgmm_format_version" in tree.attrs


def test_parameters_come_back_from_the_posterior_group(rng):
    tree, parameters = tree_and_parameters(rng)
    posterior = tree.posterior.to_dataset()
    kept = parameters_from_posterior(posterior, flatten=False)
    for a, b in zip(kept[:4], parameters[:4], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    assert kept.noise is None
    flat = parameters_from_posterior(posterior)
    for a, b in zip(flat[:4], flatten_draws(parameters)[:4], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_the_noise_component_comes_back_from_the_posterior_group(rng):
    _, parameters = tree_and_parameters(rng)
    chains, draws = parameters.weights.shape[:2]
    noise_weight = rng.uniform(0.0, 0.2, size=(chains, draws))
    noisy = parameters._replace(weights=parameters.weights * (1 - noise_weight[..., None]),
                                noise=NoiseComponent(noise_weight, -7.5))
    posterior = _posterior_dataset(noisy, {"feature": ["u", "v"], "feature2": ["u", "v"]})
    kept = parameters_from_posterior(posterior, flatten=False)
    np.testing.assert_array_equal(kept.noise.weight, noise_weight)
    assert kept.noise.log_density == -7.5


def test_cholesky_of_a_singular_correlation_keeps_a_unit_diagonal():
    from bayesgmm.posterior import correlation_cholesky

    correlations = np.array([[[1.0, 0.3], [0.3, 1.0]], [[1.0, 1.0], [1.0, 1.0]]])
    chol = correlation_cholesky(correlations)
    np.testing.assert_allclose(np.diagonal(chol @ np.swapaxes(chol, -1, -2), axis1=-2, axis2=-1), 1.0)
    np.testing.assert_allclose(chol @ np.swapaxes(chol, -1, -2), correlations, atol=1e-5)
