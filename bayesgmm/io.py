"""Saving and loading fitted Bayesian mixtures as netCDF.

A model is its DataTree (:mod:`bayesgmm.posterior`): posterior draws,
sampler statistics, the pointwise log-likelihood when it is within
:data:`~bayesgmm._workload.LOG_LIKELIHOOD_BUDGET` (a root attribute says
whether it is there), observed data, a weighted fit's frequency weights, and
root attributes with the settings, the priors and a SHA-256 of the data.  Files
are written to a temporary name next to the target and moved into place, so
an interrupted save never leaves a half-written file under the real name, and
an existing file is only replaced with ``overwrite=True``.

Integrity and safety.  :func:`save_datatree` stamps every file with
``content_sha256``, a SHA-256 over every stored array of every group (name,
dimensions, dtype, shape and bytes, in a fixed order) and every attribute,
settings included; :func:`check_model_tree` recomputes it on load, so a
flipped byte anywhere is refused.  It detects damage and editing, not a
forgery: anyone can recompute a SHA-256.  Files written before the stamp
existed still load, with what they carry: the SHA-256 of the observed data.
Every file, stamped or not, must also have the model's groups and
dimensions, finite draws, weights in [0, 1] summing to 1, positive scales
and correlations in [-1, 1], and observed data without NaN unless its stored
settings say ``missing="marginalize"``.  :func:`load_datatree` checks the groups and the
array sizes from the file's metadata before reading any data: a file may not
declare more than :data:`MAX_EXPANSION` times its own size (models are written
uncompressed) nor more than :data:`MAX_MODEL_BYTES`, so a small crafted file
cannot fill the memory.  Saved files get the permissions the umask gives a
new file; a failed write (disk full, no permission) raises
:class:`ModelWriteError` and leaves nothing behind; temporary files are named
``.{name}.{random}`` + :data:`TEMP_SUFFIX`, and a save removes those of its
own target older than :data:`STALE_TEMP_SECONDS` (left by a killed process).
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

import netCDF4
import numpy as np
import xarray as xr

from bayesgmm.posterior import (
    FORMAT_VERSION,
    NOISE_WEIGHT,
    OBSERVED,
    OPTIONAL_LAYOUT,
    POINTWISE_STORED_ATTR,
    REQUIRED_LAYOUT,
    SAMPLE_WEIGHT,
    stored_sample_weight,
    stores_pointwise,
)

__all__ = [
    "CONTENT_DIGEST_ATTR",
    "ENGINE",
    "MAX_EXPANSION",
    "MAX_MODEL_BYTES",
    "STALE_TEMP_SECONDS",
    "TEMP_SUFFIX",
    "ModelFileError",
    "ModelWriteError",
    "check_model_tree",
    "content_digest",
    "load_datatree",
    "save_datatree",
]

ENGINE = "netcdf4"
CONTENT_DIGEST_ATTR = "content_sha256"
"""Root attribute holding :func:`content_digest` of the rest of the file."""

TEMP_SUFFIX = ".bayesgmm-tmp"
"""Ending of a save's temporary files, named ``.{target name}.{random}`` + this."""

STALE_TEMP_SECONDS = 3600
"""A temporary file of the same target untouched this long belongs to a killed save.

A live save writes its file continuously, so an hour without a change is
never one in progress (the age keeps a save that runs meanwhile from
another process, or another machine on a shared folder, safe).
"""

MAX_EXPANSION = 8
"""A model file may declare at most this many times its size in array bytes.

:func:`save_datatree` writes arrays uncompressed, so a real model declares
about its own size (posterior draws hardly compress even when a user
recompresses the file); a file declaring gigabytes in a few megabytes is
compressed or sparse by construction and is refused before it is read.
"""

SIZE_SLACK_BYTES = 16 * 2**20
"""Declared bytes allowed on top of :data:`MAX_EXPANSION` (string coordinates, small files)."""

MAX_MODEL_BYTES = 16 * 2**30
"""Absolute cap on the array bytes a model file may declare.

The fit keeps all of these arrays in memory together with working copies,
so a larger model could not have been fitted on the workstations bayesgmm
targets (16 GiB is e.g. the observed data of 4e8 rows x 5 columns, or a
model file written before the pointwise log-likelihood was bounded, with
4 chains x 1000 draws x 500,000 rows of it); refusing it costs nothing real.
"""

