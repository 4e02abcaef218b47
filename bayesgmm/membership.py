"""Posterior uncertainty over cluster memberships.

For each point ``i`` and posterior draw ``s`` the responsibilities
``p_s[i, k] = P(z_i = k | x_i, theta_s)`` are computed from relabelled draws
and reduced on the fly (see :mod:`bayesgmm.likelihood`):

* ``prob``: posterior mean ``p[i, k] = mean_s p_s[i, k]`` with an
  equal-tailed interval over draws;
* ``entropy``: total uncertainty ``H(p[i])`` (nats);
* ``expected_entropy``: aleatoric part ``mean_s H(p_s[i])``, the doubt that
  remains even if the parameters were known (overlapping clusters);
* ``mutual_information``: epistemic part, ``entropy - expected_entropy`` >= 0,
  the doubt that comes from not knowing the parameters;
* ``label`` = argmax of ``p[i]`` and ``confidence`` = its max.

With a noise component (:mod:`bayesgmm.noise`) the responsibilities have a
last column for it: it counts in the entropies and the label (a point the
noise takes most is labelled :data:`~bayesgmm.noise.NOISE_LABEL`, -1), it
is never a cluster in co-clustering (two noise points do not "share a
component") and never an occupied component.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import xarray as xr

from bayesgmm.gaussian import normalize
from bayesgmm.likelihood import DEFAULT_BUDGET, iter_obs_chunks, log_joint
from bayesgmm.noise import NOISE_LABEL
from bayesgmm.parameters import ModelParameters, map_draws

__all__ = [
    "MembershipArrays",
    "membership_arrays",
    "coclustering_matrix",
    "draw_allocations",
    "mean_membership",
    "membership_dataset",
    "most_probable_labels",
    "labels_from",
    "entropy",
    "occupied_component_counts",
]


class MembershipArrays(NamedTuple):
    """Array form of the membership summary (see the module docstring).

    ``prob``, ``prob_lower`` and ``prob_upper`` have one column per
    component, plus the noise's last when the model has one.
    """

    prob: np.ndarray
    prob_lower: np.ndarray
    prob_upper: np.ndarray
    entropy: np.ndarray
    expected_entropy: np.ndarray
    mutual_information: np.ndarray
    label: np.ndarray
    confidence: np.ndarray


def entropy(probabilities: np.ndarray, axis: int = -1) -> np.ndarray:
    """Shannon entropy in nats, with ``0 log 0 = 0``."""
    logs = np.log(np.where(probabilities > 0, probabilities, 1.0))
    return -(probabilities * logs).sum(axis=axis)


def membership_arrays(
    X: np.ndarray,
    parameters: ModelParameters,
    interval: float = 0.94,
    budget: int = DEFAULT_BUDGET,
) -> MembershipArrays:
    """Streamed membership summaries.

    Parameters
    ----------
    X : ndarray of shape (n_obs, n_features)
    parameters : ModelParameters
        Relabelled draws, flattened to one leading axis.
    interval : float
        Mass of the equal-tailed interval of ``prob``.
    budget : int
        Floats per streamed block; memory is ``O(n_obs * K + budget)``.

    Returns
    -------
    MembershipArrays
    """
    n_obs = X.shape[0]
    n_columns = _n_columns(parameters)
    out = {
        name: np.empty((n_obs, n_columns))
        for name in ("prob", "prob_lower", "prob_upper")
    }
    expected_entropy = np.empty(n_obs)
    tails = [(1.0 - interval) / 2.0, (1.0 + interval) / 2.0]
    for rows, joint in iter_obs_chunks(X, parameters, budget):
        responsibilities = normalize(joint)[1]
        out["prob"][rows] = responsibilities.mean(axis=0)
        lower, upper = np.quantile(responsibilities, tails, axis=0)
        out["prob_lower"][rows], out["prob_upper"][rows] = lower, upper
        expected_entropy[rows] = entropy(responsibilities).mean(axis=0)
    total = entropy(out["prob"])
    # Jensen: total >= expected; clip rounding noise at the last ulp.
    mutual_information = np.maximum(total - expected_entropy, 0.0)
    return MembershipArrays(
        prob=out["prob"],
        prob_lower=out["prob_lower"],
        prob_upper=out["prob_upper"],
        entropy=total,
        expected_entropy=expected_entropy,
        mutual_information=mutual_information,
        label=labels_from(out["prob"], parameters),
        confidence=out["prob"].max(axis=1),
    )


def membership_dataset(arrays: MembershipArrays, n_components: int,
                       interval: float) -> xr.Dataset:
    """The membership summary as a Dataset (numpy or Dask arrays alike).

    Parameters
    ----------
    arrays : MembershipArrays
        With ``n_components`` columns, or one more for the noise.
    n_components : int
    interval : float
        Recorded in the attributes.

    Returns
    -------
    xarray.Dataset
        ``prob``, ``prob_lower``, ``prob_upper`` (obs, component); with a
        noise column also ``p_noise``, ``p_noise_lower``, ``p_noise_upper``
        (obs); ``entropy``, ``expected_entropy``, ``mutual_information``,
        ``label``, ``confidence`` (obs).
    """
    by_component = ("obs", "component")
    k = n_components
    probabilities = {name: getattr(arrays, name) for name in ("prob", "prob_lower", "prob_upper")}
    noise = {}
    if arrays.prob.shape[1] > k:
        noise = {name.replace("prob", "p_noise"): ("obs", values[:, k])
                 for name, values in probabilities.items()}
    per_point = ("entropy", "expected_entropy", "mutual_information", "label", "confidence")
    dataset = xr.Dataset(
        {**{name: (by_component, values[:, :k]) for name, values in probabilities.items()},
         **noise, **{name: ("obs", getattr(arrays, name)) for name in per_point}},
        coords={"obs": np.arange(arrays.prob.shape[0]), "component": np.arange(k)},
    )
    dataset.attrs["interval"] = interval
    return dataset


def _n_columns(parameters: ModelParameters) -> int:
    """Responsibility columns: the components, and the noise when there is one."""
    return parameters.weights.shape[-1] + (parameters.noise is not None)


def labels_from(prob: np.ndarray, parameters: ModelParameters) -> np.ndarray:
    """Most probable column of every row; the noise column becomes NOISE_LABEL.

    Parameters
    ----------
    prob : ndarray of shape (n_obs, n_columns)
        Membership probabilities, noise last when ``parameters`` has one.
    parameters : ModelParameters

    Returns
    -------
    ndarray of shape (n_obs,) of int
    """
    labels = prob.argmax(axis=1)
    if parameters.noise is not None:
        labels[labels == parameters.weights.shape[-1]] = NOISE_LABEL
    return labels


def mean_membership(
    X: np.ndarray, parameters: ModelParameters, budget: int = DEFAULT_BUDGET
) -> np.ndarray:
    """Posterior-mean responsibilities only, shape (n_obs, n_components [+ 1 for noise])."""
    out = np.empty((X.shape[0], _n_columns(parameters)))
    for rows, joint in iter_obs_chunks(X, parameters, budget):
        out[rows] = normalize(joint)[1].mean(axis=0)
    return out


def most_probable_labels(
    X: np.ndarray, parameters: ModelParameters, budget: int = DEFAULT_BUDGET
) -> np.ndarray:
    """Most probable column of the posterior-mean membership (NOISE_LABEL for noise)."""
    return labels_from(mean_membership(X, parameters, budget), parameters)


def coclustering_matrix(
    X: np.ndarray, parameters: ModelParameters, budget: int = DEFAULT_BUDGET
) -> np.ndarray:
    """Posterior probability that two points share a component.

    ``P(z_i = z_j) = mean_s sum_k p_s[i, k] p_s[j, k]`` for ``i != j`` (the
    allocations are independent given the parameters) and 1 on the diagonal.
    Accumulated over blocks of draws, so memory is ``O(n_obs^2 + budget)``.

    Parameters
    ----------
    X : ndarray of shape (n_obs, n_features)
    parameters : ModelParameters
        Draws flattened to one leading axis.
    budget : int

    Returns
    -------
    ndarray of shape (n_obs, n_obs)
        Symmetric, entries in [0, 1].
    """
    n_draws, n_components, n_features = parameters.means.shape
    n_obs = X.shape[0]
    draws_per_block = max(1, budget // max(1, n_obs * n_components * n_features))
    total = np.zeros((n_obs, n_obs))
    for start in range(0, n_draws, draws_per_block):
        block = map_draws(parameters, lambda a, draws=slice(start, start + draws_per_block):
                          a[draws])
        responsibilities = normalize(log_joint(X, block))[1][..., :n_components]
        total += np.einsum("sik,sjk->ij", responsibilities, responsibilities)
    total /= n_draws
    np.fill_diagonal(total, 1.0)
    return total


def draw_allocations(responsibilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One column index per row of ``responsibilities``, drawn with those probabilities.

    Parameters
    ----------
    responsibilities : ndarray of shape (..., n_columns)
        Each row sums to one (up to rounding).
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of int, shape (...)
    """
    cumulative = np.cumsum(responsibilities, axis=-1)
    uniform = rng.random(cumulative.shape[:-1] + (1,))
    return np.minimum((cumulative < uniform * cumulative[..., -1:]).sum(axis=-1),
                      responsibilities.shape[-1] - 1)


def occupied_component_counts(
    X: np.ndarray,
    parameters: ModelParameters,
    rng: np.random.Generator,
    budget: int = DEFAULT_BUDGET,
) -> np.ndarray:
    """Number of non-empty components per draw, allocations drawn at random.

    For draw ``s`` each ``z_i`` is drawn from ``p_s[i, :]``; the result is
    the number of distinct components among ``z_1 .. z_n``.

    Parameters
    ----------
    X : ndarray of shape (n_obs, n_features)
    parameters : ModelParameters
        Draws flattened to one leading axis.
    rng : numpy.random.Generator
    budget : int

    Returns
    -------
    ndarray of shape (n_draws,) of int
    """
    n_draws, n_components = parameters.weights.shape
    n_columns = _n_columns(parameters)
    sizes = np.zeros((n_draws, n_columns), dtype=np.int64)
    draw_index = np.arange(n_draws)[:, None]
    for _, joint in iter_obs_chunks(X, parameters, budget):
        allocation = draw_allocations(normalize(joint)[1], rng)
        np.add.at(sizes, (np.broadcast_to(draw_index, allocation.shape), allocation), 1)
    return (sizes[:, :n_components] > 0).sum(axis=1)
