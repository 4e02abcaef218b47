"""The numpy core: layout, PyMC's transforms, flattening and the named parameter matrix."""

import numpy as np
import pytest

from bayesgmm.noise import NoiseComponent
from bayesgmm.parameters import (
    Layout,
    ModelParameters,
    flatten_draws,
    parameter_matrix,
    parameters_to_unconstrained,
    spiral_indices,
    to_data_units,
    to_model_units,
    unconstrained_to_parameters,
    unflatten_draws,
)


def random_parameters(rng, batch, n_components=3, n_features=2):
    layout = Layout(n_components, n_features, "full")
    return unconstrained_to_parameters(rng.normal(size=batch + (layout.size,)), layout)


def test_layout_slices_tile_the_vector_in_pymc_order():
    layout = Layout(3, 4, "full")
    slices = layout.slices
    assert list(slices) == ["weights", "means", "scales", "correlations"]
    assert slices["weights"] == slice(0, 2)
    assert slices["correlations"].stop == layout.size == 2 + 12 + 12 + 3 * 6
    assert Layout(3, 4, "diag").n_triangle == 0
    assert Layout(1, 1, "full").size == 2


@pytest.mark.parametrize("n_features", [1, 2, 3, 4, 5])
def test_spiral_indices_cover_the_strict_lower_triangle(n_features):
    rows, cols = spiral_indices(n_features)
    assert np.all(rows > cols)
    assert len(set(zip(rows.tolist(), cols.tolist()))) == n_features * (n_features - 1) // 2


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_transforms_round_trip_batched(rng, covariance_type):
    layout = Layout(3, 3, covariance_type)
    theta = rng.normal(size=(4, 5, layout.size))
    parameters = unconstrained_to_parameters(theta, layout)
    assert parameters.means.shape == (4, 5, 3, 3)
    np.testing.assert_allclose(parameters.weights.sum(axis=-1), 1.0)
    np.testing.assert_allclose(np.diagonal(parameters.correlations, axis1=-2, axis2=-1), 1.0)
    np.testing.assert_allclose(parameters_to_unconstrained(parameters, layout), theta, atol=1e-12)


def test_flatten_and_unflatten_are_inverse(rng):
    parameters = random_parameters(rng, (4, 6))
    flat = flatten_draws(parameters)
    assert flat.weights.shape == (24, 3)
    np.testing.assert_array_equal(flat.means[6], parameters.means[1, 0])
    for a, b in zip(unflatten_draws(flat, 4), parameters, strict=True):
        np.testing.assert_array_equal(a, b)


def test_unit_maps_are_inverse_and_move_only_location_and_scale(rng):
    parameters = random_parameters(rng, (7,))
    centre, scale = np.array([100.0, -3.0]), np.array([20.0, 0.01])
    data = to_data_units(parameters, centre, scale)
    np.testing.assert_allclose(data.covariances,
                               parameters.covariances * np.outer(scale, scale))
    np.testing.assert_array_equal(data.correlation_cholesky, parameters.correlation_cholesky)
    for a, b in zip(to_model_units(data, centre, scale)[:4], parameters[:4], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_unit_maps_move_the_noise_density_by_the_jacobian(rng):
    parameters = random_parameters(rng, (7,))._replace(
        noise=NoiseComponent(rng.uniform(size=7), -2.0))
    centre, scale = np.array([100.0, -3.0]), np.array([20.0, 0.01])
    data = to_data_units(parameters, centre, scale)
    # V in data units is V * prod(scale): log(1 / V) falls by sum(log scale).
    assert data.noise.log_density == pytest.approx(-2.0 - np.log(scale).sum())
    np.testing.assert_array_equal(data.noise.weight, parameters.noise.weight)
    back = to_model_units(data, centre, scale)
    assert back.noise.log_density == pytest.approx(-2.0, abs=1e-12)


def test_precision_cholesky_inverts_the_covariance(rng):
    parameters = random_parameters(rng, (5,))
    upper = parameters.precisions_cholesky
    assert np.allclose(np.tril(upper, k=-1), 0.0)
    np.testing.assert_allclose(upper @ np.swapaxes(upper, -1, -2) @ parameters.covariances,
                               np.broadcast_to(np.eye(2), (5, 3, 2, 2)), atol=1e-10)


def test_parameter_matrix_names_every_free_parameter_once(rng):
    parameters = random_parameters(rng, (2, 10), n_components=2, n_features=3)
    names, matrix = parameter_matrix(parameters, "full", ["a", "b", "c"])
    # Per component: 1 weight + 3 means + 3 scales + 3 correlations.
    assert matrix.shape == (2, 10, 20) and len(set(names)) == 20
    assert names[:8] == ["weights[0]", "means[0, a]", "means[0, b]", "means[0, c]",
                         "scales[0, a]", "scales[0, b]", "scales[0, c]", "correlations[0, b, a]"]
    column = names.index("correlations[1, c, b]")
    np.testing.assert_array_equal(matrix[..., column], parameters.correlations[..., 1, 2, 1])
    np.testing.assert_array_equal(matrix[..., names.index("scales[1, a]")],
                                  parameters.scales[..., 1, 0])


def test_parameter_matrix_leaves_out_what_is_fixed(rng):
    one = random_parameters(rng, (3,), n_components=1, n_features=2)
    names, _ = parameter_matrix(one, "diag")
    assert names == ["means[0, 0]", "means[0, 1]", "scales[0, 0]", "scales[0, 1]"]
    identity = ModelParameters(np.ones((3, 1)), np.zeros((3, 1, 1)), np.ones((3, 1, 1)),
                               np.ones((3, 1, 1, 1)))
    assert parameter_matrix(identity, "full")[0] == ["means[0, 0]", "scales[0, 0]"]


def test_a_weight_that_underflowed_to_zero_keeps_a_finite_logit():
    layout = Layout(3, 1, "diag")
    parameters = ModelParameters(np.array([0.6, 0.4, 0.0]), np.zeros((3, 1)), np.ones((3, 1)),
                                 np.ones((3, 1, 1)))
    theta = parameters_to_unconstrained(parameters, layout)
    assert np.all(np.isfinite(theta))
    back = unconstrained_to_parameters(theta, layout)
    np.testing.assert_allclose(back.weights, parameters.weights, atol=1e-300)
