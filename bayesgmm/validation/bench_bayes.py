"""Benchmark: bayesgmm's Bayesian fit against what a PyMC user would run.

Old Faithful, K = 3 (and K = 2), full covariance, 4 chains x 1000 draws +
1000 tune.  Every measurement runs in its own subprocess so that "cold"
(empty compilation caches: a fresh ``NUMBA_CACHE_DIR`` and PyTensor
``base_compiledir``) and "warm" (caches filled by the previous run) are what a
user sees in a new Python session.  Rows:

* ``naive PyMC (peer a)``: ``peers/naive_pymc_gmm.py``, one LKJCholeskyCov per
  component, a list of components, ``pm.sample`` defaults;
* ``vectorised PyMC (peer b)``: bayesgmm's own ``build_model`` (batched
  components, LKJCorr) under ``pm.sample`` defaults (jittered initial points);
* ``bayesgmm NUTS (nutpie)``: ``BayesianGMM(engine="nutpie")``, end to end:
  EM start, sampling, relabelling, pointwise log-likelihood, diagnostics;
* ``bayesgmm NUTS (pymc engine)``: the same pipeline on ``pm.sample``;
* ``bayesgmm full-rank ADVI``.

ESS/s is the minimum bulk ESS over the relabelled parameters (weights,
means, scales, correlations) divided by the fit's wall time (imports
excluded, compilation included).  Peers' draws are relabelled by the same
code (pivot + Stephens against the EM solution) before ESS and R-hat are
computed, and their raw R-hat is shown too.

Run with ``make bench`` (with the EM benchmark) or
``python -m bayesgmm.validation.bench_bayes``; writes
``reports/benchmarks/bayes.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bayesgmm.validation import machine_note

DRAWS, TUNE, CHAINS, SEED = 1000, 1000, 4, 1
PEER = Path(__file__).with_name("peers") / "naive_pymc_gmm.py"


# ---------------------------------------------------------------- workers
def _faithful():
    from bayesgmm.datasets import load_faithful

    return load_faithful()


def _relabelled_diagnostics(parameters, X, n_components):
    """Relabel (chain, draw) draws with bayesgmm's code; ESS/R-hat on them."""
    from arviz_stats import ess, rhat

    from bayesgmm.fitting import em_start_parameters
    from bayesgmm.parameters import flatten_draws, parameter_matrix, unflatten_draws
    from bayesgmm.relabel import relabel_draws

    chains, draws = parameters.weights.shape[:2]
    flat = flatten_draws(parameters)
    relabelled, result = relabel_draws(X, flat, em_start_parameters(X, n_components, "full", 5, 0))
    matrix = parameter_matrix(unflatten_draws(relabelled, chains), "full")[1]
    raw_pieces = [flat.weights, flat.means]
    raw = np.concatenate([p.reshape(chains, draws, -1) for p in raw_pieces], axis=-1)
    return {
        "min_ess_bulk": float(np.min(ess(matrix, method="bulk"))),
        "max_rhat": float(np.max(rhat(matrix))),
        "max_rhat_raw": float(np.max(rhat(raw))),
        "n_permuted": result.n_permuted,
    }


def _em_labels(model, X) -> list[int]:
    """Hard labels of the EM solution this fit started from."""
    from bayesgmm.likelihood import log_joint
    from bayesgmm.parameters import map_draws

    start = map_draws(model.em_start_, lambda a: a[None])
    return log_joint(X.to_numpy(), start)[0].argmax(axis=1).tolist()


def worker_bayesgmm(n_components: int, method: str, engine: str) -> dict:
    began = time.perf_counter()
    from bayesgmm import BayesianGMM
    from bayesgmm.bayes import diagnostics_reported

    imported = time.perf_counter()
    X = _faithful()
    model = BayesianGMM(
        n_components, method=method, engine=engine, draws=DRAWS, tune=TUNE,
        chains=CHAINS, random_state=SEED, progressbar=False,
    )
    with diagnostics_reported():  # the report shows the diagnostics
        model.fit(X)
        second_began = time.perf_counter()
        BayesianGMM(
            n_components, method=method, engine=engine, draws=DRAWS, tune=TUNE,
            chains=CHAINS, random_state=SEED + 1, progressbar=False,
        ).fit(X)
    done = time.perf_counter()
    table = model.diagnostics_.table["value"]
    posterior = model.idata_.posterior
    result = {
        "import_s": imported - began,
        "fit_s": second_began - imported,
        "second_fit_same_process_s": done - second_began,
        "means": posterior["means"].mean(("chain", "draw")).values.tolist(),
        "means_sd": posterior["means"].std(("chain", "draw")).values.tolist(),
        "labels": model.predict(X).tolist(),
        "em_labels": _em_labels(model, X),
        "n_permuted": model.relabelling_.n_permuted,
    }
    if method == "nuts":
        result.update(
            min_ess_bulk=float(table["ess_bulk"]), max_rhat=float(table["rhat"]),
            rhat_log_lik=float(table["rhat_log_lik"]),
            divergences=int(table["divergences"]),
        )
    return result


