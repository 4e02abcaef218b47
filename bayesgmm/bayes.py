"""``BayesianGMM``: the Bayesian mixture as a thin class over the pipeline.

``fit`` is the composition of the steps in :mod:`bayesgmm.fitting`:
prepare the problem (checks, model scale, EM start) -> sample (NUTS or ADVI)
-> relabel -> assemble the DataTree -> set the fitted state.  This class only
wires them together and keeps the result in ``idata_``.
"""

from __future__ import annotations

import inspect
import json
import numbers
import warnings
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from sklearn.base import BaseEstimator

from bayesgmm._checks import (
    MISSING_OPTIONS,
    as_generator,
    check_n_components,
    check_number,
    check_random_state,
    data_fingerprint,
    match_features,
    warn_improper_ties,
)
from bayesgmm._dask import is_dask_collection
from bayesgmm._dask_scoring import (
    dask_density,
    dask_labels,
    dask_mean_membership,
    dask_membership,
)
from bayesgmm._version import __version__
from bayesgmm.advi import ADVI_METHODS
from bayesgmm.density import predictive_density
from bayesgmm.diagnostics import Diagnostics, diagnose_advi, diagnose_laplace, diagnose_nuts
from bayesgmm.fitting import (
    Problem,
    assemble_datatree,
    prepare_problem,
    relabel_sample,
    sample_problem,
)
from bayesgmm.imputation import predictive_imputation
from bayesgmm.inference import (
    ENGINES,
    MASS_MATRICES,
    METHODS,
    NUTS_METHODS,
    SamplerSettings,
    resolve_method,
)
from bayesgmm.io import ModelFileError, check_model_tree, load_datatree, save_datatree
from bayesgmm.likelihood import thin_draws
from bayesgmm.loo import pointwise_loo
from bayesgmm.membership import (
    coclustering_matrix,
    mean_membership,
    membership_arrays,
    membership_dataset,
    most_probable_labels,
    occupied_component_counts,
)
from bayesgmm.noise import check_noise_settings
from bayesgmm.parameters import ModelParameters, flatten_draws, unflatten_draws
from bayesgmm.posterior import (
    NOISE_WEIGHT,
    OBSERVED,
    parameters_from_posterior,
    total_log_likelihood,
)
from bayesgmm.priors import PROPER_WITH_TIES, GMMPriors
from bayesgmm.relabel import RELABEL_METHODS, RelabellingSummary
from bayesgmm.scaling import COVARIANCE_TYPES

__all__ = ["BayesianGMM", "DiagnosticsWarning", "diagnostics_reported", "load"]

class DiagnosticsWarning(UserWarning):
    """A fitted model failed a convergence gate; see ``BayesianGMM.diagnose()``."""


@contextmanager
def diagnostics_reported():
    """Silence :class:`DiagnosticsWarning`, for callers that show ``diagnostics_`` themselves.

    Only this warning: every other one still reaches the user.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DiagnosticsWarning)
        yield


def _default(name: str) -> Any:
    """The constructor's default for ``name``, quoted as a valid example in messages."""
    return inspect.signature(BayesianGMM).parameters[name].default


def _check_count(name: str, value: Any, example: int) -> None:
    """Require an integer >= 1 (a bool is refused), with an example in the message."""
    try:
        check_number(name, value, low=1, integer=True)
    except ValueError as error:
        raise ValueError(f"{str(error).rstrip('.')}; e.g. {name}={example}.") from None


