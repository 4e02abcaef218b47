"""The compiled log density of the mixture (numba) and its nutpie adapter.

:func:`bayesgmm.model.build_model` is the specification; this package is its
fast implementation, tested term by term against PyMC.

Modules
-------
``layout``
    The packed float64 block: named scalars (:class:`~bayesgmm._kernel.layout.Field`),
    named arrays (:class:`~bayesgmm._kernel.layout.Section`) and the bounds of
    the unconstrained vector's blocks, written by ``pack`` and read by
    ``section`` / ``parameter_block``.
``priors``
    One ``@njit`` term per prior (transform, log density, log Jacobian,
    gradient) and the prior constants computed at packing time.
``likelihood``
    The marginal mixture likelihood: covariance factors, one pass over the
    rows for the statistics, the chain rule back to the parameters.
``missing``
    Rows with missing values, grouped by pattern when the block is packed:
    the mixture of the components' marginals over each pattern's observed
    coordinates, and its gradient through the observed sub-covariances.
``logdensity``
    :func:`logp_grad`, a short driver calling the terms in order;
    :func:`pack_block`; the Python entry points and :func:`gmm_logp_cfunc`.
``nutpie``
    Hands :func:`gmm_logp_cfunc` to nutpie's NUTS sampler.

Adding a term
-------------
1. Write one ``@numba.njit(cache=True, nogil=True)`` function in ``priors``
   (or ``likelihood``) that takes its block of ``theta`` and ``grad`` and the
   running ``logp``, adds its log density to ``logp`` and its gradient to
   ``grad``, and returns ``logp`` with whatever later terms need.
2. Call it with one line in :func:`logp_grad`.
3. Give what it reads one entry in the layout: a
   :class:`~bayesgmm._kernel.layout.Field` member for a scalar or a
   :class:`~bayesgmm._kernel.layout.Section` member for an array, and fill it in
   :func:`pack_block` (``pack`` refuses a block with an entry left out).  A new
   block of the unconstrained vector is a new entry of
   :class:`bayesgmm.parameters.Layout`, which ``Unconstrained`` follows.
4. Add its case to the PyMC agreement tests in
   ``tests/_kernel/test_logdensity.py``: the term alone against ``pm.logp`` of
   the distribution with its transform, and a model configuration using it.

numba's on-disk cache does not notice a change in *another* module: after
editing a constant or a term, delete ``bayesgmm/_kernel/__pycache__`` (or set
``NUMBA_CACHE_DIR`` to a fresh folder) before trusting a test run.
"""

from bayesgmm._kernel.logdensity import (
    gmm_logp_cfunc,
    logp_and_grad,
    logp_batch,
    logp_grad,
    pack_block,
)
from bayesgmm._kernel.priors import lkj_log_normaliser

__all__ = [
    "gmm_logp_cfunc",
    "lkj_log_normaliser",
    "logp_and_grad",
    "logp_batch",
    "logp_grad",
    "pack_block",
]
