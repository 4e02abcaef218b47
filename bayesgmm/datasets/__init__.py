"""Bundled datasets and a simulator of Gaussian mixtures with known truth."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd

__all__ = ["load_faithful", "load_galaxies", "make_mixture"]


def _read_bundled(filename: str) -> pd.DataFrame:
    with resources.files(__package__).joinpath(filename).open("r") as handle:
        return pd.read_csv(handle)


def load_faithful() -> pd.DataFrame:
    """Old Faithful geyser eruptions (Azzalini & Bowman 1990).

    Returns
    -------
    DataFrame of shape (272, 2)
        ``eruptions`` (eruption time, minutes) and ``waiting`` (time to the
        next eruption, minutes).

    Examples
    --------
    >>> load_faithful().shape
    (272, 2)
    """
    return _read_bundled("faithful.csv")


def load_galaxies() -> pd.DataFrame:
    """Velocities of 82 galaxies in the Corona Borealis region (Roeder 1990).

    Returns
    -------
    DataFrame of shape (82, 1)
        ``velocity`` in km/s.

    Examples
    --------
    >>> float(load_galaxies()["velocity"].min())
    9172.0
    """
    return _read_bundled("galaxies.csv")


def make_mixture(
    n_samples: int,
    weights,
    means,
    covariances,
    random_state=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw points from a Gaussian mixture with known parameters.

    Parameters
    ----------
    n_samples : int
        Number of points.
    weights : array-like of shape (n_components,)
        Mixing proportions; must be non-negative and sum to one.
    means : array-like of shape (n_components, n_features)
    covariances : array-like of shape (n_components, n_features, n_features)
        Full covariance matrix of each component.
    random_state : int, numpy.random.Generator or None

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    labels : ndarray of shape (n_samples,)
        True component of every point, in random order.

    Examples
    --------
    >>> X, labels = make_mixture(5, [0.5, 0.5], [[0.0], [5.0]], [[[1.0]], [[1.0]]], 0)
    >>> X.shape, labels.shape
    ((5, 1), (5,))
    """
    weights = np.asarray(weights, dtype=np.float64)
    means = np.atleast_2d(np.asarray(means, dtype=np.float64))
    covariances = np.asarray(covariances, dtype=np.float64)
    n_components, n_features = means.shape
    if weights.shape != (n_components,) or np.any(weights < 0):
        raise ValueError("weights must be non-negative with one entry per mean.")
    if not np.isclose(weights.sum(), 1.0):
        raise ValueError(f"weights must sum to 1, got {weights.sum():.6g}.")
    if covariances.shape != (n_components, n_features, n_features):
        raise ValueError(
            f"covariances must have shape ({n_components}, {n_features}, "
            f"{n_features}), got {covariances.shape}."
        )
    rng = np.random.default_rng(random_state)
    labels = rng.choice(n_components, size=n_samples, p=weights / weights.sum())
    chol = np.linalg.cholesky(covariances)
    noise = rng.standard_normal((n_samples, n_features))
    X = means[labels] + np.einsum("nij,nj->ni", chol[labels], noise)
    return X, labels
