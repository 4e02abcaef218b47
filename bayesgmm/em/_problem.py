"""What an EM fit runs on: the step over the data and the rows its start is drawn from.

:class:`~bayesgmm.em.GaussianMixtureEM` fits in-memory arrays and Dask
collections with one loop of restarts (:func:`bayesgmm.em._algorithm.iterate`).
What differs is gathered here in a :class:`FitProblem`: the EM step over
all rows, the standardised rows the initialiser sees (all of them in memory,
a sample on Dask, :mod:`bayesgmm.em._distributed`), the standardisation and
the noise region.

Frequency weights (``sample_weight``) decisions:

* Rows of weight 0 are dropped before anything else, so a fit with a zero
  weight is the fit without that row, bit for bit (the checks of
  :func:`bayesgmm._checks.check_X` are redone on the rows that count).
  Should every remaining weight be 1, the unweighted code runs.
* The standardisation is :func:`bayesgmm.scaling.standardization` with
  each row counting its weight (weighted quartiles, mean and sd), so a fit
  with integer weights and the fit on the repeated rows run on the same
  scale and, from the same start, agree to rounding.  ``reg_covar`` is
  relative to that scale: with the rows' unweighted spread instead, the two
  fits differed by up to 3e-5 relative in the covariances at convergence
  (default ``reg_covar``; 1e-13 with ``reg_covar=0``).
* The noise component's bounding box is that of the rows that count: it
  does not depend on how often a row counts.
* The noise start's neighbour density counts weights
  (:mod:`bayesgmm.em._noise_start`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import numpy as np

from bayesgmm._checks import check_X
from bayesgmm.em._algorithm import EMState, StepInfo, em_step
from bayesgmm.em._missing import missingness_patterns, noise_log_sides, observed_log_jacobian
from bayesgmm.em._noise_start import NoiseStart, noise_start
from bayesgmm.noise import NoiseRegion, log_noise_density, noise_region
from bayesgmm.sample_weight import is_unweighted
from bayesgmm.scaling import SCALE_MODES, standardization

__all__ = [
    "FitProblem",
    "FitSettings",
    "counted_rows",
    "in_memory_problem",
    "mean_log_jacobian",
    "start_rows",
]


class FitSettings(NamedTuple):
    """The estimator settings that shape the data EM runs on.

    Attributes
    ----------
    n_components : int
    covariance_type : str
    reg_covar : float
    chunk_size : int
    noise : bool
    noise_volume : float or None
    missing : {"reject", "marginalize"}
    """

    n_components: int
    covariance_type: str
    reg_covar: float
    chunk_size: int
    noise: bool
    noise_volume: float | None
    missing: str


class FitProblem(NamedTuple):
    """Everything the restarts of one fit share.

    Attributes
    ----------
    step : callable
        ``state -> (state, StepInfo)``, one EM step over all the rows.
    start_values : ndarray of shape (n_start, n_features)
        Standardised rows the initialiser sees, missing values set to 0
        (their column's centre).
    start_weight : ndarray of shape (n_start,) or None
        Their frequency weights.
    noise : NoiseStart or None
        Which of ``start_values`` start as noise; None without a noise
        component.
    centre, scale : ndarray of shape (n_features,)
        The standardisation ``z = (x - centre) / scale``.
    region : NoiseRegion or None
        The noise component's box, in the user's units.
    log_jacobian : float
        Mean over the rows (per unit of weight) of ``log |dz / dx|`` over
        their observed values: what turns a mean log-likelihood on the
        standardised scale into the user's units.
    """

    step: Callable[[EMState], tuple[EMState, StepInfo]]
    start_values: np.ndarray
    start_weight: np.ndarray | None
    noise: NoiseStart | None
    centre: np.ndarray
    scale: np.ndarray
    region: NoiseRegion | None
    log_jacobian: float


def counted_rows(
    values: np.ndarray, sample_weight: np.ndarray | None, settings: FitSettings
) -> tuple[np.ndarray, np.ndarray | None]:
    """The rows that count and their weights; None where every one counts once.

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_features)
        Checked data.
    sample_weight : ndarray of shape (n_samples,) or None
        Checked frequency weights.
    settings : FitSettings

    Returns
    -------
    values : ndarray of shape (n_counted, n_features)
        Rows of positive weight, checked again as data to fit.
    sample_weight : ndarray of shape (n_counted,) or None
    """
    if is_unweighted(sample_weight):
        return values, None
    counted = sample_weight > 0
    if not counted.all():
        values = check_X(
            values[counted], n_components=settings.n_components, missing=settings.missing
        ).values
        sample_weight = sample_weight[counted]
    return values, None if is_unweighted(sample_weight) else sample_weight


def start_rows(
    Z: np.ndarray,
    sample_weight: np.ndarray | None,
    region: NoiseRegion | None,
    scale: np.ndarray,
    n_components: int,
) -> tuple[np.ndarray, NoiseStart | None]:
    """The rows the initialiser sees, and the noise start among them.

    Parameters
    ----------
    Z : ndarray of shape (n_rows, n_features)
        Standardised rows (all of them, or a sample); NaN where missing.
    sample_weight : ndarray of shape (n_rows,) or None
    region : NoiseRegion or None
    scale : ndarray of shape (n_features,)
    n_components : int

    Returns
    -------
    start_values : ndarray of shape (n_rows, n_features)
        ``Z`` with each missing value set to 0, its column's centre.
    noise : NoiseStart or None
    """
    start_values = np.where(np.isnan(Z), 0.0, Z) if np.isnan(Z).any() else Z
    if region is None:
        return start_values, None
    log_density = log_noise_density(region.log_volume, scale)
    return start_values, noise_start(start_values, log_density, n_components, sample_weight)


def mean_log_jacobian(
    jacobian: float | np.ndarray, sample_weight: np.ndarray | None
) -> float:
    """Mean of per-row log Jacobians (one number when nothing is missing), per unit of weight."""
    if np.ndim(jacobian) == 0 or sample_weight is None:
        return float(np.mean(jacobian))
    return float(np.average(jacobian, weights=sample_weight))


def in_memory_problem(
    values: np.ndarray, sample_weight: np.ndarray | None, settings: FitSettings
) -> FitProblem:
    """The problem of a fit on an in-memory array.

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_features)
        Checked rows that count (:func:`counted_rows`), in the user's units;
        standardised in place.
    sample_weight : ndarray of shape (n_samples,) or None
        Positive frequency weights.
    settings : FitSettings

    Returns
    -------
    FitProblem
    """
    centre, scale = standardization(values, SCALE_MODES[settings.covariance_type], sample_weight)
    region = noise_region(values, settings.noise_volume) if settings.noise else None
    Z = values
    Z -= centre
    Z /= scale
    patterns = missingness_patterns(Z, noise_log_sides(region, scale))
    step = partial(
        em_step, Z, covariance_type=settings.covariance_type, reg_covar=settings.reg_covar,
        chunk_size=settings.chunk_size, patterns=patterns, sample_weight=sample_weight,
    )
    start_values, start = start_rows(Z, sample_weight, region, scale, settings.n_components)
    log_jacobian = mean_log_jacobian(observed_log_jacobian(Z, scale), sample_weight)
    return FitProblem(
        step, start_values, sample_weight, start, centre, scale, region, log_jacobian
    )
