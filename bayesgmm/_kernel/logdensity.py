"""The log posterior density and its gradient: the driver over the terms, and its entry points.

:func:`bayesgmm.model.build_model` is the specification; this module is a
fast implementation of exactly the same unconstrained log density (PyMC's
default transforms, its parameter order, its normalising constants, its
Jacobians), tested against PyMC's compiled ``logp``/``dlogp`` in
``tests/_kernel/test_logdensity.py``.

Why: PyMC's C backend needs ~23 ms per gradient on Old Faithful and numba
through PyTensor needs ~50 s to compile per model.  :func:`logp_grad` is
compiled once per *installation* (``cache=True``) and serves every number of
components, features, observations and both covariance types, because all of
those travel in one float64 block (:func:`pack_block`, laid out as
:mod:`bayesgmm._kernel.layout` says) passed to nutpie as ``user_data``.  Rust
calls :func:`gmm_logp_cfunc` directly, without the GIL, so chains run in
parallel.  The unconstrained vector is laid out as
:class:`bayesgmm.parameters.Layout` says.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types

from bayesgmm._kernel.layout import (
    HEADER_SIZE,
    Field,
    PatternColumn,
    Section,
    Unconstrained,
    block_size,
    pack,
    parameter_block,
    section,
)
from bayesgmm._kernel.likelihood import covariance_factors, mixture_gradient, mixture_statistics
from bayesgmm._kernel.missing import missing_statistics
from bayesgmm._kernel.priors import (
    dirichlet_constant,
    dirichlet_simplex,
    lkj_cholesky,
    lkj_log_normaliser,
    log_scales,
    normal_means,
    simplex_gradient,
)
from bayesgmm._kernel.structures import component_covariances, pool_gradient
from bayesgmm.em import missingness_patterns
from bayesgmm.parameters import COVARIANCE_TYPES, Layout, spiral_indices
from bayesgmm.priors import SCALE_PRIORS, ResolvedPriors

__all__ = [
    "pack_block",
    "logp_grad",
    "logp_and_grad",
    "logp_batch",
    "gmm_logp_cfunc",
]

# Return codes of gmm_logp_cfunc, as nutpie's own PyMC cfuncs use them.
OK = 0
NON_FINITE_GRADIENT = 3
NON_FINITE_DENSITY = 4

TIED = COVARIANCE_TYPES.index("tied")


def _pattern_sections(
    X: np.ndarray, noise_log_sides: np.ndarray | None, row_weights: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The complete rows, the pattern table, the incomplete rows' observed values, and weights.

    Rows are grouped by :func:`bayesgmm.em.missingness_patterns`; without
    missing values ``X`` itself comes back, with no patterns.  The weights
    come back in the same two row orders (empty when ``row_weights`` is None).
    """
    n_features = X.shape[1]
    patterns = missingness_patterns(X, noise_log_sides)
    no_weights = np.zeros(0)
    if patterns is None:
        weights = no_weights if row_weights is None else row_weights
        return (X, np.zeros((0, PatternColumn.COLUMNS + n_features)), np.zeros(0), weights,
                no_weights)
    complete = ~np.isnan(X).any(axis=1)
    table, values, incomplete_weights = [], [], []
    for observed, rows, extent in zip(patterns.observed, patterns.rows,
                                      patterns.noise_log_extents):
        if observed.all():
            continue
        columns = np.flatnonzero(observed)
        padding = np.full(n_features - columns.size, -1.0)
        table.append([len(rows), columns.size, extent, *columns, *padding])
        values.append(X[np.ix_(rows, columns)].ravel())
        if row_weights is not None:
            incomplete_weights.append(row_weights[rows])
    if row_weights is None:
        return (X[complete], np.array(table, dtype=np.float64), np.concatenate(values),
                no_weights, no_weights)
    return (X[complete], np.array(table, dtype=np.float64), np.concatenate(values),
            row_weights[complete], np.concatenate(incomplete_weights))