WEIGHT_SUM_TOLERANCE = 1e-8
"""How far from 1 the weights of one draw may sum (rounding is ~1e-16)."""

CORRELATION_TOLERANCE = 1e-9
"""Rounding allowed outside [-1, 1] (``L @ L.T`` gives 1 + 4e-16 on the diagonal)."""

_REFIT = "Re-fit or re-save the model."


class ModelFileError(ValueError):
    """A file is missing, unreadable, or not a compatible bayesgmm model."""


class ModelWriteError(OSError):
    """A model could not be written (disk full, no permission, ...)."""


class _Stored(NamedTuple):
    """Dimensions, shape and item size of one stored variable."""

    dims: tuple[str, ...]
    shape: tuple[int, ...]
    itemsize: int


def _damaged(problem: str) -> ModelFileError:
    return ModelFileError(f"the model file is damaged or altered: {problem}. {_REFIT}")


# ------------------------------------------------------------------ saving
def save_datatree(tree: xr.DataTree, path, overwrite: bool = False) -> Path:
    """Write ``tree`` to ``path`` atomically, stamped with its content SHA-256.

    Parameters
    ----------
    tree : xarray.DataTree
    path : str or path-like
    overwrite : bool, default=False
        Replace an existing file.  Without it an existing file is an error.

    Returns
    -------
    pathlib.Path
        The path written, with the permissions the umask gives a new file.

    Raises
    ------
    FileExistsError, FileNotFoundError
        The file exists (without ``overwrite``), or its folder does not.
    ModelWriteError
        The write failed; no file is left behind, temporary or final.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{path} already exists; pass overwrite=True (or --force on the command "
            "line) to replace it, or choose another name."
        )
    if not path.parent.exists():
        raise FileNotFoundError(f"The folder {path.parent} does not exist; create it first.")
    _remove_stale_temporaries(path)
    stamped = tree.copy(deep=False)
    stamped.attrs = {**tree.attrs, CONTENT_DIGEST_ATTR: content_digest(tree)}
    temporary = None
    try:
        handle, temporary = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent
        )
        os.close(handle)
        stamped.to_netcdf(temporary, engine=ENGINE)
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except (OSError, RuntimeError) as error:
        # netCDF reports a failed write (ENOSPC, EFBIG) as RuntimeError("NetCDF: HDF error").
        raise ModelWriteError(
            f"could not write {path}: disk full or no permission? ({error}) Free some space "
            "or choose a writable folder, then save again."
        ) from error
    finally:
        if temporary is not None and os.path.exists(temporary):
            os.remove(temporary)
    return path


def _umask() -> int:
    """The process umask (read by setting and restoring it; there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _remove_stale_temporaries(path: Path) -> None:
    """Remove temporary files of ``path`` left by a save killed over an hour ago."""
    pattern = f".{glob.escape(path.name)}.*{TEMP_SUFFIX}"
    cutoff = time.time() - STALE_TEMP_SECONDS
    for leftover in path.parent.glob(pattern):
        try:
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink()
        except OSError:
            # Best effort: one removed meanwhile, or owned by someone else, is
            # left alone and does not stop this save.
            continue


# ------------------------------------------------------------------ digest
def content_digest(tree: xr.DataTree) -> str:
    """SHA-256 over every stored variable and attribute of ``tree``.

    Groups in path order, variables (coordinates included) in name order;
    for each: its name, dimensions, dtype, shape, attributes and bytes (NaN
    canonicalised, little-endian; strings as JSON).  Root attributes count
    too, except :data:`CONTENT_DIGEST_ATTR` itself.  The same on a tree and
    on that tree written and read back.

    Parameters
    ----------
    tree : xarray.DataTree

    Returns
    -------
    str
        64 hexadecimal digits.
    """
    digest = hashlib.sha256()
    for node in sorted(tree.subtree, key=lambda node: node.path):
        attrs = {key: value for key, value in node.attrs.items()
                 if node is not tree or key != CONTENT_DIGEST_ATTR}
        digest.update(_canonical_json({"group": node.path, "attrs": attrs}).encode())
        variables = node.to_dataset(inherit=False).variables
        for name in sorted(variables, key=str):
            variable = variables[name]
            label, payload = _array_bytes(np.asarray(variable.values))
            header = {"name": str(name), "dims": [str(d) for d in variable.dims],
                      "dtype": label, "shape": list(variable.shape),
                      "attrs": dict(variable.attrs), "nbytes": len(payload)}
            digest.update(_canonical_json(header).encode())
            digest.update(payload)
    return digest.hexdigest()


def _canonical_json(value: Any) -> str:
    """JSON with sorted keys; numpy scalars and arrays as Python values."""

    def plain(item):
        if isinstance(item, (np.generic, np.ndarray)):
            return item.tolist()
        return str(item)

    return json.dumps(value, sort_keys=True, default=plain)


def _array_bytes(values: np.ndarray) -> tuple[str, bytes]:
    """A dtype label and the canonical bytes of one array."""
    if values.dtype.kind in "OSU":
        return "str", json.dumps([str(item) for item in values.ravel().tolist()]).encode()
    if values.dtype.kind in "fc" and np.isnan(values).any():
        values = np.where(np.isnan(values), np.nan, values)
    label = f"{values.dtype.kind}{values.dtype.itemsize}"
    little = np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<"))
    return label, little.tobytes()


# ------------------------------------------------------------------ loading
def load_datatree(path) -> xr.DataTree:
    """Check a model file's metadata, then read its DataTree into memory.

    Before any array is read, the format version, the groups and dimensions
    (:data:`REQUIRED_LAYOUT`) and the declared array sizes are checked from
    the file's metadata.  The content is checked by :func:`check_model_tree`.

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
        model, one written by a newer format version, one lacking a group or
        declaring more data than a model file of its size can hold.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"No model file at {path}; check the path.")
    unreadable = (
        f"{path} is not a readable bayesgmm model file (truncated, corrupt, or another "
        "format: {error}). Re-save the model from the fitted object."
    )
    try:
        with netCDF4.Dataset(path) as dataset:
            attrs = {name: dataset.getncattr(name) for name in dataset.ncattrs()}
            description = _describe_netcdf(dataset)
    except (OSError, RuntimeError, AttributeError, ValueError) as error:
        # netCDF4 reports a damaged attribute (HDF5 checksums its headers) as AttributeError.
        raise ModelFileError(unreadable.format(error=error)) from None
    _format_version(attrs, "/posterior" in description, path)
    try:
        _check_layout(description, attrs)
        _check_size(description, path.stat().st_size)
    except ModelFileError as error:
        raise ModelFileError(f"{path}: {error}") from None
    try:
        with xr.open_datatree(path, engine=ENGINE) as opened:
            return opened.load()
    except (OSError, ValueError, RuntimeError, AttributeError) as error:
        raise ModelFileError(unreadable.format(error=error)) from None


def _describe_netcdf(group: netCDF4.Group) -> dict[str, dict[str, _Stored]]:
    """Every variable of ``group`` and its subgroups, from metadata only."""
    description = {
        group.path: {
            name: _Stored(tuple(variable.dimensions), tuple(variable.shape),
                          getattr(variable.dtype, "itemsize", 8))  # vlen: one pointer
            for name, variable in group.variables.items()
        }
    }
    for child in group.groups.values():
        description.update(_describe_netcdf(child))
    return description


def _describe_tree(tree: xr.DataTree) -> dict[str, dict[str, _Stored]]:
    """Every variable of every group of an in-memory tree."""
    return {
        node.path: {
            str(name): _Stored(tuple(map(str, variable.dims)), variable.shape,
                               variable.dtype.itemsize)
            for name, variable in node.to_dataset(inherit=False).variables.items()
        }
        for node in tree.subtree
    }


def _format_version(attrs: dict, has_posterior: bool, source: Any = "the model file") -> int:
    """The file's format version, refusing a missing, garbled or newer one."""
    version = attrs.get("bayesgmm_format_version")
    if version is None or not has_posterior:
        raise ModelFileError(
            f"{source} is a netCDF file but not a bayesgmm model (no format version "
            "or posterior group)."
        )
    if isinstance(version, (bool, np.bool_)) or not isinstance(version, (int, np.integer)):
        raise ModelFileError(
            f"{source} has the format version {version!r}, not a whole number: it is "
            f"damaged or was not written by bayesgmm. {_REFIT}"
        )
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{source} was written in bayesgmm model format {int(version)}, newer than "
            f"this installation reads ({FORMAT_VERSION}); upgrade bayesgmm."
        )
    if version < 1:
        raise ModelFileError(f"{source} has the format version {int(version)}, which does not "
                             f"exist: it is damaged. {_REFIT}")
    return int(version)


