"""Relabelling: draws permuted at random come back aligned."""

import itertools

import numpy as np
import pytest

from bayesgmm.datasets import make_mixture
from bayesgmm.parameters import ModelParameters, map_draws
from bayesgmm.relabel import (
    apply_permutations,
    hungarian_permutations,
    pivot_permutations,
    relabel_draws,
    relabel_parameters,
    stephens_permutations,
)

TRUE_MEANS = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])


def jittered_draws(rng, n_draws=400):
    """Draws around a known solution, each with a random label permutation."""
    n_components, n_features = TRUE_MEANS.shape
    means = TRUE_MEANS + 0.2 * rng.normal(size=(n_draws, n_components, n_features))
    scales = np.exp(0.05 * rng.normal(size=(n_draws, n_components, n_features)))
    weights = rng.dirichlet([50, 60, 70], size=n_draws)
    chol = np.broadcast_to(np.eye(n_features), (n_draws, n_components, n_features, n_features)).copy()
    aligned = ModelParameters(weights, means, scales, chol)
    shuffles = np.array([rng.permutation(n_components) for _ in range(n_draws)])
    return aligned, relabel_parameters(aligned, shuffles), shuffles


def pivot_of(aligned):
    return map_draws(aligned, lambda a: a[0])


def test_apply_permutations_reorders_component_axis():
    values = np.arange(6.0).reshape(2, 3)
    perms = np.array([[2, 0, 1], [0, 1, 2]])
    np.testing.assert_array_equal(apply_permutations(values, perms), [[2, 0, 1], [3, 4, 5]])


def test_hungarian_finds_the_cheapest_assignment():
    costs = np.array([[[5.0, 0.0], [0.0, 5.0]], [[0.0, 5.0], [5.0, 0.0]]])
    np.testing.assert_array_equal(hungarian_permutations(costs), [[1, 0], [0, 1]])


def test_pivot_relabelling_undoes_random_permutations(rng):
    aligned, shuffled, _ = jittered_draws(rng)
    result = pivot_permutations(shuffled, pivot_of(aligned))
    restored = relabel_parameters(shuffled, result.permutations)
    for restored_array, aligned_array in zip(restored, aligned):
        np.testing.assert_array_equal(restored_array, aligned_array)
    assert result.converged
    # About 5/6 of random permutations of 3 labels are not the identity.
    assert 0.7 * 400 < result.n_permuted < 0.95 * 400


def test_stephens_relabelling_undoes_random_permutations(rng):
    aligned, shuffled, _ = jittered_draws(rng)
    X, _ = make_mixture(300, [0.3, 0.3, 0.4], TRUE_MEANS, np.tile(np.eye(2), (3, 1, 1)), random_state=1)
    # Start Stephens from no information at all: identity permutations.
    initial = np.tile(np.arange(3), (400, 1))
    result = stephens_permutations(X, shuffled, initial, budget=50_000)
    restored = relabel_parameters(shuffled, result.permutations)
    # Stephens aligns to *some* labelling: compare up to one global permutation.
    order = [int(np.argmin(((restored.means.mean(0) - m) ** 2).sum(1))) for m in TRUE_MEANS]
    np.testing.assert_array_equal(restored.means[:, order], aligned.means)
    assert result.converged


def test_relabelled_posterior_means_match_truth(rng):
    aligned, shuffled, _ = jittered_draws(rng)
    rough_pivot = ModelParameters(
        np.full(3, 1 / 3), TRUE_MEANS + 1.0, np.ones((3, 2)), np.tile(np.eye(2), (3, 1, 1))
    )
    restored = relabel_parameters(shuffled, pivot_permutations(shuffled, rough_pivot).permutations)
    np.testing.assert_allclose(restored.means.mean(axis=0), TRUE_MEANS, atol=0.05)
    assert restored.weights.mean(axis=0) == pytest.approx([50 / 180, 60 / 180, 70 / 180], abs=0.01)


def mixture_data():
    X, _ = make_mixture(300, [0.3, 0.3, 0.4], TRUE_MEANS, np.tile(np.eye(2), (3, 1, 1)),
                        random_state=1)
    return X


def test_hungarian_with_groups_is_the_best_permutation_within_groups(rng):
    groups = np.array([1, 0, 1, 1, 0])
    costs = rng.exponential(size=(20, 5, 5))
    perms = hungarian_permutations(costs, groups)
    within = [p for p in itertools.permutations(range(5))
              if np.array_equal(groups[list(p)], groups)]
    for s in range(20):
        cost = [costs[s, list(p), range(5)].sum() for p in within]
        assert tuple(perms[s]) in within
        assert costs[s, perms[s], range(5)].sum() == pytest.approx(min(cost))


@pytest.mark.parametrize("method", ["pivot", "stephens"])
def test_groups_undo_swaps_within_a_group_but_never_across(rng, method):
    aligned, _, _ = jittered_draws(rng, n_draws=300)
    # Labels 0 and 1 share a prior; label 2 has its own.  Draws come aligned,
    # swapped within the group (0 <-> 1) or swapped across groups (1 <-> 2).
    groups = np.array([0, 0, 1])
    identity, within, across = [0, 1, 2], [1, 0, 2], [0, 2, 1]
    shuffles = np.array([identity, within, across] * 100)
    shuffled = relabel_parameters(aligned, shuffles)
    pivot = pivot_of(aligned)

    _, grouped = relabel_draws(mixture_data(), shuffled, pivot, method, groups)
    expected = np.array([identity, within, identity] * 100)
    np.testing.assert_array_equal(grouped.permutations, expected)

    # Without groups the same draws are all unswapped: the groups are what
    # kept the cross-group swaps in place.
    _, free = relabel_draws(mixture_data(), shuffled, pivot, method)
    np.testing.assert_array_equal(free.permutations, shuffles)


@pytest.mark.parametrize("method", ["pivot", "stephens"])
def test_one_group_is_the_same_as_no_groups(rng, method):
    aligned, shuffled, _ = jittered_draws(rng)
    rough_pivot = ModelParameters(
        np.full(3, 1 / 3), TRUE_MEANS + 1.0, np.ones((3, 2)), np.tile(np.eye(2), (3, 1, 1))
    )
    X = mixture_data()
    one_group, with_groups = relabel_draws(X, shuffled, rough_pivot, method, np.zeros(3, int))
    no_groups, without = relabel_draws(X, shuffled, rough_pivot, method)
    np.testing.assert_array_equal(with_groups.permutations, without.permutations)
    assert with_groups.summary == without.summary
    for a, b in zip(one_group, no_groups):
        np.testing.assert_array_equal(a, b)


def test_groups_of_the_wrong_shape_are_an_error(rng):
    with pytest.raises(ValueError, match="one entry per component"):
        hungarian_permutations(rng.exponential(size=(2, 3, 3)), np.zeros(2, int))
