"""Shared covariance sets: spread them over the components, pool their gradients.

The likelihood (:mod:`bayesgmm._kernel.likelihood`) works with one scale per
component and feature and one correlation factor per component.  ``tied``
samples one set of scales and correlations for all components and
``spherical`` one scale per component for all features; these two terms map
the sampled sets to the per-component arrays and, by the chain rule, add the
per-component gradients back onto the sets (a shared value's derivative is
the sum over the places it is used).  ``full`` and ``diag`` sample per
component and pass straight through.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["component_covariances", "pool_gradient"]


@numba.njit(cache=True, nogil=True)
def component_covariances(scale_sets, correlation_sets, norm_sets, n_components):
    """Per-component scales, correlation factors and row norms from the sampled sets.

    Parameters
    ----------
    scale_sets : ndarray of shape (n_sets, n_per_set)
        ``(K, D)``, ``(1, D)`` (tied) or ``(K, 1)`` (spherical).
    correlation_sets : ndarray of shape (K or 1, D, D)
    norm_sets : ndarray of shape (K or 1, D)
    n_components : int

    Returns
    -------
    scales : ndarray of shape (n_components, D)
    correlation_cholesky : ndarray of shape (n_components, D, D)
    row_norms : ndarray of shape (n_components, D)
    """
    n_features = correlation_sets.shape[1]
    shared_scales = scale_sets.shape[0] != n_components
    one_scale = scale_sets.shape[1] != n_features
    shared_correlations = correlation_sets.shape[0] != n_components
    if not (shared_scales or one_scale or shared_correlations):
        return scale_sets, correlation_sets, norm_sets
    scales = np.empty((n_components, n_features))
    chol = np.empty((n_components, n_features, n_features))
    row_norms = np.empty((n_components, n_features))
    for k in range(n_components):
        row = 0 if shared_scales else k
        source = 0 if shared_correlations else k
        for d in range(n_features):
            scales[k, d] = scale_sets[row, 0 if one_scale else d]
            row_norms[k, d] = norm_sets[source, d]
            for j in range(n_features):
                chol[k, d, j] = correlation_sets[source, d, j]
    return scales, chol, row_norms


@numba.njit(cache=True, nogil=True)
def pool_gradient(component_grad, n_components, n_sets, n_per_set, grad):
    """Add per-component gradient entries onto the sampled sets they came from.

    Parameters
    ----------
    component_grad : ndarray of shape (n_components * width,)
        Row-major per component (``width`` = D for scales, the triangle size
        for correlations).
    n_components : int
    n_sets, n_per_set : int
        Shape of the sampled sets; a set shared by all components has
        ``n_sets == 1``, a value shared by all entries of a row has
        ``n_per_set == 1``.
    grad : ndarray of shape (n_sets * n_per_set,)
        Updated in place.
    """
    width = component_grad.shape[0] // n_components
    for k in range(n_components):
        row = 0 if n_sets == 1 else k
        for d in range(width):
            grad[row * n_per_set + (0 if n_per_set == 1 else d)] += component_grad[k * width + d]
