"""Resolve label switching in posterior draws of a mixture.

Array functions first (draws flattened to one axis); :func:`relabel_parameters`
applies the result to every component-indexed parameter.

Two algorithms:

* ``"pivot"`` (ECR-style, Papastamoulis & Iliopoulos 2010, with a parameter
  pivot): each draw's components are matched to the pivot's by the Hungarian
  algorithm on standardised squared distances between means; the pivot is
  then replaced by the relabelled posterior mean and the matching repeated
  until no permutation changes.
* ``"stephens"`` (Stephens 2000, KL algorithm): each draw is permuted to
  minimise ``KL(p_s || Q)``, the divergence of the current mean
  responsibilities ``Q`` from its own; ``Q`` is re-estimated and the step
  repeated until stable.  Started from the pivot solution.

A permutation array ``perms`` has shape ``(n_draws, n_components)``;
``perms[s, k]`` is the draw component that becomes label ``k``.

Labels are exchangeable only when their priors are.  Every function takes an
optional ``groups`` array of shape ``(n_components,)``: components may only be
permuted among those with the same group id (e.g. equal Dirichlet
concentrations); ``None`` puts all components in one group.
"""

from __future__ import annotations

import json
from typing import NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment

from bayesgmm._progress import progress
from bayesgmm.gaussian import normalize
from bayesgmm.likelihood import DEFAULT_BUDGET, iter_obs_chunks
from bayesgmm.parameters import ModelParameters

__all__ = [
    "RELABEL_METHODS",
    "Relabelling",
    "RelabellingSummary",
    "hungarian_permutations",
    "apply_permutations",
    "pivot_permutations",
    "stephens_permutations",
    "relabel_parameters",
    "relabel_draws",
]

RELABEL_METHODS = ("pivot", "stephens")
_MAX_ITER = 50


class Relabelling(NamedTuple):
    """Outcome of a relabelling run.

    Attributes
    ----------
    permutations : ndarray of shape (n_draws, n_components)
    n_permuted : int
        Draws whose labels changed (permutation not the identity).
    n_iter : int
        Iterations until the permutations stopped changing.
    converged : bool
    method : str
    """

    permutations: np.ndarray
    n_permuted: int
    n_iter: int
    converged: bool
    method: str

    @property
    def summary(self) -> RelabellingSummary:
        """The run without its permutations (what a fitted model keeps)."""
        return RelabellingSummary(self.method, self.n_permuted, int(self.permutations.shape[0]),
                                  self.n_iter, self.converged)


class RelabellingSummary(NamedTuple):
    """What a fitted model records of its relabelling run.

    Attributes
    ----------
    method : str
    n_permuted : int
        Draws whose labels changed.
    n_draws : int
    n_iter : int
    converged : bool
    """

    method: str
    n_permuted: int
    n_draws: int
    n_iter: int
    converged: bool

    def to_json(self) -> str:
        """JSON text for the model file's attributes."""
        return json.dumps(self._asdict())

    @classmethod
    def from_json(cls, text: str) -> RelabellingSummary:
        """Inverse of :meth:`to_json`."""
        data = json.loads(text)
        return cls(str(data["method"]), int(data["n_permuted"]), int(data["n_draws"]),
                   int(data["n_iter"]), bool(data["converged"]))


def _group_members(groups: np.ndarray | None, n_components: int) -> list[np.ndarray]:
    """Component indices of each group, in increasing order."""
    if groups is None:
        return [np.arange(n_components)]
    groups = np.asarray(groups)
    if groups.shape != (n_components,):
        raise ValueError(f"groups must have one entry per component ({n_components}), "
                         f"got shape {groups.shape}.")
    return [np.flatnonzero(groups == g) for g in np.unique(groups)]


