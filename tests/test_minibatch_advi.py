"""Minibatch ADVI: an unbiased batch estimate of the full-data ELBO, and full-data ADVI at B = N."""

import numpy as np
import pytest

from bayesgmm._kernel import logp_and_grad, pack_block
from bayesgmm.advi import _load_rows, fit_advi
from bayesgmm.minibatch_advi import draw_batches, fit_minibatch_advi
from bayesgmm.parameters import Layout, ModelParameters, parameters_to_unconstrained, to_model_units
from bayesgmm.priors import GMMPriors
from bayesgmm.scaling import ModelData, model_scale
from bayesgmm.validation.scale_data import SCALE_TRUTH, synthetic_clusters

N_COMPONENTS = 4


def _scaled_clusters(n_samples: int, covariance_type: str) -> tuple[ModelData, np.ndarray]:
    """The scale issue's data on the model's scale, and the true mixture as a start."""
    X, _ = synthetic_clusters(n_samples, seed=3)
    scaled = model_scale(X, GMMPriors(), N_COMPONENTS, covariance_type)
    scales = np.sqrt(np.diagonal(SCALE_TRUTH.covariances, axis1=1, axis2=2))
    correlations = SCALE_TRUTH.covariances / (scales[:, :, None] * scales[:, None, :])
    if covariance_type == "diag":
        correlations = np.broadcast_to(np.eye(X.shape[1]), correlations.shape)
    truth = ModelParameters(SCALE_TRUTH.weights, SCALE_TRUTH.means, scales,
                            np.linalg.cholesky(correlations))
    start = parameters_to_unconstrained(to_model_units(truth, scaled.centre, scaled.scale),
                                        Layout(N_COMPONENTS, X.shape[1], covariance_type))
    return scaled, start


@pytest.fixture(scope="module")
def small_problem():
    return _scaled_clusters(600, "full")


def test_reproducible_under_a_seed(small_problem):
    scaled, start = small_problem
    fits = [
        fit_minibatch_advi(start, scaled.values, scaled.resolved, N_COMPONENTS, "full",
                           np.random.default_rng(7), batch_size=100, n_iter=700)
        for _ in range(2)
    ]
    for first, second in zip(fits[0], fits[1]):
        np.testing.assert_array_equal(first, second)
    other = fit_minibatch_advi(start, scaled.values, scaled.resolved, N_COMPONENTS, "full",
                               np.random.default_rng(8), batch_size=100, n_iter=700)
    assert not np.array_equal(fits[0].mean, other.mean)


@pytest.mark.parametrize("method", ["advi", "fullrank_advi"])
def test_the_whole_data_as_batch_is_full_data_advi(small_problem, method):
    # With batch_size = n_samples every row has weight 1 and the summed weights
    # are n_samples: the weighted kernel's arithmetic is the unweighted one
    # (times 1.0), so unwhitened, with fit_advi's schedule and the same
    # generator, the two fits agree to the last bit.  700 steps cross a noise
    # block boundary.
    scaled, start = small_problem
    n_iter = 700
    minibatch = fit_minibatch_advi(
        start, scaled.values, scaled.resolved, N_COMPONENTS, "full", np.random.default_rng(5),
        method=method, batch_size=scaled.values.shape[0], n_iter=n_iter, n_mc=4,
        learning_rate=0.02, decay_iterations=n_iter / 10, decay_exponent=0.5, initial_sd=0.05,
        whiten=False,
    )
    block = pack_block(scaled.values, scaled.resolved, N_COMPONENTS, "full")
    full = fit_advi(start, block, np.random.default_rng(5), method=method, n_iter=n_iter)
    for ours, theirs in zip(minibatch, full):
        np.testing.assert_array_equal(ours, theirs)


