"""Information criteria for fitted Gaussian mixtures.

Sign convention: scikit-learn's, **lower is better**, for BIC, AIC and ICL
alike (``-2 log L + penalty``).  mclust reports the negatives of these.
"""

from __future__ import annotations

import math

import numpy as np

from bayesgmm.em._covariance import get_family

__all__ = ["n_parameters", "bic", "aic", "icl", "classification_entropy"]


def n_parameters(covariance_type: str, n_components: int, n_features: int) -> int:
    """Number of free parameters of a Gaussian mixture.

    Parameters
    ----------
    covariance_type : str
    n_components : int
    n_features : int

    Returns
    -------
    int
        Covariance parameters + ``n_components * n_features`` means +
        ``n_components - 1`` weights.

    Examples
    --------
    >>> [n_parameters(c, 2, 5) for c in ("full", "tied", "diag", "spherical")]
    [41, 26, 21, 13]
    """
    covariance = get_family(covariance_type).n_covariance_parameters(
        n_components, n_features
    )
    return int(covariance + n_components * n_features + n_components - 1)


def bic(total_log_likelihood: float, n_params: int, n_samples: int) -> float:
    """Bayesian information criterion, ``-2 log L + p log n`` (lower is better)."""
    return -2.0 * total_log_likelihood + n_params * math.log(n_samples)


def aic(total_log_likelihood: float, n_params: int) -> float:
    """Akaike information criterion, ``-2 log L + 2 p`` (lower is better)."""
    return -2.0 * total_log_likelihood + 2.0 * n_params


def classification_entropy(responsibilities: np.ndarray) -> float:
    """``-sum_i log tau_{i, z_i}`` with ``z_i`` the most probable component.

    This is the hard-assignment form used by mclust's ``icl``
    (Biernacki, Celeux & Govaert 2000).

    Parameters
    ----------
    responsibilities : ndarray of shape (n_samples, n_components)

    Returns
    -------
    float
        Non-negative; zero when every point is assigned with certainty.
    """
    best = responsibilities.max(axis=1)
    return float(-np.log(np.maximum(best, np.finfo(np.float64).tiny)).sum())


def icl(bic_value: float, responsibilities: np.ndarray) -> float:
    """Integrated completed likelihood, ``BIC + 2 * classification entropy``.

    Lower is better; ``icl >= bic`` always, with equality when every point
    belongs to one component with probability one.
    """
    return bic_value + 2.0 * classification_entropy(responsibilities)
