"""Prior settings of the Bayesian mixture, as data.

:class:`GMMPriors` is a frozen dataclass that round-trips through JSON, is
written into every fitted model's attributes, and is checked on load.

The model it parameterises, for components ``k`` and features ``d``::

    weights            ~ Dirichlet(weight_concentration)
                       | Dirichlet(weight_concentration, noise_concentration)  (noise=True)
    means[k, d]        ~ Normal(mean_loc[d], mean_scale[d])
    scales[k, d]       ~ InverseGamma(2, scale_scale[d])    (scale_prior="inverse_gamma", default)
                       | LogNormal(log(scale_scale[d]), 1) (scale_prior="lognormal")
                       | HalfNormal(scale_scale[d])        (scale_prior="half_normal")
                       | Exponential(mean=scale_scale[d])  (scale_prior="exponential")
    correlations[k]    ~ LKJ(lkj_eta)                      (full covariance, D > 1)
    x_i                ~ sum_k weights[k] Normal(means[k], diag(scales[k]) R[k] diag(scales[k]))
                         (+ noise_weight / V with noise=True, see bayesgmm.noise)

With ``standardize=True`` (the default) the model is fitted to the data
centred by the column means and divided by the column standard deviations,
both of the column's bulk (values beyond 5 IQRs of the quartiles excluded,
see :func:`bayesgmm.scaling.standardization`); every prior setting is then on
that unit scale, and the defaults (``mean_loc=0``, ``mean_scale=2`` widened
where needed so every observed value lies within 3 prior sds, see
:data:`DATA_WITHIN_PRIOR_SDS`; ``scale_scale=0.5`` for the default
inverse-gamma scale prior, 1 for the others) are weakly informative
for any data.  Posterior draws are still reported in the data's units.

With ``standardize=False`` every setting is on the raw data scale, so a user
can state e.g. ``means ~ N(0, 2)``, ``scales ~ HalfNormal(2)`` and
``weights ~ Dirichlet(5, 5)`` exactly.  Settings left at ``None`` then
default to the same weakly informative choice expressed in data units
(``mean_loc`` = column means, ``mean_scale`` = 2 x column sd, ``scale_scale``
= column sd, halved for the inverse gamma).

Why the inverse-gamma scale prior is the default: real data are rounded, so
a feature has tied values, and a component can sit on ``m`` tied points with
its scale shrinking to 0.  In ``u = log(sigma)`` the likelihood of those
points then grows like ``exp((m - 2)|u|)`` (Jacobian included) under any
scale prior with positive density at 0 (half-normal, exponential, and
gamma(2, .) too), which is not integrable for ``m >= 2``: the posterior is
improper and samplers find that spike (Old Faithful has ties of 8 and 15).

* The log-normal prior adds ``-u^2 / 2``: the posterior is proper, but it
  keeps a bump at ``u = -(m - 2)`` about ``(m - 2)^2 / 2`` nats high, i.e. a
  scale of ``exp(-13)`` and +84 nats for Faithful's tie of 15.
* The inverse-gamma prior (``InverseGamma(2, beta)`` on the scale, the
  scale-parameter analogue of Richardson & Green's 1997 inverse-gamma on
  the variance) adds ``-2u - beta exp(-u)``: its density vanishes like
  ``exp(-beta / sigma)``, faster than any power, so no collapse can pay
  off; a tie of ``m`` can at most pull a scale to ``beta / (m - 2)``.  With
  the default ``beta = 0.5`` on the standardised scale its mode is 1/6 and
  its mean 1/2 of the data's sd, and a scale of 1/50 of the data's sd loses
  about 18 nats (in ``log sigma``) against the most probable scale.

Half-normal and exponential remain available; with them, fitting data whose
features repeat a value more than twice warns
(:class:`bayesgmm._checks.TiedValuesWarning`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple

import numpy as np

__all__ = ["GMMPriors", "ResolvedPriors", "SCALE_PRIORS"]

SCALE_PRIORS = ("half_normal", "exponential", "lognormal", "inverse_gamma")
PROPER_WITH_TIES = ("inverse_gamma", "lognormal")
INVERSE_GAMMA_SHAPE = 2.0
"""Shape of the inverse-gamma scale prior (its scale is ``scale_scale``)."""
"""Scale priors that keep the posterior proper when values are tied."""
_STANDARD_MEAN_SCALE = 2.0
DATA_WITHIN_PRIOR_SDS = 3.0
"""The default ``mean_scale`` is widened, where needed, until every observed value
lies within this many prior sds of ``mean_loc`` (the spirit of Richardson & Green's
range-based mean prior).  With the bulk's scale as the unit, a small cluster far
out (4 points at 40 next to bulk data at 0-3) would otherwise sit beyond the
prior's reach and be absorbed by a broad component.  Ordinary data (every value
within 6 bulk sds of the centre) keep ``mean_scale = 2`` exactly."""
_STANDARD_SCALE_SCALE = {"inverse_gamma": 0.5, "lognormal": 1.0, "half_normal": 1.0,
                         "exponential": 1.0}
"""Default ``scale_scale`` per scale prior, in units of the data's sd.