def _check_layout(description: dict[str, dict[str, _Stored]], attrs: dict) -> None:
    """Require the model's groups and variables, with one size per dimension.

    The optional groups (:data:`OPTIONAL_LAYOUT`) are checked when present,
    and the ``log_likelihood`` group must be there exactly when the root
    attribute :data:`POINTWISE_STORED_ATTR` says so.
    """
    stored_flag = attrs.get(POINTWISE_STORED_ATTR, 1)
    if isinstance(stored_flag, (bool, np.bool_)) or stored_flag not in (0, 1):
        raise _damaged(f"its attribute {POINTWISE_STORED_ATTR} is {stored_flag!r}, not 0 or 1")
    if bool(stored_flag) != ("/log_likelihood" in description):
        raise _damaged(f"its attribute {POINTWISE_STORED_ATTR}={int(stored_flag)} but it "
                       f"{'lacks' if stored_flag else 'has'} a 'log_likelihood' group")
    present = {group: variables for group, variables in OPTIONAL_LAYOUT.items()
               if f"/{group}" in description}
    for group, variables in {**REQUIRED_LAYOUT, **present}.items():
        stored = description.get(f"/{group}")
        if stored is None:
            raise _damaged(f"it has no '{group}' group")
        for name, dims in variables.items():
            if name not in stored:
                raise _damaged(f"the '{group}' group has no variable '{name}'")
            if stored[name].dims != dims:
                raise _damaged(f"{group}/{name} has dimensions {stored[name].dims}, not {dims}")
    sizes: dict[str, int] = {}
    for group, variables in description.items():
        for name, variable in variables.items():
            for dim, size in zip(variable.dims, variable.shape):
                if sizes.setdefault(dim, size) != size:
                    raise _damaged(f"dimension '{dim}' has {size} entries in {group}/{name} "
                                   f"but {sizes[dim]} elsewhere")
    empty = [dim for dim in ("chain", "draw", "component", "feature", "obs") if sizes[dim] < 1]
    if empty or sizes["feature2"] != sizes["feature"]:
        raise _damaged(f"dimensions {sizes} are empty or do not match")


