"""The Bayesian fit of data in a Dask array: Laplace at the mode, the rows never gathered.

:mod:`bayesgmm.laplace` needs three things of the data: the log density and
its gradient on every row (a few Newton steps), the same at
:data:`~bayesgmm.laplace.IMPORTANCE_DRAWS` points (one pass), and the
curvature, which a uniform subsample weighted up gives.  On a Dask array:

* every row chunk is standardised and packed into the compiled density's
  block once, on its worker (``dask.persist``), and each evaluation sends
  ``theta`` to the workers and adds the chunks' values there
  (:class:`DaskDensity`): ``n_features x n_parameters`` numbers travel
  back per chunk, never rows;
* a uniform sample of :data:`~bayesgmm.em._distributed.SAMPLE_ROWS` rows
  (every row when there are no more) is gathered; everything else of the
  fit runs on it as in memory: the checks of ``check_X``, the
  standardisation and the priors resolved on it, the EM start, the
  curvature (weighted by total weight / sample weight), the relabelling
  pivot, and the stored ``observed_data`` (the DataTree then says
  ``observed_rows = "sample"``).  The standardisation is thus the sample's:
  a reparametrisation and the scale of the weakly informative priors, both
  insensitive to 0.3% changes;
* all rows are checked for non-finite values in the same pass that draws the
  sample.

Refused on Dask input, with the reason: NUTS and ADVI (every iteration
reads every row: gather the rows, or fit a subsample), noise components and
missing values (their box and patterns need another pass; not built yet).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from bayesgmm._dask import as_dask_rows
from bayesgmm._kernel import logp_batch, logp_grad, pack_block
from bayesgmm.em._distributed import SAMPLE_ROWS, dask_weights
from bayesgmm.fitting import Problem, prepare_problem
from bayesgmm.inference import PosteriorSample, SamplerSettings, laplace_sample
from bayesgmm.laplace import ShardedDensity, laplace_at_mode
from bayesgmm.priors import GMMPriors

__all__ = ["DaskDensity", "fit_dask_laplace"]


def _chunk_block(values, weights, centre, scale, priors, layout):
    """A chunk's rows, standardised, packed (runs on the worker holding the chunk)."""
    return pack_block((np.asarray(values, dtype=np.float64) - centre) / scale, priors,
                      layout.n_components, layout.covariance_type,
                      row_weights=None if weights is None else np.asarray(weights, np.float64))


def _chunk_logp_grad(block, theta):
    grad = np.empty_like(theta)
    return logp_grad(theta, grad, block), grad


def _add_logp_grad(first, second):
    return first[0] + second[0], first[1] + second[1]


