"""The uniform noise component, shared by EM and the Bayesian model.

Numpy only.  A noise component (R's mclust ``noise``, Banfield & Raftery
1993) is a constant density ``1 / V`` with its own mixture weight, next to
the Gaussian components::

    p(x) = w_noise / V + sum_k w_k N(x | mean_k, cov_k)

``V`` is the hypervolume of the data's bounding box (the product of the
column ranges, as mclust's ``hypvol`` without the ellipsoid option) or a
user-given ``noise_volume`` (mclust's ``1 / Vinv``), in the user's units.

Decisions:

* The density is ``1 / V`` everywhere, also outside the box (mclust's
  convention).  A strictly box-bounded uniform would give new points outside
  the training box a noise density of zero, so the farthest points would be
  the ones never called noise.
* Models fitted on standardised data (``z = (x - centre) / scale``) use the
  volume in those units, ``V / prod(scale)``: the same density after the
  Jacobian, so log-likelihoods stay comparable with the user's units.
* The noise component is the last column of every responsibility matrix;
  :data:`NOISE_LABEL` (-1, scikit-learn's mark for noise) is what ``predict``
  returns for points it takes.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = [
    "NOISE_LABEL",
    "NoiseComponent",
    "check_noise_settings",
    "NoiseRegion",
    "check_noise_volume",
    "log_bounding_box_volume",
    "log_noise_density",
    "noise_log_sides",
    "noise_region",
]

NOISE_LABEL = -1
"""Label of points whose most probable component is the noise."""


class NoiseComponent(NamedTuple):
    """The noise component of one mixture, or of a batch of posterior draws.

    Attributes
    ----------
    weight : float or ndarray of shape (...)
        Its mixture weight (per draw when batched); the Gaussian weights sum
        to one minus it.
    log_density : float
        ``log(1 / V)`` on the scale the parameters are on (see
        :func:`log_noise_density`); the same for every draw.
    box : NoiseRegion or None
        The box of volume ``V`` on the same scale, when known.  Rows with
        missing values need it: over a row's observed coordinates the noise
        density is the box's marginal ``1 / V_obs`` (:func:`noise_log_sides`),
        and its mean and spread along the missing ones are the box's.  None
        for a model stored before it was recorded.
    """

    weight: float | np.ndarray
    log_density: float
    box: NoiseRegion | None = None


def check_noise_settings(noise, noise_volume) -> None:
    """Refuse a ``noise`` that is not a bool, or a ``noise_volume`` without noise.

    Parameters
    ----------
    noise : bool
    noise_volume : float or None
    """
    if not isinstance(noise, (bool, np.bool_)):
        raise TypeError(f"noise must be True or False, got {noise!r}.")
    check_noise_volume(noise_volume)
    if noise_volume is not None and not noise:
        raise ValueError(
            "noise_volume is the volume of the noise component, which is only "
            "fitted with noise=True. Pass noise=True as well, or drop noise_volume."
        )


def check_noise_volume(noise_volume) -> None:
    """Refuse a ``noise_volume`` that is not one finite positive number.

    Parameters
    ----------
    noise_volume : float or None
    """
    if noise_volume is None:
        return
    if isinstance(noise_volume, bool) or not isinstance(noise_volume, (int, float, np.number)):
        raise TypeError(f"noise_volume must be a positive number or None, got {noise_volume!r}.")
    if not (np.isfinite(noise_volume) and noise_volume > 0.0):
        raise ValueError(
            f"noise_volume must be a finite positive number (the hypervolume of the "
            f"region the noise is spread over, in the data's units), got {noise_volume!r}."
        )


def log_bounding_box_volume(values: np.ndarray) -> float:
    """Log hypervolume of the data's bounding box (sum of log column ranges).

    Kept in logs: 50 columns of range 1e10 have a volume of 1e500.

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_features)
        Checked data; missing values (NaN) are ignored.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        When a column has no spread, so the box is flat (give
        ``noise_volume``).
    """
    ranges = np.nanmax(values, axis=0) - np.nanmin(values, axis=0)
    if np.any(ranges <= 0.0):
        raise ValueError(
            "The noise component needs the data's bounding box, but a column has no "
            "spread, so the box has no volume. Pass noise_volume= (the hypervolume "
            "in your data's units) or drop the constant column."
        )
    return float(np.log(ranges).sum())


def log_noise_density(log_volume: float, scale: np.ndarray | None = None) -> float:
    """``log(1 / V)``, the noise component's log density at every point.

    Parameters
    ----------
    log_volume : float
        ``log V`` in the user's units.
    scale : ndarray of shape (n_features,), optional
        When the density is evaluated on ``z = (x - centre) / scale``: the
        volume there is ``V / prod(scale)``.

    Returns
    -------
    float
    """
    if scale is not None:
        log_volume = log_volume - float(np.log(scale).sum())
    return -float(log_volume)


class NoiseRegion(NamedTuple):
    """The region of a noise component, in the user's units.

    Attributes
    ----------
    log_volume : float
        ``log V``; the noise density is ``1 / V`` everywhere.
    lower, upper : ndarray of shape (n_features,)
        Corners of the box of volume ``V`` that noise points are sampled from.
    """

    log_volume: float
    lower: np.ndarray
    upper: np.ndarray


def noise_region(values: np.ndarray, noise_volume: float | None) -> NoiseRegion:
    """The noise component's volume and sampling box for the training data.

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_features)
        Checked training data, in the user's units.
    noise_volume : float or None
        ``None``: the data's bounding box.  A number: that volume, as a box
        with the bounding box's centre and aspect ratio (a cube for a single
        row, whose box is flat).

    Returns
    -------
    NoiseRegion

    Examples
    --------
    >>> import numpy as np
    >>> values = np.array([[0.0, 0.0], [1.0, 4.0]])
    >>> region = noise_region(values, 16.0)
    >>> region.lower.round(9).tolist(), region.upper.round(9).tolist()
    ([-0.5, -2.0], [1.5, 6.0])
    """
    low, high = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
    if noise_volume is None:
        return NoiseRegion(log_bounding_box_volume(values), low, high)
    log_volume = float(np.log(noise_volume))
    log_sides = np.log(np.where(high > low, high - low, 1.0))
    log_sides += (log_volume - log_sides.sum()) / len(log_sides)
    half_sides = 0.5 * np.exp(log_sides)
    centre = 0.5 * low + 0.5 * high
    return NoiseRegion(log_volume, centre - half_sides, centre + half_sides)


def noise_log_sides(region: NoiseRegion | None, scale: np.ndarray) -> np.ndarray | None:
    """Log side lengths of the noise box on the scale ``x / scale``; None without noise.

    Over a row's observed coordinates the noise density is ``1 / V_obs``,
    ``V_obs`` the product of these sides along them; in logs, ``log(1 / V)``
    plus the log sides of the missing coordinates (EM and the Bayesian model
    alike).

    Parameters
    ----------
    region : NoiseRegion or None
        In the user's units.
    scale : ndarray of shape (n_features,)

    Returns
    -------
    ndarray of shape (n_features,) or None

    Examples
    --------
    >>> import numpy as np
    >>> region = NoiseRegion(float(np.log(8.0)), np.zeros(2), np.array([2.0, 4.0]))
    >>> np.exp(noise_log_sides(region, np.array([1.0, 2.0]))).tolist()
    [2.0, 2.0]
    """
    if region is None:
        return None
    return np.log(region.upper - region.lower) - np.log(scale)