def _check_fraction(name: str, value: Any, example: float) -> None:
    """Require a real number strictly between 0 and 1 (a bool or a string is refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < 1:
        raise ValueError(
            f"{name} must lie in (0, 1) and be a real number, e.g. {name}={example}; "
            f"got {value!r}."
        )


class BayesianGMM(BaseEstimator):
    """Bayesian Gaussian mixture with Dirichlet weights and LKJ covariances.

    Parameters
    ----------
    n_components : int, default=2
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        As in :class:`bayesgmm.em.GaussianMixtureEM`: own covariance per
        component (``full``), one shared (``tied``), own per-feature scales
        without correlations (``diag``), or one scale per component
        (``spherical``, fitted on data divided by one common scale so that
        it is spherical in your units).  The posterior stores one scale per
        component and feature and one correlation matrix per component in
        every case; shared values are repeated.
    priors : GMMPriors, optional
        Defaults to ``GMMPriors()`` (weakly informative, standardised scale).
    noise : bool, default=False
        Add a uniform noise component of density ``1 / V`` (R's mclust
        ``noise``; :mod:`bayesgmm.noise`) with its own weight, the last of
        the Dirichlet (``GMMPriors.noise_concentration``), so scattered
        outliers need no Gaussian of their own.  The posterior then holds
        ``noise_weight``; memberships get ``p_noise`` and ``predict`` labels
        the points it takes ``-1``.  Relabelling never moves it.
    noise_volume : float, optional
        ``V`` in the data's units (mclust's ``1 / Vinv``); only with
        ``noise=True``.  Default: the bounding box of the training data.
    missing : {"reject", "marginalize"}, default="reject"
        Missing values (NaN).  ``"reject"`` refuses them (the message names
        this option).  ``"marginalize"`` fits with them, assumed missing at
        random: each row counts through the mixture of the components'
        marginals over its observed coordinates, in the sampled density, the
        EM start and every summary (log-likelihood and LOO, memberships,
        predictions, densities, co-clustering), and new data may hold NaN
        too; :meth:`impute` gives the posterior predictive of the missing
        values.  With a noise component, a row's noise density is the noise
        box's marginal ``1 / V_obs`` over its observed coordinates.  Rows or
        columns with every value missing are refused.  Data without NaN give
        the same fit bit for bit under either setting.
    method : {"auto", "nuts", "advi", "fullrank_advi", "laplace", "minibatch_advi", \
"coreset_nuts"}, default="auto"
        ``"auto"``: NUTS below :data:`bayesgmm.inference.LARGE_N` rows
        (50,000), the Laplace approximation at the posterior mode
        (:mod:`bayesgmm.laplace`) from there on; ``idata_.attrs["method"]``
        records the method that ran and :meth:`diagnose` its check (R-hat
        and friends for NUTS, Pareto k-hat for Laplace and ADVI).  Any
        method can be forced.  ``"minibatch_advi"``: full-rank ADVI on
        row batches (:mod:`bayesgmm.minibatch_advi`).  ``"coreset_nuts"``: NUTS on a weighted
        lightweight coreset (:mod:`bayesgmm.coreset`; measured, not the
        default: see ``reports/benchmarks/scale.md``).
    engine : {"nutpie", "pymc"}, default="nutpie"
        ``"nutpie"`` uses bayesgmm's compiled density (nutpie's NUTS, or
        bayesgmm's ADVI); ``"pymc"`` samples the PyMC model with ``pm.sample``
        (NUTS only: ADVI runs on the compiled density).  See
        ``reports/benchmarks/bayes.md`` for the timings behind the default.
    draws, tune, chains : int
        NUTS settings (ADVI uses ``draws`` for the number of draws from the
        approximation).
    cores : int, optional
        Parallel chains; defaults to the number of CPUs.
    target_accept : float, default=0.9
    max_treedepth : int, default=10
        NUTS's largest tree is ``2 ** max_treedepth`` leapfrog steps; raise it
        when many draws reach it (``idata_.sample_stats["maxdepth_reached"]``).
    mass_matrix : {"diag", "draw_diag", "low_rank"}, default="diag"
        nutpie's mass-matrix adaptation (:data:`bayesgmm.inference.MASS_MATRICES`);
        ``"low_rank"`` can help strongly correlated posteriors.  The PyMC
        engine supports only ``"diag"``.
    advi_iterations : int, default=10000
    relabel : {"stephens", "pivot"}, default="stephens"
        Relabelling algorithm (see :mod:`bayesgmm.relabel`); the pivot run
        always comes first and starts Stephens' algorithm.
    em_n_init : int, default=5
        EM restarts for the starting point.
    interval : float, default=0.94
        Mass of equal-tailed intervals in summaries.
    random_state : int, numpy.random.Generator or None
    progressbar : bool, default=True

    Attributes
    ----------
    idata_ : xarray.DataTree
        ``posterior`` (relabelled, data units), ``sample_stats`` (with the
        per-draw ``total_log_likelihood`` for NUTS), ``log_likelihood``
        only within :data:`bayesgmm._checks.LOG_LIKELIHOOD_BUDGET` values
        (attribute ``pointwise_log_likelihood_stored``), ``observed_data``
        (for a Dask fit: the gathered sample), ``constant_data`` (weights of
        a weighted fit), and per method ``laplace``, ``vi_trace`` or
        ``coreset``; root attributes hold the settings, priors (JSON), data
        SHA-256, version and the method that ran.
    relabelling_ : RelabellingSummary
        Method, iterations, the number of draws and of permuted draws.
    priors_ : GMMPriors
        The priors used (``GMMPriors()`` when ``priors`` was None).
    em_start_ : ModelParameters
        The EM solution every chain started from, in data units (set by
        ``fit``; not stored in the file, so absent after :func:`load`).
    feature_names_in_ : ndarray of str
        Column names; new DataFrames are matched to them by name.
    diagnostics_ : Diagnostics
        ``diagnose()`` at the end of the fit.

    Examples
    --------
    >>> from bayesgmm.datasets import load_faithful
    >>> bg = BayesianGMM(2, random_state=0, progressbar=False).fit(load_faithful())
    >>> bg.idata_.posterior["means"].dims
    ('chain', 'draw', 'component', 'feature')
    >>> bg.diagnose().ok
    True
    """

    def __init__(
        self,
        n_components: int = 2,
        *,
        covariance_type: str = "full",
        priors: GMMPriors | None = None,
        noise: bool = False,
        noise_volume: float | None = None,
        missing: str = "reject",
        method: str = "auto",
        engine: str = "nutpie",
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 4,
        cores: int | None = None,
        target_accept: float = 0.9,
        max_treedepth: int = 10,
        mass_matrix: str = "diag",
        advi_iterations: int = 10_000,
        relabel: str = "stephens",
        em_n_init: int = 5,
        interval: float = 0.94,
        random_state=None,
        progressbar: bool = True,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.priors = priors
        self.noise = noise
        self.noise_volume = noise_volume
        self.missing = missing
        self.method = method
        self.engine = engine
        self.draws = draws
        self.tune = tune
        self.chains = chains
        self.cores = cores
        self.target_accept = target_accept
        self.max_treedepth = max_treedepth
        self.mass_matrix = mass_matrix
        self.advi_iterations = advi_iterations
        self.relabel = relabel
        self.em_n_init = em_n_init
        self.interval = interval
        self.random_state = random_state
        self.progressbar = progressbar

    # ------------------------------------------------------------ settings
    def _check_settings(self) -> GMMPriors:
        """Validate every setting before any work, so a typo never costs a sampling run.

        Each constructor argument is checked for its type and range; a
        message names the setting and a valid example.  Loading a model runs
        the same checks on the stored settings.
        """
        check_n_components(self.n_components)
        for name, value, allowed in (
            ("covariance_type", self.covariance_type, COVARIANCE_TYPES),
            ("method", self.method, METHODS),
            ("engine", self.engine, ENGINES),
            ("relabel", self.relabel, RELABEL_METHODS),
            ("missing", self.missing, MISSING_OPTIONS),
            ("mass_matrix", self.mass_matrix, MASS_MATRICES),
        ):
            if not isinstance(value, str) or value not in allowed:
                raise ValueError(
                    f"{name} must be one of {allowed}, e.g. {name}={allowed[0]!r}; got {value!r}."
                )
        if self.engine == "pymc" and self.mass_matrix != "diag":
            raise ValueError(
                f"mass_matrix={self.mass_matrix!r} needs engine='nutpie'; the PyMC engine "
                "adapts a diagonal mass matrix only (mass_matrix='diag')."
            )
        for name in ("draws", "tune", "chains", "advi_iterations", "em_n_init", "max_treedepth"):
            _check_count(name, getattr(self, name), _default(name))
        if self.cores is not None:
            _check_count("cores", self.cores, 4)
        for name in ("target_accept", "interval"):
            _check_fraction(name, getattr(self, name), _default(name))
        check_random_state(self.random_state, stored=True)
        check_noise_settings(self.noise, self.noise_volume)
        if not isinstance(self.progressbar, (bool, np.bool_)):
            raise ValueError(f"progressbar must be True or False, got {self.progressbar!r}.")
        priors = self.priors if self.priors is not None else GMMPriors()
        if not isinstance(priors, GMMPriors):
            raise TypeError(
                f"priors must be a GMMPriors instance or None, e.g. priors=GMMPriors(); got "
                f"{type(priors).__name__}."
            )
        return priors

    def _stored_params(self) -> str:
        """Constructor arguments as JSON (the resolved priors are also stored on their own)."""
        params = self.get_params(deep=False)
        if params["priors"] is not None:
            params["priors"] = params["priors"].to_dict()
        if not isinstance(params["random_state"], (int, np.integer, type(None))):
            params["random_state"] = None  # a Generator cannot be stored; recorded as repr
        return json.dumps({key: value.item() if isinstance(value, np.generic) else value
                           for key, value in params.items()})

    def _settings(self) -> SamplerSettings:
        return SamplerSettings(
            method=self.method, engine=self.engine, draws=int(self.draws),
            tune=int(self.tune),
            chains=int(self.chains) if self.method in ("auto", *NUTS_METHODS) else 1,
            cores=self.cores, target_accept=float(self.target_accept),
            advi_iterations=int(self.advi_iterations), progressbar=bool(self.progressbar),
            max_treedepth=int(self.max_treedepth), mass_matrix=self.mass_matrix,
        )

    # ------------------------------------------------------------ fitting
    def fit(self, X, y=None, sample_weight=None) -> BayesianGMM:
        """Fit the posterior: prepare, sample, relabel, assemble (see :mod:`bayesgmm.fitting`).

        Parameters
        ----------
        X : array-like, DataFrame or Dask array/DataFrame of shape (n_samples, n_features)
            Dask input is fitted by the Laplace approximation with the rows
            kept on the workers (:mod:`bayesgmm.dask_fit`).
        y : ignored
        sample_weight : array-like of shape (n_samples,), optional
            Frequency weights (:mod:`bayesgmm.sample_weight`): row ``i``'s
            log-likelihood counts ``w_i`` times, as if repeated; 0 drops a row.
            Non-negative, finite and not all zero.

        Returns
        -------
        self : BayesianGMM
        """
        priors = self._check_settings()
        rng = as_generator(self.random_state)
        settings = self._settings()
        structure = dict(n_components=self.n_components, covariance_type=self.covariance_type,
                         priors=priors, em_n_init=self.em_n_init, rng=rng, settings=settings)
        if is_dask_collection(X):
            from bayesgmm.dask_fit import fit_dask_laplace

            settings = settings._replace(method="laplace", chains=1)
            problem, sample = fit_dask_laplace(X, sample_weight, noise=bool(self.noise),
                                               missing=self.missing, **structure)
        else:
            problem = prepare_problem(X, noise=bool(self.noise), noise_volume=self.noise_volume,
                                      missing=self.missing, sample_weight=sample_weight,
                                      **structure)
            settings = resolve_method(settings, problem.data.values.shape[0])
            warn_improper_ties(problem.data.values, problem.data.feature_names,
                               priors.scale_prior, PROPER_WITH_TIES)
            sample = sample_problem(problem, settings, rng)
        # One Gaussian around one mode cannot switch labels: the pivot suffices.
        relabel = "pivot" if settings.method == "laplace" else self.relabel
        relabelled, relabelling = relabel_sample(problem, sample, relabel)
        attrs = {**self._provenance(problem, sample.elapsed, settings.method),
                 "relabelling": relabelling.to_json()}
        tree = assemble_datatree(problem, relabelled, sample, attrs)
        # Fitted attributes are set together, only once everything succeeded.
        self._set_fitted(tree, flatten_draws(relabelled), priors, relabelling)
        self.em_start_ = problem.em_start
        if not self.diagnostics_.ok:
            warnings.warn(
                "The posterior failed some convergence checks: "
                + " ".join(self.diagnostics_.remedies)
                + " Call .diagnose() for the full table.",
                DiagnosticsWarning,
                stacklevel=2,
            )
        return self

    def _set_fitted(self, tree: xr.DataTree, flat: ModelParameters, priors: GMMPriors,
                    relabelling: RelabellingSummary) -> None:
        self.idata_ = tree
        self.priors_ = priors
        self.relabelling_ = relabelling
        self.feature_names_in_ = np.asarray(tree.posterior["feature"].values).astype(str)
        self.n_features_in_ = len(self.feature_names_in_)
        self._parameters = flat
        self.diagnostics_ = self.diagnose()

    def _provenance(self, problem: Problem, elapsed: float, method: str) -> dict[str, Any]:
        return {
            "bayesgmm_version": __version__,
            "priors": problem.priors.to_json(),
            "n_components": int(self.n_components),
            "covariance_type": self.covariance_type,
            "method": method,
            "engine": self.engine,
            "random_state": repr(self.random_state) if not isinstance(
                self.random_state, (int, np.integer)) else int(self.random_state),
            "data_sha256": data_fingerprint(problem.data.values),
            "sampling_seconds": float(elapsed),
            "params": self._stored_params(),
        }

    # ------------------------------------------------------------ fitted state
    def _check_fitted(self):
        if not hasattr(self, "idata_"):
            raise AttributeError(
                "This BayesianGMM is not fitted yet; call fit(X) or bayesgmm.load(path)."
            )

    def _new_data(self, X, missing: str | None = None) -> np.ndarray:
        """Checked new data, with DataFrame columns matched to the fitted features by name.

        NaN is accepted as the model's ``missing`` setting says, unless
        ``missing`` overrides it.
        """
        self._check_fitted()
        return match_features(X, self.feature_names_in_, missing=missing or self.missing)

    def _draws(self, max_draws: int | None) -> ModelParameters:
        """The draws to score from: all, or ``max_draws`` evenly spaced ones (thin_draws)."""
        self._check_fitted()
        return thin_draws(self._parameters, max_draws)

    def _score(self, X, max_draws: int | None, score, dask_score, **options):
        """``score`` of checked rows, or ``dask_score``'s lazy result for Dask input."""
        parameters = self._draws(max_draws)
        if is_dask_collection(X):
            return dask_score(X, parameters, self.feature_names_in_, self.missing, **options)
        return score(self._new_data(X), parameters, **options)

    # ------------------------------------------------------------ membership
    def membership_summary(self, X, *, max_draws: int | None = None) -> xr.Dataset:
        """Per-point membership probabilities with intervals and uncertainty split.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Or a ``dask.array.Array`` / ``dask.dataframe.DataFrame``: the
            result is then lazy (its variables are Dask arrays, computed
            chunk by chunk, the draws sent to the workers once).
        max_draws : int, optional
            Score from this many evenly spaced posterior draws
            (:func:`bayesgmm.likelihood.thin_draws`); None uses every draw.

        Returns
        -------
        xarray.Dataset
            ``prob``, ``prob_lower``, ``prob_upper`` (obs, component);
            ``entropy`` (total), ``expected_entropy`` (aleatoric),
            ``mutual_information`` (epistemic), ``label``, ``confidence``
            (obs).  With a noise component also ``p_noise``,
            ``p_noise_lower``, ``p_noise_upper`` (obs), and ``label`` is -1
            where the noise is the most probable.  See
            :mod:`bayesgmm.membership`; memory is ``O(draws x block +
            n_samples x n_components)``.
        """
        arrays = self._score(X, max_draws, membership_arrays, dask_membership,
                             interval=self.interval)
        return membership_dataset(arrays, self.n_components, self.interval)

    def predict_proba(self, X, *, max_draws: int | None = None) -> np.ndarray:
        """Posterior-mean membership probabilities, shape (n_samples, n_components).

        With a noise component: ``n_components + 1`` columns, the noise last.
        Dask input gives a lazy Dask array; ``max_draws`` as in
        :meth:`membership_summary`.
        """
        return self._score(X, max_draws, mean_membership, dask_mean_membership)

    def predict(self, X, *, max_draws: int | None = None) -> np.ndarray:
        """Most probable component of every point (posterior-mean membership).

        ``-1`` (:data:`bayesgmm.noise.NOISE_LABEL`) where a noise component
        is the most probable.  Dask input gives a lazy Dask array;
        ``max_draws`` as in :meth:`membership_summary`.
        """
        return self._score(X, max_draws, most_probable_labels, dask_labels)

    def coclustering(self, X, *, max_draws: int | None = None) -> np.ndarray:
        """Posterior probability that two points share a component, (n, n).

        ``max_draws`` as in :meth:`membership_summary` (the cost is
        ``draws x n^2``).
        """
        return coclustering_matrix(self._new_data(X), self._draws(max_draws))

    def occupied_components(self, X=None, random_state=None) -> pd.Series:
        """Posterior distribution of the number of non-empty components.

        For every draw, allocations ``z_i`` are drawn from that draw's
        responsibilities and the distinct components counted (Rousseau &
        Mengersen 2011; Malsiner-Walli, Fruehwirth-Schnatter & Gruen 2016).
        Meaningful for a sparse, overfitted mixture: ``n_components`` above
        the expected number of clusters and a small
        ``GMMPriors(weight_concentration=...)`` such as 0.01.

        Parameters
        ----------
        X : array-like, optional
            Data to allocate; defaults to the training data.
        random_state : int, numpy.random.Generator or None

        Returns
        -------
        pandas.Series
            Probability of each number of occupied components, indexed
            ``1 .. n_components`` (from 0 with a noise component, which is
            never counted as occupied).
        """
        self._check_fitted()
        values = (self.idata_.observed_data[OBSERVED].values if X is None else self._new_data(X))
        counts = occupied_component_counts(values, self._parameters, as_generator(random_state))
        # 0 occurs only with a noise component that took every point in a draw.
        first = 0 if self._parameters.noise is not None else 1
        frequencies = np.bincount(counts, minlength=self.n_components + 1)[first:]
        return pd.Series(
            frequencies / counts.size, index=pd.RangeIndex(first, self.n_components + 1,
                                                           name="occupied_components"),
            name="probability",
        )

    # ------------------------------------------------------------ density
    def score_samples(self, X, *, max_draws: int | None = None) -> np.ndarray:
        """Posterior-predictive log density of every point (log-mean-exp over draws).

        Dask input gives a lazy Dask array; ``max_draws`` as in
        :meth:`membership_summary`.
        """
        return self._score(X, max_draws, predictive_density, dask_density,
                           interval=None).log_density

    def anomaly_scores(self, X=None, *, max_draws: int | None = None) -> xr.Dataset:
        """Anomaly score ``-log p(x | data)`` with an interval over draws.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features), optional
            New points.  Without ``X`` the training points are scored
            out of sample: by their leave-one-out predictive density
            (PSIS-LOO, :func:`bayesgmm.density.loo_predictive_density`), so
            a component fitted to an outlier cannot hide it; streamed over
            blocks of points, so it works whether or not the model kept its
            pointwise log-likelihood.  Dask input gives a lazy Dataset.
        max_draws : int, optional
            Score from this many evenly spaced posterior draws (for the
            training data: the same number from each chain); None uses
            every draw.

        Returns
        -------
        xarray.Dataset
            ``score``, ``lower``, ``upper`` (obs); larger is more anomalous.
            For the training data also ``pareto_k`` (obs): the score of a
            point with k-hat above ~0.7 is itself uncertain.  A row with
            missing values is scored by its density over its observed
            coordinates, which is not on the same scale as a complete row's:
            rank rows against others with the same missing columns.
        """
        density = (self.density_summary(X, max_draws=max_draws) if X is not None
                   else self._loo_density(max_draws))
        scores = xr.Dataset(
            {
                "score": -density["log_density"],
                "lower": -density["upper"],
                "upper": -density["lower"],
            },
            attrs=density.attrs,
        )
        return scores.assign(pareto_k=density["pareto_k"]) if X is None else scores

    def _loo_density(self, max_draws: int | None = None) -> xr.Dataset:
        self._check_fitted()
        loo = pointwise_loo(self, interval=self.interval, max_draws=max_draws)
        return xr.Dataset(
            {"log_density": ("obs", loo.elpd), "lower": ("obs", loo.lower),
             "upper": ("obs", loo.upper), "pareto_k": ("obs", loo.pareto_k)},
            coords={"obs": np.arange(loo.elpd.shape[0])},
            attrs={"interval": self.interval, "method": "psis-loo"},
        )

    def density_summary(self, X, *, max_draws: int | None = None) -> xr.Dataset:
        """Predictive log density with its credible band (``log_density``, ``lower``, ``upper``).

        Dask input gives a lazy Dataset; ``max_draws`` as in
        :meth:`membership_summary`.
        """
        density = self._score(X, max_draws, predictive_density, dask_density,
                              interval=self.interval)
        return xr.Dataset(
            {name: ("obs", value) for name, value in density._asdict().items()},
            coords={"obs": np.arange(density.log_density.shape[0])},
            attrs={"interval": self.interval},
        )

    # ------------------------------------------------------------ missing values
    def impute(self, X, random_state=None) -> xr.Dataset:
        """Posterior predictive of the missing values (NaN) given each row's observed ones.

        For every posterior draw, the component is drawn from that draw's
        responsibilities given the observed values, then the missing values
        from that component's conditional Gaussian (uniform on the noise box
        for the noise component); see :mod:`bayesgmm.imputation`.  Works on
        any fitted model, whatever its ``missing`` setting.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Every row needs an observed value.
        random_state : int, numpy.random.Generator or None
            For the predictive draws behind the intervals.

        Returns
        -------
        xarray.Dataset
            ``mean`` (the predictive mean, exact given the draws), ``lower``
            and ``upper`` (equal-tailed interval of mass ``interval``, from
            one predictive draw per posterior draw: with ``S`` draws each
            tail's mass is off by about ``sqrt(q (1 - q) / S)``, 0.0027 for
            ``q = 0.03`` and ``S = 4000``) and ``imputed`` (True where the
            value was missing), over (obs, feature).  Observed values pass
            through with ``lower = upper = mean``.
        """
        values = self._new_data(X, missing="marginalize")
        arrays = predictive_imputation(values, self._parameters, self.interval,
                                       as_generator(random_state))
        dims = ("obs", "feature")
        dataset = xr.Dataset(
            {**{name: (dims, value) for name, value in arrays._asdict().items()},
             "imputed": (dims, np.isnan(values))},
            coords={"obs": np.arange(values.shape[0]), "feature": self.feature_names_in_},
        )
        dataset.attrs["interval"] = self.interval
        return dataset

    # ------------------------------------------------------------ diagnostics
    def diagnose(self) -> Diagnostics:
        """Convergence diagnostics on the relabelled draws (see :mod:`bayesgmm.diagnostics`)."""
        self._check_fitted()
        tree = self.idata_
        if tree.attrs["method"] == "laplace":
            return diagnose_laplace(tree["laplace"]["log_ratio"].values)
        if tree.attrs["method"] in NUTS_METHODS:
            total = total_log_likelihood(tree)
            return diagnose_nuts(
                unflatten_draws(self._parameters, total.shape[0]),
                tree.sample_stats.to_dataset(), total, tree.attrs["covariance_type"],
            )
        if "log_ratio" in tree["vi_trace"]:  # minibatch ADVI: a subset of draws checked
            return diagnose_advi(tree["vi_trace"]["elbo"].values,
                                 tree["vi_trace"]["log_ratio"].values)
        stats = tree.sample_stats.to_dataset()
        log_ratio = (stats["lp"] - stats["log_q"]).values.ravel()
        return diagnose_advi(tree["vi_trace"]["elbo"].values, log_ratio)

    # ------------------------------------------------------------ persistence
    def save(self, path, overwrite: bool = False):
        """Write the fitted model to netCDF (never overwrites without ``overwrite=True``).

        The file is stamped with a SHA-256 of its whole content and gets the
        permissions the umask gives a new file (see :mod:`bayesgmm.io`).

        Raises
        ------
        bayesgmm.io.ModelWriteError
            The write failed (disk full, no permission); nothing is left behind.
        """
        self._check_fitted()
        return save_datatree(self.idata_, path, overwrite=overwrite)

    @classmethod
    def from_datatree(cls, tree: xr.DataTree) -> BayesianGMM:
        """Rebuild a fitted model from its DataTree (as written by :meth:`save`).

        The tree must pass :func:`bayesgmm.io.check_model_tree` (groups,
        content SHA-256, finite draws, weights, scales, correlations), its
        stored settings the same validation as the constructor's arguments
        in ``fit``, and they must agree with the stored arrays.  Models saved
        before the content SHA-256 existed still load: they are checked with
        what they carry (the SHA-256 of the observed data) and every check
        that needs no stamp.

        Raises
        ------
        ModelFileError
            When the file is incomplete, altered or damaged, or its settings
            are missing, invalid or contradict its arrays.
        """
        tree = check_model_tree(tree)
        model, priors, relabelling = _stored_settings(cls, tree)
        _check_settings_match_arrays(model, tree)
        if data_fingerprint(tree.observed_data[OBSERVED].values) != str(tree.attrs["data_sha256"]):
            raise ModelFileError(
                "the data stored in the model file do not match its recorded SHA-256; the "
                "file was altered after saving. Re-fit or re-save the model."
            )
        try:
            model._set_fitted(tree, parameters_from_posterior(tree.posterior.to_dataset()),
                              priors, relabelling)
        except (KeyError, ValueError) as error:
            raise ModelFileError(
                f"the model file's arrays cannot be used ({type(error).__name__}: {error}). "
                "Re-fit or re-save the model."
            ) from None
        return model


