"""compare_k over (covariance structure, K): one table, one rule, one plot."""

from dataclasses import replace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from bayesgmm import GaussianMixtureEM, compare_k  # noqa: E402
from bayesgmm._selection_table import decide  # noqa: E402
from bayesgmm.datasets import load_faithful  # noqa: E402
from bayesgmm.parameters import Layout  # noqa: E402

# A fast sampler setting (API tests): short runs, never extended.
FAST = dict(draws=300, tune=300, chains=4, max_draws=300, random_state=0, progressbar=False)
STRUCTURES = ("full", "tied")


@pytest.fixture(scope="module")
def faithful():
    return load_faithful()


@pytest.fixture(scope="module")
def two_structures(faithful):
    return compare_k(faithful, ks=[1, 2], covariance_types=STRUCTURES, **FAST)


@pytest.fixture(scope="module")
def full_only(faithful):
    return compare_k(faithful, ks=[1, 2], **FAST)


class Pointwise:
    """Stands in for an ELPD record: only the pointwise values matter to the rule."""

    def __init__(self, values):
        self.elpd_i = np.asarray(values, dtype=float)


def standardised(rng, size):
    """Draws with mean exactly 0 and (population) variance exactly 1."""
    values = rng.normal(size=size)
    return (values - values.mean()) / values.std()


def test_two_structures_share_one_table_indexed_by_structure_and_k(two_structures, faithful):
    table = two_structures.table
    assert table.index.names == ["covariance_type", "K"]
    assert list(table.index) == [("full", 1), ("full", 2), ("tied", 1), ("tied", 2)]
    expected = [Layout(k, faithful.shape[1], structure).size for structure, k in table.index]
    assert table["n_parameters"].tolist() == expected
    assert set(two_structures.fits) == set(table.index)
    assert two_structures.fits[("tied", 2)].covariance_type == "tied"
    eligible = table[table["converged"].astype(bool)]
    assert (two_structures.best_covariance_type, two_structures.best_k) in eligible.index
    # az.compare ran once over every eligible pair, across structures.
    assert table["stacking_weight"].isna().equals(~table["converged"].astype(bool))
    assert table["stacking_weight"].sum() == pytest.approx(1.0)
    assert eligible.loc[eligible["elpd_loo"].idxmax(), "elpd_diff"] == pytest.approx(0.0)
    assert "fewest free parameters" in two_structures.rule


def test_each_structure_gets_em_criteria_and_occupancy_of_its_own(two_structures, faithful):
    table = two_structures.table
    em = GaussianMixtureEM(2, covariance_type="tied", n_init=10, tol=1e-6, max_iter=1000,
                           random_state=0).fit(faithful)
    assert table.loc[("tied", 2), "bic_lower_is_better"] == pytest.approx(em.bic(faithful),
                                                                         rel=1e-6)
    # K = 1 is the same model under both structures; K = 2 is not.
    assert table.loc[("tied", 1), "bic_lower_is_better"] == pytest.approx(
        table.loc[("full", 1), "bic_lower_is_better"])
    assert table.loc[("tied", 2), "bic_lower_is_better"] != pytest.approx(
        table.loc[("full", 2), "bic_lower_is_better"])
    assert set(two_structures.sparse_diagnostics) == set(STRUCTURES)
    occupied = two_structures.occupied
    assert occupied.index.names == ["covariance_type", "occupied_components"]
    for structure in STRUCTURES:
        p_occupied = table.loc[structure, "p_occupied"]
        trusted = p_occupied.notna().all()
        assert trusted or f"p_occupied is blank for {structure}" in two_structures.rule
        if trusted:
            np.testing.assert_allclose(p_occupied, occupied[structure].loc[[1, 2]])


def test_a_structures_rows_do_not_depend_on_the_others(two_structures, full_only):
    # Every structure reuses the single-structure seeds: the full rows are
    # the ones a full-only sweep gives; only az.compare's columns (ranked
    # across structures) and n_parameters differ.
    multi = two_structures.table.loc["full"]
    single = full_only.table
    assert set(multi.columns) - set(single.columns) == {"n_parameters"}
    for column in ("elpd_loo", "se", "bic_lower_is_better", "max_rhat", "p_occupied"):
        np.testing.assert_array_equal(multi[column], single[column])


def test_default_call_keeps_the_k_table(full_only):
    table = full_only.table
    assert table.index.name == "K" and table.index.nlevels == 1
    assert "n_parameters" not in table.columns and "covariance_type" not in table.columns
    assert all(type(k) is int for k in full_only.fits)
    assert full_only.best_covariance_type == "full"
    assert "smallest K" in full_only.rule
    assert repr(full_only).startswith("KSelection(best_k=")


def test_one_listed_structure_is_the_same_as_covariance_type(faithful):
    listed = compare_k(faithful, ks=[1, 2], covariance_types=["tied"], sparse=False, **FAST)
    named = compare_k(faithful, ks=[1, 2], covariance_type="tied", sparse=False, **FAST)
    assert listed.table.index.name == "K" and listed.best_covariance_type == "tied"
    pd.testing.assert_frame_equal(listed.table.drop(columns="seconds"),
                                  named.table.drop(columns="seconds"))
    assert listed.rule == named.rule


@pytest.mark.parametrize(("settings", "message"), [
    (dict(covariance_types=["full", "tied"], covariance_type="full"),
     r"pass only covariance_types, listing every structure"),
    (dict(covariance_types=["full", "banana"]),
     r"among \('full', 'tied', 'diag', 'spherical'\), got \['full', 'banana'\] "
     r"\(unknown \['banana'\]\)"),
    (dict(covariance_type="banana"), r"covariance_type must name structures among"),
    (dict(covariance_types="tied"), r"covariance_type='tied' for one"),
    (dict(covariance_types=[]), r"\(it is empty\)"),
])
def test_structure_arguments_are_checked_before_any_fit(faithful, settings, message):
    with pytest.raises(ValueError, match=message):
        compare_k(faithful, ks=[1, 2], progressbar=False, **settings)


