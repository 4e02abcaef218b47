"""Saving and loading fitted Bayesian mixtures as netCDF.

A model is its DataTree (:mod:`bayesgmm.posterior`): posterior draws,
sampler statistics, pointwise log-likelihood, observed data, and root
attributes with the settings, the priors and a SHA-256 of the data.  Files
are written to a temporary name next to the target and moved into place, so
an interrupted save never leaves a half-written file under the real name, and
an existing file is only replaced with ``overwrite=True``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import xarray as xr

from bayesgmm.posterior import FORMAT_VERSION

__all__ = ["ModelFileError", "save_datatree", "load_datatree", "ENGINE"]

ENGINE = "netcdf4"


class ModelFileError(ValueError):
    """A file is missing, unreadable, or not a compatible bayesgmm model."""


def save_datatree(tree: xr.DataTree, path, overwrite: bool = False) -> Path:
    """Write ``tree`` to ``path`` atomically.

    Parameters
    ----------
    tree : xarray.DataTree
    path : str or path-like
    overwrite : bool, default=False
        Replace an existing file.  Without it an existing file is an error.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{path} already exists; pass overwrite=True (or --force on the command "
            "line) to replace it, or choose another name."
        )
    if not path.parent.exists():
        raise FileNotFoundError(f"The folder {path.parent} does not exist; create it first.")
    handle, temporary = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    os.close(handle)
    try:
        tree.to_netcdf(temporary, engine=ENGINE)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


def load_datatree(path) -> xr.DataTree:
    """Read a model DataTree fully into memory and check its format version.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    xarray.DataTree

    Raises
    ------
    ModelFileError
        Missing file, truncated or corrupt file, a file that is not a bayesgmm
        model, or one written by a newer format version.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"No model file at {path}; check the path.")
    try:
        with xr.open_datatree(path, engine=ENGINE) as opened:
            tree = opened.load()
    except (OSError, ValueError, RuntimeError) as error:
        raise ModelFileError(
            f"{path} is not a readable bayesgmm model file (truncated, corrupt, or "
            f"another format: {error}). Re-save the model from the fitted object."
        ) from None
    version = tree.attrs.get("bayesgmm_format_version")
    if version is None or "posterior" not in tree.children:
        raise ModelFileError(
            f"{path} is a netCDF file but not a bayesgmm model (no format version "
            "or posterior group)."
        )
    if int(version) > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} was written in bayesgmm model format {int(version)}, newer than "
            f"this installation reads ({FORMAT_VERSION}); upgrade bayesgmm."
        )
    return tree
