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

from bayesgmm.logdensity import ModelParameters

__all__ = [
    "FORMAT_VERSION",
    "to_data_units",
    "to_model_units",
    "build_datatree",
    "parameters_from_posterior",
]

FORMAT_VERSION = 1
OBSERVED = "x"


def to_data_units(
    parameters: ModelParameters, centre: np.ndarray, scale: np.ndarray
) -> ModelParameters:
    """Map parameters of the standardised model ``z = (x - centre) / scale`` to ``x``."""
    return ModelParameters(
        parameters.weights,
        centre + parameters.means * scale,
        parameters.scales * scale,
        parameters.correlation_cholesky,
    )


def to_model_units(
    parameters: ModelParameters, centre: np.ndarray, scale: np.ndarray
) -> ModelParameters:
    """Inverse of :func:`to_data_units`."""
    return ModelParameters(
        parameters.weights,
        (parameters.means - centre) / scale,
        parameters.scales / scale,
        parameters.correlation_cholesky,
    )


def _posterior_dataset(parameters: ModelParameters, coords: dict) -> xr.Dataset:
    sample = ("chain", "draw")
    return xr.Dataset(
        {
            "weights": (sample + ("component",), parameters.weights),
            "means": (sample + ("component", "feature"), parameters.means),
            "scales": (sample + ("component", "feature"), parameters.scales),
            "correlations": (
                sample + ("component", "feature", "feature2"),
                parameters.correlations,
            ),
            "covariances": (
                sample + ("component", "feature", "feature2"),
                parameters.covariances,
            ),
        },
        coords=coords,
    )


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
            {OBSERVED: (("chain", "draw", "obs"), log_likelihood)},
            coords={"chain": coords["chain"], "draw": coords["draw"], **obs},
        ),
        "observed_data": xr.Dataset(
            {OBSERVED: (("obs", "feature"), observed)},
            coords={"feature": coords["feature"], **obs},
        ),
    }
    groups.update(extra_groups or {})
    tree = xr.DataTree.from_dict(groups)
    tree.attrs = {"bayesgmm_format_version": FORMAT_VERSION, **attrs}
    return tree


def parameters_from_posterior(posterior: xr.Dataset) -> ModelParameters:
    """Recover draws, flattened to one axis, from a posterior group.

    The correlation Cholesky factor is recomputed from ``correlations``
    (it is unique with a positive diagonal).
    """
    def flat(name):
        values = posterior[name].values
        return values.reshape((-1,) + values.shape[2:])

    correlations = flat("correlations")
    return ModelParameters(
        flat("weights"), flat("means"), flat("scales"), np.linalg.cholesky(correlations)
    )
