"""Draws from the posterior predictive: new points, and replicates of the data.

The posterior predictive of a new point mixes, over posterior draws
``theta_s``, the mixture each draw describes:

    p(x | data) = mean_s [ sum_k w_sk N(x | mu_sk, Sigma_sk) + w_s,noise / V ]

so one predictive draw takes a posterior draw, then a component from that
draw's weights (the noise component, when there is one, with its weight),
then a point from that component: a Gaussian, or uniform on the noise box.

* :func:`draw_mixture` makes one point per requested posterior draw;
  :meth:`bayesgmm.BayesianGMM.sample` picks the draws uniformly at random.
* :func:`replicate_data` makes, for every posterior draw, a replicate of a
  dataset of ``n_obs`` rows: ArviZ's ``posterior_predictive`` group
  (:func:`posterior_predictive_dataset`), for posterior predictive checks and
  the LOO-PIT (:func:`pit_tree`).

A replicate has one row per stored row and every coordinate drawn: compared
with the data it needs unweighted rows (a frequency-weighted fit's rows stand
for ``w_i`` rows each: :func:`predictive_check_tree` resamples them by
weight; the LOO-PIT refuses them) and it is compared on the observed values
only (:func:`pit_tree` keeps the complete rows).  Noise points are drawn
uniformly on the noise box, while the noise density ``1 / V`` is used
everywhere (mclust's convention): beyond the box, ``score_samples`` is not the
density of :meth:`bayesgmm.BayesianGMM.sample`'s points.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from bayesgmm.likelihood import thin_draws
from bayesgmm.membership import draw_allocations
from bayesgmm.noise import NOISE_LABEL
from bayesgmm.parameters import ModelParameters
from bayesgmm.posterior import OBSERVED, stored_sample_weight

__all__ = ["CHECK_DRAWS", "CHECK_ROWS", "draw_mixture", "pit_tree", "posterior_predictive_dataset",
           "predictive_check_tree", "replicate_data", "sample_mixture"]

_BLOCK_VALUES = 2**22
"""Most floats of the per-point Cholesky factors gathered at once (32 MiB)."""


def draw_mixture(
    parameters: ModelParameters, draw_index: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One point from the mixture of each listed posterior draw.

    Parameters
    ----------
    parameters : ModelParameters
        Draws flattened to one leading axis; a noise component needs its box
        (``noise.box``) in the same units.
    draw_index : ndarray of int of shape (n_points,)
        The posterior draw each point comes from.
    rng : numpy.random.Generator

    Returns
    -------
    values : ndarray of shape (n_points, n_features)
    labels : ndarray of int of shape (n_points,)
        The component each point came from; :data:`bayesgmm.noise.NOISE_LABEL`
        (-1) for the noise.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm.parameters import ModelParameters
    >>> one_draw = ModelParameters(np.array([[0.5, 0.5]]), np.array([[[-5.0], [5.0]]]),
    ...                            np.ones((1, 2, 1)), np.ones((1, 2, 1, 1)))
    >>> values, labels = draw_mixture(one_draw, np.zeros(1000, dtype=int),
    ...                               np.random.default_rng(0))
    >>> bool(np.all((values[:, 0] > 0) == (labels == 1)))
    True
    """
    n_components = parameters.weights.shape[-1]
    weights = parameters.weights[draw_index]
    noise = parameters.noise
    if noise is not None:
        if noise.box is None:
            raise ValueError(
                "this model's noise component has no stored box to draw noise points from "
                "(a file saved before boxes were recorded); re-fit the model."
            )
        noise_weight = np.broadcast_to(noise.weight, parameters.weights.shape[:-1])
        weights = np.concatenate([weights, noise_weight[draw_index][:, None]], axis=1)
    labels = draw_allocations(weights, rng)
    gaussian = np.minimum(labels, n_components - 1)
    chol = (parameters.scales[draw_index, gaussian][:, :, None]
            * parameters.correlation_cholesky[draw_index, gaussian])
    standard = rng.standard_normal(parameters.means.shape[-1:] + draw_index.shape).T
    values = parameters.means[draw_index, gaussian] + np.einsum("nab,nb->na", chol, standard)
    if noise is not None:
        is_noise = labels == n_components
        box = noise.box
        in_box = box.lower + (box.upper - box.lower) * rng.random(values.shape)
        values = np.where(is_noise[:, None], in_box, values)
        labels = np.where(is_noise, NOISE_LABEL, labels)
    return values, labels