def pack_block(
    X: np.ndarray,
    priors: ResolvedPriors,
    n_components: int,
    covariance_type: str,
    noise_log_density: float | None = None,
    noise_log_sides: np.ndarray | None = None,
    row_weights: np.ndarray | None = None,
) -> np.ndarray:
    """Everything the log density needs, in one float64 array.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data on the scale the model is fitted on; NaN marks a missing value
        (missing at random: the row counts through its observed coordinates,
        :mod:`bayesgmm._kernel.missing`).  Without NaN the block holds the
        data exactly as before missing values were supported, and the
        density takes the same path.
    priors : ResolvedPriors
    n_components : int
    covariance_type : {"full", "tied", "diag", "spherical"}
    noise_log_density : float, optional
        ``log(1 / V)`` on the scale of ``X`` for a model with a uniform
        noise component (:mod:`bayesgmm.noise`); its weight is the last of
        the Dirichlet, with ``priors.noise_concentration``.
    noise_log_sides : ndarray of shape (n_features,), optional
        Log side lengths of the noise box on the scale of ``X``
        (:func:`bayesgmm.noise.noise_log_sides`); needed with a noise
        component and missing values.
    row_weights : ndarray of shape (n_samples,), optional
        Frequency weights (:func:`bayesgmm.sample_weight.check_sample_weight`):
        row ``i``'s log-likelihood counts ``row_weights[i]`` times.  None
        (every row once) packs no weights, and the density runs the
        unweighted arithmetic.

    Returns
    -------
    ndarray
        Laid out as :mod:`bayesgmm._kernel.layout` says.
    """
    n_samples, n_features = X.shape
    layout = Layout(n_components, n_features, covariance_type, noise_log_density)
    if len(priors.scale_scale) != layout.scale_shape[1]:
        raise ValueError(
            f"covariance_type={covariance_type!r} needs {layout.scale_shape[1]} scale_scale "
            f"values, got {len(priors.scale_scale)} (resolve priors with bayesgmm.scaling."
            "model_scale)."
        )
    if noise_log_density is not None and noise_log_sides is None and np.isnan(X).any():
        raise ValueError("With a noise component and missing values pass noise_log_sides "
                         "(bayesgmm.scaling.model_noise_log_sides).")
    complete, patterns, incomplete, complete_weights, incomplete_weights = _pattern_sections(
        X, noise_log_sides, row_weights)
    concentration = np.asarray(priors.weight_concentration, dtype=np.float64)
    if layout.has_noise:
        concentration = np.append(concentration, priors.noise_concentration)
    rows, cols = spiral_indices(n_features) if layout.n_triangle else (
        np.zeros(0), np.zeros(0)
    )
    fields = {
        Field.N_SAMPLES: n_samples if row_weights is None else float(np.sum(row_weights)),
        Field.N_FEATURES: n_features,
        Field.N_COMPONENTS: n_components,
        Field.SCALE_PRIOR: SCALE_PRIORS.index(priors.scale_prior),
        Field.LKJ_ETA: priors.lkj_eta,
        Field.LKJ_CONSTANT: (
            lkj_log_normaliser(priors.lkj_eta, n_features) if layout.n_triangle else 0.0
        ),
        Field.DIRICHLET_CONSTANT: dirichlet_constant(concentration),
        Field.COVARIANCE_TYPE: COVARIANCE_TYPES.index(covariance_type),
        Field.NOISE_LOG_DENSITY: -np.inf if noise_log_density is None else noise_log_density,
    }
    sections = {
        Section.WEIGHT_CONCENTRATION: concentration,
        Section.MEAN_LOC: priors.mean_loc,
        Section.MEAN_SCALE: priors.mean_scale,
        Section.SCALE_SCALE: priors.scale_scale,
        Section.TRIANGLE_ROWS: rows,
        Section.TRIANGLE_COLS: cols,
        Section.DATA: complete,
        Section.PATTERNS: patterns,
        Section.INCOMPLETE_DATA: incomplete,
        Section.ROW_WEIGHTS: complete_weights,
        Section.INCOMPLETE_WEIGHTS: incomplete_weights,
    }
    return pack(fields, sections, layout)