def _check_size(description: dict[str, dict[str, _Stored]], file_size: int) -> None:
    """Refuse a file declaring more array bytes than a model file of its size holds."""
    declared = sum(math.prod(variable.shape) * variable.itemsize
                   for variables in description.values() for variable in variables.values())
    limit = min(MAX_MODEL_BYTES, MAX_EXPANSION * file_size + SIZE_SLACK_BYTES)
    if declared > limit:
        raise _damaged(
            f"it declares {declared / 2**20:,.0f} MiB of arrays in a {file_size / 2**20:,.1f} "
            f"MiB file, more than the {limit / 2**20:,.0f} MiB a bayesgmm model file of that "
            "size can hold (models are saved uncompressed); it was not read into memory"
        )


# ------------------------------------------------------------------ checking
def check_model_tree(tree: xr.DataTree) -> xr.DataTree:
    """Check a model's DataTree; return it without its content stamp.

    Checks the format version and :data:`REQUIRED_LAYOUT`, the content
    SHA-256 when the tree carries one (files saved before it existed do
    not, and are checked for everything else), and the values: finite
    draws, weights in [0, 1] summing to 1 within
    :data:`WEIGHT_SUM_TOLERANCE`, scales > 0, correlations in [-1, 1],
    matching feature names, a log-likelihood (when stored) without NaN or
    +inf, frequency weights (when stored) finite, non-negative and not all
    zero, and finite
    observed data, except for NaN (missing values) when the stored settings
    say ``missing="marginalize"`` (each row keeping an observed value).

    Parameters
    ----------
    tree : xarray.DataTree
        As written by :func:`save_datatree` or built by a fit.

    Returns
    -------
    xarray.DataTree
        ``tree`` without :data:`CONTENT_DIGEST_ATTR` (a shallow copy when it
        had one), so a loaded model is identical to the saved one.

    Raises
    ------
    ModelFileError
        Naming the first problem found.
    """
    _format_version(dict(tree.attrs), "posterior" in tree.children)
    _check_layout(_describe_tree(tree), dict(tree.attrs))
    recorded = tree.attrs.get(CONTENT_DIGEST_ATTR)
    if recorded is not None:
        if str(recorded) != content_digest(tree):
            raise _damaged(
                f"its arrays or settings do not match the recorded {CONTENT_DIGEST_ATTR} "
                "(changed after saving)"
            )
        tree = tree.copy(deep=False)
        tree.attrs = {key: value for key, value in tree.attrs.items()
                      if key != CONTENT_DIGEST_ATTR}
    _check_values(tree)
    return tree


