"""Diagnostic gates on synthetic draws with known problems."""

import numpy as np
import xarray as xr

from bayesgmm.diagnostics import diagnose_advi, diagnose_nuts
from bayesgmm.parameters import ModelParameters


def posterior_from(means, n_features=2):
    chains, draws, n_components = means.shape[:3]
    correlations = np.broadcast_to(np.eye(n_features), (chains, draws, n_components, n_features, n_features))
    return ModelParameters(
        np.full((chains, draws, n_components), 1.0 / n_components)
        + 0.01 * np.random.default_rng(1).normal(size=(chains, draws, n_components)),
        means,
        np.exp(0.05 * np.random.default_rng(2).normal(size=means.shape)),
        correlations,
    )


def stats_from(chains, draws, diverging=0, energy_scale=1.0, rng=None):
    rng = rng or np.random.default_rng(0)
    flags = np.zeros((chains, draws), dtype=bool)
    flags.flat[:diverging] = True
    energy = np.cumsum(rng.normal(size=(chains, draws)) * energy_scale, axis=1) if energy_scale != 1.0 else rng.normal(size=(chains, draws))
    return xr.Dataset({"diverging": (("chain", "draw"), flags), "energy": (("chain", "draw"), energy)})


def test_well_mixed_draws_pass_every_gate(rng):
    means = rng.normal(size=(4, 1000, 2, 2))
    log_lik = rng.normal(-500, 2, size=(4, 1000))
    result = diagnose_nuts(posterior_from(means), stats_from(4, 1000), log_lik, "diag")
    assert result.ok, result
    assert result.remedies == []


def test_chain_in_another_mode_is_flagged_with_a_remedy(rng):
    means = rng.normal(size=(4, 1000, 2, 2))
    means[3] += 5.0  # one chain elsewhere: not a permutation, a different solution
    log_lik = rng.normal(-500, 2, size=(4, 1000))
    log_lik[3] -= 30.0
    result = diagnose_nuts(posterior_from(means), stats_from(4, 1000), log_lik, "diag")
    assert not result.ok
    assert {"rhat", "rhat_log_lik", "modes"} <= set(result.failed)
    assert any("Chains [3]" in remedy for remedy in result.remedies)


def test_divergences_and_low_ebfmi_are_flagged(rng):
    means = rng.normal(size=(4, 1000, 2, 2))
    log_lik = rng.normal(-500, 2, size=(4, 1000))
    stats = stats_from(4, 1000, diverging=7, energy_scale=3.0)
    result = diagnose_nuts(posterior_from(means), stats, log_lik, "diag")
    assert "divergences" in result.failed and "ebfmi" in result.failed
    assert any("target_accept" in remedy for remedy in result.remedies)


def test_few_effective_draws_are_flagged(rng):
    walk = np.cumsum(rng.normal(size=(4, 1000, 2, 2)), axis=1) * 0.05
    log_lik = rng.normal(-500, 2, size=(4, 1000))
    result = diagnose_nuts(posterior_from(walk), stats_from(4, 1000), log_lik, "diag")
    assert "ess_bulk" in result.failed


def test_advi_gates(rng):
    elbo = np.concatenate([np.linspace(-600, -500, 5000), np.full(5000, -500.0)]) + rng.normal(0, 1, 10000)
    good = diagnose_advi(elbo, rng.normal(0, 0.1, size=1000))
    assert good.ok
    heavy = diagnose_advi(elbo, rng.standard_t(1.2, size=1000) * 5)
    assert "khat" in heavy.failed
    moving = diagnose_advi(np.linspace(-600, -500, 10000), rng.normal(0, 0.1, size=1000))
    assert "elbo_converged" in moving.failed


def test_one_chain_is_never_reported_as_chains_agreeing(rng):
    means = rng.normal(size=(1, 1000, 2, 2))
    result = diagnose_nuts(posterior_from(means), stats_from(1, 1000), rng.normal(-500, 2, size=(1, 1000)), "diag")
    table = result.table
    assert not table.loc["modes", "ok"] and not table.loc["modes", "assessed"]
    assert table.loc["modes", "verdict"].startswith("not assessed")
    # R-hat is split R-hat over the chain's halves: assessed, and it says so.
    assert table.loc["rhat", "assessed"] and "halves" in table.loc["rhat", "verdict"]
    assert not result.ok and any("chains >= 2" in remedy for remedy in result.remedies)


def test_a_chain_that_drifts_in_its_second_half_fails_split_rhat(rng):
    means = rng.normal(size=(1, 1000, 2, 2))
    means[0, 500:] += 3.0
    result = diagnose_nuts(posterior_from(means), stats_from(1, 1000), rng.normal(-500, 2, size=(1, 1000)), "diag")
    assert not result.table.loc["rhat", "ok"] and result.table.loc["rhat", "assessed"]


def test_a_parameter_that_never_moves_is_not_assessed(rng):
    means = np.zeros((4, 200, 2, 2))  # stuck chains: R-hat is 0/0
    result = diagnose_nuts(posterior_from(means), stats_from(4, 200), rng.normal(-500, 2, size=(4, 200)), "diag")
    assert not result.table.loc["rhat", "ok"] and not result.table.loc["rhat", "assessed"]
