"""Simulation-based calibration (Talts et al. 2018; Modrak et al. 2023) of BayesianGMM.

One simulation: draw parameters from the prior, draw a dataset, fit, and
record the rank of each true quantity among thinned posterior draws.  If the
fitting is correct, every rank is uniform.

* Priors are on the raw scale (``standardize=False``): a data-dependent
  prior would not be the prior the data were simulated from.
* Quantities are label-invariant: components are ordered by their mean on
  the first feature, in the truth and in every posterior draw separately,
  then ``means`` (every feature), ``weights`` and ``scales`` are matched by
  that order; plus the total log-likelihood of the simulated data, and the
  first component's first correlation when D > 1.
* Draws are thinned to about the effective sample size: ``n_ranks`` draws
  spread evenly over the chains, where ``n_ranks`` is the smaller of
  :data:`MAX_RANKS` and the minimum bulk ESS of the quantities.  Ranks are
  reported as randomised PIT values ``(rank + U) / (n_ranks + 1)``.
* Drop rule, depending on the simulated data alone: a dataset is dropped
  when EM on it (K components, 5 restarts) finds a component with fewer than
  :data:`MIN_EM_COMPONENT_SIZE` points.  Fits are never dropped for what the
  sampler did; divergences are counted and reported instead.

``make validate`` runs :func:`main`, which writes ``reports/validation/sbc.md``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from bayesgmm.priors import INVERSE_GAMMA_SHAPE, GMMPriors

__all__ = [
    "SBCConfig",
    "pit_value",
    "simulate_prior",
    "simulation_ranks",
    "run_sbc",
    "summarise",
    "main",
]

MAX_RANKS = 99
MIN_EM_COMPONENT_SIZE = 2
N_BINS = 20
COVERAGE_LEVELS = (0.5, 0.9, 0.95)


@dataclass(frozen=True)
class SBCConfig:
    """One SBC experiment."""

    name: str
    n_components: int
    n_features: int
    method: str = "nuts"
    n_samples: int = 100
    draws: int = 500
    tune: int = 500
    chains: int = 2
    priors: GMMPriors = GMMPriors(
        weight_concentration=3.0, mean_loc=0.0, mean_scale=3.0, scale_scale=1.0,
        lkj_eta=2.0, standardize=False,
    )
    covariance_type: str = "full"
    noise_half_width: float | None = None
    """With a noise component: its points are uniform on ``[-w, w]^D`` and the
    model is given ``noise_volume = (2 w)^D`` (a data-dependent default volume
    would make the prior depend on the data)."""

    @property
    def noise_volume(self) -> float | None:
        """The noise component's hypervolume, or None without one."""
        if self.noise_half_width is None:
            return None
        return float((2.0 * self.noise_half_width) ** self.n_features)


def pit_value(thinned_draws: np.ndarray, true_value: float, rng: np.random.Generator) -> float:
    """Randomised PIT of a true value among L posterior draws.

    The rank ``r = #{draws < true}`` is uniform on ``0..L`` when the draws
    are (nearly) independent draws from the exact posterior; adding a
    ``U(0, 1)`` jitter and dividing by ``L + 1`` makes it uniform on (0, 1).
    """
    rank = int(np.sum(np.asarray(thinned_draws) < true_value))
    return (rank + rng.uniform()) / (len(thinned_draws) + 1)


def _lkj_cholesky(n_features: int, eta: float, rng: np.random.Generator) -> np.ndarray:
    """One Cholesky factor of an LKJ(eta) correlation matrix (onion method)."""
    if n_features == 1:
        return np.ones((1, 1))
    beta = eta + (n_features - 2) / 2.0
    r12 = 2.0 * rng.beta(beta, beta) - 1.0
    correlation = np.array([[1.0, r12], [r12, 1.0]])
    for m in range(2, n_features):
        beta -= 0.5
        y = rng.beta(m / 2.0, beta)
        direction = rng.standard_normal(m)
        direction /= np.linalg.norm(direction)
        w = np.sqrt(y) * direction
        root = np.linalg.cholesky(correlation)
        z = root @ w
        correlation = np.block([[correlation, z[:, None]], [z[None, :], np.ones((1, 1))]])
    return np.linalg.cholesky(correlation)