@numba.njit(cache=True, nogil=True)
def logp_grad(theta, grad, block):
    """Log density at ``theta``; its gradient is written into ``grad``.

    Parameters
    ----------
    theta : ndarray of shape (n_unconstrained,)
    grad : ndarray of shape (n_unconstrained,)
        Overwritten.
    block : ndarray
        From :func:`pack_block`.

    Returns
    -------
    float
    """
    n_components = int(block[Field.N_COMPONENTS])
    n_features = int(block[Field.N_FEATURES])
    concentration = section(block, Section.WEIGHT_CONCENTRATION)
    rows = section(block, Section.TRIANGLE_ROWS)
    cols = section(block, Section.TRIANGLE_COLS)
    theta_weights = parameter_block(theta, block, Unconstrained.WEIGHTS)
    theta_means = parameter_block(theta, block, Unconstrained.MEANS)
    theta_scales = parameter_block(theta, block, Unconstrained.SCALES)
    theta_correlations = parameter_block(theta, block, Unconstrained.CORRELATIONS)
    grad_weights = parameter_block(grad, block, Unconstrained.WEIGHTS)
    grad_means = parameter_block(grad, block, Unconstrained.MEANS)
    grad_scales = parameter_block(grad, block, Unconstrained.SCALES)
    grad_correlations = parameter_block(grad, block, Unconstrained.CORRELATIONS)
    grad[:] = 0.0

    logp, log_weights = dirichlet_simplex(theta_weights, concentration,
                                          block[Field.DIRICHLET_CONSTANT], 0.0)
    logp, means = normal_means(theta_means, grad_means, section(block, Section.MEAN_LOC),
                               section(block, Section.MEAN_SCALE), n_components, logp)
    scale_scale = section(block, Section.SCALE_SCALE)
    n_scale_sets = theta_scales.shape[0] // scale_scale.shape[0]
    n_correlation_sets = 1 if int(block[Field.COVARIANCE_TYPE]) == TIED else n_components
    logp, scale_sets = log_scales(theta_scales, grad_scales, scale_scale,
                                  int(block[Field.SCALE_PRIOR]), n_scale_sets, logp)
    logp, correlation_sets, norm_sets = lkj_cholesky(
        theta_correlations, grad_correlations, rows, cols, block[Field.LKJ_ETA],
        block[Field.LKJ_CONSTANT], n_correlation_sets, n_features, logp,
    )
    scales, correlation_cholesky, row_norms = component_covariances(
        scale_sets, correlation_sets, norm_sets, n_components)
    factors, log_component = covariance_factors(log_weights, scales, correlation_cholesky,
                                                row_norms)
    log_noise = -np.inf
    if concentration.shape[0] > n_components:
        log_noise = log_weights[n_components] + block[Field.NOISE_LOG_DENSITY]
    logp, statistics = mixture_statistics(section(block, Section.DATA),
                                          section(block, Section.ROW_WEIGHTS), means,
                                          factors.cholesky, log_component, log_noise, logp)
    logp, incomplete = missing_statistics(section(block, Section.PATTERNS),
                                          section(block, Section.INCOMPLETE_DATA),
                                          section(block, Section.INCOMPLETE_WEIGHTS), log_weights,
                                          means, factors.cholesky, log_noise, statistics.counts,
                                          grad_means, logp)
    shared = (n_scale_sets != n_components or scale_scale.shape[0] != n_features
              or n_correlation_sets != n_components)
    if not shared:
        mixture_gradient(grad_means, grad_scales, grad_correlations, statistics, factors,
                         rows, cols, incomplete.cholesky_gradient)
    else:
        component_scales = np.zeros(n_components * n_features)
        component_correlations = np.zeros(n_components * rows.shape[0])
        mixture_gradient(grad_means, component_scales, component_correlations, statistics,
                         factors, rows, cols, incomplete.cholesky_gradient)
        pool_gradient(component_scales, n_components, n_scale_sets, scale_scale.shape[0],
                      grad_scales)
        pool_gradient(component_correlations, n_components, n_correlation_sets,
                      rows.shape[0], grad_correlations)
    simplex_gradient(grad_weights, concentration, incomplete.counts,
                     block[Field.N_SAMPLES], log_weights)
    return logp


_LOGP_SIGNATURE = types.int64(
    types.uint64,
    types.CPointer(types.double),
    types.CPointer(types.double),
    types.CPointer(types.double),
    types.voidptr,
)


@numba.cfunc(_LOGP_SIGNATURE, cache=True, nogil=True)
def gmm_logp_cfunc(dim, theta_pointer, grad_pointer, logp_pointer, user_data):
    """C entry point for nutpie: :func:`logp_grad` on raw pointers.

    ``user_data`` points at a block from :func:`pack_block`.  Returns 0 when
    density and gradient are finite, 4 when the density is not finite (the
    gradient is then not checked) and 3 when the density is finite but the
    gradient is not; nutpie treats 3 and 4 as a rejected point.
    """
    header = numba.carray(user_data, (HEADER_SIZE,), np.float64)
    block = numba.carray(user_data, (block_size(header),), np.float64)
    theta = numba.carray(theta_pointer, (dim,))
    grad = numba.carray(grad_pointer, (dim,))
    value = logp_grad(theta, grad, block)
    logp_pointer[0] = value
    if not np.isfinite(value):
        return NON_FINITE_DENSITY
    for j in range(dim):
        if not np.isfinite(grad[j]):
            return NON_FINITE_GRADIENT
    return OK


def logp_and_grad(theta: np.ndarray, block: np.ndarray) -> tuple[float, np.ndarray]:
    """Log density and gradient at one unconstrained point (Python entry).

    Parameters
    ----------
    theta : ndarray of shape (n_unconstrained,)
    block : ndarray
        From :func:`pack_block`.

    Returns
    -------
    logp : float
    grad : ndarray of shape (n_unconstrained,)
    """
    theta = np.ascontiguousarray(theta, dtype=np.float64)
    grad = np.empty_like(theta)
    return float(logp_grad(theta, grad, block)), grad


@numba.njit(cache=True, nogil=True)
def _logp_batch(thetas, block):
    out = np.empty(thetas.shape[0])
    grad = np.empty(thetas.shape[1])
    for s in range(thetas.shape[0]):
        out[s] = logp_grad(thetas[s], grad, block)
    return out


def logp_batch(thetas: np.ndarray, block: np.ndarray) -> np.ndarray:
    """Log density at many unconstrained points.

    Parameters
    ----------
    thetas : ndarray of shape (n_points, n_unconstrained)
    block : ndarray
        From :func:`pack_block`.

    Returns
    -------
    ndarray of shape (n_points,)
    """
    return _logp_batch(np.ascontiguousarray(thetas, dtype=np.float64), block)
