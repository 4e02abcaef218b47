"""Leave-one-out predictive density and weighted quantiles."""

import numpy as np
import pytest

from bayesgmm import BayesianGMM
from bayesgmm.bayes import diagnostics_reported
from bayesgmm.density import loo_predictive_density, weighted_quantiles


def test_weighted_quantiles_reduce_to_plain_ones_with_equal_weights(rng):
    values = rng.normal(size=(1001, 3))
    log_weights = np.full(values.shape, -np.log(1001))
    quantiles = weighted_quantiles(values, log_weights, [0.1, 0.5, 0.9])
    np.testing.assert_allclose(quantiles, np.quantile(values, [0.1, 0.5, 0.9], axis=0,
                                                      method="inverted_cdf"), atol=1e-12)
    point_mass = np.log(np.r_[np.zeros(1000), 1.0] + 1e-300)[:, None]
    assert weighted_quantiles(values[:, :1], point_mass, [0.03])[0, 0] == values[-1, 0]


def test_loo_density_with_equal_weights_is_the_log_mean_density(rng):
    log_lik = rng.normal(-2.0, 0.5, size=(400, 5))
    log_weights = np.full(log_lik.shape, -np.log(400))
    density = loo_predictive_density(log_lik, log_weights, interval=0.9)
    expected = np.log(np.exp(log_lik).mean(axis=0))
    np.testing.assert_allclose(density.log_density, expected, rtol=1e-12)
    assert np.all(density.lower < density.upper)


def test_training_outlier_is_not_hidden_by_its_own_component():
    rng = np.random.default_rng(3)
    X = np.vstack([rng.normal([0, 0], 1.0, size=(150, 2)), rng.normal([8, 0], 1.0, size=(150, 2)),
                   [[4.0, 25.0]]])
    with diagnostics_reported():
        model = BayesianGMM(3, draws=500, tune=500, chains=2, random_state=0,
                            progressbar=False).fit(X)
    in_sample = model.anomaly_scores(X)
    out_of_sample = model.anomaly_scores()
    assert out_of_sample.attrs["method"] == "psis-loo"
    assert "pareto_k" in out_of_sample and "pareto_k" not in in_sample
    # A component sits on the outlier (the mean prior reaches every observed
    # value), so in sample it hides among the tail points; out of sample it is
    # among the two most anomalous (PSIS, k-hat ~0.64, recovers most of its
    # leave-one-out anomaly; the other is a genuine tail point between the
    # clusters), and scoring it with its own data in the fit understates it.
    in_scores, out_scores = in_sample["score"].values, out_of_sample["score"].values
    assert np.sum(in_scores > in_scores[300]) >= 3
    assert np.sum(out_scores > out_scores[300]) <= 1
    assert float(out_of_sample["score"][300]) > float(in_sample["score"][300]) + 1.0
    # Ordinary points score about the same either way (LOO barely moves them).
    typical = np.median(np.abs(out_of_sample["score"][:300] - in_sample["score"][:300]))
    assert typical == pytest.approx(0.0, abs=0.05)