def hungarian_permutations(costs: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """Optimal assignment for every draw, permuting only within groups.

    Each group's sub-assignment is solved on its own, so the result is a
    permutation that maps every group onto itself.

    Parameters
    ----------
    costs : ndarray of shape (n_draws, n_components, n_components)
        ``costs[s, j, k]``: cost of giving draw component ``j`` label ``k``.
    groups : ndarray of shape (n_components,), optional
        Group id of every component; ``None`` is one group.

    Returns
    -------
    ndarray of shape (n_draws, n_components)
    """
    n_draws, n_components, _ = costs.shape
    perms = np.empty((n_draws, n_components), dtype=np.intp)
    for members in _group_members(groups, n_components):
        if members.size == 1:
            perms[:, members] = members
            continue
        block = costs[:, members[:, None], members[None, :]]
        for s in range(n_draws):
            rows, cols = linear_sum_assignment(block[s])
            perms[s, members[cols]] = members[rows]
    return perms


def apply_permutations(values: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """Reorder axis 1 (components) of ``values`` draw by draw.

    Parameters
    ----------
    values : ndarray of shape (n_draws, n_components, ...)
    perms : ndarray of shape (n_draws, n_components)

    Returns
    -------
    ndarray of the same shape as ``values``
    """
    index = perms.reshape(perms.shape + (1,) * (values.ndim - 2))
    return np.take_along_axis(values, index, axis=1)


def relabel_parameters(parameters: ModelParameters, perms: np.ndarray) -> ModelParameters:
    """Apply permutations to every component-indexed parameter (never the noise)."""
    return ModelParameters(*(apply_permutations(a, perms) for a in parameters[:4]),
                           parameters.noise)


def _pivot_costs(means, pivot_means, pivot_scales):
    difference = (means[:, :, None, :] - pivot_means[None, None, :, :]) / pivot_scales
    return np.einsum("sjkd,sjkd->sjk", difference, difference)


def pivot_permutations(
    parameters: ModelParameters,
    pivot: ModelParameters,
    max_iter: int = _MAX_ITER,
    groups: np.ndarray | None = None,
) -> Relabelling:
    """Iterated pivot + Hungarian relabelling on component means.

    Parameters
    ----------
    parameters : ModelParameters
        Draws flattened to one leading axis.
    pivot : ModelParameters
        One parameter set (e.g. the EM solution) giving the target labelling.
    max_iter : int
    groups : ndarray of shape (n_components,), optional
        Components are permuted only within a group (see the module docstring).

    Returns
    -------
    Relabelling
    """
    pivot_means, pivot_scales = pivot.means, pivot.scales
    previous = None
    for iteration in range(1, max_iter + 1):
        perms = hungarian_permutations(
            _pivot_costs(parameters.means, pivot_means, pivot_scales), groups
        )
        if previous is not None and np.array_equal(perms, previous):
            return _result(perms, iteration, True, "pivot")
        previous = perms
        pivot_means = apply_permutations(parameters.means, perms).mean(axis=0)
        pivot_scales = np.exp(np.log(apply_permutations(parameters.scales, perms)).mean(axis=0))
    return _result(previous, max_iter, False, "pivot")


def stephens_permutations(
    X: np.ndarray,
    parameters: ModelParameters,
    initial: np.ndarray,
    max_iter: int = _MAX_ITER,
    budget: int = DEFAULT_BUDGET,
    groups: np.ndarray | None = None,
    progressbar: bool = False,
) -> Relabelling:
    """Stephens' KL relabelling on responsibilities, streamed over observations.

    Minimises ``sum_s sum_i KL(p_s[i, perm_s] || Q[i])`` over the permutations
    and ``Q``: ``Q`` is the mean of the permuted responsibilities (step 1),
    and each draw's permutation minimises ``-sum_i sum_k p_s[i, perm_s(k)]
    log Q[i, k]`` (step 2, Hungarian).  Both steps lower the same objective,
    so the loop stops when the permutations repeat.

    Parameters
    ----------
    X : ndarray of shape (n_obs, n_features)
    parameters : ModelParameters
        Draws flattened to one leading axis.
    initial : ndarray of shape (n_draws, n_components)
        Starting permutations (e.g. from :func:`pivot_permutations`); they
        must respect ``groups``.
    max_iter : int
    budget : int
        Floats per streamed block (see :mod:`bayesgmm.likelihood`).
    groups : ndarray of shape (n_components,), optional
        Components are permuted only within a group (see the module docstring).
    progressbar : bool, default=False
        Show the iterations done and, under them, the rows scored in the
        current one (the iterations until convergence are not known ahead).

    Returns
    -------
    Relabelling
    """
    perms = initial
    n_draws, n_components = perms.shape
    with progress(None, f"Stephens relabelling, {n_draws} draws: iterations",
                  progressbar) as iterations:
        for iteration in range(1, max_iter + 1):
            with progress(X.shape[0], f"  iteration {iteration}: rows",
                          progressbar) as rows:
                costs = _stephens_costs(X, parameters, perms, budget, rows.advance)
            iterations.advance()
            new_perms = hungarian_permutations(costs, groups)
            if np.array_equal(new_perms, perms):
                return _result(perms, iteration, True, "stephens")
            perms = new_perms
    return _result(perms, max_iter, False, "stephens")


def _stephens_costs(X, parameters, perms, budget, rows_done) -> np.ndarray:
    """Step 2's costs ``-sum_i p_s[i, j] log Q[i, k]`` for every draw, in one pass over ``X``.

    ``Q[i]`` depends only on point ``i``, so ``Q`` and the costs it implies
    come out of the same pass: one evaluation of the responsibilities per
    iteration.  ``rows_done(n)`` is called after every block of ``n`` rows.
    """
    n_draws, n_components = perms.shape
    tiny = np.finfo(np.float64).tiny
    costs = np.zeros((n_draws, n_components, n_components))
    for rows, joint in iter_obs_chunks(X, parameters, budget):
        # A noise component keeps its label: its column normalises the
        # responsibilities but is never permuted or matched.
        resp = normalize(joint)[1][..., :n_components]
        mean_resp = apply_permutations(resp.swapaxes(1, 2), perms).mean(axis=0).T
        costs -= np.einsum("sij,ik->sjk", resp, np.log(np.maximum(mean_resp, tiny)))
        rows_done(rows.stop - rows.start)
    return costs


def relabel_draws(
    X: np.ndarray,
    parameters: ModelParameters,
    pivot: ModelParameters,
    method: str = "stephens",
    groups: np.ndarray | None = None,
    progressbar: bool = False,
) -> tuple[ModelParameters, Relabelling]:
    """Relabel draws: pivot + Hungarian, then (``"stephens"``) Stephens' KL algorithm.

    Parameters
    ----------
    X : ndarray of shape (n_obs, n_features)
        Data whose responsibilities Stephens' algorithm uses.
    parameters : ModelParameters
        Draws flattened to one leading axis.
    pivot : ModelParameters
        One parameter set giving the target labelling (the EM solution).
    method : {"stephens", "pivot"}
    groups : ndarray of shape (n_components,), optional
        Group id of every component; labels are permuted only within a
        group, e.g. among components with equal prior concentration.
        Defaults to one group (all labels exchangeable).
    progressbar : bool, default=False
        Show the progress of Stephens' iterations (the pivot step is quick).

    Returns
    -------
    relabelled : ModelParameters
    result : Relabelling
    """
    if method not in RELABEL_METHODS:
        raise ValueError(f"relabel must be one of {RELABEL_METHODS}, got {method!r}.")
    result = pivot_permutations(parameters, pivot, groups=groups)
    if method == "stephens" and parameters.weights.shape[-1] > 1:
        result = stephens_permutations(X, parameters, result.permutations, groups=groups,
                                       progressbar=progressbar)
    return relabel_parameters(parameters, result.permutations), result


def _result(perms, n_iter, converged, method) -> Relabelling:
    identity = np.arange(perms.shape[1])
    n_permuted = int((perms != identity).any(axis=1).sum())
    return Relabelling(perms, n_permuted, n_iter, converged, method)
