"""Log posterior density and gradient of the mixture, hand-derived, in numba.

:func:`bayesgmm.model.build_model` is the specification; this module is a
fast implementation of exactly the same unconstrained log density (PyMC's
default transforms, its parameter order, its normalising constants, its
Jacobians), tested against PyMC's compiled ``logp``/``dlogp`` in
``tests/test_logdensity.py``.

Why: PyMC's C backend needs ~23 ms per gradient on Old Faithful and numba
through PyTensor needs ~50 s to compile per model.  This function is compiled
once per *installation* (``cache=True``) and serves every number of
components, features, observations and both covariance types, because all of
those travel in one float64 "block" (see :func:`pack_block`) passed to nutpie
as ``user_data``.  Rust calls the ``cfunc`` directly, without the GIL, so
chains run in parallel.

Unconstrained vector, in PyMC's ``model.value_vars`` order:

=====================================  ==========================  =========
value variable                         length                      transform
=====================================  ==========================  =========
``weights_simplex__`` (if K > 1)       K - 1                       simplex
``means``                              K * D                       none
``scales_log__``                       K * D                       log
``correlations_cholesky_cholesky_corr__``  K * D(D-1)/2 (full, D>1)    LKJ Cholesky
=====================================  ==========================  =========
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np
from numba import types
from scipy.special import gammaln

from bayesgmm.priors import SCALE_PRIORS, ResolvedPriors

__all__ = [
    "Layout",
    "ModelParameters",
    "pack_block",
    "logp_and_grad",
    "logp_batch",
    "gmm_logp_cfunc",
    "spiral_indices",
    "unconstrained_to_parameters",
    "parameters_to_unconstrained",
    "lkj_log_normaliser",
]

_HEADER = 9
_LOG_2PI = math.log(2.0 * math.pi)
COVARIANCE_CODES = {"diag": 0, "full": 1}


class Layout(NamedTuple):
    """Where each parameter block sits in the unconstrained vector."""

    n_components: int
    n_features: int
    covariance_type: str

    @property
    def n_weights(self) -> int:
        """Length of the simplex block (0 when K = 1)."""
        return self.n_components - 1

    @property
    def n_triangle(self) -> int:
        """Free correlation entries per component (0 for diag or D = 1)."""
        if self.covariance_type != "full":
            return 0
        return self.n_features * (self.n_features - 1) // 2

    @property
    def size(self) -> int:
        """Length of the whole unconstrained vector."""
        k, d = self.n_components, self.n_features
        return self.n_weights + 2 * k * d + k * self.n_triangle

    @property
    def slices(self) -> dict[str, slice]:
        """Slices of the value variables, in PyMC's order."""
        k, d = self.n_components, self.n_features
        bounds = np.cumsum([0, self.n_weights, k * d, k * d, k * self.n_triangle])
        names = ["weights", "means", "scales", "correlations"]
        return {n: slice(int(a), int(b)) for n, a, b in zip(names, bounds, bounds[1:])}


class ModelParameters(NamedTuple):
    """Constrained parameters, batched over leading axes.

    Attributes
    ----------
    weights : ndarray of shape (..., n_components)
    means : ndarray of shape (..., n_components, n_features)
    scales : ndarray of shape (..., n_components, n_features)
        Per-feature standard deviations.
    correlation_cholesky : ndarray of shape (..., n_components, n_features, n_features)
        Lower Cholesky factors of the correlation matrices (identity for diag).
    """

    weights: np.ndarray
    means: np.ndarray
    scales: np.ndarray
    correlation_cholesky: np.ndarray

    @property
    def covariance_cholesky(self) -> np.ndarray:
        """Lower Cholesky factors ``diag(scales) @ L`` of the covariances."""
        return self.scales[..., :, None] * self.correlation_cholesky

    @property
    def correlations(self) -> np.ndarray:
        """Correlation matrices ``L @ L.T``."""
        chol = self.correlation_cholesky
        return chol @ np.swapaxes(chol, -1, -2)

    @property
    def covariances(self) -> np.ndarray:
        """Covariance matrices."""
        chol = self.covariance_cholesky
        return chol @ np.swapaxes(chol, -1, -2)


