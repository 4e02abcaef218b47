"""What a fitted Bayesian mixture answers: memberships, densities, draws, tables.

:class:`PosteriorQueries` holds the methods of :class:`bayesgmm.BayesianGMM`
that read a fitted posterior (``idata_`` and its flattened draws) and never
fit: each checks and matches the new data, then calls the pure function of
its module (:mod:`bayesgmm.membership`, :mod:`bayesgmm.density`,
:mod:`bayesgmm.predictive`, :mod:`bayesgmm.imputation`,
:mod:`bayesgmm.summary`), or its lazy Dask twin
(:mod:`bayesgmm._dask_scoring`).  The class that fits is in
:mod:`bayesgmm.bayes`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from sklearn.exceptions import NotFittedError

from bayesgmm._checks import as_generator, check_number, match_features
from bayesgmm._dask import is_dask_collection
from bayesgmm._dask_scoring import (
    dask_density,
    dask_labels,
    dask_mean_membership,
    dask_membership,
)
from bayesgmm._workload import PREDICTIVE_BUDGET
from bayesgmm.density import predictive_density
from bayesgmm.imputation import predictive_imputation
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
from bayesgmm.parameters import ModelParameters
from bayesgmm.posterior import OBSERVED
from bayesgmm.predictive import pit_tree, posterior_predictive_dataset, sample_mixture
from bayesgmm.summary import posterior_summary

__all__ = ["PosteriorQueries"]


def _keeps_a_sample(tree: xr.DataTree) -> bool:
    """Whether ``observed_data`` is a sample of the rows (a Dask fit, :mod:`bayesgmm.dask_fit`)."""
    return "laplace" in tree.children and tree["laplace"].attrs.get("observed_rows") == "sample"


class PosteriorQueries:
    """Methods on a fitted posterior; mixed into :class:`bayesgmm.BayesianGMM`.

    Expects ``idata_``, ``_parameters`` (draws flattened in (chain, draw)
    order, data units), ``feature_names_in_``, ``_labels`` and the
    estimator's ``n_components``, ``missing``, ``interval`` and
    ``random_state``.
    """

    # ------------------------------------------------------------ fitted state
    def _check_fitted(self):
        if not hasattr(self, "idata_"):
            raise NotFittedError(
                "This BayesianGMM is not fitted yet; call fit(X) or bayesgmm.load(path)."
            )

    @property
    def labels_(self) -> np.ndarray:
        """Most probable component of every training row (``predict`` on them), cached.

        A Dask fit keeps only a sample of its rows, so it has no ``labels_``:
        ``predict(X)`` on the collection gives them lazily.
        """
        self._check_fitted()
        if self._labels is None:
            if _keeps_a_sample(self.idata_):
                raise AttributeError(
                    "a model fitted on a Dask collection keeps a sample of its rows, not all "
                    "of them, so it has no labels_; call predict(X) on the collection."
                )
            self._labels = self.predict(self.idata_.observed_data[OBSERVED].values)
        return self._labels

    def fit_predict(self, X, y=None, sample_weight=None) -> np.ndarray:
        """Fit, then the most probable component of every row (``fit(X).labels_``).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        y : ignored
        sample_weight : array-like of shape (n_samples,), optional
            As in :meth:`fit`.

        Returns
        -------
        ndarray of int of shape (n_samples,)
            Lazy (a Dask array) for Dask input.
        """
        self.fit(X, sample_weight=sample_weight)
        return self.predict(X) if is_dask_collection(X) else self.labels_

    def _own_generator(self, random_state) -> np.random.Generator:
        """``random_state`` as a Generator, the model's own when None (as sklearn's ``sample``)."""
        return as_generator(self.random_state if random_state is None else random_state)

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

    def score(self, X, y=None, *, max_draws: int | None = None) -> float:
        """Mean posterior-predictive log density per row, as ``GaussianMixture.score``.

        The mean of :meth:`score_samples`; larger is better, so
        ``cross_val_score`` and ``GridSearchCV`` can rank models by held-out
        predictive density.  ``max_draws`` as in :meth:`membership_summary`.
        """
        return float(np.mean(self.score_samples(X, max_draws=max_draws)))

    def sample(self, n_samples: int = 1, random_state=None) -> tuple[np.ndarray, np.ndarray]:
        """Draw points from the posterior predictive, as ``GaussianMixture.sample``.

        Each point takes a posterior draw at random, then a component from
        its weights, then a value from that component
        (:func:`bayesgmm.predictive.sample_mixture`): the spread includes
        the parameters' uncertainty.  Noise points (label -1) are uniform on
        the noise box.

        Parameters
        ----------
        n_samples : int, default=1
        random_state : int, numpy.random.Generator or None
            None uses the model's ``random_state`` (so an integer one gives
            the same points every call, as in scikit-learn).

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
            In data units.
        y : ndarray of int of shape (n_samples,)
            The component of each point; -1 for the noise component.
        """
        self._check_fitted()
        check_number("n_samples", n_samples, low=1, integer=True)
        rng = self._own_generator(random_state)
        draws = rng.integers(self._parameters.weights.shape[0], size=int(n_samples))
        return sample_mixture(self._parameters, draws, rng)

    def sample_posterior_predictive(self, random_state=None) -> xr.DataTree:
        """Add the ``posterior_predictive`` group to ``idata_`` and return ``idata_``.

        For every posterior draw, a replicate of the training data: as many
        rows as ``observed_data`` (variable ``x``, dims ``(chain, draw, obs,
        feature)``, data units; :func:`bayesgmm.predictive.replicate_data`).
        ``az.plot_ppc_dist(model.idata_, cols=["feature"])`` then compares
        them with the data, feature by feature; :meth:`loo_pit` gives the
        LOO-PIT.  ``az.loo_pit(model.idata_)`` and ``az.plot_loo_pit`` work
        as they are for one-feature data only: arviz-stats expects one
        log-likelihood value per observed value, and a mixture has one per
        row; pass them ``bayesgmm.predictive.pit_tree(model.idata_)``
        instead.  The group is saved and loaded with the model; calling again
        replaces it.

        Parameters
        ----------
        random_state : int, numpy.random.Generator or None
            None uses the model's ``random_state``.

        Returns
        -------
        xarray.DataTree
            ``idata_``, now with ``posterior_predictive``.

        Raises
        ------
        ValueError
            When draws x rows x features exceed
            :data:`bayesgmm._workload.PREDICTIVE_BUDGET` (the replicate is kept
            and saved with the model): :meth:`sample` draws any number of
            points.  For a frequency-weighted fit, whose rows stand for
            ``w_i`` rows each, so that a replicate of the stored rows is not
            comparable with the data; :func:`bayesgmm.predictive.predictive_check_tree`
            resamples them by weight.
        """
        self._check_fitted()
        size = self._parameters.means.shape[0] * self.idata_.observed_data[OBSERVED].size
        if size > PREDICTIVE_BUDGET:
            raise ValueError(
                f"a replicate of every value for every draw would hold {size:,} numbers, over "
                f"the budget of {PREDICTIVE_BUDGET:,} (bayesgmm._workload.PREDICTIVE_BUDGET); "
                "use model.sample(n_samples) for predictive draws, or fit with fewer draws."
            )
        rng = self._own_generator(random_state)
        dataset = posterior_predictive_dataset(self.idata_, self._parameters, rng)
        self.idata_["posterior_predictive"] = xr.DataTree(dataset)
        return self.idata_

    def loo_pit(self, random_state=None) -> xr.DataArray:
        """LOO-PIT of every observed value: near-uniform per feature when calibrated.

        ``az.loo_pit`` on :func:`bayesgmm.predictive.pit_tree`, which gives
        each coordinate its row's leave-one-out weights (ArviZ's own
        ``az.loo_pit(model.idata_)`` expects a log-likelihood per value, so it
        handles one-feature data only).  Needs :meth:`sample_posterior_predictive`
        first and a stored pointwise log-likelihood; a frequency-weighted fit
        is refused.

        Parameters
        ----------
        random_state : int or numpy.random.Generator, optional
            Breaks ties between replicated and observed values, as in
            ``az.loo_pit``.

        Returns
        -------
        xarray.DataArray
            Of dims (obs, feature); NaN for the rows with a missing value
            (:func:`bayesgmm.predictive.pit_tree` leaves them out).
        """
        import arviz as az

        self._check_fitted()
        pit = az.loo_pit(pit_tree(self.idata_), random_state=random_state)[OBSERVED]
        return pit.reindex(obs=self.idata_.observed_data["obs"])

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

    def summary(self) -> pd.DataFrame:
        """``arviz.summary`` of the interpretable parameters, in data units.

        Weights, means, scales and each correlation once, with the mean, sd,
        equal-tailed interval of mass ``interval``, bulk and tail ESS, R-hat
        and Monte Carlo errors per row; constant and duplicated entries left
        out (:func:`bayesgmm.summary.posterior_summary`).
        """
        self._check_fitted()
        return posterior_summary(self.idata_, self.interval)
