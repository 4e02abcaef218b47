"""Starting points for EM: k-means++ seeding, Lloyd refinement, random splits.

Every function takes an explicit ``np.random.Generator``; nothing touches the
global numpy random state.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "INIT_METHODS",
    "kmeans_plusplus",
    "lloyd",
    "initial_responsibilities",
]

INIT_METHODS = ("k-means++", "kmeans", "random", "random_from_data")
_LLOYD_MAX_ITER = 100


def _squared_distances(X, centres):
    """Squared Euclidean distances, shape (n_samples, n_centres)."""
    distances = (
        np.einsum("nd,nd->n", X, X)[:, None]
        - 2.0 * X @ centres.T
        + np.einsum("kd,kd->k", centres, centres)[None, :]
    )
    return np.maximum(distances, 0.0)


def kmeans_plusplus(X, n_clusters: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007).

    At each step ``2 + floor(log(n_clusters))`` candidates are drawn with
    probability proportional to the squared distance to the nearest chosen
    centre, and the one that most reduces the total potential is kept, as in
    scikit-learn's ``kmeans_plusplus``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    n_clusters : int
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of shape (n_clusters,)
        Row indices of the chosen centres.
    """
    n_samples = X.shape[0]
    n_trials = 2 + int(np.log(n_clusters))
    indices = np.empty(n_clusters, dtype=np.intp)
    indices[0] = rng.integers(n_samples)
    closest = _squared_distances(X, X[indices[:1]])[:, 0]
    for step in range(1, n_clusters):
        potential = closest.sum()
        if potential <= 0.0:
            # Every point coincides with a centre: fall back to uniform picks.
            candidates = rng.integers(n_samples, size=n_trials)
        else:
            cumulative = np.cumsum(closest)
            draws = rng.random(n_trials) * potential
            candidates = np.minimum(np.searchsorted(cumulative, draws), n_samples - 1)
        candidate_distances = np.minimum(
            closest[None, :], _squared_distances(X, X[candidates]).T
        )
        best = int(np.argmin(candidate_distances.sum(axis=1)))
        indices[step] = candidates[best]
        closest = candidate_distances[best]
    return indices


def lloyd(X, centres: np.ndarray, max_iter: int = _LLOYD_MAX_ITER) -> np.ndarray:
    """Lloyd's k-means iterations from given centres; returns hard labels.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    centres : ndarray of shape (n_clusters, n_features)
    max_iter : int

    Returns
    -------
    ndarray of shape (n_samples,)
        Cluster label of every point.
    """
    labels = np.argmin(_squared_distances(X, centres), axis=1)
    for _ in range(max_iter):
        counts = np.bincount(labels, minlength=len(centres))
        sums = np.zeros_like(centres)
        np.add.at(sums, labels, X)
        occupied = counts > 0
        centres = centres.copy()
        centres[occupied] = sums[occupied] / counts[occupied, None]
        new_labels = np.argmin(_squared_distances(X, centres), axis=1)
        if np.array_equal(new_labels, labels):
            break
        labels = new_labels
    return labels


def _one_hot(labels, n_components):
    responsibilities = np.zeros((labels.shape[0], n_components))
    responsibilities[np.arange(labels.shape[0]), labels] = 1.0
    return responsibilities


def initial_responsibilities(
    X, n_components: int, method: str, rng: np.random.Generator
) -> np.ndarray:
    """Responsibilities that start EM.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    n_components : int
    method : {"k-means++", "kmeans", "random", "random_from_data"}
        ``"k-means++"``: k-means++ seeds, every point assigned to its nearest
        seed.  ``"kmeans"``: the same seeds refined by Lloyd's algorithm.
        ``"random"``: uniform random responsibilities, normalised per row.
        ``"random_from_data"``: random distinct points as seeds, nearest-seed
        assignment.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of shape (n_samples, n_components)
    """
    match method:
        case "k-means++" | "kmeans":
            centres = X[kmeans_plusplus(X, n_components, rng)]
            if method == "kmeans":
                labels = lloyd(X, centres)
            else:
                labels = np.argmin(_squared_distances(X, centres), axis=1)
            return _one_hot(labels, n_components)
        case "random":
            responsibilities = rng.random((X.shape[0], n_components))
            return responsibilities / responsibilities.sum(axis=1, keepdims=True)
        case "random_from_data":
            seeds = rng.choice(X.shape[0], size=n_components, replace=False)
            labels = np.argmin(_squared_distances(X, X[seeds]), axis=1)
            return _one_hot(labels, n_components)
    raise ValueError(f"init_params must be one of {INIT_METHODS}, got {method!r}.")