def spiral_indices(n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column in ``L`` of each unconstrained correlation entry.

    PyMC's ``CholeskyCorrTransform`` fills the strictly lower triangle in a
    "spiral" order; e.g. for D = 3 the entries go to (2,1), (2,0), (1,0).

    Parameters
    ----------
    n_features : int

    Returns
    -------
    rows, cols : ndarray of shape (n_features * (n_features - 1) // 2,)
    """
    size = n_features * (n_features - 1) // 2
    if size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    order = np.arange(1, size + 1, dtype=np.float64)
    tail = n_features - 1
    folded = np.concatenate([order[tail:], order[::-1]]).reshape(tail, tail)
    filled = np.zeros((n_features, n_features))
    filled[1:, :-1] = np.tril(folded)
    rows, cols = np.nonzero(filled)
    position = filled[rows, cols].astype(np.int64) - 1
    inverse = np.empty(size, dtype=np.int64)
    inverse[position] = np.arange(size)
    return rows[inverse], cols[inverse]


def lkj_log_normaliser(eta: float, n_features: int) -> float:
    """Log normalising constant of PyMC's ``LKJCorr`` density of the Cholesky factor."""
    d = n_features
    total = (d - 1) * gammaln(eta + (d - 1) / 2.0)
    for k in range(1, d):
        total -= 0.5 * k * math.log(math.pi) + gammaln(eta + (d - 1 - k) / 2.0)
    return float(total)


def pack_block(
    X: np.ndarray, priors: ResolvedPriors, n_components: int, covariance_type: str
) -> np.ndarray:
    """Everything the log density needs, in one float64 array.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data on the scale the model is fitted on.
    priors : ResolvedPriors
    n_components : int
    covariance_type : {"full", "diag"}

    Returns
    -------
    ndarray
        Header, prior constants, correlation index map, then ``X`` row-major.
    """
    n_samples, n_features = X.shape
    layout = Layout(n_components, n_features, covariance_type)
    alpha = np.asarray(priors.weight_concentration, dtype=np.float64)
    dirichlet_constant = (
        gammaln(alpha.sum()) - gammaln(alpha).sum() + math.log(n_components)
        if n_components > 1 else 0.0
    )
    rows, cols = spiral_indices(n_features) if layout.n_triangle else (
        np.zeros(0), np.zeros(0)
    )
    header = [
        n_samples,
        n_features,
        n_components,
        COVARIANCE_CODES[covariance_type],
        SCALE_PRIORS.index(priors.scale_prior),
        priors.lkj_eta,
        lkj_log_normaliser(priors.lkj_eta, n_features) if layout.n_triangle else 0.0,
        dirichlet_constant,
        layout.n_triangle,
    ]
    return np.concatenate(
        [
            np.asarray(header, dtype=np.float64),
            alpha,
            priors.mean_loc,
            priors.mean_scale,
            priors.scale_scale,
            rows.astype(np.float64),
            cols.astype(np.float64),
            np.ascontiguousarray(X, dtype=np.float64).ravel(),
        ]
    )


@numba.njit(cache=True, nogil=True)
def _logp_grad(theta, grad, block):  # noqa: C901 - one flat kernel on purpose
    n_samples = int(block[0])
    n_features = int(block[1])
    n_components = int(block[2])
    full = block[3] > 0.5
    scale_prior = int(block[4])
    eta = block[5]
    lkj_constant = block[6]
    dirichlet_constant = block[7]
    n_tri = int(block[8])
    offset = 9
    alpha = block[offset:offset + n_components]
    offset += n_components
    mean_loc = block[offset:offset + n_features]
    offset += n_features
    mean_scale = block[offset:offset + n_features]
    offset += n_features
    scale_scale = block[offset:offset + n_features]
    offset += n_features
    tri_rows = block[offset:offset + n_tri]
    offset += n_tri
    tri_cols = block[offset:offset + n_tri]
    offset += n_tri
    data_offset = offset
    K, D = n_components, n_features
    log_2pi = 1.8378770664093453

    for j in range(grad.shape[0]):
        grad[j] = 0.0
    logp = 0.0

    # weights: simplex transform, Dirichlet prior + Jacobian
    log_weights = np.zeros(K)
    p_means = K - 1
    if K > 1:
        last = 0.0
        for k in range(K - 1):
            last -= theta[k]
        top = last
        for k in range(K - 1):
            if theta[k] > top:
                top = theta[k]
        total = math.exp(last - top)
        for k in range(K - 1):
            total += math.exp(theta[k] - top)
        log_norm = top + math.log(total)
        for k in range(K - 1):
            log_weights[k] = theta[k] - log_norm
        log_weights[K - 1] = last - log_norm
        logp += dirichlet_constant
        for k in range(K):
            logp += alpha[k] * log_weights[k]
    weights = np.exp(log_weights)

    # means: Normal prior
    means = np.empty((K, D))
    for k in range(K):
        for d in range(D):
            index = p_means + k * D + d
            means[k, d] = theta[index]
            z = (theta[index] - mean_loc[d]) / mean_scale[d]
            logp += -0.5 * z * z - math.log(mean_scale[d]) - 0.5 * log_2pi
            grad[index] += -z / mean_scale[d]

    # scales: log transform, prior + Jacobian
    p_scales = p_means + K * D
    scales = np.empty((K, D))
    for k in range(K):
        for d in range(D):
            index = p_scales + k * D + d
            u = theta[index]
            sigma = math.exp(u)
            scales[k, d] = sigma
            tau = scale_scale[d]
            if scale_prior == 0:  # half-normal(tau)
                ratio = sigma / tau
                logp += 0.5 * math.log(2.0 / math.pi) - math.log(tau) - 0.5 * ratio * ratio + u
                grad[index] += 1.0 - ratio * ratio
            elif scale_prior == 1:  # exponential with mean tau
                logp += -math.log(tau) - sigma / tau + u
                grad[index] += 1.0 - sigma / tau
            else:  # log-normal(log tau, 1)
                shift = u - math.log(tau)
                logp += -0.5 * shift * shift - 0.5 * log_2pi
                grad[index] += -shift

    # correlations: LKJ Cholesky transform, prior + Jacobian
    p_corr = p_scales + K * D
    chol_corr = np.zeros((K, D, D))
    row_norm = np.ones((K, D))
    for k in range(K):
        for d in range(D):
            chol_corr[k, d, d] = 1.0
    if full and n_tri > 0:
        power = 2.0 * eta + D - 1.0
        for k in range(K):
            for t in range(n_tri):
                chol_corr[k, int(tri_rows[t]), int(tri_cols[t])] = theta[p_corr + k * n_tri + t]
            logp += lkj_constant
            for i in range(D):
                squared = 1.0
                for j in range(i):
                    squared += chol_corr[k, i, j] * chol_corr[k, i, j]
                row_norm[k, i] = math.sqrt(squared)
                logp += -0.5 * power * math.log(squared)
            for t in range(n_tri):
                i, j = int(tri_rows[t]), int(tri_cols[t])
                grad[p_corr + k * n_tri + t] += (
                    -power * chol_corr[k, i, j] / (row_norm[k, i] * row_norm[k, i])
                )
            for i in range(D):
                for j in range(i + 1):
                    chol_corr[k, i, j] /= row_norm[k, i]

    # covariance Cholesky factors C = diag(scales) L and their log-determinants
    chol = np.empty((K, D, D))
    log_component = np.empty(K)
    for k in range(K):
        log_det = 0.0
        for i in range(D):
            for j in range(D):
                chol[k, i, j] = scales[k, i] * chol_corr[k, i, j]
            log_det += math.log(chol[k, i, i])
        log_component[k] = log_weights[k] - 0.5 * D * log_2pi - log_det

    # likelihood: log-sum-exp over components, sufficient statistics for gradients
    counts = np.zeros(K)
    first = np.zeros((K, D))
    second = np.zeros((K, D, D))
    z = np.empty((K, D))
    joint = np.empty(K)
    for n in range(n_samples):
        base = data_offset + n * D
        top = -np.inf
        for k in range(K):
            squared = 0.0
            for i in range(D):
                value = block[base + i] - means[k, i]
                for j in range(i):
                    value -= chol[k, i, j] * z[k, j]
                value /= chol[k, i, i]
                z[k, i] = value
                squared += value * value
            joint[k] = log_component[k] - 0.5 * squared
            if joint[k] > top:
                top = joint[k]
        total = 0.0
        for k in range(K):
            joint[k] = math.exp(joint[k] - top)
            total += joint[k]
        logp += top + math.log(total)
        for k in range(K):
            resp = joint[k] / total
            counts[k] += resp
            for i in range(D):
                scaled = resp * z[k, i]
                first[k, i] += scaled
                for j in range(i + 1):
                    second[k, i, j] += scaled * z[k, j]

    # gradients of the likelihood through C, L, scales and means
    solved = np.empty((D, D))
    vector = np.empty(D)
    for k in range(K):
        for i in range(D):
            for j in range(i):
                second[k, j, i] = second[k, i, j]
        # grad means = C^{-T} first ; M = C^{-T} second (back substitution)
        for i in range(D - 1, -1, -1):
            value = first[k, i]
            for j in range(i + 1, D):
                value -= chol[k, j, i] * vector[j]
            vector[i] = value / chol[k, i, i]
        for i in range(D):
            grad[p_means + k * D + i] += vector[i]
        for column in range(D):
            for i in range(D - 1, -1, -1):
                value = second[k, i, column]
                for j in range(i + 1, D):
                    value -= chol[k, j, i] * solved[j, column]
                solved[i, column] = value / chol[k, i, i]
        # G = tril(M) - counts * diag(1 / C_ii); chain rule to scales and L
        for i in range(D):
            solved[i, i] -= counts[k] / chol[k, i, i]
            dscale = 0.0
            for j in range(i + 1):
                dscale += solved[i, j] * chol_corr[k, i, j]
            grad[p_scales + k * D + i] += dscale * scales[k, i]
        if full and n_tri > 0:
            for i in range(1, D):
                inner = 0.0
                for j in range(i + 1):
                    solved[i, j] *= scales[k, i]  # dlogp / dL
                    inner += solved[i, j] * chol_corr[k, i, j]
                for j in range(i):
                    solved[i, j] = (solved[i, j] - chol_corr[k, i, j] * inner) / row_norm[k, i]
            for t in range(n_tri):
                grad[p_corr + k * n_tri + t] += solved[int(tri_rows[t]), int(tri_cols[t])]

    if K > 1:
        total_alpha = 0.0
        for k in range(K):
            total_alpha += alpha[k]
        # d/dz_k of (prior + Jacobian + likelihood) is (a_k + n_k) - (A + N) w_k.
        total = total_alpha + n_samples
        last_gradient = (alpha[K - 1] + counts[K - 1]) - total * weights[K - 1]
        for k in range(K - 1):
            grad[k] += (alpha[k] + counts[k]) - total * weights[k] - last_gradient
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
    """C entry point for nutpie: returns 0, or 4 for a non-finite density."""
    header = numba.carray(user_data, (_HEADER,), np.float64)
    n_samples, n_features, n_components = int(header[0]), int(header[1]), int(header[2])
    n_tri = int(header[8])
    size = _HEADER + n_components + 3 * n_features + 2 * n_tri + n_samples * n_features
    block = numba.carray(user_data, (size,), np.float64)
    theta = numba.carray(theta_pointer, (dim,))
    grad = numba.carray(grad_pointer, (dim,))
    value = _logp_grad(theta, grad, block)
    logp_pointer[0] = value
    if not np.isfinite(value):
        return 4
    for j in range(dim):
        if not np.isfinite(grad[j]):
            return 3
    return 0


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
    return float(_logp_grad(theta, grad, block)), grad


@numba.njit(cache=True, nogil=True)
def _logp_batch(thetas, block):
    out = np.empty(thetas.shape[0])
    grad = np.empty(thetas.shape[1])
    for s in range(thetas.shape[0]):
        out[s] = _logp_grad(thetas[s], grad, block)
    return out


def logp_batch(thetas: np.ndarray, block: np.ndarray) -> np.ndarray:
    """Log density at many unconstrained points, shape (n_points,)."""
    return _logp_batch(np.ascontiguousarray(thetas, dtype=np.float64), block)


def unconstrained_to_parameters(theta: np.ndarray, layout: Layout) -> ModelParameters:
    """Apply PyMC's backward transforms to a batch of unconstrained vectors.

    Parameters
    ----------
    theta : ndarray of shape (..., layout.size)
    layout : Layout

    Returns
    -------
    ModelParameters
        Batched over the leading axes of ``theta``.
    """
    k, d = layout.n_components, layout.n_features
    batch = theta.shape[:-1]
    parts = {name: theta[..., part] for name, part in layout.slices.items()}
    if k > 1:
        logits = np.concatenate(
            [parts["weights"], -parts["weights"].sum(axis=-1, keepdims=True)], axis=-1
        )
        logits -= logits.max(axis=-1, keepdims=True)
        weights = np.exp(logits)
        weights /= weights.sum(axis=-1, keepdims=True)
    else:
        weights = np.ones(batch + (1,))
    means = parts["means"].reshape(batch + (k, d))
    scales = np.exp(parts["scales"].reshape(batch + (k, d)))
    chol = np.broadcast_to(np.eye(d), batch + (k, d, d)).copy()
    if layout.n_triangle:
        rows, cols = spiral_indices(d)
        chol[..., rows, cols] = parts["correlations"].reshape(batch + (k, -1))
        chol /= np.sqrt((chol**2).sum(axis=-1, keepdims=True))
    return ModelParameters(weights, means, scales, chol)


def parameters_to_unconstrained(parameters: ModelParameters, layout: Layout) -> np.ndarray:
    """PyMC's forward transforms, batched over leading axes.

    Parameters
    ----------
    parameters : ModelParameters
        One parameter set, or a batch with the same leading axes everywhere.
    layout : Layout

    Returns
    -------
    ndarray of shape (..., layout.size)
    """
    batch = np.shape(parameters.weights)[:-1]
    pieces = []
    if layout.n_components > 1:
        log_weights = np.log(parameters.weights)
        centred = log_weights - log_weights.mean(axis=-1, keepdims=True)
        pieces.append(centred[..., :-1])
    pieces.append(np.reshape(parameters.means, batch + (-1,)))
    pieces.append(np.log(np.reshape(parameters.scales, batch + (-1,))))
    if layout.n_triangle:
        chol = parameters.correlation_cholesky
        unit_diagonal = chol / np.diagonal(chol, axis1=-2, axis2=-1)[..., :, None]
        rows, cols = spiral_indices(layout.n_features)
        pieces.append(np.reshape(unit_diagonal[..., rows, cols], batch + (-1,)))
    return np.concatenate(pieces, axis=-1)
