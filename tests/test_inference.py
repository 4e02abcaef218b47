"""Inference routes: the one ``match``, each engine's output form, reproducibility."""

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from bayesgmm import GMMPriors
from bayesgmm._kernel import logp_batch
from bayesgmm.datasets import load_faithful
from bayesgmm.fitting import prepare_problem
from bayesgmm.inference import SamplerSettings, parameters_from_pymc, sample_posterior
from bayesgmm.parameters import Layout


def settings(**changes):
    base = dict(method="nuts", engine="nutpie", draws=100, tune=150, chains=2, cores=1,
                target_accept=0.9, advi_iterations=1000, progressbar=False)
    return SamplerSettings(**{**base, **changes})


@pytest.fixture(scope="module")
def problem():
    return prepare_problem(load_faithful(), n_components=2, covariance_type="full",
                           priors=GMMPriors(), em_n_init=3, rng=np.random.default_rng(0))


def run(problem, chosen, seed=0):
    return sample_posterior(chosen, block=problem.block, start=problem.start,
                            layout=problem.layout, model_factory=None,
                            rng=np.random.default_rng(seed))


def test_nuts_on_nutpie_returns_chain_draw_parameters_and_common_stats(problem):
    sample = run(problem, settings())
    assert sample.parameters.means.shape == (2, 100, 2, 2)
    np.testing.assert_allclose(sample.parameters.weights.sum(axis=-1), 1.0)
    assert {"diverging", "energy", "lp", "step_size", "tree_depth"} <= set(sample.sample_stats)
    assert sample.sample_stats["diverging"].dtype == bool
    assert sample.extra_groups == {} and sample.elapsed > 0


def test_same_seed_same_draws(problem):
    first, second = run(problem, settings(), seed=5), run(problem, settings(), seed=5)
    np.testing.assert_array_equal(first.parameters.means, second.parameters.means)
    assert not np.array_equal(first.parameters.means, run(problem, settings(), 6).parameters.means)


def test_advi_reports_its_trace_and_the_density_at_each_draw(problem):
    sample = run(problem, settings(method="advi", draws=50))
    assert sample.parameters.means.shape == (1, 50, 2, 2)
    assert sample.extra_groups["vi_trace"]["elbo"].shape == (1000,)
    lp = sample.sample_stats["lp"].values[0]
    assert np.all(np.isfinite(lp)) and np.all(np.isfinite(sample.sample_stats["log_q"]))
    # lp is the compiled density at the draws (recomputed here from the returned draws).
    from bayesgmm.parameters import map_draws, parameters_to_unconstrained

    theta = parameters_to_unconstrained(map_draws(sample.parameters, lambda a: a[0]),
                                        problem.layout)
    np.testing.assert_allclose(lp, logp_batch(theta, problem.block), rtol=1e-9)


def test_unknown_routes_are_refused(problem):
    with pytest.raises(ValueError, match="compiled density only"):
        run(problem, settings(method="advi", engine="pymc"))
    with pytest.raises(ValueError, match="compiled density only"):
        run(problem, settings(method="laplace", engine="pymc"))
    with pytest.raises(ValueError, match="method must be one of"):
        run(problem, settings(method="gibbs"))


def test_pymc_posterior_without_correlations_gets_identity():
    posterior = xr.Dataset({
        "weights": (("chain", "draw", "component"), np.full((1, 3, 2), 0.5)),
        "means": (("chain", "draw", "component", "feature"), np.zeros((1, 3, 2, 2))),
        "scales": (("chain", "draw", "component", "feature"), np.ones((1, 3, 2, 2))),
    })
    parameters = parameters_from_pymc(posterior, Layout(2, 2, "diag"))
    np.testing.assert_array_equal(parameters.correlation_cholesky,
                                  np.broadcast_to(np.eye(2), (1, 3, 2, 2, 2)))


def test_default_nuts_fit_imports_neither_pymc_nor_pytensor():
    script = (
        "import sys, warnings\n"
        "from bayesgmm import BayesianGMM\n"
        "from bayesgmm.datasets import load_faithful\n"
        "BayesianGMM(2, draws=50, tune=50, chains=1, progressbar=False, random_state=0)"
        ".fit(load_faithful())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pymc', 'pytensor')))\n"
    )
    # Warnings (a short run fails its ESS gate) do not matter here: only imports do.
    output = subprocess.run([sys.executable, "-W", "ignore", "-c", script], capture_output=True,
                            text=True, check=True)
    assert output.stdout.strip().splitlines()[-1] == "[]"


def test_chains_start_apart_within_the_posterior_scale(problem):
    from bayesgmm.inference import MAX_START_SPREAD, chain_start, start_spread

    spread = start_spread(problem.start, problem.block)
    assert spread.shape == problem.start.shape
    assert np.all(spread > 0) and np.all(spread <= MAX_START_SPREAD)
    # Means are known to about 0.1 sd of the data on Faithful: their spread is small.
    assert spread[problem.layout.slices["means"]].max() < 0.5
    first, second = chain_start(problem.start, spread, 1), chain_start(problem.start, spread, 2)
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(first, chain_start(problem.start, spread, 1))
    assert np.all(np.isfinite(logp_batch(np.stack([first, second]), problem.block)))


def test_a_partial_trace_is_refused_as_an_interrupt():
    from bayesgmm.inference import check_complete

    theta = np.zeros((2, 100, 5))
    check_complete(theta, 2, 100)
    with pytest.raises(KeyboardInterrupt):
        check_complete(theta[:, :40], 2, 100)
    theta[1, 60:] = np.nan  # nutpie pads an interrupted chain with NaN
    with pytest.raises(KeyboardInterrupt):
        check_complete(theta, 2, 100)


def test_ctrl_c_during_sampling_raises_keyboard_interrupt():
    script = (
        "import os, signal, threading\n"
        # Ctrl-C as a terminal delivers it.  A child inherits an ignored SIGINT, and
        # Python then leaves it ignored: once a Dask LocalCluster has run in this
        # pytest process, SIGINT is ignored here and the child sampled on for 300 s.
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "from bayesgmm import BayesianGMM\n"
        "from bayesgmm.datasets import load_faithful\n"
        "X = load_faithful()\n"
        "BayesianGMM(2, draws=20, tune=20, chains=1, progressbar=False).fit(X)\n"
        # 3 s: well inside sampling 1e6 draws, even on a loaded host.
        "threading.Timer(3.0, lambda: os.kill(os.getpid(), signal.SIGINT)).start()\n"
        "try:\n"
        "    BayesianGMM(2, draws=10**6, tune=500, chains=2, progressbar=False).fit(X)\n"
        "except KeyboardInterrupt as error:\n"
        "    print('interrupted:', error)\n"
    )
    output = subprocess.run([sys.executable, "-W", "ignore", "-c", script], capture_output=True,
                            text=True, timeout=300)
    assert "interrupted: sampling was interrupted" in output.stdout


def test_a_sparse_overfitted_fit_samples_even_where_nutpie_refuses_jittered_starts():
    from bayesgmm import BayesianGMM
    from bayesgmm.bayes import diagnostics_reported

    # This seed made nutpie panic ("Invalid initial point") on the jittered
    # starts of four chains; the fit must still sample (from identical starts).
    with diagnostics_reported():
        fit = BayesianGMM(6, priors=GMMPriors(weight_concentration=0.01), draws=200, tune=300,
                          random_state=4034658190, progressbar=False).fit(load_faithful())
    assert fit.idata_.posterior.sizes["chain"] == 4
    assert np.all(np.isfinite(fit.idata_.posterior["weights"].values))