def rule_inputs(rng, n_points=100):
    """Pointwise elpds whose gaps to the best and SEs of the difference are known exactly.

    (full, 2) is best.  (tied, 2) is 0.5 below and (spherical, 2) 0.2
    below, each with SE of the difference exactly 1 (100 points of spread
    0.1); both have 8 free parameters.  (full, 1) is 100 below (5
    parameters).  (diag, 2) is 0.1 below with 4 parameters but did not
    pass the gates.
    """
    base = rng.normal(-3.0, 1.0, size=n_points)
    best = base + 0.02

    def below(gap):
        return best - gap / n_points + 0.1 * standardised(rng, n_points)

    elpds = {("full", 2): best, ("tied", 2): below(0.5), ("spherical", 2): below(0.2),
             ("full", 1): best - 1.0, ("diag", 2): below(0.1)}
    index = pd.MultiIndex.from_tuples(list(elpds), names=["covariance_type", "K"])
    table = pd.DataFrame({"elpd_loo": [values.sum() for values in elpds.values()],
                          "converged": [True, True, True, True, False],
                          "n_parameters": [11, 8, 8, 5, 4]}, index=index)
    return table, {key: Pointwise(values) for key, values in elpds.items()}


def test_rule_picks_the_fewest_parameters_within_one_se():
    table, elpds = rule_inputs(np.random.default_rng(0))
    chosen, rule = decide(table, elpds, se_rule=1.0)
    # tied and spherical are within 1 SE with 8 parameters; spherical has the
    # higher elpd.  full K=1 has fewer but is far out; diag is not eligible.
    assert chosen == ("spherical", 2)
    assert rule.startswith("fewest free parameters with elpd within 1 SE of the best: "
                           "(full, K=2) has the highest elpd among the eligible fits; "
                           "(spherical, K=2), with 8 free parameters, is 0.2 below it "
                           "(SE of the difference 1.0); not eligible ((diag, K=2):")
    # A tighter rule keeps only the best.
    assert decide(table, elpds, se_rule=0.1)[0] == ("full", 2)


def test_rule_for_one_structure_is_the_smallest_k_rule():
    rng = np.random.default_rng(1)
    base = rng.normal(-3.0, 1.0, size=100)
    pointwise = {1: base - 0.5, 2: base + 0.1 * standardised(rng, 100), 3: base + 0.005}
    single = pd.DataFrame({"elpd_loo": [values.sum() for values in pointwise.values()],
                           "converged": True}, index=pd.Index([1, 2, 3], name="K"))
    chosen, rule = decide(single, {k: Pointwise(v) for k, v in pointwise.items()}, 1.0)
    assert chosen == 2
    assert rule == ("smallest K with elpd within 1 SE of the best: K=3 has the highest elpd; "
                    "K=2 is 0.5 below it (SE of the difference 1.0)")
    # The same fits as one structure in a (covariance_type, K) table with
    # their parameter counts: the count grows with K, so the choice is the same.
    keyed = single.set_axis(pd.MultiIndex.from_product([["full"], [1, 2, 3]],
                                                      names=["covariance_type", "K"]))
    keyed["n_parameters"] = [Layout(k, 2, "full").size for k in (1, 2, 3)]
    elpds = {("full", k): Pointwise(v) for k, v in pointwise.items()}
    assert decide(keyed, elpds, 1.0)[0] == ("full", 2)


def test_plot_draws_one_elpd_and_one_bic_line_per_structure(two_structures):
    elpd_ax, bic_ax = two_structures.plot()
    assert [container.get_label() for container in elpd_ax.containers] == list(STRUCTURES)
    assert [line.get_label() for line in bic_ax.get_lines()] == list(STRUCTURES)
    assert elpd_ax.get_ylabel() == "elpd (LOO)" and bic_ax.get_ylabel() == "BIC"
    assert [text.get_text() for text in elpd_ax.get_legend().get_texts()][:2] == list(STRUCTURES)
    with pytest.raises(ValueError, match=r"pass ax=\(elpd_ax, bic_ax\)"):
        two_structures.plot(ax=plt.subplots()[1])
    plt.close("all")


def test_plot_draws_ineligible_fits_hollow_in_their_structures_colour(two_structures):
    table = two_structures.table.assign(converged=[True, True, False, True])
    elpd_ax, _ = replace(two_structures, table=table).plot()
    hollow = [line for line in elpd_ax.get_lines() if line.get_markerfacecolor() == "white"]
    assert len(hollow) == 1 and len(hollow[0].get_xdata()) == 1
    assert hollow[0].get_markeredgecolor() == "C1"  # tied, the second structure
    assert hollow[0].get_ydata()[0] == table.loc[("tied", 1), "elpd_loo"]
    legend = [text.get_text() for text in elpd_ax.get_legend().get_texts()]
    assert "not eligible (label-invariant gates failed)" in legend
    plt.close("all")


def test_results_do_not_depend_on_n_jobs(faithful, two_structures):
    parallel = compare_k(faithful, ks=[1, 2], covariance_types=STRUCTURES, n_jobs=2, **FAST)
    for column in ("elpd_loo", "se", "elpd_diff", "stacking_weight", "p_occupied"):
        np.testing.assert_array_equal(parallel.table[column], two_structures.table[column])
    assert (parallel.best_covariance_type, parallel.best_k) == (
        two_structures.best_covariance_type, two_structures.best_k)