0.5 for the inverse gamma: prior mode 1/6 and mean 1/2 of the data's sd.
With 1.0 a small cluster (Galaxies' 7 points at 0.13 sd) is pushed wider
and K = 2 mixes poorly; at 0.5 it fits as under the other priors, while a
tie of ``m`` can still pull a scale no lower than ``0.5 / (m - 2)``.
"""


class ResolvedPriors(NamedTuple):
    """Concrete prior arrays on the scale the model is fitted on.

    Attributes
    ----------
    weight_concentration : ndarray of shape (n_components,)
    mean_loc, mean_scale, scale_scale : ndarray of shape (n_features,)
    scale_prior : str
    lkj_eta : float
    noise_concentration : float
        Used only by models with a noise component.
    """

    weight_concentration: np.ndarray
    mean_loc: np.ndarray
    mean_scale: np.ndarray
    scale_scale: np.ndarray
    scale_prior: str
    lkj_eta: float
    noise_concentration: float = 1.0


def _as_plain(name: str, value):
    """None, a Python float, or a tuple of Python floats (JSON-safe), all finite."""
    if value is None:
        return None
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"GMMPriors.{name} must be a number or a sequence of numbers, "
                         f"got {value!r}.") from None
    if not np.all(np.isfinite(array)):
        raise ValueError(f"GMMPriors.{name} must be finite, got {value!r}.")
    if array.ndim == 0:
        return float(array)
    return tuple(float(v) for v in array.ravel())


def _broadcast(name: str, value, size: int, what: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        return np.full(size, float(array))
    if array.shape != (size,):
        raise ValueError(
            f"GMMPriors.{name} must be a number or have one entry per {what} "
            f"({size}), got {array.shape[0]} entries."
        )
    return array.copy()


@dataclass(frozen=True)
class GMMPriors:
    """Priors of a Bayesian Gaussian mixture (see the module docstring).

    Parameters
    ----------
    weight_concentration : float or sequence of float, default=1.0
        Dirichlet concentration, symmetric (float) or one per component.
        Small values (e.g. 0.01) give a sparse, overfitted mixture.
    mean_loc : float, sequence of float or None
        Prior mean of the component means, per feature.
    mean_scale : float, sequence of float or None
        Prior standard deviation of the component means, per feature.
    scale_prior : {"inverse_gamma", "lognormal", "half_normal", "exponential"}
        Family of the prior on the per-feature standard deviations (default
        ``"inverse_gamma"``).  ``"half_normal"`` and ``"exponential"`` make
        the posterior improper when a feature has tied values (module
        docstring).
    scale_scale : float, sequence of float or None
        Scale of that prior: the InverseGamma scale (with shape 2, also the
        prior mean of the scale), the LogNormal median, the HalfNormal sigma,
        or the Exponential mean.
    lkj_eta : float, default=2.0
        LKJ shape of the correlation matrices; 1 is uniform, larger values
        favour weaker correlations.
    noise_concentration : float, default=1.0
        Dirichlet concentration of the noise component's weight, beside the
        Gaussian ones (only with ``noise=True``).  A priori the noise weight
        is ``Beta(noise_concentration, sum(weight_concentration))``: with the
        defaults ``Beta(1, K)``, mean ``1 / (K + 1)``.  Beside a sparse
        ``weight_concentration`` (0.01) it is ``Beta(1, 0.01 K)``, mean ~0.9:
        lower ``noise_concentration`` too when the data should speak for the
        noise weight with few rows.
    standardize : bool, default=True
        Fit on standardised data with priors on the unit scale (``True``) or
        on the raw data with priors in data units (``False``).

    Examples
    --------
    >>> priors = GMMPriors(mean_scale=2.0, scale_scale=2.0, weight_concentration=5.0,
    ...                    standardize=False)
    >>> GMMPriors.from_json(priors.to_json()) == priors
    True
    """

    weight_concentration: float | tuple[float, ...] = 1.0
    mean_loc: float | tuple[float, ...] | None = None
    mean_scale: float | tuple[float, ...] | None = None
    scale_prior: str = "inverse_gamma"
    scale_scale: float | tuple[float, ...] | None = None
    lkj_eta: float = 2.0
    standardize: bool = True
    noise_concentration: float = 1.0

    def __post_init__(self) -> None:
        for name in ("weight_concentration", "mean_loc", "mean_scale", "scale_scale"):
            object.__setattr__(self, name, _as_plain(name, getattr(self, name)))
        if self.scale_prior not in SCALE_PRIORS:
            raise ValueError(
                f"scale_prior must be one of {SCALE_PRIORS}, got {self.scale_prior!r}."
            )
        for name in ("weight_concentration", "mean_scale", "scale_scale"):
            value = getattr(self, name)
            if value is not None and np.any(np.asarray(value, dtype=float) <= 0):
                raise ValueError(f"GMMPriors.{name} must be positive, got {value!r}.")
        object.__setattr__(self, "lkj_eta", _as_plain("lkj_eta", self.lkj_eta))
        if not isinstance(self.lkj_eta, float) or not self.lkj_eta > 0:
            raise ValueError(
                f"GMMPriors.lkj_eta must be a positive number, e.g. lkj_eta=2.0; got "
                f"{self.lkj_eta!r}."
            )
        object.__setattr__(self, "noise_concentration",
                           _as_plain("noise_concentration", self.noise_concentration))
        if not isinstance(self.noise_concentration, float) or not self.noise_concentration > 0:
            raise ValueError(
                "GMMPriors.noise_concentration must be one positive number, e.g. 1.0; got "
                f"{self.noise_concentration!r}."
            )
        if not isinstance(self.standardize, bool):
            raise ValueError("GMMPriors.standardize must be True or False.")

    # ------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict (tuples become lists) for JSON."""
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in asdict(self).items()
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GMMPriors:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        known = {field.name for field in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"Unknown GMMPriors settings: {sorted(unknown)}.")
        return cls(**data)

    def to_json(self) -> str:
        """JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> GMMPriors:
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))

    # ------------------------------------------------------------ resolution
    def resolve(
        self,
        n_components: int,
        centre: np.ndarray,
        scale: np.ndarray,
        extent: np.ndarray | None = None,
    ) -> ResolvedPriors:
        """Concrete prior arrays on the scale the model is fitted on.

        Parameters
        ----------
        n_components : int
        centre, scale : ndarray of shape (n_features,)
            Centre and scale of the data's bulk
            (:func:`bayesgmm.scaling.standardization`), used for defaults
            when ``standardize=False``.
        extent : ndarray of shape (n_features,), optional
            Largest ``|x - centre|`` per feature, in data units: the default
            ``mean_scale`` grows to at least ``extent / 3``
            (:data:`DATA_WITHIN_PRIOR_SDS`).

        Returns
        -------
        ResolvedPriors
        """
        n_features = len(centre)
        unit = np.ones(n_features) if self.standardize else np.asarray(scale, dtype=np.float64)
        default_loc = np.zeros(n_features) if self.standardize else np.asarray(centre, float)
        default_mean_scale = _STANDARD_MEAN_SCALE * unit
        if extent is not None:
            reach = np.asarray(extent, dtype=np.float64) / DATA_WITHIN_PRIOR_SDS
            default_mean_scale = np.maximum(
                default_mean_scale, reach / np.asarray(scale) * unit)
        default_scale_scale = _STANDARD_SCALE_SCALE[self.scale_prior] * unit

        def pick(name, default):
            value = getattr(self, name)
            return default if value is None else _broadcast(name, value, n_features, "feature")

        return ResolvedPriors(
            weight_concentration=_broadcast(
                "weight_concentration", self.weight_concentration, n_components,
                "component",
            ),
            mean_loc=pick("mean_loc", default_loc),
            mean_scale=pick("mean_scale", default_mean_scale),
            scale_scale=pick("scale_scale", default_scale_scale),
            scale_prior=self.scale_prior,
            lkj_eta=float(self.lkj_eta),
            noise_concentration=float(self.noise_concentration),
        )
