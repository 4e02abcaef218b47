"""Covariance families of a Gaussian mixture, one small set of pure functions each.

Every family is described once by a :class:`CovarianceFamily` record, and the
EM code reaches the variants only through :data:`COVARIANCE_FAMILIES`.  The
array shapes follow scikit-learn so that users can move fitted parameters
between the two libraries:

=========  ==========================  ===========================
family     covariances                 precisions_cholesky
=========  ==========================  ===========================
full       (n_components, D, D)        (n_components, D, D), upper
tied       (D, D)                      (D, D), upper
diag       (n_components, D)           (n_components, D)
spherical  (n_components,)             (n_components,)
=========  ==========================  ===========================

``precisions_cholesky`` is ``U`` with ``U @ U.T`` equal to the precision, so
the Mahalanobis term of a point ``x`` is ``||(x - mu) @ U||^2``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bayesgmm.gaussian import LOG_2PI, MAX_MAHALANOBIS, log_gaussian_full

__all__ = [
    "COVARIANCE_FAMILIES",
    "CovarianceFamily",
    "CovarianceError",
    "get_family",
    "upper_inverse_cholesky",
]

ILL_DEFINED_MESSAGE = (
    "Fitting the mixture failed because a component has an ill-defined "
    "covariance (for instance one built on a single point or on duplicated "
    "points). Try fewer components, a larger reg_covar (now {reg_covar:g}, "
    "relative to each feature's variance), or remove duplicated rows."
)


EPS = np.finfo(np.float64).eps

CANCELLATION_TOLERANCE = 1e-8
"""Largest relative rounding error accepted in an expanded Mahalanobis term."""


class CovarianceError(ValueError):
    """A covariance estimate is not positive definite."""


# ---------------------------------------------------------------- full
def _full_second_moments(X, responsibilities):
    # Only the upper triangle of each x x^T is formed (D(D+1)/2 columns).
    n_features = X.shape[1]
    rows, cols = np.triu_indices(n_features)
    upper = responsibilities.T @ (X[:, rows] * X[:, cols])
    moments = np.empty((upper.shape[0], n_features, n_features))
    moments[:, rows, cols] = upper
    moments[:, cols, rows] = upper
    return moments


def _full_covariances(second_moments, nk, means, reg_covar):
    covariances = second_moments / nk[:, None, None]
    covariances -= means[:, :, None] * means[:, None, :]
    covariances = 0.5 * (covariances + covariances.transpose(0, 2, 1))
    n_features = means.shape[1]
    covariances[:, np.arange(n_features), np.arange(n_features)] += reg_covar
    return covariances


def upper_inverse_cholesky(covariances: np.ndarray) -> np.ndarray:
    """``U`` with ``U U^T = inv(C)``, batched over leading axes.

    Parameters
    ----------
    covariances : ndarray of shape (..., D, D)
        Symmetric positive definite.

    Returns
    -------
    ndarray of shape (..., D, D)
        Upper triangular.

    Raises
    ------
    numpy.linalg.LinAlgError
        When a matrix is not positive definite.
    """
    lower = np.linalg.cholesky(covariances)
    identity = np.broadcast_to(np.eye(covariances.shape[-1]), covariances.shape)
    return np.swapaxes(np.linalg.solve(lower, identity), -1, -2)


def _matrix_diagonals(matrices):
    return np.diagonal(matrices, axis1=1, axis2=2)


def _upper_inverse_cholesky(covariances, reg_covar):
    """:func:`upper_inverse_cholesky`, failing with :class:`CovarianceError`."""
    try:
        return upper_inverse_cholesky(covariances)
    except np.linalg.LinAlgError as error:
        raise CovarianceError(ILL_DEFINED_MESSAGE.format(reg_covar=reg_covar)) from error


def _upper_cholesky_of_precision(precisions):
    """``U`` upper triangular with ``U U^T = P`` (scikit-learn's convention)."""
    flipped = precisions[..., ::-1, ::-1]
    try:
        lower = np.linalg.cholesky(flipped)
    except np.linalg.LinAlgError as error:
        raise CovarianceError(
            "precisions_init is not symmetric positive definite; pass valid "
            "precision matrices (inverse covariances)."
        ) from error
    return lower[..., ::-1, ::-1]


def _matrix_precisions(precisions_cholesky):
    return precisions_cholesky @ np.swapaxes(precisions_cholesky, -1, -2)


def _matrix_rescale_covariances(covariances, scale):
    return covariances * scale[:, None] * scale[None, :]


def _matrix_rescale_precisions(precisions, scale):
    return precisions / (scale[:, None] * scale[None, :])


def _matrix_rescale_precisions_cholesky(precisions_cholesky, scale):
    return precisions_cholesky / scale[:, None]


# ---------------------------------------------------------------- tied
def _far_rows_by_full_density(density, X, means, dense_precisions_cholesky, magnitude=None):
    """Recompute rows whose density overflowed or lost its digits.

    The fast family formulas square the data; for points beyond ~1e154 that
    overflows (NaN, -inf or beyond the limit).  They also expand
    ``(x - mu)^2 p`` into ``x^2 p - 2 x mu p + mu^2 p``, whose terms (summed in
    ``magnitude``) can dwarf the result: a point at 1e5 sd on a component of
    its own.  Those rows go through :func:`bayesgmm.gaussian.log_gaussian_full`
    with the family's precision factor as a dense matrix, which never gives
    NaN and never cancels; ordinary rows are left bit for bit as computed.
    """
    far = ~(density >= -0.5 * MAX_MAHALANOBIS)
    if magnitude is not None:
        mahalanobis = -2.0 * density
        far |= 4.0 * EPS * magnitude > CANCELLATION_TOLERANCE * (1.0 + np.abs(mahalanobis))
    if far.any():
        rows = np.flatnonzero(far.any(axis=1))
        density[rows] = log_gaussian_full(X[rows], means, dense_precisions_cholesky)
    return density


def _tied_log_gaussian(X, means, precisions_cholesky):
    n_components, n_features = means.shape
    with np.errstate(over="ignore", invalid="ignore"):  # far rows are redone below
        projected = X @ precisions_cholesky
        centres = means @ precisions_cholesky
        difference = projected[:, None, :] - centres[None, :, :]
        mahalanobis = np.einsum("nkd,nkd->nk", difference, difference)
    log_det = np.log(np.diagonal(precisions_cholesky)).sum()
    density = -0.5 * (n_features * LOG_2PI + mahalanobis) + log_det
    dense = np.broadcast_to(precisions_cholesky, (n_components, n_features, n_features))
    return _far_rows_by_full_density(density, X, means, dense)


def _tied_second_moments(X, responsibilities):
    return X.T @ X


def _tied_covariances(second_moments, nk, means, reg_covar):
    covariance = (second_moments - (nk * means.T) @ means) / nk.sum()
    covariance = 0.5 * (covariance + covariance.T)
    covariance[np.diag_indices_from(covariance)] += reg_covar
    return covariance


# ---------------------------------------------------------------- diag
def _diag_log_gaussian(X, means, precisions_cholesky):
    n_features = means.shape[1]
    precisions = precisions_cholesky**2
    with np.errstate(over="ignore", invalid="ignore"):  # far rows are redone below
        squares = np.sum(means**2 * precisions, axis=1) + (X**2 @ precisions.T)
        mahalanobis = squares - 2.0 * (X @ (means * precisions).T)
    log_det = np.log(precisions_cholesky).sum(axis=1)
    density = -0.5 * (n_features * LOG_2PI + mahalanobis) + log_det
    dense = precisions_cholesky[:, :, None] * np.eye(n_features)
    return _far_rows_by_full_density(density, X, means, dense, squares)


def _diag_second_moments(X, responsibilities):
    return responsibilities.T @ (X * X)


def _diag_covariances(second_moments, nk, means, reg_covar):
    return second_moments / nk[:, None] - means**2 + reg_covar


def _positive_inverse_sqrt(variances, reg_covar):
    if np.any(variances <= 0.0):
        raise CovarianceError(ILL_DEFINED_MESSAGE.format(reg_covar=reg_covar))
    return 1.0 / np.sqrt(variances)


def _positive_sqrt_of_precision(precisions):
    precisions = np.asarray(precisions, dtype=np.float64)
    if np.any(precisions <= 0.0):
        raise CovarianceError("precisions_init must be strictly positive.")
    return np.sqrt(precisions)


def _vector_rescale_covariances(covariances, scale):
    return covariances * scale**2


def _vector_rescale_precisions(precisions, scale):
    return precisions / scale**2


def _vector_rescale_precisions_cholesky(precisions_cholesky, scale):
    return precisions_cholesky / scale


# ---------------------------------------------------------------- spherical
def _spherical_log_gaussian(X, means, precisions_cholesky):
    n_features = means.shape[1]
    precisions = precisions_cholesky**2
    with np.errstate(over="ignore", invalid="ignore"):  # far rows are redone below
        squares = (
            np.sum(means**2, axis=1) * precisions
            + np.outer(np.einsum("nd,nd->n", X, X), precisions)
        )
        mahalanobis = squares - 2.0 * (X @ means.T * precisions)
    log_det = n_features * np.log(precisions_cholesky)
    density = -0.5 * (n_features * LOG_2PI + mahalanobis) + log_det
    dense = precisions_cholesky[:, None, None] * np.eye(n_features)
    return _far_rows_by_full_density(density, X, means, dense, squares)


def _spherical_covariances(second_moments, nk, means, reg_covar):
    return _diag_covariances(second_moments, nk, means, reg_covar).mean(axis=1)


def _spherical_rescale(values, scale, power):
    # Spherical fits use one common scale for every feature (scaling.SCALE_MODES).
    return values * float(scale[0]) ** power


# ---------------------------------------------------------------- registry
@dataclass(frozen=True)
class CovarianceFamily:
    """The pure functions that make up one covariance family.

    Attributes
    ----------
    name : str
        ``"full"``, ``"tied"``, ``"diag"`` or ``"spherical"``.
    log_gaussian : callable
        ``(X, means, precisions_cholesky) -> (n_samples, n_components)``
        log densities of each point under each component.
    second_moments : callable
        ``(X, responsibilities) -> array``: the responsibility-weighted
        second-moment statistic of one chunk, to be summed over chunks.
    moment_diagonals : callable
        ``second_moments -> (n_components, D)`` per-component diagonals, or
        ``(1, D)`` where the statistic is pooled over components (tied).
    pooled : bool
        Whether ``second_moments`` is one statistic for all components.
    second_moments_from_dense : callable
        ``(n_components, D, D)`` per-component second moments -> the
        family's ``second_moments`` statistic (their sum where pooled, their
        diagonals for diag and spherical).  Rows with missing values have
        their expected second moments collected as dense matrices.
    covariances : callable
        ``(second_moments, nk, means, reg_covar) -> covariances``.
    precisions_cholesky : callable
        ``(covariances, reg_covar) -> precisions_cholesky``.
    precisions_cholesky_from_precisions : callable
        ``precisions -> precisions_cholesky``.
    precisions : callable
        ``precisions_cholesky -> precisions``.
    dense : callable
        ``(covariances, n_components, n_features) -> (n_components, D, D)``
        full matrices, for sampling and plotting.
    compact : callable
        The inverse: ``(n_components, D, D)`` full matrices of this
        structure -> the family's shape (a tied family's shared matrix, a
        spherical family's one variance per component).
    invert : callable
        ``precisions -> covariances`` (or the reverse; the map is its own
        inverse).
    n_covariance_parameters : callable
        ``(n_components, n_features) -> int``.
    rescale_covariances, rescale_precisions, rescale_precisions_cholesky
        ``(values, scale) -> values`` mapping from the standardised scale back
        to data units, where ``x = centre + scale * z``.
    """

    name: str
    log_gaussian: Callable
    second_moments: Callable
    moment_diagonals: Callable
    pooled: bool
    second_moments_from_dense: Callable
    covariances: Callable
    precisions_cholesky: Callable
    precisions_cholesky_from_precisions: Callable
    precisions: Callable
    dense: Callable
    compact: Callable
    invert: Callable
    n_covariance_parameters: Callable
    rescale_covariances: Callable
    rescale_precisions: Callable
    rescale_precisions_cholesky: Callable


COVARIANCE_FAMILIES: dict[str, CovarianceFamily] = {
    "full": CovarianceFamily(
        name="full",
        log_gaussian=log_gaussian_full,
        second_moments=_full_second_moments,
        moment_diagonals=_matrix_diagonals,
        pooled=False,
        second_moments_from_dense=lambda m: m,
        covariances=_full_covariances,
        precisions_cholesky=_upper_inverse_cholesky,
        precisions_cholesky_from_precisions=_upper_cholesky_of_precision,
        precisions=_matrix_precisions,
        dense=lambda c, k, d: c,
        compact=lambda dense: dense,
        invert=np.linalg.inv,
        n_covariance_parameters=lambda k, d: k * d * (d + 1) // 2,
        rescale_covariances=_matrix_rescale_covariances,
        rescale_precisions=_matrix_rescale_precisions,
        rescale_precisions_cholesky=_matrix_rescale_precisions_cholesky,
    ),
    "tied": CovarianceFamily(
        name="tied",
        log_gaussian=_tied_log_gaussian,
        second_moments=_tied_second_moments,
        moment_diagonals=lambda m: np.diagonal(m)[None, :],
        pooled=True,
        second_moments_from_dense=lambda m: m.sum(axis=0),
        covariances=_tied_covariances,
        precisions_cholesky=_upper_inverse_cholesky,
        precisions_cholesky_from_precisions=_upper_cholesky_of_precision,
        precisions=_matrix_precisions,
        dense=lambda c, k, d: np.broadcast_to(c, (k, d, d)).copy(),
        compact=lambda dense: dense[0],
        invert=np.linalg.inv,
        n_covariance_parameters=lambda k, d: d * (d + 1) // 2,
        rescale_covariances=_matrix_rescale_covariances,
        rescale_precisions=_matrix_rescale_precisions,
        rescale_precisions_cholesky=_matrix_rescale_precisions_cholesky,
    ),
    "diag": CovarianceFamily(
        name="diag",
        log_gaussian=_diag_log_gaussian,
        second_moments=_diag_second_moments,
        moment_diagonals=lambda m: m,
        pooled=False,
        second_moments_from_dense=_matrix_diagonals,
        covariances=_diag_covariances,
        precisions_cholesky=_positive_inverse_sqrt,
        precisions_cholesky_from_precisions=_positive_sqrt_of_precision,
        precisions=np.square,
        dense=lambda c, k, d: c[:, :, None] * np.eye(d),
        compact=_matrix_diagonals,
        invert=np.reciprocal,
        n_covariance_parameters=lambda k, d: k * d,
        rescale_covariances=_vector_rescale_covariances,
        rescale_precisions=_vector_rescale_precisions,
        rescale_precisions_cholesky=_vector_rescale_precisions_cholesky,
    ),
    "spherical": CovarianceFamily(
        name="spherical",
        log_gaussian=_spherical_log_gaussian,
        second_moments=_diag_second_moments,
        moment_diagonals=lambda m: m,
        pooled=False,
        second_moments_from_dense=_matrix_diagonals,
        covariances=_spherical_covariances,
        precisions_cholesky=_positive_inverse_sqrt,
        precisions_cholesky_from_precisions=_positive_sqrt_of_precision,
        precisions=np.square,
        dense=lambda c, k, d: c[:, None, None] * np.eye(d),
        compact=lambda dense: dense[:, 0, 0],
        invert=np.reciprocal,
        n_covariance_parameters=lambda k, d: k,
        rescale_covariances=lambda values, scale: _spherical_rescale(values, scale, 2),
        rescale_precisions=lambda values, scale: _spherical_rescale(values, scale, -2),
        rescale_precisions_cholesky=lambda values, scale: _spherical_rescale(
            values, scale, -1
        ),
    ),
}


def get_family(covariance_type: str) -> CovarianceFamily:
    """Look up a covariance family by name, with a helpful error.

    Parameters
    ----------
    covariance_type : str
        One of ``"full"``, ``"tied"``, ``"diag"``, ``"spherical"``.

    Returns
    -------
    CovarianceFamily
    """
    try:
        return COVARIANCE_FAMILIES[covariance_type]
    except (KeyError, TypeError):
        raise ValueError(
            f"covariance_type must be one of {sorted(COVARIANCE_FAMILIES)}, "
            f"got {covariance_type!r}."
        ) from None
