"""Scoring rows under a fitted mixture: one function for arrays and Dask chunks alike.

A fitted :class:`~bayesgmm.em.GaussianMixtureEM` keeps its parameters on the
standardised scale EM ran on, with the map back to the user's units, in one
:class:`FittedMixture` record.  :func:`score_rows` turns rows in the user's
units into log densities (in those units) and responsibilities; the
estimator calls it on a whole array, and on every chunk of a Dask array
through :func:`bayesgmm._dask.map_row_chunks`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bayesgmm._checks import check_X
from bayesgmm.em._algorithm import EMState, log_prob_and_responsibilities
from bayesgmm.em._covariance import get_family
from bayesgmm.em._missing import (
    MissingnessPatterns,
    missingness_patterns,
    observed_log_jacobian,
)
from bayesgmm.noise import NOISE_LABEL

__all__ = [
    "DataUnitParameters",
    "FittedMixture",
    "chunk_labels",
    "chunk_log_density",
    "chunk_responsibilities",
    "in_data_units",
    "responsibilities_to_labels",
    "row_patterns",
    "score_rows",
    "standardize",
]


class FittedMixture(NamedTuple):
    """A fitted mixture as the scoring functions need it.

    Attributes
    ----------
    state : EMState
        Parameters on the standardised scale ``z = (x - centre) / scale``.
    covariance_type : str
    centre, scale : ndarray of shape (n_features,)
    noise_log_sides : ndarray of shape (n_features,) or None
        Log side lengths of the noise box on the standardised scale, for rows
        with missing values; None without a noise component.
    """

    state: EMState
    covariance_type: str
    centre: np.ndarray
    scale: np.ndarray
    noise_log_sides: np.ndarray | None


class DataUnitParameters(NamedTuple):
    """A fitted mixture's Gaussian parameters in the user's units, in float64.

    Attributes
    ----------
    means : ndarray of shape (n_components, n_features)
    covariances, precisions_cholesky : ndarray
        In the covariance family's shape.
    """

    means: np.ndarray
    covariances: np.ndarray
    precisions_cholesky: np.ndarray


def in_data_units(fitted: FittedMixture) -> DataUnitParameters:
    """Undo the standardisation: ``x = centre + scale * z``.

    Parameters
    ----------
    fitted : FittedMixture
        Its state must carry covariances.

    Returns
    -------
    DataUnitParameters
    """
    family = get_family(fitted.covariance_type)
    state, centre, scale = fitted.state, fitted.centre, fitted.scale
    return DataUnitParameters(
        centre + state.means * scale,
        family.rescale_covariances(state.covariances, scale),
        family.rescale_precisions_cholesky(state.precisions_cholesky, scale),
    )


def standardize(values: np.ndarray, fitted: FittedMixture) -> np.ndarray:
    """Rows in the user's units moved to the scale EM ran on."""
    # Far new points may overflow to +-inf here; the densities handle them.
    with np.errstate(over="ignore"):
        return (values - fitted.centre) / fitted.scale


def row_patterns(Z: np.ndarray, fitted: FittedMixture) -> MissingnessPatterns | None:
    """The missingness patterns of standardised rows (None when none is missing)."""
    return missingness_patterns(Z, fitted.noise_log_sides)


def score_rows(values: np.ndarray, fitted: FittedMixture) -> tuple[np.ndarray, np.ndarray]:
    """Log density (in the user's units) and responsibilities of every row.

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_features)
        Checked rows in the user's units; NaN where a value is missing.
    fitted : FittedMixture

    Returns
    -------
    log_density : ndarray of shape (n_samples,)
        Over each row's observed coordinates.
    responsibilities : ndarray of shape (n_samples, n_components)
        With a noise component, ``n_components + 1`` columns, the noise last.
    """
    Z = standardize(values, fitted)
    log_norm, responsibilities = log_prob_and_responsibilities(
        Z, fitted.state, fitted.covariance_type, row_patterns(Z, fitted)
    )
    return log_norm - observed_log_jacobian(Z, fitted.scale), responsibilities


def _checked_chunk(chunk: np.ndarray, missing: str) -> np.ndarray:
    return check_X(chunk, reject_constant=False, missing=missing).values


def chunk_log_density(chunk: np.ndarray, fitted: FittedMixture, missing: str) -> np.ndarray:
    """:func:`score_rows`' log densities of one chunk of new rows, checked first."""
    return score_rows(_checked_chunk(chunk, missing), fitted)[0]


def chunk_responsibilities(
    chunk: np.ndarray, fitted: FittedMixture, missing: str
) -> np.ndarray:
    """:func:`score_rows`' responsibilities of one chunk of new rows, checked first."""
    return score_rows(_checked_chunk(chunk, missing), fitted)[1]


def chunk_labels(chunk: np.ndarray, fitted: FittedMixture, missing: str) -> np.ndarray:
    """Most probable component of every row of one chunk; the noise is ``NOISE_LABEL``."""
    return responsibilities_to_labels(chunk_responsibilities(chunk, fitted, missing), fitted)


def responsibilities_to_labels(
    responsibilities: np.ndarray, fitted: FittedMixture
) -> np.ndarray:
    """Most probable column of every row, the noise column labelled ``NOISE_LABEL``."""
    labels = responsibilities.argmax(axis=1)
    labels[labels == len(fitted.state.weights)] = NOISE_LABEL
    return labels