def simulate_prior(config: SBCConfig, rng: np.random.Generator):
    """Draw parameters from the prior and a dataset from them.

    Returns
    -------
    parameters : ModelParameters
        Unbatched.
    X : ndarray of shape (n_samples, n_features)
    """
    from bayesgmm.noise import NoiseComponent
    from bayesgmm.parameters import Layout, ModelParameters

    k, d = config.n_components, config.n_features
    layout = Layout(k, d, config.covariance_type)
    resolved = config.priors.resolve(k, np.zeros(d), np.ones(d))
    concentration = resolved.weight_concentration
    if config.noise_half_width is not None:
        concentration = np.append(concentration, resolved.noise_concentration)
    all_weights = rng.dirichlet(concentration)
    means = rng.normal(resolved.mean_loc, resolved.mean_scale, size=(k, d))
    scales = np.broadcast_to(
        _scale_draws(resolved, layout.scale_shape, rng), (k, d)).copy()
    sets = max(layout.n_correlation_sets, 1)
    chol = np.stack([_lkj_cholesky(d, resolved.lkj_eta, rng) if layout.n_triangle
                     else np.eye(d) for _ in range(sets)])
    chol = np.broadcast_to(chol, (k, d, d)).copy()
    noise = None
    if config.noise_half_width is not None:
        noise = NoiseComponent(all_weights[-1], -float(np.log(config.noise_volume)))
    parameters = ModelParameters(all_weights[:k], means, scales, chol, noise)
    labels = rng.choice(len(all_weights), size=config.n_samples, p=all_weights)
    X = np.empty((config.n_samples, d))
    for component in range(k):
        rows = labels == component
        X[rows] = rng.multivariate_normal(means[component], parameters.covariances[component],
                                          size=int(rows.sum()))
    rows = labels == k
    if rows.any():
        width = config.noise_half_width
        X[rows] = rng.uniform(-width, width, size=(int(rows.sum()), d))
    return parameters, X


