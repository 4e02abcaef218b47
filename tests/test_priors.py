"""Prior settings: the default keeps the posterior proper on tied (rounded) data."""

import numpy as np
import pytest

from bayesgmm import BayesianGMM, GMMPriors
from bayesgmm._checks import TiedValuesWarning, largest_ties
from bayesgmm._kernel import logp_and_grad, pack_block
from bayesgmm.parameters import Layout, ModelParameters, parameters_to_unconstrained
from bayesgmm.scaling import model_scale


def collapsing_log_density(priors, log_scales):
    """Log density along a path where component 0 sits on 20 tied points and its scale -> 0."""
    rng = np.random.default_rng(0)
    X = np.column_stack([np.r_[np.full(20, 1.5), rng.normal(size=180)],
                         np.r_[np.full(20, -0.5), rng.normal(size=180)]])
    scaled = model_scale(X, priors, 2)
    layout = Layout(2, 2, "full")
    block = pack_block(scaled.values, scaled.resolved, 2, "full")
    tied = scaled.values[0]
    values = []
    for u in log_scales:
        parameters = ModelParameters(np.array([0.1, 0.9]), np.array([tied, [0.0, 0.0]]),
                                     np.array([[np.exp(u)] * 2, [1.0, 1.0]]), np.eye(2)[None].repeat(2, 0))
        values.append(logp_and_grad(parameters_to_unconstrained(parameters, layout), block)[0])
    return np.array(values)


def test_default_scale_prior_vanishes_faster_than_any_power():
    assert GMMPriors().scale_prior == "inverse_gamma"


def test_default_posterior_is_bounded_as_a_scale_collapses_onto_ties():
    log_scales = -np.arange(2.0, 82.0, 4.0)
    density = collapsing_log_density(GMMPriors(), log_scales)
    # From the data's own scale down, the log density only falls, without bound.
    assert np.all(np.diff(density) < 0)
    assert density[-1] < density[0] - 1e30
    # The log-normal prior is proper too, but keeps a bump near u = -(m - 2):
    # 20 tied points in two features lift it far above the start of the path.
    lognormal = collapsing_log_density(GMMPriors(scale_prior="lognormal"), log_scales)
    assert lognormal.max() > lognormal[0] + 20 and lognormal[-1] < lognormal[0]
    # Under the half-normal prior the same path rises without bound:
    # ~(m - 2) = 18 nats per unit of -u per tied feature (improper posterior).
    improper = collapsing_log_density(GMMPriors(scale_prior="half_normal"), log_scales)
    slope = np.diff(improper[-5:]) / np.diff(-log_scales[-5:])
    assert np.all(slope > 30)


def test_largest_ties_counts_the_most_repeated_value():
    X = np.array([[1.0, 5.0], [1.0, 6.0], [2.0, 6.0], [1.0, 7.0]])
    assert largest_ties(X).tolist() == [3, 2]


def test_ties_warn_only_under_an_improper_scale_prior():
    from bayesgmm.bayes import diagnostics_reported
    from bayesgmm.datasets import load_faithful

    X = load_faithful()
    settings = dict(draws=100, tune=100, chains=2, random_state=0, progressbar=False)
    with diagnostics_reported(), pytest.warns(TiedValuesWarning, match="column 'waiting' repeats"):
        BayesianGMM(2, priors=GMMPriors(scale_prior="half_normal"), **settings).fit(X)
    with diagnostics_reported():
        BayesianGMM(2, **settings).fit(X)  # warnings are errors in this suite: none here


@pytest.mark.parametrize("value", [None, -1.0, (1.0, 2.0)])
def test_lkj_eta_must_be_one_positive_number(value):
    with pytest.raises(ValueError, match="lkj_eta must be a positive number"):
        GMMPriors(lkj_eta=value)