def test_batches_partitioning_the_rows_average_to_the_full_data_density(small_problem, rng):
    # The estimator is unbiased: the batch density is the prior plus N / B
    # times the batch's log-likelihood, so over batches that hold every row
    # once the average is the full-data density (and so its gradient).
    scaled, start = small_problem
    n_samples, batch_size = scaled.values.shape[0], 150
    block = pack_block(scaled.values[:batch_size], scaled.resolved, N_COMPONENTS, "full",
                       row_weights=np.full(batch_size, n_samples / batch_size))
    theta = start + 0.05 * rng.standard_normal(start.shape)
    values, gradients = [], []
    for rows in rng.permutation(n_samples).reshape(-1, batch_size):
        _load_rows(block, scaled.values, rows)
        logp, grad = logp_and_grad(theta, block)
        values.append(logp)
        gradients.append(grad)
    full = pack_block(scaled.values, scaled.resolved, N_COMPONENTS, "full")
    logp, grad = logp_and_grad(theta, full)
    assert np.mean(values) == pytest.approx(logp, rel=1e-12)
    np.testing.assert_allclose(np.mean(gradients, axis=0), grad, rtol=1e-9,
                               atol=1e-9 * np.abs(grad).max())


def test_batches_are_uniform_subsets_without_replacement(rng):
    n_steps, n_rows, batch_size = 4000, 50, 20
    batches = draw_batches(rng, n_steps, n_rows, batch_size)
    assert batches.shape == (n_steps, batch_size)
    assert all(len(set(row)) == batch_size for row in batches.tolist())
    assert batches.min() >= 0 and batches.max() < n_rows
    # Each row is in a batch with probability B / N = 0.4: its count over the
    # batches is Binomial(4000, 0.4), sd 31.  The chi-square statistic of the
    # 50 counts has 49 degrees of freedom (mean 49, sd 9.9); this seed gives a
    # typical value, the bound is 4 sd above the mean.
    counts = np.bincount(batches.ravel(), minlength=n_rows)
    expected = n_steps * batch_size / n_rows
    chi_square = np.sum((counts - expected) ** 2 / (expected * (1 - batch_size / n_rows)))
    assert chi_square < 49 + 4 * 9.9


def test_agrees_with_full_data_advi_on_20k_rows():
    # The reference is full-data ADVI in the same (whitened) coordinates: the
    # batch size n_samples evaluates every row at every step.  Over seeds 0-5
    # of the batches (100-105 of the reference) the largest mean difference was
    # 0.18-0.33 reference sds (rms 0.07-0.09) and the sd ratios stayed in
    # [0.87, 1.10], most of it the short runs' own Monte Carlo noise.  The
    # tolerances are the target of minibatch ADVI at scale: 0.5 sd and
    # [0.8, 1.25].
    scaled, start = _scaled_clusters(20_000, "full")
    full = fit_minibatch_advi(start, scaled.values, scaled.resolved, N_COMPONENTS, "full",
                              np.random.default_rng(100), batch_size=20_000, n_iter=1000,
                              n_mc=1)
    minibatch = fit_minibatch_advi(start, scaled.values, scaled.resolved, N_COMPONENTS, "full",
                                   np.random.default_rng(0), batch_size=1000, n_iter=2000)
    full_sd = np.sqrt(np.diag(full.chol @ full.chol.T))
    sd = np.sqrt(np.diag(minibatch.chol @ minibatch.chol.T))
    assert np.all(np.abs(minibatch.mean - full.mean) < 0.5 * full_sd)
    assert np.all((sd > 0.8 * full_sd) & (sd < 1.25 * full_sd))
    assert minibatch.n_skipped == 0


def test_missing_values_are_refused(small_problem):
    scaled, start = small_problem
    X = scaled.values.copy()
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match="missing values"):
        fit_minibatch_advi(start, X, scaled.resolved, N_COMPONENTS, "full",
                           np.random.default_rng(0))


@pytest.mark.parametrize("batch_size", [0, 601])
def test_batch_size_beyond_the_rows_is_refused(small_problem, batch_size):
    scaled, start = small_problem
    with pytest.raises(ValueError, match="batch_size must be between 1"):
        fit_minibatch_advi(start, scaled.values, scaled.resolved, N_COMPONENTS, "full",
                           np.random.default_rng(0), batch_size=batch_size)
