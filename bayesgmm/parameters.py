"""Mixture parameters as arrays: the types, PyMC's transforms and the named flattening.

The numpy core under the Bayesian side (no numba, no PyMC).  Every draw of a
posterior travels as one :class:`ModelParameters` batched over leading axes
(``(chain, draw)`` or one flattened draw axis); :class:`Layout` says where each
block sits in the unconstrained vector that samplers move in.

Unconstrained vector, in PyMC's ``model.value_vars`` order:

=============================================  ============================  ============
value variable                                 length                        transform
=============================================  ============================  ============
``weights_simplex__`` (if K > 1)               K - 1                         simplex
``means``                                      K * D                         none
``scales_log__``                               K * D (full, diag), D (tied), log
                                               K (spherical)
``correlations_cholesky_cholesky_corr__``      K * D(D-1)/2 (full, D > 1),   LKJ Cholesky
                                               D(D-1)/2 (tied, D > 1)
=============================================  ============================  ============

The four covariance structures differ only in how many scale and
correlation sets they sample (:attr:`Layout.scale_shape`,
:attr:`Layout.n_correlation_sets`).  :class:`ModelParameters` always holds
one scale per component and feature and one correlation factor per
component, shared sets repeated, so every consumer of a posterior (density,
memberships, relabelling, plots) reads the four structures alike.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bayesgmm.noise import NoiseComponent, NoiseRegion

__all__ = [
    "COVARIANCE_TYPES",
    "Layout",
    "ModelParameters",
    "spiral_indices",
    "unconstrained_to_parameters",
    "parameters_to_unconstrained",
    "map_draws",
    "flatten_draws",
    "unflatten_draws",
    "to_data_units",
    "to_model_units",
    "parameter_matrix",
]

UNCONSTRAINED_BLOCKS = ("weights", "means", "scales", "correlations")

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
"""Covariance structures of the Bayesian model, as in ``bayesgmm.em``:
``full`` (own scales and correlations per component), ``tied`` (one set of
scales and correlations shared by all), ``diag`` (own scales, no
correlations), ``spherical`` (one scale per component for every feature)."""


class Layout(NamedTuple):
    """Where each parameter block sits in the unconstrained vector.

    Attributes
    ----------
    n_components : int
        Gaussian components.
    n_features : int
    covariance_type : str
        One of :data:`COVARIANCE_TYPES`.
    noise_log_density : float or None
        ``log(1 / V)`` on the model's scale when the model has a uniform
        noise component (:mod:`bayesgmm.noise`), whose weight is then the
        last entry of the simplex; None without one.
    """

    n_components: int
    n_features: int
    covariance_type: str
    noise_log_density: float | None = None

    @property
    def has_noise(self) -> bool:
        """Whether the model has a noise component."""
        return self.noise_log_density is not None

    @property
    def n_weights(self) -> int:
        """Length of the simplex block: one less than the weights (0 when there is one)."""
        return self.n_components - 1 + self.has_noise

    @property
    def scale_shape(self) -> tuple[int, int]:
        """Shape of the sampled scales: (sets, features per set)."""
        k, d = self.n_components, self.n_features
        return {"tied": (1, d), "spherical": (k, 1)}.get(self.covariance_type, (k, d))

    @property
    def n_correlation_sets(self) -> int:
        """Correlation matrices sampled: K (full), 1 (tied) or 0."""
        return {"full": self.n_components, "tied": 1}.get(self.covariance_type, 0)

    @property
    def n_triangle(self) -> int:
        """Free correlation entries per correlation set (0 without correlations or D = 1)."""
        if self.n_correlation_sets == 0:
            return 0
        return self.n_features * (self.n_features - 1) // 2

    @property
    def lengths(self) -> dict[str, int]:
        """Length of every block of :data:`UNCONSTRAINED_BLOCKS`, in order."""
        k, d = self.n_components, self.n_features
        sets, per_set = self.scale_shape
        sizes = (self.n_weights, k * d, sets * per_set, self.n_correlation_sets * self.n_triangle)
        return dict(zip(UNCONSTRAINED_BLOCKS, sizes, strict=True))

    @property
    def size(self) -> int:
        """Length of the whole unconstrained vector."""
        return sum(self.lengths.values())

    @property
    def slices(self) -> dict[str, slice]:
        """Slices of the value variables, in PyMC's order."""
        bounds = np.cumsum([0, *self.lengths.values()])
        return {name: slice(int(a), int(b))
                for name, a, b in zip(UNCONSTRAINED_BLOCKS, bounds, bounds[1:])}


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
    noise : NoiseComponent or None
        The uniform noise component, its ``weight`` of shape (...); the
        Gaussian ``weights`` then sum to one minus it.  None without one.
    """

    weights: np.ndarray
    means: np.ndarray
    scales: np.ndarray
    correlation_cholesky: np.ndarray
    noise: NoiseComponent | None = None

    @property
    def gaussian(self) -> ModelParameters:
        """The Gaussian components alone (the noise dropped)."""
        return self._replace(noise=None)

    @property
    def covariance_cholesky(self) -> np.ndarray:
        """Lower Cholesky factors ``diag(scales) @ L`` of the covariances."""
        return self.scales[..., :, None] * self.correlation_cholesky

    @property
    def precisions_cholesky(self) -> np.ndarray:
        """Upper ``U`` with ``U @ U.T`` the precision (scikit-learn's convention)."""
        return np.swapaxes(np.linalg.inv(self.covariance_cholesky), -1, -2)

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

    Examples
    --------
    >>> rows, cols = spiral_indices(3)
    >>> list(zip(rows.tolist(), cols.tolist()))
    [(2, 1), (2, 0), (1, 0)]
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
    if layout.n_weights:
        logits = np.concatenate(
            [parts["weights"], -parts["weights"].sum(axis=-1, keepdims=True)], axis=-1
        )
        logits -= logits.max(axis=-1, keepdims=True)
        weights = np.exp(logits)
        weights /= weights.sum(axis=-1, keepdims=True)
    else:
        weights = np.ones(batch + (1,))
    noise = None
    if layout.has_noise:
        noise = NoiseComponent(weights[..., -1], layout.noise_log_density)
        weights = weights[..., :-1]
    means = parts["means"].reshape(batch + (k, d))
    scale_sets = np.exp(parts["scales"].reshape(batch + layout.scale_shape))
    scales = np.broadcast_to(scale_sets, batch + (k, d)).copy()
    sets = max(layout.n_correlation_sets, 1)
    chol = np.broadcast_to(np.eye(d), batch + (sets, d, d)).copy()
    if layout.n_triangle:
        rows, cols = spiral_indices(d)
        chol[..., rows, cols] = parts["correlations"].reshape(batch + (sets, -1))
        chol /= np.sqrt((chol**2).sum(axis=-1, keepdims=True))
    chol = np.broadcast_to(chol, batch + (k, d, d)).copy()
    return ModelParameters(weights, means, scales, chol, noise)


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
        For ``tied`` and ``spherical`` the shared sets are read from the
        first component (first feature), where they are repeated.
    """
    batch = np.shape(parameters.weights)[:-1]
    pieces = []
    weights = np.asarray(parameters.weights)
    if layout.has_noise:
        weights = np.concatenate([weights, np.asarray(parameters.noise.weight)[..., None]],
                                 axis=-1)
    if layout.n_weights:
        # A sparse prior can leave a weight that underflowed to exactly 0 in
        # a draw; the smallest positive double keeps its logit finite.
        log_weights = np.log(np.maximum(weights, np.finfo(np.float64).tiny))
        centred = log_weights - log_weights.mean(axis=-1, keepdims=True)
        pieces.append(centred[..., :-1])
    pieces.append(np.reshape(parameters.means, batch + (-1,)))
    sets, per_set = layout.scale_shape
    scale_sets = np.asarray(parameters.scales)[..., :sets, :per_set]
    pieces.append(np.log(np.reshape(scale_sets, batch + (-1,))))
    if layout.n_triangle:
        chol = np.asarray(parameters.correlation_cholesky)[..., :layout.n_correlation_sets, :, :]
        unit_diagonal = chol / np.diagonal(chol, axis1=-2, axis2=-1)[..., :, None]
        rows, cols = spiral_indices(layout.n_features)
        pieces.append(np.reshape(unit_diagonal[..., rows, cols], batch + (-1,)))
    return np.concatenate(pieces, axis=-1)


def map_draws(parameters: ModelParameters, function) -> ModelParameters:
    """Apply ``function`` to every array batched over the draws (noise weight included).

    ``function`` must act on the leading (draw) axes only, e.g. reshape them
    or select draws; it sees each of the four Gaussian arrays and the noise
    weight (shape ``(...)``).
    """
    noise = parameters.noise
    if noise is not None:
        noise = noise._replace(weight=function(np.asarray(noise.weight)))
    return ModelParameters(*(function(np.asarray(a)) for a in parameters[:4]), noise)


def flatten_draws(parameters: ModelParameters, n_sample_dims: int = 2) -> ModelParameters:
    """Merge the leading ``(chain, draw)`` axes into one draw axis."""
    return map_draws(parameters, lambda a: np.reshape(a, (-1,) + a.shape[n_sample_dims:]))


def unflatten_draws(parameters: ModelParameters, n_chains: int) -> ModelParameters:
    """Split one draw axis back into ``(chain, draw)``; inverse of :func:`flatten_draws`."""
    return map_draws(parameters, lambda a: np.reshape(a, (n_chains, -1) + a.shape[1:]))


def _noise_in_units(noise: NoiseComponent | None, centre: np.ndarray, scale: np.ndarray,
                    power: float):
    """The noise after mapping the data to ``centre + x * scale`` (power +1) or back (-1)."""
    if noise is None:
        return None
    box = noise.box
    if box is not None:
        corners = ((centre + box.lower * scale, centre + box.upper * scale) if power > 0
                   else ((box.lower - centre) / scale, (box.upper - centre) / scale))
        box = NoiseRegion(box.log_volume + power * float(np.log(scale).sum()), *corners)
    return noise._replace(log_density=noise.log_density - power * float(np.log(scale).sum()),
                          box=box)


def to_data_units(
    parameters: ModelParameters, centre: np.ndarray, scale: np.ndarray
) -> ModelParameters:
    """Map parameters of the standardised model ``z = (x - centre) / scale`` to ``x``."""
    return ModelParameters(
        parameters.weights,
        centre + parameters.means * scale,
        parameters.scales * scale,
        parameters.correlation_cholesky,
        _noise_in_units(parameters.noise, centre, scale, 1.0),
    )


def to_model_units(
    parameters: ModelParameters, centre: np.ndarray, scale: np.ndarray
) -> ModelParameters:
    """Inverse of :func:`to_data_units`."""
    return ModelParameters(
        parameters.weights,
        (parameters.means - centre) / scale,
        parameters.scales / scale,
        parameters.correlation_cholesky,
        _noise_in_units(parameters.noise, centre, scale, -1.0),
    )


def parameter_matrix(
    parameters: ModelParameters,
    covariance_type: str,
    feature_names: list[str] | None = None,
) -> tuple[list[str], np.ndarray]:
    """The free parameters of a posterior as named columns.

    The one way a posterior is flattened for diagnostics, tables, benchmarks,
    agreement checks and SBC.  Per component: the weight (when K > 1), the
    means, and its own scales (``full``, ``diag``: one per feature;
    ``spherical``: one) and, for ``full`` with D > 1, the strictly lower
    correlations.  The noise weight follows, when there is a noise
    component.  ``tied`` scales and correlations are shared, so they come
    once, after the components.  The constant correlation diagonal, the
    redundant upper triangle and repeated shared values are left out (their
    R-hat is undefined or repeated).

    Parameters
    ----------
    parameters : ModelParameters
        Batched over leading sample axes, e.g. ``(chain, draw)``.
    covariance_type : {"full", "tied", "diag", "spherical"}
    feature_names : list of str, optional
        Defaults to ``0, 1, ...``.

    Returns
    -------
    names : list of str
        E.g. ``"weights[1]"``, ``"means[1, waiting]"``,
        ``"correlations[1, waiting, eruptions]"``; shared ones without the
        component (``"scales[waiting]"``), spherical ones without the
        feature (``"scales[1]"``).
    matrix : ndarray of shape (..., n_parameters)

    Examples
    --------
    >>> import numpy as np
    >>> p = ModelParameters(np.full((5, 2), 0.5), np.zeros((5, 2, 2)), np.ones((5, 2, 2)),
    ...                     np.broadcast_to(np.eye(2), (5, 2, 2, 2)))
    >>> names, matrix = parameter_matrix(p, "full", ["a", "b"])
    >>> names[:4], matrix.shape
    (['weights[0]', 'means[0, a]', 'means[0, b]', 'scales[0, a]'], (5, 12))
    >>> parameter_matrix(p, "tied", ["a", "b"])[0][-3:]
    ['scales[a]', 'scales[b]', 'correlations[b, a]']
    """
    batch = np.shape(parameters.weights)[:-1]
    n_components, n_features = np.shape(parameters.means)[-2:]
    features = [str(f) for f in (feature_names if feature_names is not None
                                 else range(n_features))]
    rows, cols = np.tril_indices(n_features, k=-1)
    has_correlations = covariance_type in ("full", "tied") and n_features > 1
    correlations = parameters.correlations[..., rows, cols] if has_correlations else None
    pairs = [f"{features[i]}, {features[j]}" for i, j in zip(rows, cols, strict=True)]
    names, columns = [], []
    for k in range(n_components):
        if n_components > 1:
            names.append(f"weights[{k}]")
            columns.append(parameters.weights[..., k])
        names += [f"means[{k}, {f}]" for f in features]
        columns += [parameters.means[..., k, d] for d in range(n_features)]
        if covariance_type == "spherical":
            names.append(f"scales[{k}]")
            columns.append(parameters.scales[..., k, 0])
        elif covariance_type != "tied":
            names += [f"scales[{k}, {f}]" for f in features]
            columns += [parameters.scales[..., k, d] for d in range(n_features)]
        if has_correlations and covariance_type == "full":
            names += [f"correlations[{k}, {pair}]" for pair in pairs]
            columns += [correlations[..., k, t] for t in range(rows.size)]
    if parameters.noise is not None:
        names.append("noise_weight")
        columns.append(np.broadcast_to(parameters.noise.weight, batch))
    if covariance_type == "tied":
        names += [f"scales[{f}]" for f in features]
        columns += [parameters.scales[..., 0, d] for d in range(n_features)]
        if has_correlations:
            names += [f"correlations[{pair}]" for pair in pairs]
            columns += [correlations[..., 0, t] for t in range(rows.size)]
    return names, np.stack(columns, axis=-1).reshape(batch + (len(names),))