def _stored_settings(
    cls: type[BayesianGMM], tree: xr.DataTree
) -> tuple[BayesianGMM, GMMPriors, RelabellingSummary]:
    """The unfitted model, priors and relabelling summary a tree's attributes record."""
    try:
        params = json.loads(str(tree.attrs["params"]))
        if params["priors"] is not None:
            params["priors"] = GMMPriors.from_dict(params["priors"])
        priors = GMMPriors.from_json(str(tree.attrs["priors"]))
        relabelling = RelabellingSummary.from_json(str(tree.attrs["relabelling"]))
        model = cls(**params)
    except (KeyError, ValueError, TypeError) as error:
        raise ModelFileError(
            f"the model file lacks or garbles its settings ({type(error).__name__}: "
            f"{error}); re-save it from the fitted model."
        ) from None
    try:
        model._check_settings()
    except (ValueError, TypeError) as error:
        raise ModelFileError(
            f"the model file's stored settings are invalid: {error} Re-fit or re-save the model."
        ) from None
    return model, priors, relabelling


def _same_along(axis: int):
    def check(values: np.ndarray) -> bool:
        return bool(np.all(values == np.take(values, [0], axis=axis)))
    return check


_SHARED_VALUES = {
    "tied": (("scales", "components", _same_along(2)),
             ("correlations", "components", _same_along(2))),
    "spherical": (("scales", "features", _same_along(3)),),
}
"""Arrays a shared covariance structure repeats: (variable, what, check)."""


