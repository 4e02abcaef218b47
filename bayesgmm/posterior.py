"""Posterior draws <-> ArviZ DataTree, in the user's units.

The DataTree written by :func:`build_datatree` is the single stored form of a
fitted :class:`~bayesgmm.BayesianGMM`; :func:`parameters_from_posterior`
recovers the arrays that every prediction needs from it, so a model loaded
from disk predicts exactly like the one that was saved.

Memory does not grow with rows x draws: the pointwise log-likelihood
``(chain, draw, obs)`` is kept as the ``log_likelihood`` group only within
:data:`~bayesgmm._workload.LOG_LIKELIHOOD_BUDGET` values, and the root
attribute :data:`POINTWISE_STORED_ATTR` says whether it was
(:func:`stores_pointwise`).  Every consumer works without it: the per-draw
total that the diagnostics need is always kept in ``sample_stats``
(:data:`TOTAL_LOG_LIKELIHOOD`), and LOO and anomaly scores stream the rest
from the draws (:mod:`bayesgmm.loo`).  A weighted fit keeps its frequency
weights as ``constant_data/sample_weight`` (:func:`stored_sample_weight`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from bayesgmm._workload import keeps_pointwise_log_likelihood
from bayesgmm.noise import NoiseComponent, NoiseRegion
from bayesgmm.parameters import ModelParameters, flatten_draws

__all__ = [
    "FORMAT_VERSION",
    "NOISE_WEIGHT",
    "OBSERVED",
    "OPTIONAL_LAYOUT",
    "POINTWISE_STORED_ATTR",
    "REQUIRED_LAYOUT",
    "SAMPLE_WEIGHT",
    "TOTAL_LOG_LIKELIHOOD",
    "build_datatree",
    "correlation_cholesky",
    "keeps_pointwise_log_likelihood",
    "parameters_from_posterior",
    "stored_sample_weight",
    "stores_pointwise",
    "total_log_likelihood",
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
    "observed_data": {OBSERVED: ("obs", "feature")},
}
"""Groups every model DataTree holds, with the variables and dimensions of each.

:func:`build_datatree` writes these; :mod:`bayesgmm.io` requires them on load.
"""

SAMPLE_WEIGHT = "sample_weight"
"""``constant_data`` variable of a weighted fit: the frequency weight of each row."""

OPTIONAL_LAYOUT = {
    "log_likelihood": {OBSERVED: _SAMPLE + ("obs",)},
    "constant_data": {SAMPLE_WEIGHT: ("obs",)},
    "posterior_predictive": {OBSERVED: _SAMPLE + ("obs", "feature")},
}
"""Groups a model DataTree may hold, with the variables and dimensions each then has.

