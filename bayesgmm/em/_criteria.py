"""Information criteria for fitted Gaussian mixtures.

Sign convention: scikit-learn's, **lower is better**, for BIC, AIC and ICL
alike (``-2 log L + penalty``).  mclust reports the negatives of these.
"""

from __future__ import annotations

import math

import numpy as np

from bayesgmm.em._covariance import get_family

__all__ = ["n_parameters", "bic", "aic", "icl", "classification_entropy", "weighted_total"]


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


def weighted_total(values, sample_weight, n_samples: int | None = None) -> float:
    """``sum_i w_i v_i``; with ``values`` None, the total weight (``n_samples`` unweighted).

    Parameters
    ----------
    values : ndarray or dask.array.Array of shape (n_samples,), or None
    sample_weight : ndarray or dask.array.Array of shape (n_samples,), or None
        Frequency weights; None counts every row once.
    n_samples : int, optional
        Needed when both are None.

    Returns
    -------
    float
        Computed, for Dask arrays too.

    Examples
    --------
    >>> weighted_total(np.array([1.0, 2.0]), np.array([3.0, 0.5]))
    4.0
    >>> weighted_total(None, None, 7)
    7.0
    """
    if values is None:
        return float(n_samples if sample_weight is None else sample_weight.sum())
    return float(values.sum() if sample_weight is None else (values * sample_weight).sum())


def classification_entropy(responsibilities, sample_weight=None) -> float:
    """``-sum_i log tau_{i, z_i}`` with ``z_i`` the most probable component.

    This is the hard-assignment form used by mclust's ``icl``
    (Biernacki, Celeux & Govaert 2000).

    Parameters
    ----------
    responsibilities : ndarray or dask.array.Array of shape (n_samples, n_components)
    sample_weight : ndarray or dask.array.Array of shape (n_samples,), optional
        Frequency weights: row ``i``'s term counts ``w_i`` times.

    Returns
    -------
    float
        Non-negative; zero when every point is assigned with certainty.
    """
    best = responsibilities.max(axis=1)
    terms = -np.log(np.maximum(best, np.finfo(np.float64).tiny))
    return weighted_total(terms, sample_weight)


def icl(bic_value: float, responsibilities, sample_weight=None) -> float:
    """Integrated completed likelihood, ``BIC + 2 * classification entropy``.

    Lower is better; ``icl >= bic`` always, with equality when every point
    belongs to one component with probability one.  ``sample_weight``
    weights the entropy as in :func:`classification_entropy`.
    """
    return bic_value + 2.0 * classification_entropy(responsibilities, sample_weight)
