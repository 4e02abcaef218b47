"""Missing values in EM: rows grouped by pattern, Gaussian marginals and conditionals.

Values missing at random (Little & Rubin 2002) leave the likelihood of a row
as the mixture of its components' marginals over the row's observed
coordinates, and EM stays exact (Ghahramani & Jordan 1994): the E-step
scores those marginals, and the M-step uses the expected sufficient
statistics given the observed values.  For component ``k`` with covariance
``S``, observed coordinates ``o`` and missing ones ``m``::

    E[x_m | x_o, k]   = mu_m + S_mo S_oo^{-1} (x_o - mu_o)
    Cov[x_m | x_o, k] = S_mm - S_mo S_oo^{-1} S_om

Rows sharing a pattern share ``S_oo``, so it is factorised once per pattern,
component and iteration; the rows themselves are processed as arrays.  Every
covariance family goes through its dense matrices: for diag and spherical
``S_mo`` is zero, so the conditional mean of a missing coordinate is
``mu_m`` and its conditional variance the component's variance, exactly.

These are array functions with no knowledge of EM states; the E- and M-step
that use them are in :mod:`bayesgmm.em._algorithm`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from bayesgmm.em._covariance import upper_inverse_cholesky
from bayesgmm.gaussian import log_gaussian_full
from bayesgmm.noise import noise_log_sides

__all__ = [
    "ConditionalGaussians",
    "MissingnessPatterns",
    "PatternChunk",
    "completed_rows",
    "conditional_expectation",
    "conditional_gaussians",
    "expected_second_moments",
    "marginal_log_gaussian",
    "missingness_patterns",
    "noise_log_sides",
    "observed_log_jacobian",
    "pattern_chunks",
]


class MissingnessPatterns(NamedTuple):
    """The rows of a data matrix grouped by which of their coordinates are observed.

    Attributes
    ----------
    observed : ndarray of bool, shape (n_patterns, n_features)
        One row per distinct pattern.
    rows : tuple of ndarray of int
        ``rows[p]``: the rows with pattern ``p``, in increasing order.
    noise_log_extents : ndarray of shape (n_patterns,)
        Log of the noise box's extent over each pattern's missing columns
        (the sum of their log sides), so that a row's noise density is
        ``1 / V_obs = extent / V``: the uniform box's marginal over the
        row's observed columns.  Zeros without a noise component.
    """

    observed: np.ndarray
    rows: tuple[np.ndarray, ...]
    noise_log_extents: np.ndarray


def missingness_patterns(
    X: np.ndarray, noise_log_sides: np.ndarray | None = None, *, always: bool = False
) -> MissingnessPatterns | None:
    """Group the rows of ``X`` by missingness pattern.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        NaN marks a missing value.
    noise_log_sides : ndarray of shape (n_features,), optional
        Log side lengths of the noise component's box on the scale of
        ``X``.
    always : bool, default=False
        Group complete data too (one pattern) instead of returning None: a
        chunk of a larger data set with missing values must collect its
        statistics the same way as the other chunks.

    Returns
    -------
    MissingnessPatterns or None
        ``None`` when no value is missing (and not ``always``): complete
        data take the ordinary EM path.

    Examples
    --------
    >>> X = np.array([[1.0, np.nan], [2.0, 3.0], [4.0, np.nan]])
    >>> patterns = missingness_patterns(X)
    >>> patterns.observed.tolist(), [rows.tolist() for rows in patterns.rows]
    ([[True, False], [True, True]], [[0, 2], [1]])
    """
    missing = np.isnan(X)
    if not (always or missing.any()):
        return None
    observed, inverse = np.unique(~missing, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    order = np.argsort(inverse, kind="stable")
    boundaries = np.cumsum(np.bincount(inverse, minlength=len(observed)))[:-1]
    extents = (
        np.zeros(len(observed)) if noise_log_sides is None
        else np.where(observed, 0.0, noise_log_sides).sum(axis=1)
    )
    return MissingnessPatterns(observed, tuple(np.split(order, boundaries)), extents)


def observed_log_jacobian(Z: np.ndarray, scale: np.ndarray) -> float | np.ndarray:
    """``log |dz / dx|`` of every row of ``Z = (x - centre) / scale`` over its observed values.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_features)
        NaN where a value is missing.
    scale : ndarray of shape (n_features,)

    Returns
    -------
    float or ndarray of shape (n_samples,)
        One number when nothing is missing.
    """
    observed = ~np.isnan(Z)
    if observed.all():
        return float(np.log(scale).sum())
    return observed @ np.log(scale)


class ConditionalGaussians(NamedTuple):
    """Every component's Gaussian split along one missingness pattern.

    Attributes
    ----------
    observed : ndarray of bool, shape (n_features,)
    precisions_cholesky : ndarray of shape (..., n_components, n_observed, n_observed)
        Upper ``U`` with ``U U^T = S_oo^{-1}``: the marginal of the observed
        coordinates, in :func:`bayesgmm.gaussian.log_gaussian_full`'s form.
    regression : ndarray of shape (..., n_components, n_missing, n_observed)
        ``S_mo S_oo^{-1}``.
    covariances : ndarray of shape (..., n_components, n_missing, n_missing)
        ``S_mm - S_mo S_oo^{-1} S_om``, the covariance of the missing
        coordinates given the observed ones.
    """

    observed: np.ndarray
    precisions_cholesky: np.ndarray
    regression: np.ndarray
    covariances: np.ndarray


def conditional_gaussians(covariances: np.ndarray, observed: np.ndarray) -> ConditionalGaussians:
    """Factorise every component's covariance along one pattern.

    ``S_oo`` is a principal block of a positive definite matrix, hence
    positive definite itself.

    Parameters
    ----------
    covariances : ndarray of shape (..., n_components, n_features, n_features)
        Dense component covariances, optionally batched over leading axes
        (posterior draws); the result is batched alike.
    observed : ndarray of bool, shape (n_features,)
        At least one True.

    Returns
    -------
    ConditionalGaussians
    """
    missing = ~observed
    precisions_cholesky = upper_inverse_cholesky(covariances[..., observed, :][..., observed])
    cross = covariances[..., missing, :][..., observed] @ precisions_cholesky
    regression = cross @ np.swapaxes(precisions_cholesky, -1, -2)
    conditional = covariances[..., missing, :][..., missing] - cross @ np.swapaxes(cross, -1, -2)
    return ConditionalGaussians(observed, precisions_cholesky, regression, conditional)


class PatternChunk(NamedTuple):
    """A chunk of rows sharing one missingness pattern.

    Attributes
    ----------
    rows : ndarray of int
    conditionals : ConditionalGaussians
        Of their pattern.
    noise_log_extent : float
        Of their pattern (see :class:`MissingnessPatterns`).
    """

    rows: np.ndarray
    conditionals: ConditionalGaussians
    noise_log_extent: float


def pattern_chunks(
    patterns: MissingnessPatterns, covariances: np.ndarray, chunk_size: int
) -> Iterator[PatternChunk]:
    """The rows pattern by pattern, in chunks, each pattern factorised once.

    Parameters
    ----------
    patterns : MissingnessPatterns
    covariances : ndarray of shape (n_components, n_features, n_features)
        Dense component covariances.
    chunk_size : int

    Yields
    ------
    PatternChunk
    """
    for observed, rows, noise_log_extent in zip(
        patterns.observed, patterns.rows, patterns.noise_log_extents
    ):
        conditionals = conditional_gaussians(covariances, observed)
        for start in range(0, len(rows), chunk_size):
            yield PatternChunk(rows[start:start + chunk_size], conditionals, noise_log_extent)


def marginal_log_gaussian(
    X: np.ndarray, means: np.ndarray, conditionals: ConditionalGaussians
) -> np.ndarray:
    """Log density of every row's observed coordinates under every component.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Rows sharing the pattern of ``conditionals``.
    means : ndarray of shape (..., n_components, n_features)
        Batched over the leading axes of ``conditionals``.
    conditionals : ConditionalGaussians

    Returns
    -------
    ndarray of shape (..., n_samples, n_components)
    """
    observed = conditionals.observed
    return log_gaussian_full(X[:, observed], means[..., observed], conditionals.precisions_cholesky)


def completed_rows(
    X: np.ndarray, means: np.ndarray, conditionals: ConditionalGaussians
) -> np.ndarray:
    """Every row with its missing coordinates set to their conditional means, per component.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Rows sharing the pattern of ``conditionals``.
    means : ndarray of shape (..., n_components, n_features)
        Batched over the leading axes of ``conditionals``.
    conditionals : ConditionalGaussians

    Returns
    -------
    ndarray of shape (..., n_components, n_samples, n_features)
        ``x_o`` on the observed coordinates and ``E[x_m | x_o, k]`` on the
        missing ones.
    """
    observed = conditionals.observed
    completed = np.repeat(X[None], means.shape[-2], axis=0)
    if means.ndim > 2:
        completed = np.broadcast_to(completed, means.shape[:-2] + completed.shape).copy()
    deviations = X[:, observed] - means[..., :, None, observed]
    completed[..., ~observed] = means[..., :, None, ~observed] + deviations @ np.swapaxes(
        conditionals.regression, -1, -2
    )
    return completed


def expected_second_moments(
    completed: np.ndarray,
    responsibilities: np.ndarray,
    conditionals: ConditionalGaussians,
    centres: np.ndarray,
) -> np.ndarray:
    """Responsibility-weighted ``E[(x - c_k)(x - c_k)^T | x_o, k]`` summed over rows.

    The expectation is the outer product of the completed row plus, in the
    missing block, the conditional covariance.

    Parameters
    ----------
    completed : ndarray of shape (n_components, n_samples, n_features)
        From :func:`completed_rows`.
    responsibilities : ndarray of shape (n_samples, n_components)
    conditionals : ConditionalGaussians
    centres : ndarray of shape (n_components, n_features)
        ``c_k``, the point each component's moments are taken about.

    Returns
    -------
    ndarray of shape (n_components, n_features, n_features)
    """
    deviations = completed - centres[:, None, :]
    weighted = deviations * responsibilities.T[:, :, None]
    moments = np.swapaxes(weighted, 1, 2) @ deviations
    missing = np.flatnonzero(~conditionals.observed)
    counts = responsibilities.sum(axis=0)
    moments[:, missing[:, None], missing] += counts[:, None, None] * conditionals.covariances
    return moments


def conditional_expectation(
    X: np.ndarray,
    patterns: MissingnessPatterns,
    means: np.ndarray,
    covariances: np.ndarray,
    responsibilities: np.ndarray,
    noise_centre: np.ndarray | None,
    chunk_size: int,
) -> np.ndarray:
    """``E[x | x_o]`` of every row: observed values kept, missing ones expected.

    ``E[x_m | x_o] = sum_k p(k | x_o) E[x_m | x_o, k]``; with a noise
    component, plus ``p(noise | x_o)`` times the centre of its box, the mean
    of the uniform box it is marginalised as.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        NaN where a value is missing.
    patterns : MissingnessPatterns
        Of ``X``.
    means : ndarray of shape (n_components, n_features)
    covariances : ndarray of shape (n_components, n_features, n_features)
        Dense.
    responsibilities : ndarray of shape (n_samples, n_components)
        ``p(k | x_o)``; with a noise component, ``n_components + 1`` columns,
        the noise last.
    noise_centre : ndarray of shape (n_features,) or None
        Centre of the noise box; None without a noise column.
    chunk_size : int
        Rows per chunk; only memory depends on it.

    Returns
    -------
    ndarray of shape (n_samples, n_features)
    """
    n_components = means.shape[0]
    expected = X.copy()
    for chunk in pattern_chunks(patterns, covariances, chunk_size):
        block = X[chunk.rows]
        chunk_responsibilities = responsibilities[chunk.rows]
        mean = np.einsum(
            "nk,knd->nd", chunk_responsibilities[:, :n_components],
            completed_rows(block, means, chunk.conditionals),
        )
        if noise_centre is not None:
            mean += chunk_responsibilities[:, n_components:] * noise_centre
        expected[chunk.rows] = np.where(chunk.conditionals.observed, block, mean)
    return expected