def _scale_draws(resolved, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Scales from the scale prior, one per sampled set (see ``Layout.scale_shape``)."""
    tau = resolved.scale_scale[:shape[1]]
    match resolved.scale_prior:
        case "half_normal":
            return np.abs(rng.normal(0.0, tau, size=shape))
        case "exponential":
            return rng.exponential(tau, size=shape)
        case "lognormal":
            return np.exp(rng.normal(np.log(tau), 1.0, size=shape))
        case "inverse_gamma":
            return tau / rng.gamma(INVERSE_GAMMA_SHAPE, 1.0, size=shape)
    raise ValueError(f"Unknown scale prior {resolved.scale_prior!r}.")


def _ordered_quantities(parameters, X, covariance_type):
    """Label-invariant quantities (components ordered by their first mean), by draw."""
    from bayesgmm.likelihood import pointwise_log_likelihood
    from bayesgmm.parameters import parameter_matrix
    from bayesgmm.relabel import relabel_parameters

    order = np.argsort(parameters.means[..., 0], axis=-1)
    ordered = relabel_parameters(parameters, order)
    names, matrix = parameter_matrix(ordered, covariance_type)
    quantities = dict(zip(names, matrix.T, strict=True))
    quantities["log_likelihood"] = pointwise_log_likelihood(X, ordered).sum(axis=1)
    return quantities


def simulation_ranks(config: SBCConfig, seed: int) -> dict:
    """Run one simulation; return PIT values, coverage hits and fit statistics.

    Parameters
    ----------
    config : SBCConfig
    seed : int
        Spawned by ``np.random.SeedSequence(seed).spawn(3)`` into three
        independent streams: the first draws the true parameters and the
        dataset, the second drives the fitting (the EM restarts of the drop
        rule, then BayesianGMM's EM start and sampler), the third the
        ``U(0, 1)`` jitter of the PIT values.  The fit thus shares no random numbers with the
        truth it is scored against, and changing how many numbers one stage
        draws leaves the others unchanged.

    Returns
    -------
    dict
        ``{"seed", "dropped": True}`` for a dropped dataset; otherwise also
        ``pit`` and ``hits`` (per quantity), ``n_ranks``, ``min_ess``,
        ``divergences`` and ``seconds``.
    """
    from arviz_stats import ess

    from bayesgmm.bayes import BayesianGMM, diagnostics_reported
    from bayesgmm.em import reference_em
    from bayesgmm.parameters import map_draws
    from bayesgmm.posterior import parameters_from_posterior

    truth_seed, fit_seed, rank_seed = np.random.SeedSequence(seed).spawn(3)
    truth, X = simulate_prior(config, np.random.default_rng(truth_seed))
    fit_rng = np.random.default_rng(fit_seed)
    em = reference_em(X, config.n_components, config.covariance_type, n_init=5,
                      random_state=fit_rng, noise_volume=config.noise_volume)
    labels = em.predict(X)
    smallest = int(np.bincount(labels[labels >= 0], minlength=config.n_components).min())
    if smallest < MIN_EM_COMPONENT_SIZE:
        return {"seed": seed, "dropped": True}
    began = time.perf_counter()
    with diagnostics_reported():  # divergences and ESS are recorded per simulation
        fit = BayesianGMM(
            config.n_components, covariance_type=config.covariance_type,
            noise=config.noise_volume is not None, noise_volume=config.noise_volume,
            priors=config.priors, method=config.method,
            draws=config.draws, tune=config.tune, chains=config.chains, cores=1,
            random_state=fit_rng, progressbar=False,
        ).fit(X)
    seconds = time.perf_counter() - began
    posterior = fit.idata_.posterior
    chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]
    flat = parameters_from_posterior(posterior.to_dataset())
    draws_quantities = _ordered_quantities(flat, X, fit.covariance_type)
    true_quantities = _ordered_quantities(
        map_draws(truth, lambda a: a[None]), X, fit.covariance_type
    )
    matrix = np.stack([v.reshape(chains, draws) for v in draws_quantities.values()], axis=-1)
    min_ess = float(np.min(ess(matrix, method="bulk"))) if chains > 1 or draws > 3 else 1.0
    n_ranks = int(max(1, min(MAX_RANKS, np.floor(min_ess))))
    # Evenly spaced draws across the interleaved chains: thinned to ~ESS.
    index = np.linspace(0, chains * draws - 1, n_ranks).round().astype(int)
    interleaved = matrix.transpose(1, 0, 2).reshape(chains * draws, -1)
    rank_rng = np.random.default_rng(rank_seed)
    pit, hits = {}, {}
    for column, (name, true_value) in enumerate(true_quantities.items()):
        pit[name] = pit_value(interleaved[index, column], true_value[0], rank_rng)
        all_draws = interleaved[:, column]
        hits[name] = [
            bool(np.quantile(all_draws, (1 - level) / 2) <= true_value[0]
                 <= np.quantile(all_draws, (1 + level) / 2))
            for level in COVERAGE_LEVELS
        ]
    stats_group = fit.idata_.sample_stats
    divergences = int(stats_group["diverging"].sum()) if "diverging" in stats_group else 0
    return {"seed": seed, "dropped": False, "pit": pit, "hits": hits, "n_ranks": n_ranks,
            "min_ess": min_ess, "divergences": divergences, "seconds": seconds}


def run_sbc(config: SBCConfig, n_simulations: int, n_jobs: int = 1, first_seed: int = 0):
    """Run ``n_simulations`` simulations (in processes when ``n_jobs > 1``)."""
    seeds = range(first_seed, first_seed + n_simulations)
    if n_jobs == 1:
        return [simulation_ranks(config, seed) for seed in seeds]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=n_jobs, mp_context=context) as pool:
        return list(pool.map(simulation_ranks, [config] * n_simulations, seeds))


def summarise(results: list[dict], n_bins: int = N_BINS) -> dict:
    """chi-square p-values, coverage, ECDF band check and counts per quantity."""
    from arviz_stats.ecdf_utils import ecdf_pit

    kept = [r for r in results if not r["dropped"]]
    summary = {"n_simulations": len(results), "n_dropped": len(results) - len(kept),
               "n_with_divergences": sum(r["divergences"] > 0 for r in kept),
               "median_min_ess": float(np.median([r["min_ess"] for r in kept])) if kept else 0,
               "quantities": {}}
    if not kept:
        return summary
    for name in kept[0]["pit"]:
        values = np.array([r["pit"][name] for r in kept])
        counts = np.histogram(values, bins=n_bins, range=(0.0, 1.0))[0]
        p_value = float(stats.chisquare(counts).pvalue)
        _, ecdf, lower, upper = ecdf_pit(values, 0.99, 1000, rng=np.random.default_rng(0))
        inside = bool(np.all((ecdf >= lower - 1e-12) & (ecdf <= upper + 1e-12)))
        coverage = np.mean([r["hits"][name] for r in kept], axis=0)
        summary["quantities"][name] = {
            "p_value": p_value, "ecdf_in_band": inside, "counts": counts.tolist(),
            "coverage": dict(zip([f"{level:.0%}" for level in COVERAGE_LEVELS],
                                 coverage.tolist(), strict=True)),
        }
    return summary


def _plot(results: list[dict], config: SBCConfig, out: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from arviz_stats.ecdf_utils import ecdf_pit

    kept = [r for r in results if not r["dropped"]]
    names = list(kept[0]["pit"])
    columns = 4
    rows = int(np.ceil(len(names) / columns))
    figure, axes = plt.subplots(2 * rows, columns, figsize=(3.2 * columns, 2.3 * 2 * rows),
                                squeeze=False)
    for position, name in enumerate(names):
        values = np.array([r["pit"][name] for r in kept])
        histogram = axes[2 * (position // columns), position % columns]
        histogram.hist(values, bins=N_BINS, range=(0, 1), color="C0", alpha=0.7)
        expected = len(values) / N_BINS
        band = stats.binom(len(values), 1 / N_BINS).ppf([0.005, 0.995])
        histogram.axhspan(*band, color="0.85", zorder=0)
        histogram.axhline(expected, color="black", linewidth=0.8)
        histogram.set_title(name, fontsize=8)
        points, ecdf, lower, upper = ecdf_pit(values, 0.99, 1000, rng=np.random.default_rng(0))
        difference = axes[2 * (position // columns) + 1, position % columns]
        difference.fill_between(points, lower - points, upper - points, color="0.85",
                                step="post")
        difference.step(points, ecdf - points, where="post", color="C0")
        difference.axhline(0, color="black", linewidth=0.6)
        difference.set_title("ECDF - uniform (99% simultaneous band)", fontsize=7)
    for empty in range(len(names), rows * columns):
        axes[2 * (empty // columns), empty % columns].set_visible(False)
        axes[2 * (empty // columns) + 1, empty % columns].set_visible(False)
    figure.tight_layout()
    name = f"sbc_{config.name}.png"
    figure.savefig(out / name, dpi=90)
    plt.close(figure)
    return name


CONFIGS = {
    "nuts_k2_d1": SBCConfig("nuts_k2_d1", 2, 1),
    "nuts_k3_d2": SBCConfig("nuts_k3_d2", 3, 2),
    "advi_k2_d1": SBCConfig("advi_k2_d1", 2, 1, method="fullrank_advi", chains=1),
    # The default priors as users get them: stated on the standardised scale.
    # The fit re-standardises each simulated dataset by its own sample mean
    # and sd, so the prior it uses differs slightly from the one the truth was
    # drawn from (an empirical-Bayes shift); SBC shows what that costs.
    "nuts_k2_d2_standardized": SBCConfig("nuts_k2_d2_standardized", 2, 2,
                                         priors=GMMPriors(weight_concentration=3.0)),
    # The shared structures and the noise component (reports/validation/sbc_terms).
    "nuts_k2_d2_tied": SBCConfig("nuts_k2_d2_tied", 2, 2, covariance_type="tied"),
    "nuts_k3_d2_spherical": SBCConfig("nuts_k3_d2_spherical", 3, 2, covariance_type="spherical"),
    "nuts_k2_d2_noise": SBCConfig("nuts_k2_d2_noise", 2, 2, noise_half_width=12.0),
}
TERM_CONFIGS = ("nuts_k2_d2_tied", "nuts_k3_d2_spherical", "nuts_k2_d2_noise")
"""Configurations of the model terms added after the first SBC report."""


def render(sections: list[tuple[SBCConfig, dict, str, float]]) -> str:
    """Markdown report of several SBC experiments."""
    lines = ["# Simulation-based calibration of BayesianGMM", "",
             "Method: see `bayesgmm/validation/sbc.py` (priors on the raw scale, label-invariant "
             "quantities ordered by the first feature's mean, ranks among draws thinned to about "
             f"the ESS, at most {MAX_RANKS}). A quantity passes when its chi-square p-value over "
             f"{N_BINS} bins exceeds 0.01 / (number of quantities) and its ECDF stays inside the "
             "99% simultaneous band.", ""]
    for config, summary, figure, seconds in sections:
        quantities = summary["quantities"]
        threshold = 0.01 / max(1, len(quantities))
        noise = (f", noise on [-{config.noise_half_width:g}, {config.noise_half_width:g}]^D"
                 if config.noise_half_width is not None else "")
        lines += [f"## {config.name}: {config.method}, K = {config.n_components}, "
                  f"D = {config.n_features}, N = {config.n_samples}, "
                  f"{config.covariance_type}{noise}", "",
                  f"{summary['n_simulations']} simulations, {summary['n_dropped']} dropped by the "
                  f"data-only rule (EM component with < {MIN_EM_COMPONENT_SIZE} points), "
                  f"{summary['n_with_divergences']} kept fits had divergences. Median min ESS "
                  f"{summary['median_min_ess']:.0f}. {config.chains} chain(s) x {config.draws} "
                  f"draws. Wall time {seconds / 60:.1f} min. Pass threshold p > {threshold:.4f}.",
                  "",
                  "| quantity | chi2 p | ECDF in band | 50% cov. | 90% cov. | 95% cov. | pass |",
                  "|---|---|---|---|---|---|---|"]
        for name, q in quantities.items():
            ok = q["p_value"] > threshold and q["ecdf_in_band"]
            cov = q["coverage"]
            lines.append(f"| {name} | {q['p_value']:.3f} | {q['ecdf_in_band']} | "
                         f"{cov['50%']:.2f} | {cov['90%']:.2f} | {cov['95%']:.2f} | "
                         f"{'yes' if ok else '**no**'} |")
        mean_coverage = {level: np.mean([q["coverage"][level] for q in quantities.values()])
                         for level in ("50%", "90%", "95%")}
        failed = [name for name, q in quantities.items()
                  if not (q["p_value"] > threshold and q["ecdf_in_band"])]
        verdict = ("every quantity passes" if not failed
                   else f"{len(failed)} quantity(ies) fail: {', '.join(failed)}")
        lines += ["", f"Mean coverage over quantities: 50%: {mean_coverage['50%']:.3f}, "
                  f"90%: {mean_coverage['90%']:.3f}, 95%: {mean_coverage['95%']:.3f}. "
                  f"Verdict: {verdict}.", "", f"![SBC {config.name}]({figure})", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run the SBC experiments and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulations", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS))
    parser.add_argument("--out", type=Path, default=Path("reports/validation"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    sections = []
    for name in args.configs:
        config = CONFIGS[name]
        began = time.perf_counter()
        results = run_sbc(config, args.simulations, args.jobs)
        seconds = time.perf_counter() - began
        summary = summarise(results)
        figure = _plot(results, config, args.out)
        (args.out / f"sbc_{name}.json").write_text(json.dumps(
            {"summary": summary, "results": results}, indent=1, default=float))
        sections.append((config, summary, figure, seconds))
        print(f"{name}: {seconds / 60:.1f} min", flush=True)
    (args.out / "sbc.md").write_text(render(sections))
    print(f"wrote {args.out / 'sbc.md'}")


if __name__ == "__main__":
    main()
