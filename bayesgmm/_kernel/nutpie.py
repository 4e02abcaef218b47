"""Hand bayesgmm's compiled log density to nutpie's NUTS sampler.

nutpie's Rust sampler calls C function pointers without the GIL.  Its public
entry points either compile a PyMC model (tens of seconds through numba) or
call back into Python for every gradient (~13 us of overhead, serialised on
the GIL).  Instead we fill nutpie's ``CompiledPyMCModel`` record with our own
``cfunc``: :func:`bayesgmm._kernel.logdensity.gmm_logp_cfunc` and a
copy-through expand function, both compiled once per installation (numba
``cache=True``).

This uses nutpie internals (``nutpie.compile_pymc.CompiledPyMCModel``), which
is why ``pyproject.toml`` pins ``nutpie<0.17``; ``tests/_kernel/test_nutpie.py``
samples through this path on every run, so a nutpie change shows up at once.
"""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np
from numba import types
from nutpie.compile_pymc import CompiledPyMCModel

from bayesgmm._kernel.logdensity import gmm_logp_cfunc

__all__ = ["compiled_model", "THETA"]

THETA = "theta"

_EXPAND_SIGNATURE = types.int64(
    types.uint64,
    types.uint64,
    types.CPointer(types.double),
    types.CPointer(types.double),
    types.voidptr,
)


@numba.cfunc(_EXPAND_SIGNATURE, cache=True, nogil=True)
def _copy_expand(dim, n_expanded, theta_pointer, out_pointer, user_data):
    for j in range(dim):
        out_pointer[j] = theta_pointer[j]
    return 0


def compiled_model(
    block: np.ndarray, n_dim: int, initial_point: Callable[[int], np.ndarray]
) -> CompiledPyMCModel:
    """A nutpie model of the compiled density, with chain starts from ``initial_point``.

    Parameters
    ----------
    block : ndarray
        From :func:`bayesgmm._kernel.pack_block`; kept alive by the model.
    n_dim : int
        Length of the unconstrained vector.
    initial_point : callable
        ``initial_point(seed) -> ndarray of shape (n_dim,)``; nutpie calls it
        with a different seed for every chain.

    Returns
    -------
    nutpie.compile_pymc.CompiledPyMCModel
        Draws come back as one variable, ``theta``, of unconstrained vectors.
    """
    block = np.ascontiguousarray(block, dtype=np.float64)
    return CompiledPyMCModel(
        dims={THETA: ("unconstrained",)},
        _coords={"unconstrained": np.arange(n_dim)},
        _n_dim=n_dim,
        _shapes={THETA: (n_dim,)},
        compiled_logp_func=gmm_logp_cfunc,
        compiled_expand_func=_copy_expand,
        initial_point_func=initial_point,
        shared_data={},
        shared_var_keys={},
        user_data=block,
        n_expanded=n_dim,
        shape_info=([THETA], None, [(n_dim,)]),
        logp_func=None,
        expand_func=None,
        reparameterized_names=[],
    )
