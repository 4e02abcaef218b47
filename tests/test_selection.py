"""compare_k: LOO/WAIC/stacking beside BIC/ICL and the occupied-component posterior."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from bayesgmm import GaussianMixtureEM, compare_k
from bayesgmm.datasets import make_mixture

SETTINGS = dict(draws=1000, tune=600, chains=4, random_state=0)


def separated(true_k, n_samples=300, seed=0):
    """True K clusters on a circle of radius 8 (unit covariance, equal weights)."""
    if true_k == 1:
        means = np.zeros((1, 2))
    else:
        angles = 2 * np.pi * np.arange(true_k) / true_k
        means = 8.0 * np.column_stack([np.cos(angles), np.sin(angles)])
    X, _ = make_mixture(n_samples, np.full(true_k, 1 / true_k), means,
                        np.tile(np.eye(2), (true_k, 1, 1)), random_state=seed)
    return X


@pytest.mark.parametrize("true_k", [1, 2, 3, 4])
def test_true_k_wins_on_every_view(true_k):
    X = separated(true_k)
    selection = compare_k(X, ks=range(1, true_k + 2), progressbar=False, **SETTINGS)
    table = selection.table
    assert table["error"].eq("").all()
    # LOO (one-SE rule among converged fits): the true K is chosen.
    assert selection.best_k == true_k, selection.rule
    # Sparse overfitted mixture: the true K carries the most posterior mass.
    assert selection.occupied.idxmax() == true_k
    # EM: the true K has the best (lowest) BIC.
    assert table["bic_lower_is_better"].idxmin() == true_k


def test_table_columns_and_sign_conventions():
    X = separated(2)
    selection = compare_k(X, ks=[1, 2, 3], progressbar=False, **SETTINGS)
    table = selection.table
    for column in ["rank", "elpd_loo", "se", "elpd_diff", "dse", "stacking_weight", "p_loo",
                   "loo_method", "max_khat", "share_high_khat", "loo_caveat", "elpd_waic",
                   "bic_lower_is_better", "aic_lower_is_better", "icl_lower_is_better",
                   "p_occupied", "max_rhat", "divergences", "seconds", "error"]:
        assert column in table.columns, column
    assert (table["elpd_diff"].dropna() <= 1e-9).all()  # ranked (eligible) rows only
    ranked = table.dropna(subset=["elpd_diff"])  # az.compare ranks the eligible fits only
    assert ranked.loc[ranked["elpd_loo"].idxmax(), "elpd_diff"] == pytest.approx(0.0)
    assert table["stacking_weight"].isna().equals(~table["converged"].astype(bool))
    assert table["stacking_weight"].sum() == pytest.approx(1.0)
    em = GaussianMixtureEM(2, n_init=10, tol=1e-6, max_iter=1000, random_state=0).fit(X)
    assert table.loc[2, "bic_lower_is_better"] == pytest.approx(em.bic(X), rel=1e-6)
    assert (table["icl_lower_is_better"] >= table["bic_lower_is_better"] - 1e-6).all()
    # WAIC and PSIS-LOO estimate the same elpd; on this well-behaved model
    # they differ by far less than its standard error (~15 nats): allow 2.
    assert table.loc[2, "elpd_waic"] == pytest.approx(table.loc[2, "elpd_loo"], abs=2.0)
    assert "smallest K" in selection.rule
    ax = selection.plot()
    assert ax.get_ylabel() == "elpd (LOO)"
    plt.close("all")


def test_high_pareto_k_is_handled_and_reported():
    X = separated(2, n_samples=120)
    X[0] = [40.0, -40.0]  # a gross outlier: its LOO importance weights blow up
    selection = compare_k(X, ks=[1, 2], sparse=False, progressbar=False, **SETTINGS)
    table = selection.table
    assert (table["n_high_khat_psis"] > 0).any()
    flagged = table[table["n_high_khat_psis"] > 0]
    for _, row in flagged.iterrows():
        # Escalated, or (K-fold not allowed for a non-converged fit) flagged in words.
        assert row["loo_method"] in {"psis+mm", "kfold"} or "unreliable" in row["loo_caveat"]
    for _, row in table.iterrows():
        if row["share_high_khat"] > 0:
            assert "unreliable" in row["loo_caveat"]
        else:
            assert row["loo_caveat"] == ""


def test_one_failing_k_does_not_lose_the_others():
    X = separated(2, n_samples=60)
    selection = compare_k(X, ks=[1, 2, 100], sparse=False, progressbar=False, **SETTINGS)
    table = selection.table
    assert "n_samples = 60 and n_components = 100" in table.loc[100, "error"]
    assert table.loc[[1, 2], "error"].eq("").all()
    assert np.isnan(table.loc[100, "elpd_loo"])
    assert selection.best_k == 2
    assert set(selection.fits) == {1, 2}


@pytest.fixture(scope="module")
def sequential_sweep():
    """compare_k in this process on two separated clusters (the reference of the next tests)."""
    X = separated(2, n_samples=150)
    return X, compare_k(X, ks=[1, 2], sparse=False, progressbar=False, **SETTINGS)


def test_parallel_sweep_matches_sequential(sequential_sweep):
    X, sequential = sequential_sweep
    parallel = compare_k(X, ks=[1, 2], sparse=False, n_jobs=2, progressbar=False, **SETTINGS)
    np.testing.assert_allclose(parallel.table["elpd_loo"], sequential.table["elpd_loo"])
    assert parallel.best_k == sequential.best_k


def test_one_standard_error_rule_on_synthetic_tables():
    import pandas as pd

    from bayesgmm._selection_table import decide as _decide

    class Pointwise:
        def __init__(self, values):
            self.elpd_i = np.asarray(values, dtype=float)

    rng = np.random.default_rng(0)
    base = rng.normal(-3.0, 1.0, size=200)
    # K=3: 0.2 nats better in total, but its pointwise differences scatter by
    # 0.05, so the SE of the difference (~0.7) exceeds the gap.
    scatter = rng.normal(size=200)
    scatter -= scatter.mean()
    elpds = {1: Pointwise(base - 0.5), 2: Pointwise(base), 3: Pointwise(base + 0.05 * scatter + 0.001)}
    table = pd.DataFrame({"elpd_loo": [elpds[k].elpd_i.sum() for k in (1, 2, 3)],
                          "converged": [True, True, True]}, index=pd.Index([1, 2, 3], name="K"))
    # K=3 is best by a hair; K=2 is within one SE of the difference, K=1 is 100 nats worse.
    best_k, rule = _decide(table, elpds, se_rule=1.0)
    assert best_k == 2 and "K=3 has the highest elpd" in rule
    # A non-converged fit is not eligible, whatever its elpd.
    table.loc[2, "converged"] = False
    best_k, rule = _decide(table, elpds, se_rule=1.0)
    assert best_k == 3 and "not eligible" in rule
    table["converged"] = False
    assert _decide(table, elpds, 1.0)[0] == 2
    assert "treat with care" in _decide(table, elpds, 1.0)[1]


def test_waic_matches_its_definition():
    from scipy.special import logsumexp

    from bayesgmm.loo import waic

    log_lik = np.random.default_rng(0).normal(-2.0, 0.3, size=(4000, 50))
    expected = (logsumexp(log_lik, axis=0) - np.log(4000) - log_lik.var(axis=0, ddof=1)).sum()
    assert waic(log_lik).elpd_waic == pytest.approx(expected)
    assert waic(log_lik).n_high_variance == 0


def test_kfold_fallback_runs_when_moment_matching_is_not_enough(monkeypatch):
    import bayesgmm.loo as loo

    X = separated(2, n_samples=80)
    X[0] = [40.0, -40.0]
    monkeypatch.setattr(loo, "KFOLD_SHARE", -1.0)  # any remaining flag triggers K-fold
    selection = compare_k(X, ks=[1], sparse=False, progressbar=False, **SETTINGS)
    row = selection.table.loc[1]
    assert row["loo_method"] in {"psis", "kfold"}
    if row["n_high_khat_psis"] > 0:
        assert row["loo_method"] == "kfold"
        assert np.isfinite(row["elpd_loo"])


def test_kfold_is_never_mixed_with_psis(monkeypatch):
    import bayesgmm.loo as loo

    X = separated(2, n_samples=80)
    X[0] = [40.0, -40.0]  # flags points under K = 1 and 2 alike
    monkeypatch.setattr(loo, "KFOLD_SHARE", -1.0)  # any remaining flag triggers K-fold
    table = compare_k(X, ks=[1, 2], sparse=False, progressbar=False, **SETTINGS).table
    eligible = table[table["converged"].astype(bool)]
    methods = set(eligible["loo_method"])
    assert methods == {"kfold"} or "kfold" not in methods


def test_a_k_that_fails_only_on_noise_is_run_longer():
    X = separated(2, n_samples=120)
    # 4 x 50 draws cannot reach the ESS gate (400): doubled up to 400 per chain.
    selection = compare_k(X, ks=[2], sparse=False, progressbar=False, draws=50, tune=200,
                          chains=4, random_state=0, max_draws=400)
    row = selection.table.loc[2]
    assert row["extensions"] >= 1 and row["draws_per_chain"] == 50 * 2 ** row["extensions"]
    assert "run longer" in selection.rule
    no_extension = compare_k(X, ks=[2], sparse=False, progressbar=False, draws=50, tune=200,
                             chains=4, random_state=0, max_draws=50).table.loc[2]
    assert no_extension["extensions"] == 0


def test_variational_fits_are_refused_with_advice():
    with pytest.raises(ValueError, match="method='nuts'"):
        compare_k(separated(2, n_samples=50), ks=[1, 2], method="advi", progressbar=False)


def test_sparse_view_carries_its_own_diagnostics():
    X = separated(2, n_samples=150)
    selection = compare_k(X, ks=[1, 2, 3], progressbar=False, **SETTINGS)
    assert selection.sparse_diagnostics is not None
    assert "modes" in selection.sparse_diagnostics.table.index
    trusted = selection.table["p_occupied"].notna().all()
    assert trusted or "p_occupied is blank" in selection.rule


def test_sweep_on_a_dask_client_matches_in_process(sequential_sweep, dask_client):
    X, in_process = sequential_sweep
    on_client = compare_k(X, ks=[1, 2], sparse=False, progressbar=False, client=dask_client,
                          **SETTINGS)
    np.testing.assert_allclose(on_client.table["elpd_loo"], in_process.table["elpd_loo"])
    assert on_client.best_k == in_process.best_k
    with pytest.raises(ValueError, match="not both"):
        compare_k(X, ks=[1, 2], n_jobs=2, client=dask_client, **SETTINGS)
