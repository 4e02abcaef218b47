"""Lightweight coresets: a weighted subsample whose weighted log-likelihood estimates all rows'.

Bachem, Lucic & Krause (2018), "Scalable k-means clustering via lightweight
coresets": row ``i`` is drawn with probability

    q_i = 1/2 * 1/N + 1/2 * d(x_i, centres)^2 / sum_j d(x_j, centres)^2

(``d`` the distance to the nearest centre: here the EM means, on the
model's scale) and carries weight ``1 / (m q_i)``, so the weighted sum over
the ``m`` drawn rows is an unbiased estimate of any sum over all rows.  With
frequency weights ``f_i`` both terms of ``q`` are weighted by ``f`` and the
coreset weight is ``f_i / (m q_i)``.

The catch (measured in ``reports/benchmarks/scale.md``): the coreset's
weights sum to about N, so a posterior fitted to it is as narrow as the
full data's, while the coreset's estimate of the log-likelihood has an error
that grows with N.  Its posterior then sits several of its own sds away
from the full data's: at N = 1e5 and m = 5,000, up to 9.1 full-NUTS sds,
with sds of the right size (ratio 0.90-1.12), and true means up to 6.1 of
its sds away.  Widening it to be honest means sds about ``sqrt(N / m)``
times too large (4.5x there), far outside the 0.75-1.33 agreement target.
So it is rejected as the large-N default (the Laplace approximation meets
the targets) and stays available, with :class:`CoresetWarning`, for
comparison.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

__all__ = ["CORESET_SIZE", "Coreset", "CoresetWarning", "lightweight_coreset",
           "warn_overconfident"]

CORESET_SIZE = 5_000
"""Rows in a coreset: NUTS on 5,000 weighted rows runs in about a minute here."""


class CoresetWarning(UserWarning):
    """A coreset posterior is narrower than its own error: see the module docstring."""


def warn_overconfident(n_samples: int, size: int) -> None:
    """Warn that a coreset of ``size`` rows from ``n_samples`` gives an overconfident posterior."""
    warnings.warn(
        f"method='coreset_nuts' fits {size:,} weighted rows standing for {n_samples:,}: its "
        "posterior is as narrow as the full data's but can sit several of its sds away "
        "(9 sds measured at N = 1e5). Use method='laplace' (the large-N default) for "
        "calibrated intervals.", CoresetWarning, stacklevel=4)


class Coreset(NamedTuple):
    """Rows drawn (with replacement, sorted) and their weights."""

    rows: np.ndarray
    weights: np.ndarray


def lightweight_coreset(values: np.ndarray, centres: np.ndarray, size: int,
                        rng: np.random.Generator,
                        sample_weight: np.ndarray | None = None) -> Coreset:
    """Draw a lightweight coreset.

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_features)
        Rows without missing values.
    centres : ndarray of shape (n_centres, n_features)
    size : int
        Rows drawn, with replacement.
    rng : numpy.random.Generator
    sample_weight : ndarray of shape (n_samples,), optional

    Returns
    -------
    Coreset

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(10_000, 2))
    >>> coreset = lightweight_coreset(X, np.zeros((1, 2)), 2_000, rng)
    >>> bool(abs(coreset.weights.sum() / 10_000 - 1) < 0.05)
    True
    """
    if np.isnan(values).any():
        raise ValueError("A coreset is drawn from rows without missing values; use "
                         "method='laplace' or 'nuts' with missing='marginalize'.")
    weights = np.ones(values.shape[0]) if sample_weight is None else sample_weight
    squared = np.full(values.shape[0], np.inf)
    for centre in centres:
        squared = np.minimum(squared, ((values - centre) ** 2).sum(axis=1))
    probability = 0.5 * weights / weights.sum()
    spread = (weights * squared).sum()
    if spread > 0:
        probability += 0.5 * weights * squared / spread
    else:
        probability *= 2.0
    rows = np.sort(rng.choice(values.shape[0], size=size, replace=True, p=probability))
    return Coreset(rows, weights[rows] / (size * probability[rows]))