class DaskDensity:
    """The log density on every row of a Dask array, chunk by chunk on the workers.

    Each chunk's block holds the prior; the prior-only block is subtracted
    ``n_chunks - 1`` times, as in :class:`bayesgmm.laplace.ShardedDensity`.

    Parameters
    ----------
    blocks : list of dask.delayed.Delayed
        Persisted packed blocks, one per row chunk.
    prior_block : ndarray
        The model packed without rows.
    """

    def __init__(self, blocks: list, prior_block: np.ndarray):
        self.blocks = blocks
        self.prior_block = prior_block
        self.n_evaluations = 0

    def _prior_times(self) -> int:
        return len(self.blocks) - 1

    def __call__(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Log density and gradient at ``theta`` (shape (n_unconstrained,))."""
        import dask

        theta = np.ascontiguousarray(theta, dtype=np.float64)
        parts = [dask.delayed(_chunk_logp_grad)(block, theta) for block in self.blocks]
        (value, grad), = dask.compute(_tree(parts, _add_logp_grad))
        prior_value, prior_grad = _chunk_logp_grad(self.prior_block, theta)
        self.n_evaluations += 1
        return (float(value - self._prior_times() * prior_value),
                grad - self._prior_times() * prior_grad)

    def log_densities(self, thetas: np.ndarray) -> np.ndarray:
        """Log density at each row of ``thetas``, in one pass over the chunks."""
        import dask

        thetas = np.ascontiguousarray(thetas, dtype=np.float64)
        parts = [dask.delayed(logp_batch)(thetas, block) for block in self.blocks]
        (total,) = dask.compute(_tree(parts, np.add))
        self.n_evaluations += 1
        return total - self._prior_times() * logp_batch(thetas, self.prior_block)


def _tree(parts: list, add):
    """Add delayed values pairwise, so no task receives every chunk's result."""
    import dask

    while len(parts) > 1:
        parts = [dask.delayed(add)(*parts[i:i + 2]) if i + 1 < len(parts) else parts[i]
                 for i in range(0, len(parts), 2)]
    return parts[0]


def _refuse(settings: SamplerSettings, noise: bool, missing: str) -> None:
    if settings.method not in ("auto", "laplace"):
        raise ValueError(
            f"method={settings.method!r} reads every row at every iteration, which a Dask "
            "array is meant to avoid; Dask input is fitted by method='laplace' (or 'auto'). "
            "For NUTS, fit a sample: BayesianGMM(...).fit(X[rows].compute())."
        )
    if noise or missing != "reject":
        raise ValueError(
            "The Bayesian fit of a Dask array does not support noise=True or "
            "missing='marginalize' yet; gather the rows (X.compute()) or fit a sample."
        )


def fit_dask_laplace(
    X, sample_weight, *, n_components: int, covariance_type: str, priors: GMMPriors,
    em_n_init: int, rng: np.random.Generator, settings: SamplerSettings, noise: bool,
    missing: str,
) -> tuple[Problem, PosteriorSample]:
    """Prepare on a gathered sample, then the Laplace approximation on every row.

    Parameters
    ----------
    X : dask.array.Array or dask.dataframe.DataFrame of shape (n_samples, n_features)
    sample_weight : array-like, dask.array.Array or None
    n_components, covariance_type, priors, em_n_init, rng, settings, noise, missing
        As for :func:`bayesgmm.fitting.prepare_problem`.

    Returns
    -------
    problem : Problem
        On the gathered sample (see the module docstring).
    sample : PosteriorSample
        One chain of ``settings.draws`` draws; the ``laplace`` group holds the check.
    """
    import dask
    import dask.array as da

    _refuse(settings, noise, missing)
    began = time.perf_counter()
    names = [str(c) for c in X.columns] if hasattr(X, "columns") else None
    values = as_dask_rows(X)
    weights = dask_weights(sample_weight, values)
    values, weights = dask.persist(values, weights)
    n_rows = values.shape[0]
    rows = slice(None) if n_rows <= SAMPLE_ROWS else np.sort(
        rng.choice(n_rows, SAMPLE_ROWS, replace=False))
    total_weight = float(n_rows) if weights is None else weights.sum()
    sample, sample_weights, all_finite, total_weight = dask.compute(
        values[rows], None if weights is None else weights[rows],
        da.isfinite(values).all(), total_weight)
    if not all_finite:
        raise ValueError(
            "X (a Dask array) holds NaN or infinite values. The Bayesian fit of a Dask array "
            "needs finite values: drop or impute those rows first."
        )
    frame = pd.DataFrame(sample, columns=names)
    problem = prepare_problem(frame, n_components=n_components,
                              covariance_type=covariance_type, priors=priors,
                              em_n_init=em_n_init, rng=rng, settings=settings,
                              sample_weight=sample_weights)
    sample_total = (len(sample) if problem.sample_weight is None
                    else float(problem.sample_weight.sum()))
    chunk_weights = (list(weights.to_delayed().ravel()) if weights is not None
                     else [None] * values.numblocks[0])
    blocks = dask.persist(*[
        dask.delayed(_chunk_block)(chunk, chunk_weight, problem.scaled.centre,
                                   problem.scaled.scale, problem.scaled.resolved, problem.layout)
        for chunk, chunk_weight in zip(values.to_delayed().ravel(), chunk_weights)
    ])
    density = DaskDensity(list(blocks), problem.pack_rows(np.arange(0)))
    curvature = ShardedDensity.over_rows(problem.pack_rows, np.arange(len(sample)),
                                         total_weight / sample_total, density.prior_block)
    try:
        result = laplace_at_mode(problem.start, density, curvature, rng, len(sample))
    finally:
        curvature.close()
    posterior_sample = laplace_sample(result, problem.layout, settings.draws, rng, began)
    # observed_data (and everything scored without new data) is the gathered sample.
    posterior_sample.extra_groups["laplace"].attrs.update(
        observed_rows="sample", n_rows=int(n_rows), sample_rows=len(sample))
    return problem, posterior_sample