def sample_mixture(
    parameters: ModelParameters, draw_index: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`draw_mixture` in blocks, so the temporaries stay within :data:`_BLOCK_VALUES`.

    Parameters and returns as :func:`draw_mixture`; memory is that of the
    result plus one block, whatever the number of points.
    """
    n_features = parameters.means.shape[-1]
    per_block = max(1, _BLOCK_VALUES // (n_features * n_features))
    values = np.empty((draw_index.size, n_features))
    labels = np.empty(draw_index.size, dtype=np.int64)
    for start in range(0, draw_index.size, per_block):
        block = slice(start, start + per_block)
        values[block], labels[block] = draw_mixture(parameters, draw_index[block], rng)
    return values, labels


def replicate_data(
    parameters: ModelParameters, n_obs: int, rng: np.random.Generator
) -> np.ndarray:
    """A replicate of ``n_obs`` rows from every posterior draw.

    Parameters
    ----------
    parameters : ModelParameters
        Draws flattened to one leading axis.
    n_obs : int
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of shape (n_draws, n_obs, n_features)
        Made in blocks (:func:`sample_mixture`).
    """
    n_draws, _, n_features = parameters.means.shape
    values, _ = sample_mixture(parameters, np.repeat(np.arange(n_draws), n_obs), rng)
    return values.reshape(n_draws, n_obs, n_features)


def _refuse_weighted(tree: xr.DataTree, what: str) -> None:
    """Refuse a comparison row by row for a frequency-weighted fit: row i stands for w_i rows."""
    if stored_sample_weight(tree) is not None:
        raise ValueError(
            f"{what} is not offered for a frequency-weighted fit: row i stands for w_i rows, so "
            "the stored rows are not the data. predictive_check_tree(model.idata_, ...) "
            "resamples rows by weight; model.sample(n_samples) draws predictive points."
        )


def posterior_predictive_dataset(
    tree: xr.DataTree, parameters: ModelParameters, rng: np.random.Generator
) -> xr.Dataset:
    """ArviZ's ``posterior_predictive`` group: ``x`` with the dims of ``observed_data``.

    Parameters
    ----------
    tree : xarray.DataTree
        A fitted model's tree (``posterior`` and ``observed_data``).
    parameters : ModelParameters
        Its posterior draws flattened in (chain, draw) order.
    rng : numpy.random.Generator

    Returns
    -------
    xarray.Dataset
        ``x`` of dims (chain, draw, obs, feature), in data units.

    Raises
    ------
    ValueError
        For a frequency-weighted fit (:func:`_refuse_weighted`).
    """
    _refuse_weighted(tree, "a replicate of the stored rows")
    observed = tree.observed_data[OBSERVED]
    posterior = tree.posterior
    sample_shape = (posterior.sizes["chain"], posterior.sizes["draw"])
    values = replicate_data(parameters, observed.sizes["obs"], rng)
    return xr.Dataset(
        {OBSERVED: (("chain", "draw", "obs", "feature"),
                    values.reshape(sample_shape + values.shape[1:]))},
        coords={"chain": posterior["chain"].values, "draw": posterior["draw"].values,
                "obs": observed["obs"].values, "feature": observed["feature"].values},
    )


CHECK_DRAWS = 50
"""Posterior draws in a :func:`predictive_check_tree` (ArviZ plots 50 replicates)."""

CHECK_ROWS = 5000
"""Most rows of the data, and of each replicate, in a :func:`predictive_check_tree`."""


def predictive_check_tree(
    tree: xr.DataTree, parameters: ModelParameters, rng: np.random.Generator,
) -> xr.DataTree:
    """A small tree for ``az.plot_ppc_dist``, whatever the model's size.

    :data:`CHECK_DRAWS` evenly spaced posterior draws, each replicating at
    most :data:`CHECK_ROWS` evenly spaced rows of the data (all of them
    below that), beside those rows as ``observed_data``: the picture of a
    full posterior predictive check at a bounded cost, and ``idata_`` is
    left as it is.  Only complete rows are shown; a frequency-weighted
    fit's are drawn with probability proportional to their weights (with
    replacement) instead.

    Parameters
    ----------
    tree : xarray.DataTree
        A fitted model's tree.
    parameters : ModelParameters
        Its draws flattened in (chain, draw) order.
    rng : numpy.random.Generator

    Returns
    -------
    xarray.DataTree
        ``posterior_predictive`` (one chain of :data:`CHECK_DRAWS` draws)
        and ``observed_data``.
    """
    observed = tree.observed_data[OBSERVED]
    complete = np.flatnonzero(observed.notnull().all("feature").values)
    weights = stored_sample_weight(tree)
    if weights is None:
        rows = complete[np.unique(np.linspace(0, complete.size - 1, CHECK_ROWS).astype(int))]
    else:  # each row stands for w_i rows: a sample of the rows that the data describe
        weights = weights[complete]
        size = int(min(CHECK_ROWS, max(1.0, np.round(weights.sum()))))
        rows = np.sort(rng.choice(complete, size=size, p=weights / weights.sum()))
    observed = observed.isel(obs=rows).assign_coords(obs=np.arange(rows.size))
    kept = thin_draws(parameters, CHECK_DRAWS)
    values = replicate_data(kept, rows.size, rng)
    replicate = xr.Dataset(
        {OBSERVED: (("chain", "draw", "obs", "feature"), values[None])},
        coords={"obs": observed["obs"].values, "feature": observed["feature"].values},
    )
    return xr.DataTree.from_dict({"posterior_predictive": replicate,
                                  "observed_data": xr.Dataset({OBSERVED: observed})})


def pit_tree(tree: xr.DataTree) -> xr.DataTree:
    """The tree ArviZ's LOO-PIT functions need for rows of several features.

    ``az.loo_pit`` and ``az.plot_loo_pit`` expect a log-likelihood shaped
    like the observations, while a mixture's is one value per row (the
    density of the whole row).  This view repeats each row's value along
    ``feature``, so PSIS gives each coordinate its row's leave-one-out
    weights and the PIT of ``x_ij`` is ``P(x~_ij <= x_ij | data without row
    i)``: close to uniform, per feature, for a calibrated model.  Use it for
    the PIT only: ``az.loo`` on it would count every row once per feature.
    Rows with a missing value are left out (a PIT needs the value), and a
    frequency-weighted fit is refused (a row stands for ``w_i`` rows).

    Parameters
    ----------
    tree : xarray.DataTree
        A fitted model's tree with ``posterior_predictive`` and
        ``log_likelihood`` groups.

    Returns
    -------
    xarray.DataTree
        ``posterior``, ``posterior_predictive``, ``observed_data`` and the
        repeated ``log_likelihood``; the arrays are shared, not copied,
        except the repeated log-likelihood.
    """
    missing = [group for group in ("posterior_predictive", "log_likelihood")
               if group not in tree.children]
    if missing:
        raise ValueError(
            f"the LOO-PIT needs the {' and '.join(missing)} group(s): call "
            "sample_posterior_predictive() first; a model over the pointwise budget keeps no "
            "log_likelihood group (bayesgmm._workload.LOG_LIKELIHOOD_BUDGET)."
        )
    _refuse_weighted(tree, "the LOO-PIT")
    observed = tree.observed_data[OBSERVED]
    complete = observed.notnull().all("feature")
    keep = {"obs": np.flatnonzero(complete.values)}
    repeated = tree.log_likelihood[OBSERVED].isel(keep).broadcast_like(
        observed.isel(keep)).transpose("chain", "draw", *observed.dims)
    return xr.DataTree.from_dict({
        "posterior": tree.posterior.to_dataset(),
        "posterior_predictive": tree.posterior_predictive.to_dataset().isel(keep),
        "observed_data": tree.observed_data.to_dataset().isel(keep),
        "log_likelihood": xr.Dataset({OBSERVED: repeated}),
    })
