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
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted, validate_data

from bayesgmm._checks import as_generator, check_n_components, check_number, check_X
from bayesgmm.em import _criteria
from bayesgmm.em._algorithm import (
    DEFAULT_CHUNK_SIZE,
    EMState,
    log_prob_and_responsibilities,
    run_em,
    state_from_responsibilities,
)
from bayesgmm.em._covariance import CovarianceError, get_family
from bayesgmm.em._initialization import INIT_METHODS, initial_responsibilities
from bayesgmm.scaling import standardization

__all__ = ["GaussianMixtureEM", "reference_em"]


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
        User-given starting weights.
    means_init : array-like of shape (n_components, n_features), optional
        User-given starting means, in data units.
    precisions_init : array-like, optional
        User-given starting precisions (inverse covariances), in data units,
        shaped as in scikit-learn for the chosen ``covariance_type``.
    random_state : int, numpy.random.Generator or None, default=None
        Seed of the single generator used for every initialisation.
    chunk_size : int, default=2048
        Rows processed per block; only memory and speed depend on it.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
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
        chunk_size: int = DEFAULT_CHUNK_SIZE,
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
        self.chunk_size = chunk_size

    # ------------------------------------------------------------ checks
    def _check_parameters(self) -> None:
        check_n_components(self.n_components)
        get_family(self.covariance_type)
        check_number("tol", self.tol, low=0.0)
        check_number("reg_covar", self.reg_covar, low=0.0)
        check_number("max_iter", self.max_iter, low=0, integer=True)
        check_number("n_init", self.n_init, low=1, integer=True)
        check_number("chunk_size", self.chunk_size, low=1, integer=True)
        if self.init_params not in INIT_METHODS:
            raise ValueError(
                f"init_params must be one of {INIT_METHODS}, got {self.init_params!r}."
            )

    def _user_initial_values(self, n_features, centre, scale):
        """User-given starting values, moved to the standardised scale."""
        n_components = self.n_components
        family = get_family(self.covariance_type)
        weights = means = precisions_cholesky = None
        if self.weights_init is not None:
            weights = np.asarray(self.weights_init, dtype=np.float64)
            if weights.shape != (n_components,):
                raise ValueError(
                    f"weights_init must have shape ({n_components},), got {weights.shape}."
                )
            if np.any(weights < 0) or not np.isclose(weights.sum(), 1.0):
                raise ValueError(
                    "weights_init must be non-negative and sum to 1, got "
                    f"sum {weights.sum():.6g}."
                )
        if self.means_init is not None:
            means = np.asarray(self.means_init, dtype=np.float64)
            if means.shape != (n_components, n_features):
                raise ValueError(
                    f"means_init must have shape ({n_components}, {n_features}), "
                    f"got {means.shape}."
                )
            means = (means - centre) / scale
        if self.precisions_init is not None:
            precisions = np.asarray(self.precisions_init, dtype=np.float64)
            expected = {
                "full": (n_components, n_features, n_features),
                "tied": (n_features, n_features),
                "diag": (n_components, n_features),
                "spherical": (n_components,),
            }[self.covariance_type]
            if precisions.shape != expected:
                raise ValueError(
                    f"precisions_init must have shape {expected} for "
                    f"covariance_type={self.covariance_type!r}, got {precisions.shape}."
                )
            precisions_cholesky = family.precisions_cholesky_from_precisions(
                family.rescale_precisions(precisions, 1.0 / scale)
            )
        return weights, means, precisions_cholesky

    def _initial_state(self, Z, rng, user_values) -> EMState:
        weights, means, precisions_cholesky = user_values
        if all(value is not None for value in user_values):
            return EMState(weights, means, None, precisions_cholesky)
        responsibilities = initial_responsibilities(
            Z, self.n_components, self.init_params, rng
        )
        state = state_from_responsibilities(
            Z, responsibilities, self.covariance_type, self.reg_covar, self.chunk_size
        )
        return EMState(
            state.weights if weights is None else weights,
            state.means if means is None else means,
            state.covariances if precisions_cholesky is None else None,
            state.precisions_cholesky if precisions_cholesky is None
            else precisions_cholesky,
        )

    # ------------------------------------------------------------ fitting
    def fit(self, X, y=None):
        """Fit the mixture by EM, keeping the best of ``n_init`` runs.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        self : GaussianMixtureEM
        """
        self._fit(X)
        return self

    def fit_predict(self, X, y=None):
        """Fit, then return the most probable component of every point.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        return self._fit(X).predict(X)

    def _fit(self, X):
        self._check_parameters()
        checked = check_X(X, n_components=self.n_components)
        validate_data(self, X, skip_check_array=True, reset=True)
        family = get_family(self.covariance_type)
        centre, scale = standardization(checked.values, family.scale_mode)
        # check_X returns a fresh array, so standardising in place is safe.
        Z = checked.values
        Z -= centre
        Z /= scale
        user_values = self._user_initial_values(Z.shape[1], centre, scale)
        rng = as_generator(self.random_state)
        best, failures = None, []
        for init_rng in rng.spawn(self.n_init):
            try:
                run = run_em(
                    Z,
                    self._initial_state(Z, init_rng, user_values),
                    covariance_type=self.covariance_type,
                    reg_covar=self.reg_covar,
                    tol=self.tol,
                    max_iter=self.max_iter,
                    chunk_size=self.chunk_size,
                )
            except CovarianceError as error:
                failures.append(error)
                continue
            if best is None or _final_value(run) > _final_value(best):
                best = run
        if best is None:
            raise failures[0]
        self._store(best, centre, scale)
        if not best.converged and self.max_iter > 0:
            change = (
                abs(best.log_likelihoods[-1] - best.log_likelihoods[-2])
                if best.n_iter > 1 else math.inf
            )
            warnings.warn(
                f"EM did not converge: after max_iter={self.max_iter} iterations of "
                f"the best of n_init={self.n_init} initialisations the mean "
                f"log-likelihood still changed by {change:.3g} (tol={self.tol:g}). "
                "Increase max_iter or tol, try more n_init, or check for "
                "duplicated or degenerate rows.",
                ConvergenceWarning,
                stacklevel=3,
            )
        return self

    def _store(self, run, centre, scale):
        family = get_family(self.covariance_type)
        state = run.state
        if state.covariances is None:
            state = state._replace(
                covariances=family.invert(family.precisions(state.precisions_cholesky))
            )
        self._state, self._centre, self._scale = state, centre, scale
        log_jacobian = float(np.log(scale).sum())
        self.weights_ = state.weights.copy()
        self.means_ = centre + state.means * scale
        self.covariances_ = family.rescale_covariances(state.covariances, scale)
        self.precisions_cholesky_ = family.rescale_precisions_cholesky(
            state.precisions_cholesky, scale
        )
        self.precisions_ = family.precisions(self.precisions_cholesky_)
        self.converged_ = bool(run.converged)
        self.n_iter_ = int(run.n_iter)
        self.lower_bounds_ = [float(v) - log_jacobian for v in run.log_likelihoods]
        self.lower_bound_ = self.lower_bounds_[-1] if self.lower_bounds_ else -np.inf

    # ------------------------------------------------------------ prediction
    def _standardized(self, X):
        check_is_fitted(self)
        checked = check_X(X, reject_constant=False)
        validate_data(self, X, skip_check_array=True, reset=False)
        # Far new points may overflow to +-inf here; the densities handle them.
        with np.errstate(over="ignore"):
            return (checked.values - self._centre) / self._scale

    def _log_norm_and_responsibilities(self, X):
        Z = self._standardized(X)
        log_norm, responsibilities = log_prob_and_responsibilities(
            Z, self._state, self.covariance_type
        )
        return log_norm - np.log(self._scale).sum(), responsibilities

    def score_samples(self, X):
        """Log density of every point under the fitted mixture, in data units.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        return self._log_norm_and_responsibilities(X)[0]

    def score(self, X, y=None):
        """Mean log-likelihood of ``X`` (higher is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        float
        """
        return float(self.score_samples(X).mean())

    def predict_proba(self, X):
        """Posterior probability of each component for every point.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_components)
        """
        return self._log_norm_and_responsibilities(X)[1]

    def predict(self, X):
        """Most probable component of every point.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        return self.predict_proba(X).argmax(axis=1)

    def sample(self, n_samples: int = 1):
        """Draw points from the fitted mixture.

        Parameters
        ----------
        n_samples : int, default=1

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        labels : ndarray of shape (n_samples,)
            Component of every drawn point, grouped by component as in
            scikit-learn.
        """
        check_is_fitted(self)
        check_number("n_samples", n_samples, low=1, integer=True)
        rng = as_generator(self.random_state)
        counts = rng.multinomial(n_samples, self.weights_)
        covariances = get_family(self.covariance_type).dense(
            self.covariances_, self.n_components, self.means_.shape[1]
        )
        draws = [
            rng.multivariate_normal(mean, covariance, size=count)
            for mean, covariance, count in zip(self.means_, covariances, counts)
        ]
        labels = np.repeat(np.arange(self.n_components), counts)
        return np.vstack(draws), labels

    # ------------------------------------------------------------ criteria
    def _n_parameters(self) -> int:
        return _criteria.n_parameters(
            self.covariance_type, self.n_components, self.means_.shape[1]
        )

    def bic(self, X) -> float:
        """Bayesian information criterion on ``X`` (lower is better)."""
        log_norm = self.score_samples(X)
        return _criteria.bic(float(log_norm.sum()), self._n_parameters(), len(log_norm))

    def aic(self, X) -> float:
        """Akaike information criterion on ``X`` (lower is better)."""
        return _criteria.aic(float(self.score_samples(X).sum()), self._n_parameters())

    def icl(self, X) -> float:
        """Integrated completed likelihood on ``X`` (lower is better).

        ``BIC + 2 * sum_i -log tau_{i, z_i}`` with hard MAP assignments, as
        in mclust (whose sign is flipped: there, higher is better).
        """
        log_norm, responsibilities = self._log_norm_and_responsibilities(X)
        bic = _criteria.bic(float(log_norm.sum()), self._n_parameters(), len(log_norm))
        return _criteria.icl(bic, responsibilities)


def _final_value(run) -> float:
    return run.log_likelihoods[-1] if run.n_iter else -np.inf


REFERENCE_TOL = 1e-6
REFERENCE_MAX_ITER = 1000


def reference_em(
    X, n_components: int, covariance_type: str = "full", *, n_init: int = 10, random_state=None
) -> GaussianMixtureEM:
    """EM fitted with bayesgmm's reference settings, for starts and criteria.

    Every EM solution that other code relies on (the start of every Bayesian
    fit, the BIC/AIC/ICL columns of ``compare_k`` and of the CLI's EM grid)
    comes from here, with a tight tolerance (``1e-6``) and up to 1000
    iterations.  A run that stops at the cap without meeting ``tol`` is still
    kept (``converged_`` says so): its ConvergenceWarning is silenced, since
    the callers use the solution as a start or a criterion, not as the answer.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    n_components : int
    covariance_type : {"full", "tied", "diag", "spherical"}
    n_init : int, default=10
    random_state : int, numpy.random.Generator or None

    Returns
    -------
    GaussianMixtureEM
        Fitted.
    """
    em = GaussianMixtureEM(
        n_components, covariance_type=covariance_type, n_init=n_init, tol=REFERENCE_TOL,
        max_iter=REFERENCE_MAX_ITER, random_state=random_state,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        return em.fit(X)
