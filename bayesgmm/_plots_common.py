"""What every plot of :mod:`bayesgmm.plots` shares: the points shown, grids, colours."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from bayesgmm._checks import match_features
from bayesgmm.posterior import OBSERVED

__all__ = ["COLOURS", "NOISE_COLOUR", "padded_grid", "plotted_data"]

COLOURS = plt.get_cmap("tab10").colors
"""Colour of component ``k``: ``COLOURS[k % 10]``."""

NOISE_COLOUR = (0.62, 0.62, 0.62)
"""Colour of points the noise component takes (label -1)."""


def plotted_data(model, X) -> np.ndarray:
    """The points to draw: ``X`` matched to the model's features, or its training data.

    Parameters
    ----------
    model : BayesianGMM
        A fitted model.
    X : array-like or DataFrame of shape (n_samples, n_features), or None
        None gives the training data.

    Returns
    -------
    ndarray of shape (n_samples, n_features)
    """
    if X is None:
        return model.idata_.observed_data[OBSERVED].values
    return match_features(X, model.feature_names_in_)


def padded_grid(values, n_points: int) -> np.ndarray:
    """Evenly spaced points over the range of ``values`` widened by 10% on each side.

    Parameters
    ----------
    values : array-like of shape (n_samples,)
    n_points : int

    Returns
    -------
    ndarray of shape (n_points,)

    Examples
    --------
    >>> padded_grid([0.0, 10.0], 3).tolist()
    [-1.0, 5.0, 11.0]
    """
    values = np.asarray(values, dtype=float)
    span = np.ptp(values)
    return np.linspace(values.min() - 0.1 * span, values.max() + 0.1 * span, n_points)
