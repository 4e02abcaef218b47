"""Posterior draws <-> ArviZ DataTree, in the user's units.

The DataTree written by :func:`build_datatree` is the single stored form of a
fitted :class:`~bayesgmm.BayesianGMM`; :func:`parameters_from_posterior`
recovers the arrays that every prediction needs from it, so a model loaded
from disk predicts exactly like the one that was saved.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from bayesgmm.noise import NoiseComponent, NoiseRegion
from bayesgmm.parameters import ModelParameters, flatten_draws

__all__ = [
    "FORMAT_VERSION",
    "NOISE_WEIGHT",
    "OBSERVED",
    "REQUIRED_LAYOUT",
    "build_datatree",
    "correlation_cholesky",
    "parameters_from_posterior",
]

FORMAT_VERSION = 1
OBSERVED = "x"


_SAMPLE = ("chain", "draw")
_PAIRS = ("component", "feature", "feature2")
REQUIRED_LAYOUT = {
    "posterior": {
        "weights": _SAMPLE + ("component",),
        "means": _SAMPLE + ("component", "feature"),
        "scales": _SAMPLE + ("component", "feature"),
        "correlations": _SAMPLE + _PAIRS,
        "covariances": _SAMPLE + _PAIRS,
    },
    "sample_stats": {},
    "log_likelihood": {OBSERVED: _SAMPLE + ("obs",)},
    "observed_data": {OBSERVED: ("obs", "feature")},
}
"""Groups every model DataTree holds, with the variables and dimensions of each.

:func:`build_datatree` writes these; :mod:`bayesgmm.io` requires them on load.
"""


NOISE_WEIGHT = "noise_weight"
"""Posterior variable of a model with a noise component: its weight per draw, with
the noise's ``log(1 / V)`` in data units as the attribute ``log_density`` and the
corners of its box as ``box_lower`` and ``box_upper`` (see
:class:`bayesgmm.noise.NoiseComponent`; absent from files saved before them)."""


def _posterior_dataset(parameters: ModelParameters, coords: dict) -> xr.Dataset:
    values = {"weights": parameters.weights, "means": parameters.means,
              "scales": parameters.scales, "correlations": parameters.correlations,
              "covariances": parameters.covariances}
    dataset = xr.Dataset(
        {name: (dims, values[name]) for name, dims in REQUIRED_LAYOUT["posterior"].items()},
        coords=coords,
    )
    noise = parameters.noise
    if noise is not None:
        box = {} if noise.box is None else {"box_lower": np.asarray(noise.box.lower),
                                            "box_upper": np.asarray(noise.box.upper)}
        dataset[NOISE_WEIGHT] = xr.DataArray(
            np.asarray(noise.weight), dims=_SAMPLE,
            attrs={"log_density": float(noise.log_density), **box},
        )
    return dataset


def build_datatree(
    parameters: ModelParameters,
    *,
    sample_stats: xr.Dataset,
    log_likelihood: np.ndarray,
    observed: np.ndarray,
    feature_names: list[str],
    attrs: dict[str, Any],
    extra_groups: dict[str, xr.Dataset] | None = None,
) -> xr.DataTree:
    """Assemble the fitted model's DataTree.

    Parameters
    ----------
    parameters : ModelParameters
        Relabelled draws in data units, leading axes ``(chain, draw)``.
    sample_stats : xarray.Dataset
        Per-draw sampler statistics.
    log_likelihood : ndarray of shape (chain, draw, n_obs)
        Pointwise marginal log-likelihood.
    observed : ndarray of shape (n_obs, n_features)
    feature_names : list of str
    attrs : dict
        Root attributes (strings and numbers only, for netCDF).
    extra_groups : dict, optional
        Additional groups, e.g. ``vi_trace``.

    Returns
    -------
    xarray.DataTree
        Groups ``posterior``, ``sample_stats``, ``log_likelihood``,
        ``observed_data`` (+ extras); coordinates ``chain``, ``draw``,
        ``component``, ``feature``, ``feature2``, ``obs``.
    """
    chains, draws, n_components = parameters.weights.shape
    coords = {
        "chain": np.arange(chains),
        "draw": np.arange(draws),
        "component": np.arange(n_components),
        "feature": list(feature_names),
        "feature2": list(feature_names),
    }
    obs = {"obs": np.arange(observed.shape[0])}
    groups = {
        "posterior": _posterior_dataset(parameters, coords),
        "sample_stats": sample_stats.assign_coords(
            chain=coords["chain"], draw=coords["draw"]
        ),
        "log_likelihood": xr.Dataset(
            {OBSERVED: (REQUIRED_LAYOUT["log_likelihood"][OBSERVED], log_likelihood)},
            coords={"chain": coords["chain"], "draw": coords["draw"], **obs},
        ),
        "observed_data": xr.Dataset(
            {OBSERVED: (REQUIRED_LAYOUT["observed_data"][OBSERVED], observed)},
            coords={"feature": coords["feature"], **obs},
        ),
    }
    groups.update(extra_groups or {})
    tree = xr.DataTree.from_dict(groups)
    tree.attrs = {"bayesgmm_format_version": FORMAT_VERSION, **attrs}
    return tree


def parameters_from_posterior(posterior: xr.Dataset, flatten: bool = True) -> ModelParameters:
    """Recover the draws of a posterior group as arrays.

    The correlation Cholesky factor is recomputed from ``correlations``
    (it is unique with a positive diagonal).

    Parameters
    ----------
    posterior : xarray.Dataset
        With ``weights``, ``means``, ``scales`` and ``correlations``, and
        :data:`NOISE_WEIGHT` for a model with a noise component.
    flatten : bool, default=True
        Merge ``(chain, draw)`` into one draw axis.

    Returns
    -------
    ModelParameters
    """
    noise = None
    if NOISE_WEIGHT in posterior:
        attrs = posterior[NOISE_WEIGHT].attrs
        log_density = float(attrs["log_density"])
        box = None
        if "box_lower" in attrs:
            box = NoiseRegion(-log_density, np.atleast_1d(np.asarray(attrs["box_lower"], float)),
                              np.atleast_1d(np.asarray(attrs["box_upper"], float)))
        noise = NoiseComponent(posterior[NOISE_WEIGHT].values, log_density, box)
    parameters = ModelParameters(
        posterior["weights"].values, posterior["means"].values, posterior["scales"].values,
        correlation_cholesky(posterior["correlations"].values), noise,
    )
    return flatten_draws(parameters) if flatten else parameters


CORRELATION_JITTER = 1e-12
"""Added to the diagonal of a correlation matrix that is singular to rounding."""


def correlation_cholesky(correlations: np.ndarray) -> np.ndarray:
    """Lower Cholesky factors of correlation matrices, batched over leading axes.

    A draw whose correlation is +-1 to rounding (a component on collinear
    points) is only positive semi-definite and numpy's Cholesky refuses it;
    such matrices get :data:`CORRELATION_JITTER` on the diagonal, and the
    factor's rows are renormalised to unit length (so ``L @ L.T`` keeps a
    unit diagonal).
    """
    try:
        return np.linalg.cholesky(correlations)
    except np.linalg.LinAlgError:
        identity = np.eye(correlations.shape[-1])
        chol = np.linalg.cholesky(correlations + CORRELATION_JITTER * identity)
        return chol / np.linalg.norm(chol, axis=-1, keepdims=True)