def _check_values(tree: xr.DataTree) -> None:
    """Require values a fitted model can have (see :func:`check_model_tree`)."""
    posterior = tree["posterior"]
    for name in REQUIRED_LAYOUT["posterior"]:
        if not np.isfinite(posterior[name].values).all():
            raise _damaged(f"posterior '{name}' holds NaN or infinite draws")
    weights = posterior["weights"].values
    if NOISE_WEIGHT in posterior:  # the Gaussian weights sum to one minus the noise's
        weights = np.concatenate([weights, posterior[NOISE_WEIGHT].values[..., None]], axis=-1)
    if weights.min() < 0 or weights.max() > 1:
        raise _damaged(f"posterior weights range over [{weights.min():g}, {weights.max():g}], "
                       "outside [0, 1]")
    sums = weights.sum(axis=-1).ravel()
    worst = sums[np.argmax(np.abs(sums - 1))]
    if abs(worst - 1) > WEIGHT_SUM_TOLERANCE:
        raise _damaged(f"the posterior weights of a draw sum to {worst:.12g}, not 1 (tolerance "
                       f"{WEIGHT_SUM_TOLERANCE:g})")
    if posterior["scales"].values.min() <= 0:
        raise _damaged(f"posterior scales reach {posterior['scales'].values.min():g}; "
                       "scales must be > 0")
    if np.abs(posterior["correlations"].values).max() > 1 + CORRELATION_TOLERANCE:
        raise _damaged("posterior correlations lie outside [-1, 1]")
    features = [list(map(str, posterior[dim].values)) for dim in ("feature", "feature2")]
    observed_features = list(map(str, tree["observed_data"]["feature"].values))
    if features[0] != observed_features or features[1] != observed_features:
        raise _damaged(f"the posterior's features {features[0]} are not the observed data's "
                       f"{observed_features}")
    if stores_pointwise(tree):
        log_lik = tree["log_likelihood"][OBSERVED].values
        if np.isnan(log_lik).any() or np.isposinf(log_lik).any():
            raise _damaged("the pointwise log-likelihood holds NaN or +inf")
    weights = stored_sample_weight(tree)
    if weights is not None and not (np.isfinite(weights).all() and weights.min() >= 0
                                    and weights.any()):
        raise _damaged(f"its {SAMPLE_WEIGHT} holds negative, non-finite or only zero weights")
    _check_observed(tree["observed_data"][OBSERVED].values, _stored_missing(tree))


def _stored_missing(tree: xr.DataTree) -> str:
    """The ``missing`` setting the tree's stored settings record ("reject" when absent).

    Settings that cannot be read count as "reject" here; reading them for
    real (:meth:`bayesgmm.BayesianGMM.from_datatree`) reports the problem.
    """
    try:
        params = json.loads(str(tree.attrs["params"]))
        return str(params.get("missing", "reject")) if isinstance(params, dict) else "reject"
    except (KeyError, ValueError):
        return "reject"


def _check_observed(values: np.ndarray, missing: str) -> None:
    """Finite observed data; NaN only where the settings say ``missing="marginalize"``.

    Even then a row keeps at least one observed value, as a fit requires.
    """
    if np.isinf(values).any():
        raise _damaged("the observed data hold infinite values")
    missing_values = np.isnan(values)
    if not missing_values.any():
        return
    if missing != "marginalize":
        raise _damaged(f"the observed data hold NaN but the stored settings say "
                       f"missing={missing!r}, which refuses them")
    if missing_values.all(axis=1).any():
        raise _damaged("a row of the observed data has no observed value")