def _check_settings_match_arrays(model: BayesianGMM, tree: xr.DataTree) -> None:
    """Require the stored settings to describe the stored arrays."""
    attrs, posterior = tree.attrs, tree.posterior
    n_stored = posterior.sizes["component"]
    problems = [f"n_components={model.n_components} but the posterior has {n_stored} components"
                ] if model.n_components != n_stored else []
    # method="auto" is stored as set and recorded as the method it resolved to.
    expected = {"n_components": model.n_components, "covariance_type": model.covariance_type,
                "method": resolve_method(model._settings(),
                                         tree.observed_data.sizes["obs"]).method}
    problems += [
        f"{name}={getattr(model, name)!r} in its settings but {attrs.get(name)!r} in its "
        "attributes" for name, value in expected.items() if attrs.get(name) != value
    ]
    if "data_sha256" not in attrs:
        problems.append("it records no data_sha256")
    correlations = posterior["correlations"].values
    off_diagonal = correlations * (1 - np.eye(correlations.shape[-1]))
    if bool(model.noise) != (NOISE_WEIGHT in posterior):
        problems.append(f"noise={model.noise!r} in its settings but the posterior "
                        f"{'lacks' if model.noise else 'has'} a noise weight")
    if model.covariance_type in ("diag", "spherical") and np.any(off_diagonal != 0):
        problems.append(f"covariance_type={model.covariance_type!r} but the posterior has "
                        "non-zero correlations")
    problems += [
        f"covariance_type={model.covariance_type!r} but its {name} differ across {axis}"
        for name, axis, check in _SHARED_VALUES.get(model.covariance_type, ())
        if not check(posterior[name].values)
    ]
    method = tree.attrs.get("method", model.method)
    if method in (*ADVI_METHODS, "minibatch_advi") and "vi_trace" not in tree.children:
        problems.append(f"method={method!r} but the file has no vi_trace group")
    if problems:
        raise ModelFileError(
            f"the model file's settings contradict its arrays: {problems[0]}. Re-fit or "
            "re-save the model."
        )


def load(path) -> BayesianGMM:
    """Load a model saved by :meth:`BayesianGMM.save`.

    Sizes and groups are checked from the file's metadata before its arrays
    are read, then the content as in :meth:`BayesianGMM.from_datatree`.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    BayesianGMM

    Raises
    ------
    ModelFileError
        Naming the file and the problem; see :func:`bayesgmm.io.load_datatree`.
    """
    tree = load_datatree(path)
    try:
        return BayesianGMM.from_datatree(tree)
    except ModelFileError as error:
        raise ModelFileError(f"{path}: {error}") from None
