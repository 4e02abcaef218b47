"""``GaussianMixtureEM``: a scikit-learn estimator wired onto the pure EM functions.

Scale handling (a deliberate difference from scikit-learn): EM runs on the
data centred by the column means and divided by the column standard
deviations (one common scale for ``spherical``), both taken over the column's
bulk so that a far outlier cannot inflate them (see
:func:`bayesgmm.scaling.standardization`).  Results are reported in the
user's units.  Consequently ``reg_covar`` is *relative* to each feature's
variance; on data that already has unit variance both libraries add the same
amount.  This is what makes fits on data in units of 1e-6 or 1e6 correct
rather than dominated (or ignored) by an absolute ``reg_covar``.

Noise component (``noise=True``, R's mclust ``noise``; Banfield & Raftery
1993): a uniform density ``1 / V`` beside the Gaussians, defined in
:mod:`bayesgmm.noise`.  Decisions:

* Start (mclust's ``initialization = list(noise = ...)``, seeded as its
  documentation advises from nearest-neighbour cleaning, Byers & Raftery
  1998): a point starts as noise when its k-nearest-neighbour density
  estimate is below ``1 / V``, the noise density at full weight.  The usual
  initialiser fits the Gaussian components to the other points, and the
  noise starts with the share of points it took (see :func:`noise_start`).
  The neighbours use no randomness, so a fit stays deterministic under
  ``random_state``.  Without this, k-means++ seeds a centre on the scattered
  points and one Gaussian spans the real clusters.
* ``sample`` draws noise points uniformly from a box of volume ``V``: the
  training data's bounding box, or, with a user ``noise_volume``, a box
  with the same centre and aspect ratio scaled to that volume.

Missing values (``missing="marginalize"``, values missing at random): exact
EM over each row's observed coordinates (:mod:`bayesgmm.em._missing`).
Decisions:

* Start: the usual initialiser runs on the standardised data with each
  missing value set to 0, its column's centre (the mean of its observed
  bulk).  No randomness is added: fits stay deterministic under
  ``random_state``.
* Noise works with missing values: over a row's observed coordinates its
  density is the uniform box's marginal, ``1 / V_obs``, with ``V_obs`` the
  product of the box's sides along them (the bounding box, or the
  ``noise_volume`` box ``sample`` uses); for ``impute`` its mean is the
  box's centre.
* Without NaN, ``"marginalize"`` runs the code of ``"reject"``: the same fit
  bit for bit.

Frequency weights (``fit(X, sample_weight=w)``, :mod:`bayesgmm.sample_weight`):
row ``i`` counts ``w_i`` times; the decisions (rows of weight 0 dropped, the
standardisation and noise box of the rows that count, unweighted) are in
:mod:`bayesgmm.em._problem`.  Weights of None or all 1 run the unweighted
code bit for bit.  ``lower_bound_`` is the mean log-likelihood per unit of
weight; ``score`` is the plain mean over the rows it is given; ``bic``,
``aic`` and ``icl`` take ``sample_weight`` too (``log L = sum_i w_i log p(x_i)``,
``n = sum_i w_i``).

Dask (``fit`` on a ``dask.array.Array`` or ``dask.dataframe.DataFrame``):
distributed EM, per-chunk sufficient statistics added across chunks
(:mod:`bayesgmm.em._distributed`, whose notes give the decisions); the
fitted model is an ordinary one.  ``score_samples``, ``predict_proba`` and
``predict`` of Dask input return lazy Dask arrays computed chunk by chunk;
``score`` and the criteria return numbers.  Dask is imported only for Dask
input.

float32 (:mod:`bayesgmm.em._dtype`): fitted on float32 data, the fitted
arrays and the results of ``score_samples``, ``predict_proba``, ``sample``
and ``impute`` are float32, as in scikit-learn; EM runs in float64.  Restarts,
``warm_start`` and ``verbose`` are in :mod:`bayesgmm.em._restarts`.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from bayesgmm._checks import as_generator, check_number, check_X
from bayesgmm._dask import as_dask_rows, is_dask_collection, map_row_chunks
from bayesgmm.em import _criteria
from bayesgmm.em._algorithm import (
    DEFAULT_CHUNK_SIZE,
    log_prob_and_responsibilities,
    state_covariances,
)
from bayesgmm.em._covariance import get_family
from bayesgmm.em._distributed import dask_weights, distributed_problem
from bayesgmm.em._dtype import input_dtype, output_dtype
from bayesgmm.em._missing import conditional_expectation, noise_log_sides
from bayesgmm.em._noise_start import NoiseStart, noise_start
from bayesgmm.em._parameters import check_em_parameters
from bayesgmm.em._problem import FitProblem, FitSettings, counted_rows, in_memory_problem
from bayesgmm.em._restarts import Progress, best_run, warm_state, warn_not_converged
from bayesgmm.em._scoring import (
    FittedMixture,
    chunk_labels,
    chunk_log_density,
    chunk_responsibilities,
    in_data_units,
    responsibilities_to_labels,
    row_patterns,
    score_rows,
    standardize,
)
from bayesgmm.em._start import initial_state, user_start
from bayesgmm.noise import NOISE_LABEL
from bayesgmm.sample_weight import check_sample_weight

__all__ = [
    "GaussianMixtureEM",
    "NoiseStart",
    "noise_start",
]

class GaussianMixtureEM(DensityMixin, BaseEstimator):
    """Gaussian mixture fitted by expectation-maximisation.

    A drop-in counterpart of :class:`sklearn.mixture.GaussianMixture` with a
    fused, chunked E/M pass, internal standardisation, ICL, and the checks of
    :mod:`bayesgmm._checks`.  It also provides the starting point of every
    Bayesian fit in bayesgmm.

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        Shape of the component covariances.
    tol : float, default=1e-3
        Convergence threshold on the change of the mean log-likelihood.
    reg_covar : float, default=1e-6
        Added to the diagonal of every covariance, **relative to each
        feature's variance** (see the module notes).
    max_iter : int, default=100
        EM iterations per initialisation.
    n_init : int, default=1
        Number of initialisations; the one with the highest final
        log-likelihood is kept.
    init_params : {"kmeans", "k-means++", "random", "random_from_data"}, default="kmeans"
        How the starting responsibilities are chosen: k-means++ seeds refined
        by Lloyd's algorithm, k-means++ seeds with nearest-seed assignment,
        random responsibilities, or random data points as seeds.
    weights_init : array-like of shape (n_components,), optional
        User-given starting weights, summing to one; with ``noise=True``
        they are scaled by one minus the starting noise weight.
    means_init : array-like of shape (n_components, n_features), optional
        User-given starting means, in data units.
    precisions_init : array-like, optional
        User-given starting precisions (inverse covariances), in data units,
        shaped as in scikit-learn for the chosen ``covariance_type``.
    random_state : int, numpy.random.Generator or None, default=None
        Seed of the single generator used for every initialisation.
    warm_start : bool, default=False
        As in scikit-learn: once fitted, ``fit`` starts from the previous
        solution (moved onto the new data's standardised scale), runs once
        whatever ``n_init``, and measures its first step's change from the
        previous ``lower_bound_``.  Refitting a few iterations at a time
        follows one EM path; each call that stops at ``max_iter`` warns.
    verbose : int, default=0
        Progress printed to stdout, as in scikit-learn: 1 the initialisations
        and iteration numbers, 2 also timings and the change of the mean
        log-likelihood.
    verbose_interval : int, default=10
        Iterations between two progress lines.
    chunk_size : int, default=2048
        Rows processed per block; only memory and speed depend on it.
    noise : bool, default=False
        Add a uniform noise component of density ``1 / V`` (R's mclust
        ``noise``), so that scattered outliers need no Gaussian of their
        own: ``p(x) = noise_weight_ / V + sum_k weights_[k] N(x | ...)``.
        ``predict`` labels the points it takes ``-1``
        (:data:`bayesgmm.noise.NOISE_LABEL`) and ``predict_proba`` gives it
        a last column.  EM starts it from the points sparser than ``1 / V``
        (module notes).
    noise_volume : float, optional
        ``V``, the hypervolume of the region the noise is spread over, in
        the data's units (mclust's ``1 / Vinv``); only with ``noise=True``.
        Default: the bounding box of the training data.
    missing : {"reject", "marginalize"}, default="reject"
        Missing values (NaN).  ``"reject"`` refuses them.  ``"marginalize"``
        fits with them, assumed missing at random: each row counts through
        its observed coordinates (exact EM, module notes), and
        ``score_samples``, ``predict`` and the criteria accept rows with
        NaN too.  Rows or columns with every value missing are refused.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
        Gaussian weights; ``weights_.sum() + noise_weight_ == 1``.  This and
        the other fitted arrays are float32 when fitted on float32 data,
        float64 otherwise.
    noise_weight_ : float
        Weight of the noise component; 0.0 when fitted without one.
    noise_log_volume_ : float or None
        ``log V`` in the data's units, used to score new points too; None
        when fitted without noise.
    means_ : ndarray of shape (n_components, n_features)
    covariances_ : ndarray
    precisions_ : ndarray
    precisions_cholesky_ : ndarray
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        Mean log-likelihood (data units) at the last iteration of the best
        initialisation.
    lower_bounds_ : list of float
        Mean log-likelihood at every iteration of the best initialisation.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when fitted on a DataFrame.

    Examples
    --------
    >>> from bayesgmm.datasets import load_faithful
    >>> em = GaussianMixtureEM(n_components=2, random_state=0).fit(load_faithful())
    >>> em.weights_.round(2).tolist()
    [0.36, 0.64]
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: str = "full",
        tol: float = 1e-3,
        reg_covar: float = 1e-6,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        warm_start: bool = False,
        verbose: int = 0,
        verbose_interval: int = 10,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        noise: bool = False,
        noise_volume: float | None = None,
        missing: str = "reject",
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.chunk_size = chunk_size
        self.noise = noise
        self.noise_volume = noise_volume
        self.missing = missing

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.missing == "marginalize"
        return tags

    # ------------------------------------------------------------ fitting
    def fit(self, X, y=None, sample_weight=None):
        """Fit the mixture by EM, keeping the best of ``n_init`` runs.

        Parameters
        ----------
        X : array-like, DataFrame, dask.array.Array or dask.dataframe.DataFrame
            Of shape (n_samples, n_features).  Dask input runs distributed EM
            (module notes).
        y : ignored
        sample_weight : array-like of shape (n_samples,), optional
            Frequency weights: row ``i`` counts ``sample_weight[i]`` times
            (non-negative, not all zero; 0 drops a row).  A Dask array with
            Dask ``X``.

        Returns
        -------
        self : GaussianMixtureEM
        """
        self._fit(X, sample_weight)
        return self

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then return the most probable component of every point.

        Parameters
        ----------
        X : array-like, DataFrame or Dask collection of shape (n_samples, n_features)
        y : ignored
        sample_weight : array-like of shape (n_samples,), optional
            Frequency weights, as in :meth:`fit`.

        Returns
        -------
        ndarray of shape (n_samples,)
            A lazy Dask array for Dask ``X``.
        """
        return self._fit(X, sample_weight).predict(X)

    def _settings(self) -> FitSettings:
        return FitSettings(
            self.n_components, self.covariance_type, self.reg_covar, self.chunk_size,
            self.noise, self.noise_volume, self.missing,
        )

    def _problem(self, X, sample_weight, rng, settings: FitSettings) -> FitProblem:
        if is_dask_collection(X):
            # A Dask DataFrame's columns, as an empty pandas frame sklearn reads names from.
            columns = pd.DataFrame(columns=X.columns) if hasattr(X, "columns") else X
            validate_data(self, columns, skip_check_array=True, reset=True)
            names = getattr(self, "feature_names_in_", None)
            return distributed_problem(X, sample_weight, settings, rng.spawn(1)[0], names)
        if is_dask_collection(sample_weight):
            raise TypeError(
                "sample_weight is a Dask array but X is not: pass X as a Dask array (with "
                "the same row chunks) for distributed EM, or sample_weight as a numpy array."
            )
        checked = check_X(X, n_components=self.n_components, missing=self.missing)
        validate_data(self, X, skip_check_array=True, reset=True)
        values, weights = counted_rows(
            checked.values, check_sample_weight(sample_weight, len(checked.values)), settings
        )
        return in_memory_problem(values, weights, settings)

    def _fit(self, X, sample_weight=None):
        check_em_parameters(self)
        rng = as_generator(self.random_state)
        restarts = rng.spawn(self.n_init)
        settings = self._settings()
        problem = self._problem(X, sample_weight, rng, settings)
        progress = Progress(self.verbose, self.verbose_interval, problem.log_jacobian)
        if self.warm_start and hasattr(self, "_fitted"):
            starts = [partial(warm_state, self._fitted, problem, settings)]
            previous = self.lower_bound_ + problem.log_jacobian
            which = "the warm-started run"
        else:
            user = user_start(
                self.weights_init, self.means_init, self.precisions_init,
                self.covariance_type, self.n_components, problem.centre, problem.scale,
            )
            starts = [
                partial(initial_state, problem, init_rng, user, settings, self.init_params)
                for init_rng in restarts
            ]
            previous = -np.inf
            which = f"the best of n_init={self.n_init} initialisations"
        best = best_run(
            problem.step, starts, tol=self.tol, max_iter=self.max_iter, previous=previous,
            progress=progress,
        )
        self._store(best, problem, input_dtype(X))
        if not best.converged and self.max_iter > 0:
            warn_not_converged(
                best, max_iter=self.max_iter, tol=self.tol, starts=which, previous=previous
            )
        return self

    def _store(self, run, problem: FitProblem, dtype: np.dtype):
        centre, scale, region = problem.centre, problem.scale, problem.region
        state = run.state._replace(
            covariances=state_covariances(run.state, self.covariance_type)
        )
        self._fitted = FittedMixture(
            state, self.covariance_type, centre, scale, noise_log_sides(region, scale)
        )
        self.noise_weight_ = 0.0 if state.noise is None else float(state.noise.weight)
        self.noise_log_volume_ = None if region is None else region.log_volume
        self._noise_region = region
        # Computed in float64, stored in the input's float dtype (bayesgmm.em._dtype).
        parameters = in_data_units(self._fitted)
        self.weights_ = state.weights.astype(dtype)
        self.means_ = parameters.means.astype(dtype)
        self.covariances_ = parameters.covariances.astype(dtype)
        self.precisions_cholesky_ = parameters.precisions_cholesky.astype(dtype)
        self.precisions_ = (
            get_family(self.covariance_type).precisions(parameters.precisions_cholesky)
            .astype(dtype)
        )
        self.converged_ = bool(run.converged)
        self.n_iter_ = int(run.n_iter)
        self.lower_bounds_ = [float(v) - problem.log_jacobian for v in run.log_likelihoods]
        self.lower_bound_ = self.lower_bounds_[-1] if self.lower_bounds_ else -np.inf

    # ------------------------------------------------------------ prediction
    def _checked(self, X, missing: str) -> np.ndarray:
        check_is_fitted(self)
        checked = check_X(X, reject_constant=False, missing=missing)
        validate_data(self, X, skip_check_array=True, reset=False)
        return checked.values

    def _per_chunk(self, X, function, trailing_shape=(), dtype=np.float64):
        """``function(chunk, fitted, missing)`` over the row chunks of Dask ``X``, lazily."""
        check_is_fitted(self)
        rows = as_dask_rows(X, getattr(self, "feature_names_in_", None))
        # check_X's column-count check and message, on one row of X's width.
        check_X(np.zeros((1, rows.shape[1])), n_features=self.n_features_in_,
                reject_constant=False)
        return map_row_chunks(
            function, rows, trailing_shape, dtype, fitted=self._fitted, missing=self.missing
        )

    def _log_norm_and_responsibilities(self, X):
        return score_rows(self._checked(X, self.missing), self._fitted)

    def _log_density(self, X):
        """``score_samples`` in float64."""
        if is_dask_collection(X):
            return self._per_chunk(X, chunk_log_density)
        return self._log_norm_and_responsibilities(X)[0]

    def _in_output_dtype(self, X, values):
        """Results for rows ``X`` in the dtype of :mod:`bayesgmm.em._dtype`'s decision."""
        return values.astype(output_dtype(X, self.means_.dtype), copy=False)

    def score_samples(self, X):
        """Log density of every point under the fitted mixture, in data units.

        With a noise component it includes ``noise_weight_ / V``, with the
        training ``V`` (``noise_log_volume_``).  Fitted with
        ``missing="marginalize"``, a row with missing values (NaN) gets the
        mixture's marginal density over its observed coordinates.

        Parameters
        ----------
        X : array-like or Dask collection of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
            A lazy Dask array for Dask ``X``, checked chunk by chunk when
            computed.
        """
        return self._in_output_dtype(X, self._log_density(X))

    def score(self, X, y=None):
        """Mean log-likelihood of ``X`` (higher is better), each row counting once.

        Parameters
        ----------
        X : array-like or Dask collection of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        float
            Computed, for Dask ``X`` too.
        """
        return float(self._log_density(X).mean())

    def predict_proba(self, X):
        """Posterior probability of each component for every point.

        Parameters
        ----------
        X : array-like or Dask collection of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_components)
            Fitted with ``noise=True``: shape (n_samples, n_components + 1),
            the noise component's probability last.  A lazy Dask array for
            Dask ``X``.
        """
        if is_dask_collection(X):
            columns = self.n_components + (self._noise_region is not None)
            responsibilities = self._per_chunk(X, chunk_responsibilities, (columns,))
        else:
            responsibilities = self._log_norm_and_responsibilities(X)[1]
        return self._in_output_dtype(X, responsibilities)

    def predict(self, X):
        """Most probable component of every point.

        Parameters
        ----------
        X : array-like or Dask collection of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
            ``-1`` (:data:`bayesgmm.noise.NOISE_LABEL`) where the noise
            component is the most probable.  A lazy Dask array for Dask ``X``.
        """
        if is_dask_collection(X):
            return self._per_chunk(X, chunk_labels, dtype=np.intp)
        return responsibilities_to_labels(
            self._log_norm_and_responsibilities(X)[1], self._fitted
        )

    def sample(self, n_samples: int = 1):
        """Draw points from the fitted mixture.

        Noise points (with ``noise=True``) are uniform on a box of volume
        ``V``: the training data's bounding box, or with a user
        ``noise_volume`` the box of that volume with the bounding box's
        centre and aspect ratio.

        Parameters
        ----------
        n_samples : int, default=1

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        labels : ndarray of shape (n_samples,)
            Component of every drawn point, grouped by component as in
            scikit-learn; noise points, labelled ``-1``, come last.
        """
        check_is_fitted(self)
        check_number("n_samples", n_samples, low=1, integer=True)
        rng = as_generator(self.random_state)
        region = self._noise_region
        weights = self._fitted.state.weights
        if region is not None:
            weights = np.append(weights, self.noise_weight_)
        counts = rng.multinomial(n_samples, weights)
        parameters = in_data_units(self._fitted)
        covariances = get_family(self.covariance_type).dense(
            parameters.covariances, *parameters.means.shape
        )
        draws = [
            rng.multivariate_normal(mean, covariance, size=count)
            for mean, covariance, count in zip(parameters.means, covariances, counts)
        ]
        labels = np.repeat(np.arange(self.n_components), counts[: self.n_components])
        if region is not None:
            draws.append(
                rng.uniform(region.lower, region.upper, size=(counts[-1], len(region.lower)))
            )
            labels = np.append(labels, np.full(counts[-1], NOISE_LABEL))
        return np.vstack(draws).astype(self.means_.dtype, copy=False), labels

    def impute(self, X):
        """Conditional expectation of the missing values (NaN) given the observed ones.

        ``E[x_m | x_o] = sum_k p(k | x_o) E[x_m | x_o, k]``, with
        ``E[x_m | x_o, k] = mu_m + S_mo S_oo^{-1} (x_o - mu_o)`` (module
        notes for the noise component); the EM point estimate, without
        uncertainty.  Works on any fitted model, whatever its ``missing``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Every row needs at least one observed value.  In memory: for a
            Dask array chunked by rows, ``X.map_blocks(em.impute)`` imputes
            chunk by chunk.

        Returns
        -------
        ndarray of shape (n_samples, n_features)
            ``X`` with its observed values unchanged and its missing ones
            filled in.
        """
        if is_dask_collection(X):
            raise TypeError(
                "impute takes in-memory rows; for a Dask array chunked by rows only, impute "
                "chunk by chunk with X.map_blocks(em.impute, dtype=float)."
            )
        values = self._checked(X, "marginalize")
        Z = standardize(values, self._fitted)
        patterns = row_patterns(Z, self._fitted)
        if patterns is None:
            return self._in_output_dtype(X, values)
        responsibilities = log_prob_and_responsibilities(
            Z, self._fitted.state, self.covariance_type, patterns
        )[1]
        region = self._noise_region
        parameters = in_data_units(self._fitted)
        covariances = get_family(self.covariance_type).dense(
            parameters.covariances, *parameters.means.shape
        )
        imputed = conditional_expectation(
            values, patterns, parameters.means, covariances, responsibilities,
            None if region is None else 0.5 * (region.lower + region.upper), self.chunk_size,
        )
        return self._in_output_dtype(X, imputed)

    # ------------------------------------------------------------ criteria
    def _n_parameters(self) -> int:
        gaussian = _criteria.n_parameters(
            self.covariance_type, self.n_components, self.means_.shape[1]
        )
        return gaussian + int(self._noise_region is not None)

    def _weighted_scores(self, X, sample_weight, responsibilities: bool = False):
        """Log densities (and responsibilities) of ``X`` and its checked weights."""
        if is_dask_collection(X):
            log_norm = self.score_samples(X)
            weights = dask_weights(sample_weight, log_norm[:, None])
            resp = self.predict_proba(X) if responsibilities else None
        else:
            log_norm, resp = self._log_norm_and_responsibilities(X)
            weights = check_sample_weight(sample_weight, len(log_norm))
        return log_norm, resp, weights

    def bic(self, X, sample_weight=None) -> float:
        """Bayesian information criterion on ``X`` (lower is better).

        A noise component counts as one more free parameter (its weight);
        ``V`` is fixed.

        Parameters
        ----------
        X : array-like or Dask collection of shape (n_samples, n_features)
        sample_weight : array-like of shape (n_samples,), optional
            Frequency weights: ``log L = sum_i w_i log p(x_i)`` and
            ``n = sum_i w_i``.

        Returns
        -------
        float
        """
        log_norm, _, weights = self._weighted_scores(X, sample_weight)
        return _criteria.bic(
            _criteria.weighted_total(log_norm, weights), self._n_parameters(),
            _criteria.weighted_total(None, weights, len(log_norm)),
        )

    def aic(self, X, sample_weight=None) -> float:
        """Akaike information criterion on ``X`` (lower is better).

        Counts a noise component's weight as in :meth:`bic`.

        Parameters
        ----------
        X : array-like or Dask collection of shape (n_samples, n_features)
        sample_weight : array-like of shape (n_samples,), optional
            Frequency weights, as in :meth:`bic`.

        Returns
        -------
        float
        """
        log_norm, _, weights = self._weighted_scores(X, sample_weight)
        return _criteria.aic(_criteria.weighted_total(log_norm, weights), self._n_parameters())

    def icl(self, X, sample_weight=None) -> float:
        """Integrated completed likelihood on ``X`` (lower is better).

        ``BIC + 2 * sum_i -log tau_{i, z_i}`` with hard MAP assignments, as
        in mclust (whose sign is flipped: there, higher is better); with a
        noise component, over its ``n_components + 1`` responsibilities.

        Parameters
        ----------
        X : array-like or Dask collection of shape (n_samples, n_features)
        sample_weight : array-like of shape (n_samples,), optional
            Frequency weights, as in :meth:`bic`; the entropy term is
            weighted too.

        Returns
        -------
        float
        """
        log_norm, responsibilities, weights = self._weighted_scores(
            X, sample_weight, responsibilities=True
        )
        bic = _criteria.bic(
            _criteria.weighted_total(log_norm, weights), self._n_parameters(),
            _criteria.weighted_total(None, weights, len(log_norm)),
        )
        return _criteria.icl(bic, responsibilities, weights)
