"""A fitted model at a glance: the posterior table and the notebook display.

:func:`posterior_summary` is ``arviz.summary`` on the parameters a reader
interprets, in data units: weights (the noise weight too), means, scales and
each correlation once.  Left out, because they carry no information and make
ArviZ warn: the correlation diagonal (always 1) and lower triangle (the upper
mirrored), the correlations of ``diag`` and ``spherical`` fits (always 0),
the weight of a one-component model (always 1), the covariances (the
scales and correlations again), and the copies a shared structure stores:
a ``tied`` fit's scales and correlations appear once, without a component
index (``scales[waiting]``), a ``spherical`` fit's scale once per component
(``scales[0]``).  :func:`fit_overview_html` is what a
notebook shows for a fitted :class:`bayesgmm.BayesianGMM`.
"""

from __future__ import annotations

import html
from typing import NamedTuple

import numpy as np
import pandas as pd
import xarray as xr

from bayesgmm._format import gate_text
from bayesgmm.diagnostics import RHAT_MAX
from bayesgmm.em._covariance import get_family
from bayesgmm.parameters import ModelParameters
from bayesgmm.posterior import NOISE_WEIGHT, REPEATED_ALONG

__all__ = ["SUMMARY_HEAD_ROWS", "PosteriorMeans", "fit_overview_html", "posterior_means",
           "posterior_summary", "upper_correlations"]

SUMMARY_HEAD_ROWS = 8
"""Rows of the summary a fitted model's HTML display shows."""


class PosteriorMeans(NamedTuple):
    """Posterior means shaped as scikit-learn's ``GaussianMixture`` attributes."""

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    noise_weight: float | None


def posterior_means(parameters: ModelParameters, covariance_type: str) -> PosteriorMeans:
    """Posterior means of the weights, means and covariances, in scikit-learn's shapes.

    Parameters
    ----------
    parameters : ModelParameters
        Draws flattened to one leading axis.
    covariance_type : {"full", "tied", "diag", "spherical"}
        The covariances' shape is the EM family's
        (:attr:`bayesgmm.em._covariance.CovarianceFamily.compact`), which is
        scikit-learn's.

    Returns
    -------
    PosteriorMeans
    """
    noise = parameters.noise
    return PosteriorMeans(
        parameters.weights.mean(axis=0), parameters.means.mean(axis=0),
        get_family(covariance_type).compact(parameters.covariances.mean(axis=0)),
        None if noise is None else float(np.mean(noise.weight)),
    )


def upper_correlations(correlations: xr.DataArray) -> xr.DataArray:
    """Each correlation once: the pairs above the diagonal, along a ``pair`` dimension.

    Parameters
    ----------
    correlations : xarray.DataArray
        Of dims (..., component, feature, feature2).

    Returns
    -------
    xarray.DataArray
        Of dims (..., component, pair), ``pair`` labelled ``"a, b"``.
    """
    features = correlations["feature"].values.astype(str)
    rows, columns = np.triu_indices(features.size, k=1)
    values = correlations.values[..., rows, columns]
    labels = [f"{features[i]}, {features[j]}" for i, j in zip(rows, columns)]
    dims = correlations.dims[:-2] + ("pair",)
    coords = {dim: correlations[dim].values for dim in correlations.dims[:-2]}
    return xr.DataArray(values, dims=dims, coords={**coords, "pair": labels})


def _summarised_posterior(posterior: xr.Dataset, covariance_type: str) -> xr.Dataset:
    variables = {}
    if posterior.sizes["component"] > 1 or NOISE_WEIGHT in posterior:
        variables["weights"] = posterior["weights"]
    if NOISE_WEIGHT in posterior:
        variables[NOISE_WEIGHT] = posterior[NOISE_WEIGHT]
    variables["means"] = posterior["means"]
    variables["scales"] = posterior["scales"]
    if covariance_type in ("full", "tied") and posterior.sizes["feature"] > 1:
        variables["correlations"] = upper_correlations(posterior["correlations"])
    dimension, repeated = REPEATED_ALONG.get(covariance_type, (None, ()))
    for name in set(repeated) & set(variables):  # one copy of what the structure repeats
        variables[name] = variables[name].isel({dimension: 0}, drop=True)
    return xr.Dataset(variables)


