"""``BayesianGMM``: the Bayesian mixture as a thin class over the pipeline.

``fit`` runs the data path of ARCHITECTURE.md: checks -> EM start ->
inference (NUTS or ADVI) -> relabelling -> pointwise log-likelihood ->
DataTree -> diagnostics.  Every step is a function in its own module; this
class only wires them together and keeps the result in ``idata_``.
"""

from __future__ import annotations

import importlib.metadata
import json
import warnings
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning

from bayesgmm._checks import (
    DataValidationError,
    check_n_components,
    check_number,
    check_X,
    data_fingerprint,
)
from bayesgmm.density import predictive_density
from bayesgmm.diagnostics import Diagnostics, diagnose_advi, diagnose_nuts
from bayesgmm.em import GaussianMixtureEM, as_generator
from bayesgmm.inference import ENGINES, METHODS, SamplerSettings, sample_posterior
from bayesgmm.io import ModelFileError, load_datatree, save_datatree
from bayesgmm.likelihood import flatten_draws, pointwise_log_likelihood
from bayesgmm.logdensity import (
    Layout,
    ModelParameters,
    logp_and_grad,
    pack_block,
    parameters_to_unconstrained,
)
from bayesgmm.membership import (
    coclustering_matrix,
    mean_membership,
    membership_arrays,
    occupied_component_counts,
)
from bayesgmm.model import COVARIANCE_TYPES, build_model, model_scale
from bayesgmm.posterior import build_datatree, parameters_from_posterior, to_data_units
from bayesgmm.priors import GMMPriors
from bayesgmm.relabel import RELABEL_METHODS, relabel_draws

__all__ = ["BayesianGMM", "DiagnosticsWarning", "load"]

_MIN_WEIGHT = 1e-6


class DiagnosticsWarning(UserWarning):
    """A fitted model failed a convergence gate; see ``BayesianGMM.diagnose()``."""


def _em_start(values, n_components, covariance_type, n_init, seed) -> ModelParameters:
    """EM solution on the model's scale as ModelParameters (weights kept > 0)."""
    em = GaussianMixtureEM(
        n_components, covariance_type=covariance_type, n_init=n_init, tol=1e-6,
        max_iter=1000, random_state=seed,
    )
    with warnings.catch_warnings():
        # A not-quite-converged EM is still a good starting point.
        warnings.simplefilter("ignore", ConvergenceWarning)
        em.fit(values)
    n_features = values.shape[1]
    covariances = em.covariances_
    if covariance_type == "diag":
        scales = np.sqrt(covariances)
        chol = np.broadcast_to(np.eye(n_features), (n_components, n_features, n_features))
    else:
        scales = np.sqrt(np.diagonal(covariances, axis1=1, axis2=2))
        correlations = covariances / (scales[:, :, None] * scales[:, None, :])
        chol = np.linalg.cholesky(correlations)
    weights = np.maximum(em.weights_, _MIN_WEIGHT)
    return ModelParameters(weights / weights.sum(), em.means_, scales, np.array(chol))


