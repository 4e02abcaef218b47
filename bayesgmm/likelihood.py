"""Per-draw, per-point, per-component log densities, vectorised and streamed.

Every posterior summary (pointwise log-likelihood for LOO, memberships,
predictive densities, Stephens relabelling) is built on :func:`log_joint`,
``log w_k + log N(x_i | mu_k, Sigma_k)`` for a batch of draws, with the
noise component's ``log w_noise + log(1 / V)`` as a last column when the
model has one; a row with missing values (NaN) is scored by the marginals over
its observed coordinates (see :func:`log_joint`).  The full
``(n_draws, n_obs, n_components)`` array is never materialised for large
inputs: :func:`iter_obs_chunks` yields it block by block over observations,
sized so that one block holds about :data:`DEFAULT_BUDGET` numbers, and
:func:`iter_log_likelihood` the pointwise log-likelihood likewise, so memory
is ``O(n_draws x block)``, never ``O(n_draws x n_obs)``.
:func:`thin_draws` keeps an evenly spaced subset of the draws, for scoring
from fewer draws than the posterior holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from bayesgmm._checks import check_number
from bayesgmm.em import missingness_patterns
from bayesgmm.em._missing import conditional_gaussians, marginal_log_gaussian
from bayesgmm.gaussian import log_gaussian_full, normalize
from bayesgmm.parameters import ModelParameters, map_draws

__all__ = [
    "DEFAULT_BUDGET",
    "evenly_spaced_draws",
    "log_joint",
    "iter_log_likelihood",
    "iter_obs_chunks",
    "log_likelihood_per_draw",
    "pointwise_log_likelihood",
    "thin_draws",
]

DEFAULT_BUDGET = 2**21


class _Prepared(NamedTuple):
    """Per-draw quantities computed once and reused for every block of points."""

    centre: np.ndarray
    centred_means: np.ndarray
    precisions_cholesky: np.ndarray
    log_weights: np.ndarray
    log_noise: np.ndarray | None
    covariances: np.ndarray | None  # only when the points have missing values
    noise_log_sides: np.ndarray | None

    def _with_weights(self, density: np.ndarray, noise_log_extent: float = 0.0) -> np.ndarray:
        joint = density + self.log_weights[:, None, :]
        if self.log_noise is None:
            return joint
        log_noise = self.log_noise + noise_log_extent if noise_log_extent else self.log_noise
        noise = np.broadcast_to(log_noise[:, None, None], joint.shape[:2] + (1,))
        return np.concatenate([joint, noise], axis=-1)

    def _complete(self, X: np.ndarray) -> np.ndarray:
        return self._with_weights(
            log_gaussian_full(X - self.centre, self.centred_means, self.precisions_cholesky))

    def log_joint(self, X: np.ndarray) -> np.ndarray:
        patterns = missingness_patterns(X, self.noise_log_sides)
        if patterns is None:
            return self._complete(X)
        if self.log_noise is not None and self.noise_log_sides is None:
            raise ValueError(
                "This model's noise component has no recorded box (a model file saved "
                "before missing values were supported), so rows with missing values "
                "cannot be scored; refit the model."
            )
        n_columns = self.log_weights.shape[-1] + (self.log_noise is not None)
        out = np.empty((self.log_weights.shape[0], X.shape[0], n_columns))
        for observed, rows, extent in zip(patterns.observed, patterns.rows,
                                          patterns.noise_log_extents):
            if observed.all():
                out[:, rows] = self._complete(X[rows])
                continue
            marginal = marginal_log_gaussian(X[rows] - self.centre, self.centred_means,
                                             conditional_gaussians(self.covariances, observed))
            out[:, rows] = self._with_weights(marginal, extent)
        return out


def _prepare(parameters: ModelParameters, missing_values: bool = False) -> _Prepared:
    # Centring data and means by one common vector leaves the density unchanged
    # and keeps the shared density's ``X @ U - mean @ U`` exact in data units
    # far from the origin.
    centre = parameters.means.reshape(-1, parameters.means.shape[-1]).mean(axis=0)
    noise = parameters.noise
    with np.errstate(divide="ignore"):
        log_weights = np.log(parameters.weights)
        log_noise = (None if noise is None
                     else np.log(np.asarray(noise.weight, dtype=np.float64)) + noise.log_density)
    box = None if noise is None else noise.box
    return _Prepared(centre, parameters.means - centre, parameters.precisions_cholesky,
                     log_weights, log_noise,
                     parameters.covariances if missing_values else None,
                     None if box is None else np.log(box.upper - box.lower))


def log_joint(X: np.ndarray, parameters: ModelParameters) -> np.ndarray:
    """``log w_k + log N(x_i | mu_k, Sigma_k)`` for every draw, point and component.

    Parameters
    ----------
    X : ndarray of shape (n_obs, n_features)
    parameters : ModelParameters
        Batched over one leading draw axis of length ``n_draws``.

    Returns
    -------
    ndarray of shape (n_draws, n_obs, n_components), or n_components + 1
        With a noise component, ``log w_noise + log(1 / V)`` is the last
        column.

    Notes
    -----
    A row with missing values (NaN; missing at random) is scored by the
    components' marginals over its observed coordinates ``o``:
    ``log w_k + log N(x_o | mu_ko, Sigma_k,oo)``, and by the noise's
    ``log w_noise + log(1 / V_o)``, ``V_o`` the noise box's volume along
    ``o`` (as in EM, :mod:`bayesgmm.em._missing`).  Rows are grouped by
    pattern and each pattern's ``Sigma_oo`` is factorised once per draw;
    complete rows take the same path as in data without missing values.
    """
    return _prepare(parameters, bool(np.isnan(X).any())).log_joint(X)


def iter_obs_chunks(
    X: np.ndarray, parameters: ModelParameters, budget: int = DEFAULT_BUDGET
) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield ``(rows, log_joint(X[rows], parameters))`` over blocks of observations.

    Parameters
    ----------
    X : ndarray of shape (n_obs, n_features)
    parameters : ModelParameters
        Batched over one draw axis.
    budget : int
        Approximate number of floats per block of the
        ``(n_draws, rows, n_components * n_features)`` intermediate.

    Yields
    ------
    rows : slice
    block : ndarray of shape (n_draws, rows, n_components)
    """
    n_draws, n_components, n_features = parameters.means.shape
    rows_per_block = max(1, budget // max(1, n_draws * n_components * n_features))
    prepared = _prepare(parameters, bool(np.isnan(X).any()))
    for start in range(0, X.shape[0], rows_per_block):
        rows = slice(start, min(start + rows_per_block, X.shape[0]))
        yield rows, prepared.log_joint(X[rows])


def iter_log_likelihood(
    X: np.ndarray, parameters: ModelParameters, budget: int = DEFAULT_BUDGET
) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield ``(rows, log p(X[rows] | theta_s))`` over blocks of observations.

    The blocks of :func:`iter_obs_chunks`, reduced over components.

    Parameters
    ----------
    X : ndarray of shape (n_obs, n_features)
    parameters : ModelParameters
        Batched over one draw axis.
    budget : int

    Yields
    ------
    rows : slice
    block : ndarray of shape (n_draws, rows)
    """
    for rows, joint in iter_obs_chunks(X, parameters, budget):
        yield rows, normalize(joint)[0]


def pointwise_log_likelihood(
    X: np.ndarray, parameters: ModelParameters, budget: int = DEFAULT_BUDGET
) -> np.ndarray:
    """``log p(x_i | theta_s)`` under the mixture, for every draw and point.

    Holds the whole ``(n_draws, n_obs)`` matrix: for large inputs use
    :func:`iter_log_likelihood` or :func:`log_likelihood_per_draw`.

    Parameters
    ----------
    X : ndarray of shape (n_obs, n_features)
    parameters : ModelParameters
        Batched over one draw axis.
    budget : int

    Returns
    -------
    ndarray of shape (n_draws, n_obs)
    """
    out = np.empty((parameters.weights.shape[0], X.shape[0]))
    for rows, block in iter_log_likelihood(X, parameters, budget):
        out[:, rows] = block
    return out


def log_likelihood_per_draw(
    X: np.ndarray,
    parameters: ModelParameters,
    sample_weight: np.ndarray | None = None,
    budget: int = DEFAULT_BUDGET,
) -> np.ndarray:
    """``sum_i w_i log p(x_i | theta_s)`` for every draw, streamed over observations.

    Parameters
    ----------
    X : ndarray of shape (n_obs, n_features)
    parameters : ModelParameters
        Batched over one draw axis.
    sample_weight : ndarray of shape (n_obs,), optional
        Frequency weights ``w_i`` (None: each row counts once).
    budget : int

    Returns
    -------
    ndarray of shape (n_draws,)
    """
    total = np.zeros(parameters.weights.shape[0])
    for rows, block in iter_log_likelihood(X, parameters, budget):
        total += block.sum(axis=1) if sample_weight is None else block @ sample_weight[rows]
    return total


def evenly_spaced_draws(n_draws: int, max_draws: int | None) -> np.ndarray | None:
    """Indices of at most ``max_draws`` evenly spaced draws of ``n_draws`` (None: keep all).

    Draws ``round(j * (n_draws - 1) / (max_draws - 1))``, ``j = 0 .. max_draws - 1``:
    the first and the last, evenly spaced, so every chain of a flattened
    ``(chain, draw)`` axis contributes.

    Examples
    --------
    >>> evenly_spaced_draws(10, 4).tolist(), evenly_spaced_draws(10, None)
    ([0, 3, 6, 9], None)
    """
    if max_draws is None:
        return None
    try:
        check_number("max_draws", max_draws, low=1, integer=True)
    except ValueError as error:
        raise ValueError(f"{str(error).rstrip('.')}; use None for every draw, or e.g. "
                         "max_draws=500.") from None
    if max_draws >= n_draws:
        return None
    return np.round(np.linspace(0, n_draws - 1, int(max_draws))).astype(np.intp)


def thin_draws(parameters: ModelParameters, max_draws: int | None) -> ModelParameters:
    """At most ``max_draws`` evenly spaced draws (:func:`evenly_spaced_draws`).

    Parameters
    ----------
    parameters : ModelParameters
        Batched over one draw axis.
    max_draws : int or None
        None (or at least the number of draws) keeps every draw.

    Returns
    -------
    ModelParameters
    """
    kept = evenly_spaced_draws(parameters.weights.shape[0], max_draws)
    return parameters if kept is None else map_draws(parameters, lambda values: values[kept])