def posterior_summary(tree: xr.DataTree, interval: float) -> pd.DataFrame:
    """``arviz.summary`` of the interpretable parameters (module docstring).

    Parameters
    ----------
    tree : xarray.DataTree
        A fitted model's tree; its posterior is in data units.
    interval : float
        Mass of the equal-tailed interval (columns ``eti{100 interval}_lb``
        and ``_ub``).

    Returns
    -------
    pandas.DataFrame
        One row per parameter (``means[0, waiting]``, ``correlations[1,
        eruptions, waiting]``): mean, sd, interval, bulk and tail ESS,
        R-hat and Monte Carlo standard errors, as numbers.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> rng = np.random.default_rng(0)
    >>> dims = ("chain", "draw", "component", "feature")
    >>> draws = {"weights": (dims[:3], rng.dirichlet([5, 5], (2, 50))),
    ...          "means": (dims, rng.normal(size=(2, 50, 2, 1))),
    ...          "scales": (dims, rng.gamma(9, size=(2, 50, 2, 1))),
    ...          "correlations": (dims + ("feature2",), np.ones((2, 50, 2, 1, 1)))}
    >>> posterior = xr.Dataset(draws, coords={"feature": ["x"]})
    >>> tree = xr.DataTree.from_dict({"posterior": posterior})
    >>> tree.attrs["covariance_type"] = "full"
    >>> list(posterior_summary(tree, 0.9).index)
    ['weights[0]', 'weights[1]', 'means[0, x]', 'means[1, x]', 'scales[0, x]', 'scales[1, x]']
    """
    import arviz as az

    dataset = _summarised_posterior(tree.posterior.to_dataset(),
                                    str(tree.attrs["covariance_type"]))
    table = az.summary(xr.DataTree.from_dict({"posterior": dataset}), ci_prob=interval,
                       ci_kind="eti", round_to="none")
    return table.apply(pd.to_numeric)


def fit_overview_html(model) -> str:
    """A fitted model's notebook display: settings, method, gates and the summary's head.

    Parameters
    ----------
    model : bayesgmm.BayesianGMM
        Fitted.

    Returns
    -------
    str
        HTML.
    """
    tree = model.idata_
    attrs = tree.attrs
    posterior = tree.posterior
    diagnostics = model.diagnostics_
    gates = ("all convergence checks passed" if diagnostics.ok
             else "failed: " + ", ".join(diagnostics.failed) + " (see <code>.diagnose()</code>)")
    noise = " + noise" if NOISE_WEIGHT in posterior else ""
    facts = [
        ("components", f"{attrs['n_components']}{noise}, covariance {attrs['covariance_type']}"),
        ("method", f"{attrs['method']} ({attrs['engine']}), {posterior.sizes['chain']} x "
                   f"{posterior.sizes['draw']} draws, {float(attrs['sampling_seconds']):.1f} s"),
        ("data", f"{tree.observed_data.sizes['obs']} rows x {posterior.sizes['feature']} "
                 f"features"),
        ("gates", gates),
    ]
    rows = "".join(f"<tr><th style='text-align:left'>{html.escape(name)}</th>"
                   f"<td style='text-align:left'>{value}</td></tr>" for name, value in facts)
    table = model.summary().head(SUMMARY_HEAD_ROWS)
    head = table.to_html(float_format=lambda v: f"{v:.4g}",
                         formatters={"r_hat": lambda v: gate_text(v, RHAT_MAX)})
    return (f"<div><p><b>{type(model).__name__}</b> (fitted)</p><table>{rows}</table>"
            f"<p>Posterior summary, first {SUMMARY_HEAD_ROWS} rows (<code>.summary()</code> "
            f"for all):</p>{head}</div>")
