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
import xarray as xr
from sklearn.base import BaseEstimator, ClusterMixin, DensityMixin

from bayesgmm._checks import (
    MISSING_OPTIONS,
    as_generator,
    check_n_components,
    check_number,
    check_random_state,
    data_fingerprint,
    warn_improper_ties,
)
from bayesgmm._dask import is_dask_collection
from bayesgmm._posterior_queries import PosteriorQueries
from bayesgmm._stored_settings import check_settings_match_arrays, stored_settings
from bayesgmm._version import __version__
from bayesgmm.diagnostics import Diagnostics, diagnose_advi, diagnose_laplace, diagnose_nuts
from bayesgmm.fitting import (
    Problem,
    assemble_datatree,
    prepare_problem,
    relabel_sample,
    sample_problem,
)
from bayesgmm.inference import (
    ENGINES,
    MASS_MATRICES,
    METHODS,
    NUTS_METHODS,
    SamplerSettings,
    resolve_method,
)
from bayesgmm.io import ModelFileError, check_model_tree, load_datatree, save_datatree
from bayesgmm.noise import check_noise_settings
from bayesgmm.parameters import ModelParameters, flatten_draws, unflatten_draws
from bayesgmm.posterior import (
    OBSERVED,
    parameters_from_posterior,
    total_log_likelihood,
)
from bayesgmm.priors import PROPER_WITH_TIES, GMMPriors
from bayesgmm.relabel import RELABEL_METHODS, RelabellingSummary
from bayesgmm.scaling import COVARIANCE_TYPES
from bayesgmm.summary import fit_overview_html, posterior_means

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


def _check_extension(extend_model, engine: str, method: str) -> None:
    """An extension of the PyMC model needs that model to be the one sampled."""
    if extend_model is None:
        return
    if not callable(extend_model):
        raise TypeError(
            "extend_model must be a function taking the PyMC model and returning the extended "
            f"one, e.g. extend_model=lambda base: base; got {type(extend_model).__name__}."
        )
    if engine != "pymc" or method not in ("auto", "nuts"):
        raise ValueError(
            "extend_model changes the PyMC model, so it needs NUTS on that model: "
            "engine='pymc' and method='nuts' (or 'auto'); got "
            f"engine={engine!r}, method={method!r}."
        )


class BayesianGMM(PosteriorQueries, ClusterMixin, DensityMixin, BaseEstimator):
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
    extend_model : callable, optional
        A user's extension of the PyMC model (``engine="pymc"``, NUTS):
        ``extend_model(base) -> pymc.Model``, given the model of
        :func:`bayesgmm.model.build_model` on the training data (on its
        standardised scale), returning it with variables added or replaced,
        e.g. ``pm.do(base, {"means": centre + spread * offsets})`` for a
        hierarchical prior on the means.  The result must keep ``weights``,
        ``means``, ``scales`` (and ``correlations_cholesky``) by name
        (:func:`bayesgmm.model.extended_model`); the fit then gets the same
        relabelling, memberships, diagnostics and DataTree as any.  The
        extension's own variables are in ``idata_["extension"]``, on the
        model's standardised scale (those with a ``component`` dimension
        relabelled with the parameters); the prior must stay exchangeable
        over components, since the draws are relabelled.  A
        saved model records the function's name
        (``attrs["model_extension"]``) and loads without it, since every
        summary reads the stored parameters (K-fold refits of a loaded
        model need ``extend_model`` set again).
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
        only within :data:`bayesgmm._workload.LOG_LIKELIHOOD_BUDGET` values
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
    weights_ : ndarray of shape (n_components,)
        Posterior-mean mixture weights (with a noise component they sum to
        ``1 - noise_weight_``); point summaries where scikit-learn users look.
    means_ : ndarray of shape (n_components, n_features)
        Posterior-mean component means, in data units.
    covariances_ : ndarray
        Posterior-mean covariances in data units, shaped as scikit-learn's
        ``GaussianMixture`` per ``covariance_type``: (n_components,
        n_features, n_features) for ``full``, (n_features, n_features) for
        ``tied``, (n_components, n_features) for ``diag``, (n_components,)
        for ``spherical``.
    noise_weight_ : float or None
        Posterior-mean noise weight; None without a noise component.
    labels_ : ndarray of int of shape (n_samples,)
        ``predict`` of the training rows, computed on first access (one
        scoring pass); absent after a Dask fit, which keeps a sample of its
        rows (``fit_predict`` then returns ``predict(X)``, lazily).

    Notes
    -----
    scikit-learn's contract: a clusterer (``fit_predict``, ``labels_``) and
    a density estimator (``score``, ``score_samples``, ``sample``), so
    ``cross_val_score``, ``GridSearchCV`` and ``Pipeline`` work.  Scores are
    posterior-predictive: the log of the density averaged over draws.

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
        extend_model=None,
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
        self.extend_model = extend_model
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
        _check_extension(self.extend_model, self.engine, self.method)
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
        params["extend_model"] = None  # a function cannot be stored: attrs name it
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

            if self.extend_model is not None:
                raise ValueError("extend_model needs NUTS on in-memory rows; a Dask collection "
                                 "is fitted by the Laplace approximation. Pass X.compute().")
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
            sample = sample_problem(problem, settings, rng, self.extend_model)
        # One Gaussian around one mode cannot switch labels: the pivot suffices.
        relabel = "pivot" if settings.method == "laplace" else self.relabel
        relabelled, relabelling, sample = relabel_sample(problem, sample, relabel,
                                                         settings.progressbar)
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
        means = posterior_means(flat, self.covariance_type)
        self.weights_, self.means_, self.covariances_, self.noise_weight_ = means
        self._labels = None
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
            **({} if self.extend_model is None else {"model_extension": getattr(
                self.extend_model, "__qualname__", repr(self.extend_model))}),
        }

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

    def _html_repr(self) -> str:
        """scikit-learn's parameter box, preceded by the fit's overview once fitted."""
        box = super()._html_repr()
        return box if not hasattr(self, "idata_") else fit_overview_html(self) + box

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
        model, priors, relabelling = stored_settings(cls, tree)
        check_settings_match_arrays(model, tree)
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
