"""Starting points for EM: k-means++ seeding, Lloyd refinement, random splits.

Every function takes an explicit ``np.random.Generator``; nothing touches the
global numpy random state.

Frequency weights (``sample_weight``): a row of weight ``w`` acts as ``w``
copies of itself.  k-means++ draws its first seed with probability
proportional to ``w`` and its later candidates proportional to ``w D^2``,
and keeps the candidate that most lowers the weighted potential; Lloyd's
centres are weighted means; ``random_from_data`` draws its seeds with
probability proportional to ``w``.  The draws are not those of the
repeated rows (a generator cannot tell ``w`` copies from one row drawn
``w`` times as likely), so a weighted start equals a repeated-rows start in
distribution, not draw for draw.  ``None`` runs the unweighted code, bit for
bit.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from threadpoolctl import ThreadpoolController

__all__ = [
    "INIT_METHODS",
    "kmeans_plusplus",
    "lloyd",
    "initial_responsibilities",
]

INIT_METHODS = ("k-means++", "kmeans", "random", "random_from_data")
_LLOYD_MAX_ITER = 100


@cache
def _threadpools() -> ThreadpoolController:
    """The process's BLAS and OpenMP pools (inspected once: ~2 ms)."""
    return ThreadpoolController()


def _squared_norms(X) -> np.ndarray:
    """``|x|^2`` of every row, shape (n_samples,)."""
    return np.einsum("nd,nd->n", X, X)


def _squared_distances(X, centres, row_norms: np.ndarray | None = None) -> np.ndarray:
    """Squared Euclidean distances, shape (n_samples, n_centres).

    ``|x|^2 - 2 x.c + |c|^2``, clipped at 0; ``row_norms``
    (:func:`_squared_norms` of ``X``) may be computed once for many calls.
    The product runs on one BLAS thread: with a few centres of a few
    features there is no work to share, and OpenBLAS's second thread waiting
    for a busy core cost ~100 ms a call (1e5 rows, 4 centres, 5 features, on
    a loaded 2-core host) against 0.4 ms on one thread, with the same result
    bit for bit.
    """
    if row_norms is None:
        row_norms = _squared_norms(X)
    with _threadpools().limit(limits=1, user_api="blas"):
        distances = X @ centres.T
    distances *= -2.0
    distances += row_norms[:, None]
    distances += np.einsum("kd,kd->k", centres, centres)
    return np.maximum(distances, 0.0, out=distances)


def _draw_proportional(masses: np.ndarray, n_draws: int, rng: np.random.Generator):
    """Row indices drawn with probability proportional to non-negative ``masses``."""
    cumulative = np.cumsum(masses)
    draws = rng.random(n_draws) * cumulative[-1]
    return np.minimum(np.searchsorted(cumulative, draws), len(masses) - 1)


def kmeans_plusplus(
    X, n_clusters: int, rng: np.random.Generator, sample_weight: np.ndarray | None = None
) -> np.ndarray:
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
    sample_weight : ndarray of shape (n_samples,), optional
        Frequency weights (module notes).

    Returns
    -------
    ndarray of shape (n_clusters,)
        Row indices of the chosen centres.

    Examples
    --------
    >>> X = np.array([[0.0], [0.1], [10.0], [10.1]])
    >>> seeds = kmeans_plusplus(X, 2, np.random.default_rng(0))
    >>> sorted((X[seeds, 0] > 5).tolist())
    [False, True]
    """
    n_samples = X.shape[0]
    n_trials = 2 + int(np.log(n_clusters))
    indices = np.empty(n_clusters, dtype=np.intp)
    if sample_weight is None:
        indices[0] = rng.integers(n_samples)
    else:
        indices[0] = _draw_proportional(sample_weight, 1, rng)[0]
    row_norms = _squared_norms(X)
    closest = _squared_distances(X, X[indices[:1]], row_norms)[:, 0]
    for step in range(1, n_clusters):
        masses = closest if sample_weight is None else closest * sample_weight
        potential = masses.sum()
        if potential <= 0.0:
            # Every point coincides with a centre: fall back to uniform picks.
            candidates = rng.integers(n_samples, size=n_trials)
        else:
            cumulative = np.cumsum(masses)
            draws = rng.random(n_trials) * potential
            candidates = np.minimum(np.searchsorted(cumulative, draws), n_samples - 1)
        candidate_distances = np.minimum(
            closest[None, :], _squared_distances(X, X[candidates], row_norms).T
        )
        if sample_weight is None:
            best = int(np.argmin(candidate_distances.sum(axis=1)))
        else:
            best = int(np.argmin(candidate_distances @ sample_weight))
        indices[step] = candidates[best]
        closest = candidate_distances[best]
    return indices


def lloyd(
    X,
    centres: np.ndarray,
    max_iter: int = _LLOYD_MAX_ITER,
    sample_weight: np.ndarray | None = None,
) -> np.ndarray:
    """Lloyd's k-means iterations from given centres; returns hard labels.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    centres : ndarray of shape (n_clusters, n_features)
    max_iter : int
    sample_weight : ndarray of shape (n_samples,), optional
        Frequency weights: the centres are weighted means.

    Returns
    -------
    ndarray of shape (n_samples,)
        Cluster label of every point.
    """
    row_norms = _squared_norms(X)
    labels = np.argmin(_squared_distances(X, centres, row_norms), axis=1)
    weighted_rows = X if sample_weight is None else X * sample_weight[:, None]
    n_clusters = len(centres)
    for _ in range(max_iter):
        counts = np.bincount(labels, weights=sample_weight, minlength=n_clusters)
        sums = np.column_stack([np.bincount(labels, weights=column, minlength=n_clusters)
                                for column in weighted_rows.T])
        occupied = counts > 0
        centres = centres.copy()
        centres[occupied] = sums[occupied] / counts[occupied, None]
        new_labels = np.argmin(_squared_distances(X, centres, row_norms), axis=1)
        if np.array_equal(new_labels, labels):
            break
        labels = new_labels
    return labels


def _one_hot(labels, n_components):
    responsibilities = np.zeros((labels.shape[0], n_components))
    responsibilities[np.arange(labels.shape[0]), labels] = 1.0
    return responsibilities


def initial_responsibilities(
    X,
    n_components: int,
    method: str,
    rng: np.random.Generator,
    sample_weight: np.ndarray | None = None,
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
    sample_weight : ndarray of shape (n_samples,), optional
        Frequency weights (module notes); rows of weight 0 are never seeds.
        The responsibilities themselves are per row: the weights enter the
        M-step that follows.

    Returns
    -------
    ndarray of shape (n_samples, n_components)
    """
    match method:
        case "k-means++" | "kmeans":
            centres = X[kmeans_plusplus(X, n_components, rng, sample_weight)]
            if method == "kmeans":
                labels = lloyd(X, centres, sample_weight=sample_weight)
            else:
                labels = np.argmin(_squared_distances(X, centres), axis=1)
            return _one_hot(labels, n_components)
        case "random":
            responsibilities = rng.random((X.shape[0], n_components))
            return responsibilities / responsibilities.sum(axis=1, keepdims=True)
        case "random_from_data":
            probabilities = None if sample_weight is None else sample_weight / sample_weight.sum()
            seeds = rng.choice(X.shape[0], size=n_components, replace=False, p=probabilities)
            labels = np.argmin(_squared_distances(X, X[seeds]), axis=1)
            return _one_hot(labels, n_components)
    raise ValueError(f"init_params must be one of {INIT_METHODS}, got {method!r}.")