class BayesianGMM(BaseEstimator):
    """Bayesian Gaussian mixture with Dirichlet weights and LKJ covariances.

    Parameters
    ----------
    n_components : int, default=2
    covariance_type : {"full", "diag"}, default="full"
    priors : GMMPriors, optional
        Defaults to ``GMMPriors()`` (weakly informative, standardised scale).
    method : {"nuts", "advi", "fullrank_advi"}, default="nuts"
    engine : {"nutpie", "pymc"}, default="nutpie"
        ``"nutpie"`` uses bayesgmm's compiled density (nutpie's NUTS, or
        bayesgmm's ADVI); ``"pymc"`` uses the PyMC model with ``pm.sample`` or
        ``pm.fit``.  See ``reports/benchmarks/bayes.md`` for the timings
        behind the default.
    draws, tune, chains : int
        NUTS settings (ADVI uses ``draws`` for the number of draws from the
        approximation).
    cores : int, optional
        Parallel chains; defaults to the number of CPUs.
    target_accept : float, default=0.9
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
        ``posterior`` (relabelled, data units), ``sample_stats``,
        ``log_likelihood``, ``observed_data``; root attributes hold the
        settings, priors (JSON), data SHA-256 and version.
    relabelling_ : dict
        Method, iterations and the number of permuted draws.
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
        method: str = "nuts",
        engine: str = "nutpie",
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 4,
        cores: int | None = None,
        target_accept: float = 0.9,
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
        self.method = method
        self.engine = engine
        self.draws = draws
        self.tune = tune
        self.chains = chains
        self.cores = cores
        self.target_accept = target_accept
        self.advi_iterations = advi_iterations
        self.relabel = relabel
        self.em_n_init = em_n_init
        self.interval = interval
        self.random_state = random_state
        self.progressbar = progressbar

    # ------------------------------------------------------------ settings
    def _check_settings(self) -> GMMPriors:
        """Validate every setting before any work, so a typo never costs a sampling run."""
        check_n_components(self.n_components)
        for name, value, allowed in (
            ("covariance_type", self.covariance_type, COVARIANCE_TYPES),
            ("method", self.method, METHODS),
            ("engine", self.engine, ENGINES),
            ("relabel", self.relabel, RELABEL_METHODS),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}.")
        for name, low in (("draws", 1), ("chains", 1), ("advi_iterations", 1),
                          ("em_n_init", 1), ("tune", 0)):
            check_number(name, getattr(self, name), low=low, integer=True)
        if self.cores is not None:
            check_number("cores", self.cores, low=1, integer=True)
        if not 0.0 < float(self.target_accept) < 1.0:
            raise ValueError(
                f"target_accept must lie in (0, 1), e.g. 0.9; got {self.target_accept!r}."
            )
        if not 0.0 < float(self.interval) < 1.0:
            raise ValueError(f"interval must lie in (0, 1), got {self.interval!r}.")
        priors = self.priors if self.priors is not None else GMMPriors()
        if not isinstance(priors, GMMPriors):
            raise TypeError("priors must be a GMMPriors instance.")
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
            tune=int(self.tune), chains=int(self.chains) if self.method == "nuts" else 1,
            cores=self.cores, target_accept=float(self.target_accept),
            advi_iterations=int(self.advi_iterations), progressbar=bool(self.progressbar),
        )

    # ------------------------------------------------------------ fitting
    def fit(self, X, y=None) -> BayesianGMM:
        """Fit the posterior.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        self : BayesianGMM
        """
        priors = self._check_settings()
        stored_params = self._stored_params()
        raw = check_X(X, n_components=self.n_components)
        names = raw.feature_names
        values, centre, scale, resolved = model_scale(raw.values, priors, self.n_components)
        rng = as_generator(self.random_state)
        layout = Layout(self.n_components, values.shape[1], self.covariance_type)
        start_parameters = _em_start(
            values, self.n_components, self.covariance_type, self.em_n_init,
            int(rng.integers(2**31 - 1)),
        )
        block = pack_block(values, resolved, self.n_components, self.covariance_type)
        # A 1e-6 nudge in the unconstrained space, invisible at the posterior's
        # scale: nutpie rejects a start whose gradient has an exact zero (e.g.
        # a correlation of exactly 0 in a component no point belongs to).
        start = parameters_to_unconstrained(start_parameters, layout)
        start = start + 1e-6 * rng.standard_normal(start.shape)
        start_logp, start_grad = logp_and_grad(start, block)
        if not (np.isfinite(start_logp) and np.all(np.isfinite(start_grad))):
            raise ValueError(
                "The EM starting point has a non-finite posterior density: the data cannot "
                f"support {self.n_components} components (too few distinct points, or "
                "duplicated rows). Use fewer components or remove duplicated rows."
            )
        sample = sample_posterior(
            self._settings(),
            block=block,
            start=start,
            layout=layout,
            model_factory=lambda: build_model(
                pd.DataFrame(raw.values, columns=names), self.n_components, priors,
                self.covariance_type,
            ),
            rng=rng,
        )
        em_start = to_data_units(start_parameters, centre, scale)
        draws = to_data_units(sample.parameters, centre, scale)
        chains, n_draws = draws.weights.shape[:2]
        flat, result = relabel_draws(raw.values, flatten_draws(draws), em_start, self.relabel)
        relabelling = {"method": result.method, "n_permuted": result.n_permuted,
                       "n_draws": int(flat.weights.shape[0]), "n_iter": result.n_iter,
                       "converged": bool(result.converged)}
        log_lik = pointwise_log_likelihood(raw.values, flat).reshape(chains, n_draws, -1)
        relabelled = ModelParameters(
            *(a.reshape((chains, n_draws) + a.shape[1:]) for a in flat)
        )
        attrs = {
            **self._provenance(priors, raw.values, sample.elapsed),
            "params": stored_params,
            "relabelling": json.dumps(relabelling),
        }
        tree = build_datatree(
            relabelled,
            sample_stats=sample.sample_stats,
            log_likelihood=log_lik,
            observed=raw.values,
            feature_names=names,
            attrs=attrs,
            extra_groups=sample.extra_groups,
        )
        # Fitted attributes are set together, only once everything succeeded.
        self._set_fitted(tree, flat, priors)
        self.em_start_ = em_start
        if not self.diagnostics_.ok:
            warnings.warn(
                "The posterior failed some convergence checks: "
                + " ".join(self.diagnostics_.remedies)
                + " Call .diagnose() for the full table.",
                DiagnosticsWarning,
                stacklevel=2,
            )
        return self

    def _set_fitted(self, tree: xr.DataTree, flat: ModelParameters, priors: GMMPriors) -> None:
        self.idata_ = tree
        self.priors_ = priors
        self.relabelling_ = json.loads(str(tree.attrs["relabelling"]))
        self.feature_names_in_ = np.asarray(tree.posterior["feature"].values).astype(str)
        self.n_features_in_ = len(self.feature_names_in_)
        self._parameters = flat
        self.diagnostics_ = self.diagnose()

    def _provenance(self, priors: GMMPriors, values, elapsed: float) -> dict[str, Any]:
        try:
            version = importlib.metadata.version("bayesgmm")
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        return {
            "bayesgmm_version": version,
            "priors": priors.to_json(),
            "n_components": int(self.n_components),
            "covariance_type": self.covariance_type,
            "method": self.method,
            "engine": self.engine,
            "random_state": repr(self.random_state) if not isinstance(
                self.random_state, (int, np.integer)) else int(self.random_state),
            "data_sha256": data_fingerprint(values),
            "sampling_seconds": float(elapsed),
        }

    # ------------------------------------------------------------ fitted state
    def _check_fitted(self):
        if not hasattr(self, "idata_"):
            raise AttributeError(
                "This BayesianGMM is not fitted yet; call fit(X) or bayesgmm.load(path)."
            )

    def _new_data(self, X) -> np.ndarray:
        """Checked new data, with DataFrame columns matched to the fitted features by name."""
        self._check_fitted()
        if isinstance(X, pd.DataFrame):
            missing = [name for name in self.feature_names_in_ if name not in X.columns.astype(str)]
            if missing:
                raise DataValidationError(
                    f"X has no column '{missing[0]}', which the model was fitted on (needs: "
                    f"{', '.join(self.feature_names_in_)}); pass those columns."
                )
            X = X.set_axis(X.columns.astype(str), axis=1)[list(self.feature_names_in_)]
        return check_X(X, n_features=self.n_features_in_, reject_constant=False).values

    # ------------------------------------------------------------ membership
    def membership_summary(self, X) -> xr.Dataset:
        """Per-point membership probabilities with intervals and uncertainty split.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)

        Returns
        -------
        xarray.Dataset
            ``prob``, ``prob_lower``, ``prob_upper`` (obs, component);
            ``entropy`` (total), ``expected_entropy`` (aleatoric),
            ``mutual_information`` (epistemic), ``label``, ``confidence``
            (obs).  See :mod:`bayesgmm.membership`.
        """
        values = self._new_data(X)
        arrays = membership_arrays(values, self._parameters, self.interval)
        by_component = ("obs", "component")
        dataset = xr.Dataset(
            {
                "prob": (by_component, arrays.prob),
                "prob_lower": (by_component, arrays.prob_lower),
                "prob_upper": (by_component, arrays.prob_upper),
                "entropy": ("obs", arrays.entropy),
                "expected_entropy": ("obs", arrays.expected_entropy),
                "mutual_information": ("obs", arrays.mutual_information),
                "label": ("obs", arrays.label),
                "confidence": ("obs", arrays.confidence),
            },
            coords={"obs": np.arange(values.shape[0]),
                    "component": np.arange(self.n_components)},
        )
        dataset.attrs["interval"] = self.interval
        return dataset

    def predict_proba(self, X) -> np.ndarray:
        """Posterior-mean membership probabilities, shape (n_samples, n_components)."""
        return mean_membership(self._new_data(X), self._parameters)

    def predict(self, X) -> np.ndarray:
        """Most probable component of every point (posterior-mean membership)."""
        return self.predict_proba(X).argmax(axis=1)

    def coclustering(self, X) -> np.ndarray:
        """Posterior probability that two points share a component, (n, n)."""
        return coclustering_matrix(self._new_data(X), self._parameters)

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
            ``1 .. n_components``.
        """
        self._check_fitted()
        values = (self.idata_.observed_data["x"].values if X is None else self._new_data(X))
        counts = occupied_component_counts(values, self._parameters, as_generator(random_state))
        frequencies = np.bincount(counts, minlength=self.n_components + 1)[1:]
        return pd.Series(
            frequencies / counts.size, index=pd.RangeIndex(1, self.n_components + 1,
                                                           name="occupied_components"),
            name="probability",
        )

    # ------------------------------------------------------------ density
    def score_samples(self, X) -> np.ndarray:
        """Posterior-predictive log density of every point (log-mean-exp over draws)."""
        return predictive_density(self._new_data(X), self._parameters, interval=None).log_density

    def anomaly_scores(self, X) -> xr.Dataset:
        """Anomaly score ``-log p(x | data)`` with an interval over draws.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)

        Returns
        -------
        xarray.Dataset
            ``score``, ``lower``, ``upper`` (obs); larger is more anomalous.
        """
        density = self.density_summary(X)
        return xr.Dataset(
            {
                "score": -density["log_density"],
                "lower": -density["upper"],
                "upper": -density["lower"],
            },
            attrs=density.attrs,
        )

    def density_summary(self, X) -> xr.Dataset:
        """Predictive log density with its credible band (``log_density``, ``lower``, ``upper``)."""
        density = predictive_density(self._new_data(X), self._parameters, self.interval)
        return xr.Dataset(
            {name: ("obs", value) for name, value in density._asdict().items()},
            coords={"obs": np.arange(density.log_density.shape[0])},
            attrs={"interval": self.interval},
        )

    # ------------------------------------------------------------ diagnostics
    def diagnose(self) -> Diagnostics:
        """Convergence diagnostics on the relabelled draws (see :mod:`bayesgmm.diagnostics`)."""
        self._check_fitted()
        tree = self.idata_
        total = tree.log_likelihood["x"].values.sum(axis=-1)
        if tree.attrs["method"] == "nuts":
            return diagnose_nuts(
                tree.posterior.to_dataset(), tree.sample_stats.to_dataset(), total,
                tree.attrs["covariance_type"],
            )
        stats = tree.sample_stats.to_dataset()
        log_ratio = (stats["lp"] - stats["log_q"]).values.ravel()
        return diagnose_advi(tree["vi_trace"]["elbo"].values, log_ratio)

    # ------------------------------------------------------------ persistence
    def save(self, path, overwrite: bool = False):
        """Write the fitted model to netCDF (never overwrites without ``overwrite=True``)."""
        self._check_fitted()
        return save_datatree(self.idata_, path, overwrite=overwrite)

    @classmethod
    def from_datatree(cls, tree: xr.DataTree) -> BayesianGMM:
        """Rebuild a fitted model from its DataTree (as written by :meth:`save`).

        Raises
        ------
        ModelFileError
            When settings are missing or unreadable, or the stored data do not
            match the recorded SHA-256 (the file was altered).
        """
        try:
            params = json.loads(str(tree.attrs["params"]))
            if params["priors"] is not None:
                params["priors"] = GMMPriors.from_dict(params["priors"])
            priors = GMMPriors.from_json(str(tree.attrs["priors"]))
            expected = str(tree.attrs["data_sha256"])
            observed = tree.observed_data["x"].values
            model = cls(**params)
            model._set_fitted(tree, parameters_from_posterior(tree.posterior.to_dataset()),
                              priors)
        except (KeyError, ValueError, TypeError) as error:
            raise ModelFileError(
                f"the model file lacks or garbles its settings ({type(error).__name__}: "
                f"{error}); re-save it from the fitted model."
            ) from None
        if data_fingerprint(observed) != expected:
            raise ModelFileError(
                "the data stored in the model file do not match its recorded SHA-256; the "
                "file was altered after saving. Re-fit or re-save the model."
            )
        return model


def load(path) -> BayesianGMM:
    """Load a model saved by :meth:`BayesianGMM.save`.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    BayesianGMM
    """
    return BayesianGMM.from_datatree(load_datatree(path))
