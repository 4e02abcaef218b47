"""A stored model's settings, read back and checked against its arrays.

:meth:`bayesgmm.BayesianGMM.from_datatree` rebuilds a fitted model from a
tree; these functions recover the constructor arguments, priors and
relabelling summary its attributes record, and refuse a file whose settings
contradict its arrays (see :mod:`bayesgmm.io` for the checks on the arrays
themselves).
"""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from bayesgmm.inference import VI_METHODS, resolve_method
from bayesgmm.io import ModelFileError
from bayesgmm.posterior import NOISE_WEIGHT, REPEATED_ALONG
from bayesgmm.priors import GMMPriors
from bayesgmm.relabel import RelabellingSummary

__all__ = ["check_settings_match_arrays", "stored_settings"]


def stored_settings(
    cls: type, tree: xr.DataTree
) -> tuple[object, GMMPriors, RelabellingSummary]:
    """The unfitted model, priors and relabelling summary a tree's attributes record."""
    try:
        params = json.loads(str(tree.attrs["params"]))
        if params["priors"] is not None:
            params["priors"] = GMMPriors.from_dict(params["priors"])
        priors = GMMPriors.from_json(str(tree.attrs["priors"]))
        relabelling = RelabellingSummary.from_json(str(tree.attrs["relabelling"]))
        model = cls(**params)
    except (KeyError, ValueError, TypeError) as error:
        raise ModelFileError(
            f"the model file lacks or garbles its settings ({type(error).__name__}: "
            f"{error}); re-save it from the fitted model."
        ) from None
    try:
        model._check_settings()
    except (ValueError, TypeError) as error:
        raise ModelFileError(
            f"the model file's stored settings are invalid: {error} Re-fit or re-save the model."
        ) from None
    return model, priors, relabelling


def check_settings_match_arrays(model, tree: xr.DataTree) -> None:
    """Require the stored settings to describe the stored arrays."""
    attrs, posterior = tree.attrs, tree.posterior
    n_stored = posterior.sizes["component"]
    problems = [f"n_components={model.n_components} but the posterior has {n_stored} components"
                ] if model.n_components != n_stored else []
    # method="auto" is stored as set and recorded as the method it resolved to.
    expected = {"n_components": model.n_components, "covariance_type": model.covariance_type,
                "method": resolve_method(model._settings(),
                                         tree.observed_data.sizes["obs"]).method}
    problems += [
        f"{name}={getattr(model, name)!r} in its settings but {attrs.get(name)!r} in its "
        "attributes" for name, value in expected.items() if attrs.get(name) != value
    ]
    if "data_sha256" not in attrs:
        problems.append("it records no data_sha256")
    correlations = posterior["correlations"].values
    off_diagonal = correlations * (1 - np.eye(correlations.shape[-1]))
    if bool(model.noise) != (NOISE_WEIGHT in posterior):
        problems.append(f"noise={model.noise!r} in its settings but the posterior "
                        f"{'lacks' if model.noise else 'has'} a noise weight")
    if model.covariance_type in ("diag", "spherical") and np.any(off_diagonal != 0):
        problems.append(f"covariance_type={model.covariance_type!r} but the posterior has "
                        "non-zero correlations")
    dimension, repeated = REPEATED_ALONG.get(model.covariance_type, (None, ()))
    problems += [
        f"covariance_type={model.covariance_type!r} but its {name} differ across {dimension}s"
        for name in repeated
        if not bool((posterior[name] == posterior[name].isel({dimension: 0}, drop=True)).all())
    ]
    method = tree.attrs.get("method", model.method)
    if method in VI_METHODS and "vi_trace" not in tree.children:
        problems.append(f"method={method!r} but the file has no vi_trace group")
    if problems:
        raise ModelFileError(
            f"the model file's settings contradict its arrays: {problems[0]}. Re-fit or "
            "re-save the model."
        )
