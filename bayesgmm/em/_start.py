"""Where each EM run starts: the user's values, or the initialiser on the start rows.

User-given ``weights_init``, ``means_init`` and ``precisions_init`` are in the
user's units; they are checked and moved to the standardised scale EM runs
on (:func:`user_start`).  Whatever they leave unset comes from the
initialiser (:func:`bayesgmm.em._initialization.initial_responsibilities`)
run on the problem's start rows (:class:`bayesgmm.em._problem.FitProblem`),
with their frequency weights; beside a noise component, on the rows that do
not start as noise (:mod:`bayesgmm.em._noise_start`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bayesgmm.em._algorithm import EMState, add_noise_component, state_from_responsibilities
from bayesgmm.em._covariance import get_family
from bayesgmm.em._initialization import initial_responsibilities
from bayesgmm.em._problem import FitProblem, FitSettings

__all__ = ["PRECISION_SHAPES", "UserStart", "initial_state", "user_start"]

PRECISION_SHAPES = {
    "full": lambda k, d: (k, d, d),
    "tied": lambda k, d: (d, d),
    "diag": lambda k, d: (k, d),
    "spherical": lambda k, d: (k,),
}
"""Shape of ``precisions_init`` for each covariance type, as in scikit-learn."""


class UserStart(NamedTuple):
    """User-given starting values on the standardised scale; None where not given.

    Attributes
    ----------
    weights : ndarray of shape (n_components,) or None
    means : ndarray of shape (n_components, n_features) or None
    precisions_cholesky : ndarray or None
        In the covariance family's shape.
    """

    weights: np.ndarray | None
    means: np.ndarray | None
    precisions_cholesky: np.ndarray | None

    @property
    def complete(self) -> bool:
        """Every parameter is given: no initialiser runs."""
        return all(value is not None for value in self)


def user_start(
    weights_init,
    means_init,
    precisions_init,
    covariance_type: str,
    n_components: int,
    centre: np.ndarray,
    scale: np.ndarray,
) -> UserStart:
    """Check user-given starting values and move them to the standardised scale.

    Parameters
    ----------
    weights_init : array-like of shape (n_components,) or None
        Non-negative, summing to one.
    means_init : array-like of shape (n_components, n_features) or None
        In the user's units.
    precisions_init : array-like or None
        In the user's units, shaped as :data:`PRECISION_SHAPES` says.
    covariance_type : str
    n_components : int
    centre, scale : ndarray of shape (n_features,)
        The standardisation ``z = (x - centre) / scale``.

    Returns
    -------
    UserStart
    """
    n_features = len(centre)
    family = get_family(covariance_type)
    weights = means = precisions_cholesky = None
    if weights_init is not None:
        weights = np.asarray(weights_init, dtype=np.float64)
        if weights.shape != (n_components,):
            raise ValueError(
                f"weights_init must have shape ({n_components},), got {weights.shape}."
            )
        if np.any(weights < 0) or not np.isclose(weights.sum(), 1.0):
            raise ValueError(
                "weights_init must be non-negative and sum to 1, got "
                f"sum {weights.sum():.6g}."
            )
    if means_init is not None:
        means = np.asarray(means_init, dtype=np.float64)
        if means.shape != (n_components, n_features):
            raise ValueError(
                f"means_init must have shape ({n_components}, {n_features}), "
                f"got {means.shape}."
            )
        means = (means - centre) / scale
    if precisions_init is not None:
        precisions = np.asarray(precisions_init, dtype=np.float64)
        expected = PRECISION_SHAPES[covariance_type](n_components, n_features)
        if precisions.shape != expected:
            raise ValueError(
                f"precisions_init must have shape {expected} for "
                f"covariance_type={covariance_type!r}, got {precisions.shape}."
            )
        precisions_cholesky = family.precisions_cholesky_from_precisions(
            family.rescale_precisions(precisions, 1.0 / scale)
        )
    return UserStart(weights, means, precisions_cholesky)


def _gaussian_start(
    Z, weights, rng, user: UserStart, settings: FitSettings, init_params: str
) -> EMState:
    if user.complete:
        return EMState(user.weights, user.means, None, user.precisions_cholesky)
    responsibilities = initial_responsibilities(
        Z, settings.n_components, init_params, rng, weights
    )
    state = state_from_responsibilities(
        Z, responsibilities, settings.covariance_type, settings.reg_covar, settings.chunk_size,
        sample_weight=weights,
    )
    return EMState(
        state.weights if user.weights is None else user.weights,
        state.means if user.means is None else user.means,
        state.covariances if user.precisions_cholesky is None else None,
        state.precisions_cholesky if user.precisions_cholesky is None
        else user.precisions_cholesky,
    )


def initial_state(
    problem: FitProblem,
    rng: np.random.Generator,
    user: UserStart,
    settings: FitSettings,
    init_params: str,
) -> EMState:
    """The state one EM run starts from.

    Parameters
    ----------
    problem : FitProblem
        Its start rows, their weights and the noise start.
    rng : numpy.random.Generator
        This run's generator.
    user : UserStart
    settings : FitSettings
    init_params : str
        One of :data:`bayesgmm.em._initialization.INIT_METHODS`.

    Returns
    -------
    EMState
        With a noise component when the problem has a noise start: the
        Gaussian weights scaled by one minus its starting weight.
    """
    Z, weights, start = problem.start_values, problem.start_weight, problem.noise
    if start is None:
        return _gaussian_start(Z, weights, rng, user, settings, init_params)
    gaussian = ~start.points
    state = _gaussian_start(
        Z[gaussian], None if weights is None else weights[gaussian], rng, user, settings,
        init_params,
    )
    return add_noise_component(state, start.weight, start.log_density)