def worker_vectorised_pymc(n_components: int) -> dict:
    import pymc as pm

    from bayesgmm.inference import parameters_from_pymc
    from bayesgmm.model import build_model
    from bayesgmm.parameters import Layout, to_data_units

    X = _faithful()
    began = time.perf_counter()
    model = build_model(X, n_components)
    # Runs in a worker process: its warnings go to stderr, not into the report.
    trace = pm.sample(draws=DRAWS, tune=TUNE, chains=CHAINS, random_seed=SEED,
                      progressbar=False, compute_convergence_checks=False, model=model)
    wall = time.perf_counter() - began
    values = X.to_numpy()
    parameters = to_data_units(
        parameters_from_pymc(trace.posterior.to_dataset(),
                              Layout(n_components, values.shape[1], "full")),
        values.mean(0), values.std(0),
    )
    result = {"fit_s": wall, "divergences": int(trace.sample_stats["diverging"].sum())}
    result.update(_relabelled_diagnostics(parameters, values, n_components))
    return result


def worker_naive(n_components: int) -> dict:
    data = Path(tempfile.mkdtemp()) / "faithful.csv"
    _faithful().to_csv(data, index=False)
    output = subprocess.run(
        [sys.executable, str(PEER), str(data), str(n_components), "--draws", str(DRAWS),
         "--tune", str(TUNE), "--chains", str(CHAINS), "--seed", str(SEED)],
        capture_output=True, text=True, check=True,
    )
    peer = json.loads(output.stdout.strip().splitlines()[-1])
    return {"fit_s": peer["wall_s"], "max_rhat_raw": peer["max_rhat"],
            "min_ess_bulk_raw": peer["min_ess_bulk"], "divergences": peer["divergences"]}


WORKERS = {
    "naive": lambda k: worker_naive(k),
    "vectorised": lambda k: worker_vectorised_pymc(k),
    "nutpie": lambda k: worker_bayesgmm(k, "nuts", "nutpie"),
    "pymc_engine": lambda k: worker_bayesgmm(k, "nuts", "pymc"),
    "advi": lambda k: worker_bayesgmm(k, "fullrank_advi", "nutpie"),
}