``log_likelihood``: the pointwise log-likelihood, kept when
:data:`POINTWISE_STORED_ATTR` says so; ``constant_data``: the frequency
weights of a weighted fit; ``posterior_predictive``: the replicates
:meth:`bayesgmm.BayesianGMM.sample_posterior_predictive` adds.
"""

POINTWISE_STORED_ATTR = "pointwise_log_likelihood_stored"
"""Root attribute: 1 when the tree holds the ``log_likelihood`` group, 0 when it
was over :data:`~bayesgmm._workload.LOG_LIKELIHOOD_BUDGET` and is streamed instead.
Files written before the budget existed lack it and always hold the group."""

TOTAL_LOG_LIKELIHOOD = "total_log_likelihood"
"""``sample_stats`` variable: ``sum_i w_i log p(x_i | theta_s)`` per draw (``w_i = 1``
unweighted), the quantity of the log-likelihood R-hat and mode gates."""


REPEATED_ALONG = {"tied": ("component", ("scales", "correlations")),
                  "spherical": ("feature", ("scales",))}
"""What a shared covariance structure stores repeated: ``(dimension, variables)``.
A ``tied`` fit keeps its one scale vector and correlation matrix once per
component, a ``spherical`` fit its one scale per component once per feature."""


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
    log_likelihood: np.ndarray | None,
    observed: np.ndarray,
    feature_names: list[str],
    attrs: dict[str, Any],
    total_log_likelihood: np.ndarray | None = None,
    sample_weight: np.ndarray | None = None,
    extra_groups: dict[str, xr.Dataset] | None = None,
) -> xr.DataTree:
    """Assemble the fitted model's DataTree.

    Parameters
    ----------
    parameters : ModelParameters
        Relabelled draws in data units, leading axes ``(chain, draw)``.
    sample_stats : xarray.Dataset
        Per-draw sampler statistics.
    log_likelihood : ndarray of shape (chain, draw, n_obs), or None
        Pointwise marginal log-likelihood (unweighted, one copy of each
        row); None when it is over the budget (:func:`stores_pointwise`).
    observed : ndarray of shape (n_obs, n_features)
    feature_names : list of str
    attrs : dict
        Root attributes (strings and numbers only, for netCDF).
    total_log_likelihood : ndarray of shape (chain, draw), optional
        ``sum_i w_i log p(x_i | theta)`` per draw; summed from
        ``log_likelihood`` when that is given.  Without either, none is
        stored (a Gaussian approximation at large N: see
        :func:`bayesgmm.fitting.assemble_datatree`).
    sample_weight : ndarray of shape (n_obs,), optional
        Frequency weights of a weighted fit (None: unweighted).
    extra_groups : dict, optional
        Additional groups, e.g. ``vi_trace``.

    Returns
    -------
    xarray.DataTree
        Groups ``posterior``, ``sample_stats`` (with
        :data:`TOTAL_LOG_LIKELIHOOD`), ``log_likelihood`` (when given),
        ``observed_data``, ``constant_data`` (when weighted) (+ extras);
        coordinates ``chain``, ``draw``, ``component``, ``feature``,
        ``feature2``, ``obs``; the root attribute
        :data:`POINTWISE_STORED_ATTR`.
    """
    if total_log_likelihood is None and log_likelihood is not None:
        total_log_likelihood = (log_likelihood.sum(axis=-1) if sample_weight is None
                                else log_likelihood @ sample_weight)
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
        "sample_stats": (sample_stats if total_log_likelihood is None else sample_stats.assign(
            {TOTAL_LOG_LIKELIHOOD: (_SAMPLE, np.asarray(total_log_likelihood, np.float64))}
        )).assign_coords(chain=coords["chain"], draw=coords["draw"]),
        "observed_data": xr.Dataset(
            {OBSERVED: (REQUIRED_LAYOUT["observed_data"][OBSERVED], observed)},
            coords={"feature": coords["feature"], **obs},
        ),
    }
    if log_likelihood is not None:
        groups["log_likelihood"] = xr.Dataset(
            {OBSERVED: (OPTIONAL_LAYOUT["log_likelihood"][OBSERVED], log_likelihood)},
            coords={"chain": coords["chain"], "draw": coords["draw"], **obs},
        )
    if sample_weight is not None:
        groups["constant_data"] = xr.Dataset(
            {SAMPLE_WEIGHT: (OPTIONAL_LAYOUT["constant_data"][SAMPLE_WEIGHT],
                             np.asarray(sample_weight, np.float64))},
            coords=obs,
        )
    groups.update(extra_groups or {})
    tree = xr.DataTree.from_dict(groups)
    tree.attrs = {"bayesgmm_format_version": FORMAT_VERSION, **attrs,
                  POINTWISE_STORED_ATTR: int(log_likelihood is not None)}
    return tree


def stores_pointwise(tree: xr.DataTree) -> bool:
    """Whether ``tree`` holds the pointwise log-likelihood (``log_likelihood`` group).

    Trees written before :data:`POINTWISE_STORED_ATTR` existed always hold it.
    """
    return bool(tree.attrs.get(POINTWISE_STORED_ATTR, 1))


def stored_sample_weight(tree: xr.DataTree) -> np.ndarray | None:
    """The frequency weights of the rows of a weighted fit, or None when unweighted.

    Returns
    -------
    ndarray of shape (n_obs,) or None
    """
    if "constant_data" not in tree.children or SAMPLE_WEIGHT not in tree["constant_data"]:
        return None
    return np.asarray(tree["constant_data"][SAMPLE_WEIGHT].values, dtype=np.float64)


def total_log_likelihood(tree: xr.DataTree) -> np.ndarray:
    """``sum_i w_i log p(x_i | theta_s)`` per draw, shape (chain, draw).

    From ``sample_stats`` (:data:`TOTAL_LOG_LIKELIHOOD`); trees written before
    it existed sum their ``log_likelihood`` group (they are unweighted).
    """
    stats = tree["sample_stats"]
    if TOTAL_LOG_LIKELIHOOD in stats:
        return np.asarray(stats[TOTAL_LOG_LIKELIHOOD].values)
    return tree["log_likelihood"][OBSERVED].values.sum(axis=-1)


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
