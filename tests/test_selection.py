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
    # LOO: the true K is chosen, or is within 4 elpd of the best.
    assert selection.best_k == true_k or table["elpd_loo"].max() - table.loc[true_k, "elpd_loo"] < 4
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
    assert (table["elpd_diff"] <= 1e-9).all()
    assert table.loc[table["elpd_loo"].idxmax(), "elpd_diff"] == pytest.approx(0.0)
    assert table["stacking_weight"].sum() == pytest.approx(1.0)
    em = GaussianMixtureEM(2, n_init=10, tol=1e-6, max_iter=1000, random_state=0).fit(X)
    assert table.loc[2, "bic_lower_is_better"] == pytest.approx(em.bic(X), rel=1e-6)
    assert (table["icl_lower_is_better"] >= table["bic_lower_is_better"] - 1e-6).all()
    # WAIC and LOO agree closely on this well-behaved model.
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
    assert set(flagged["loo_method"]) <= {"psis+mm", "kfold"}
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


def test_parallel_sweep_matches_sequential():
    X = separated(2, n_samples=150)
    sequential = compare_k(X, ks=[1, 2], sparse=False, progressbar=False, **SETTINGS)
    parallel = compare_k(X, ks=[1, 2], sparse=False, n_jobs=2, progressbar=False, **SETTINGS)
    np.testing.assert_allclose(parallel.table["elpd_loo"], sequential.table["elpd_loo"])
    assert parallel.best_k == sequential.best_k