# ---------------------------------------------------------------- driver
def run_worker(name: str, n_components: int, cache: Path) -> dict:
    """Run one worker in a fresh process with the given cache folder."""
    environment = dict(os.environ)
    environment["NUMBA_CACHE_DIR"] = str(cache / "numba")
    environment["PYTENSOR_FLAGS"] = f"base_compiledir={cache / 'pytensor'}"
    began = time.perf_counter()
    output = subprocess.run(
        [sys.executable, "-m", "bayesgmm.validation.bench_bayes", "--worker", name,
         "--k", str(n_components)],
        capture_output=True, text=True, env=environment,
    )
    if output.returncode != 0:
        return {"error": output.stderr.strip().splitlines()[-1][:200]}
    result = json.loads(output.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - began
    return result


def measure(n_components: int, names) -> dict:
    """Cold then warm run of every worker, each with its own cache folder."""
    results = {}
    for name in names:
        cache = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
        cold = run_worker(name, n_components, cache)
        warm = run_worker(name, n_components, cache)
        results[name] = {"cold": cold, "warm": warm}
        print(f"K={n_components} {name}: cold {cold.get('fit_s', cold)}, "
              f"warm {warm.get('fit_s', warm)}", flush=True)
    return results


def _fmt(value, digits=2):
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


NOTES = """## Notes

- Default engine: nutpie with bayesgmm's compiled density, chosen by these numbers
  (fastest cold and warm, most ESS per second, no per-model compilation: the same
  compiled function serves every K, D, N and covariance type).
- K = 3 over-fits Old Faithful: the third component is weakly identified and slides
  between the two clusters, so every sampler mixes slowly there (R-hat above 1.01 after
  1000 draws for all rows, also for the label-invariant log-likelihood, so it is not
  label switching). bayesgmm reports it through `diagnose()` and does not choose K = 3
  in `compare_k`. With 4 x 10,000 draws and `target_accept=0.95` the relabelled R-hat is
  1.006 with 0 divergences for seed 1 (`tests/test_bayes.py::
  test_faithful_three_components_converge_with_longer_chains`, run by `make validate`);
  this is borderline rather than robust: seed 2 gives R-hat 1.011 and 0 divergences,
  seed 3 gives 1.004 and 1 divergence in 40,000 draws.
- Peer (a) cannot be relabelled by component (its R-hat is on raw draws): its chains sit
  in different labellings, which is what the raw R-hat of 2.1-2.8 shows.
"""


def render(results: dict, total_s: float) -> str:
    """Markdown report."""
    lines = [
        "# Bayesian benchmark: bayesgmm vs the PyMC models users write",
        "",
        f"Old Faithful (N = 272, D = 2), full covariance, {CHAINS} chains x {DRAWS} draws "
        f"+ {TUNE} tune, seed {SEED}. Each cell is a fresh Python process; *cold* means "
        "empty numba and PyTensor caches, *warm* the caches left by the cold run. "
        "`fit s` excludes imports and includes compilation, EM, sampling and (for "
        "bayesgmm) relabelling, pointwise log-likelihood and diagnostics. ESS is the "
        "minimum bulk ESS over relabelled weights, means, scales and correlations; "
        "R-hat is the maximum rank-normalised R-hat on the same, relabelled by bayesgmm's "
        "code for every row (raw R-hat = before relabelling).",
        "",
    ]
    for n_components, rows in results.items():
        lines += [
            f"## K = {n_components}",
            "",
            "| run | fit s cold | fit s warm | process s warm | min ESS bulk | ESS/s (warm) "
            "| max R-hat (relabelled) | max R-hat raw | divergences |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        labels = {
            "naive": "naive PyMC (peer a)", "vectorised": "vectorised PyMC (peer b)",
            "nutpie": "**bayesgmm NUTS, nutpie (default)**",
            "pymc_engine": "bayesgmm NUTS, pymc engine", "advi": "bayesgmm full-rank ADVI",
        }
        for name, cells in rows.items():
            cold, warm = cells["cold"], cells["warm"]
            if "error" in warm or "error" in cold:
                lines.append(f"| {labels[name]} | error: {cold.get('error', warm.get('error'))} |"
                             " | | | | | | |")
                continue
            ess_value = warm.get("min_ess_bulk", warm.get("min_ess_bulk_raw"))
            ess_rate = ess_value / warm["fit_s"] if ess_value is not None else None
            lines.append(
                f"| {labels[name]} | {_fmt(cold['fit_s'])} | {_fmt(warm['fit_s'])} | "
                f"{_fmt(warm.get('process_s'))} | {_fmt(ess_value, 0)} | {_fmt(ess_rate, 1)} | "
                f"{_fmt(warm.get('max_rhat'), 3)} | {_fmt(warm.get('max_rhat_raw'), 3)} | "
                f"{_fmt(warm.get('divergences'))} |"
            )
        lines.append("")
        lines += _ratios(rows)
        lines += _advi_gap(rows)
    lines += [
        NOTES,
        machine_note(total_s),
        "",
    ]
    return "\n".join(lines)


def _ratios(rows) -> list[str]:
    if "vectorised" not in rows or "nutpie" not in rows:
        return []
    peer, ours = rows["vectorised"], rows["nutpie"]
    if "error" in peer["warm"] or "error" in ours["warm"]:
        return []
    lines = ["Against peer (b), the vectorised model under PyMC's default sampler:", ""]
    for state in ("cold", "warm"):
        wall = ours[state]["fit_s"] / peer[state]["fit_s"]
        speed = (ours[state]["min_ess_bulk"] / ours[state]["fit_s"]) / (
            peer[state]["min_ess_bulk"] / peer[state]["fit_s"])
        lines.append(f"- {state}: wall ratio {wall:.3f} (target <= 0.25), ESS/s ratio "
                     f"{speed:.1f}x (target >= 4x)")
    lines.append(f"- bayesgmm second fit in the same process: "
                 f"{ours['warm']['second_fit_same_process_s']:.2f} s; import of bayesgmm "
                 f"{ours['warm']['import_s']:.2f} s")
    lines.append("")
    return lines


def _advi_gap(rows) -> list[str]:
    if "advi" not in rows or "nutpie" not in rows:
        return []
    advi, nuts = rows["advi"]["warm"], rows["nutpie"]["warm"]
    if "error" in advi or "error" in nuts:
        return []
    from sklearn.metrics import adjusted_rand_score

    gap = np.abs(np.array(advi["means"]) - np.array(nuts["means"])) / np.array(nuts["means_sd"])
    return [
        f"Full-rank ADVI: {rows['advi']['cold']['fit_s']:.2f} s cold, {advi['fit_s']:.2f} s "
        f"warm (target <= 10 s cold). Largest gap between ADVI and NUTS posterior means: "
        f"{gap.max():.2f} NUTS posterior sd. Agreement of ADVI's hard clusters with the EM "
        "solution it started from: "
        f"ARI {adjusted_rand_score(advi['em_labels'], advi['labels']):.3f} "
        f"(NUTS against its EM start: "
        f"{adjusted_rand_score(nuts['em_labels'], nuts['labels']):.3f}).",
        "",
    ]


def main(argv: list[str] | None = None) -> None:
    """Run workers (``--worker``) or the whole benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=sorted(WORKERS))
    parser.add_argument("--k", type=int, nargs="*", default=[3, 2])
    parser.add_argument("--runs", nargs="*", default=list(WORKERS))
    parser.add_argument("--out", type=Path, default=Path("reports/benchmarks/bayes.md"))
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(WORKERS[args.worker](args.k[0])))
        return
    began = time.perf_counter()
    results = {k: measure(k, args.runs) for k in args.k}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(results, time.perf_counter() - began))
    (args.out.with_suffix(".json")).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
