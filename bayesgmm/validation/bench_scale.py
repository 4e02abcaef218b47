"""Benchmark: Bayesian fits at large N, against full NUTS and scikit-learn, in one run.

Data: :func:`bayesgmm.validation.scale_data.synthetic_clusters` (D = 5,
K = 4, separated clusters, full covariances).  Every fit runs in its own
subprocess, so its peak RSS (``ru_maxrss``) is its own.  Rows:

* ``nuts``: ``BayesianGMM(method="nuts")``, 4 x (1000 + 1000) up to 1e4
  rows; at 1e5 rows 2 x (1000 + 500) (a default run there takes ~19 min
  on this machine; the agreement statistics need the draws, not the chains).
  The 1e5 run is stored in ``scale_nuts_reference.json`` and reused unless
  ``--rerun-reference`` is given (it took 26 min beside other jobs);
* ``laplace``, ``minibatch_advi``, ``coreset_nuts``: the large-N methods
  (defaults: 1000 draws).  Coreset NUTS runs up to 1e4 rows here: at 1e5
  (measured once, 566 s beside other jobs) its posterior means sat up to
  9.1 full-NUTS sds from NUTS's (sd ratio 0.90-1.12) and the truth up to 6.1
  of its sds away, so it is rejected (:mod:`bayesgmm.coreset`);
* ``sklearn``: ``sklearn.mixture.BayesianGaussianMixture`` (variational,
  point estimates only), the speed peer.

Agreement at 1e5 rows, per method: the largest ``|mean_m - mean_NUTS| /
sd_NUTS`` over every weight, mean and covariance entry (components matched
to the truth), and the range of ``sd_m / sd_NUTS``.  Calibration at every N:
the largest ``|posterior mean - true mean| / posterior sd`` over the means.

Run with ``make bench`` or ``python -m bayesgmm.validation.bench_scale``;
writes ``reports/benchmarks/scale.md`` and ``scale.json``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bayesgmm.validation import machine_note
from bayesgmm.validation.scale_data import SCALE_TRUTH, synthetic_clusters

SIZES = (1_000, 10_000, 100_000, 1_000_000)
NUTS_LARGEST = 100_000
CORESET_LARGEST = 10_000  # at 1e5 it took 566 s and failed the agreement (module docstring)
REFERENCE_SIZE = 100_000
DATA_SEED = 1
FIT_SEED = 0
TARGET_SD_SHIFT = 0.5
TARGET_SD_RATIO = (0.75, 1.33)
CALIBRATION_SDS = 4.0
EM_SIZES = (1_000_000, 10_000_000)
SKLEARN_EM_LARGEST = 1_000_000  # 48-108 s at 1e6 here; ten times that at 1e7
SCORING_ROWS = 200_000
SCORING_DRAWS = 100
REPORT = Path("reports/benchmarks/scale.md")
REFERENCE = REPORT.with_name("scale_nuts_reference.json")


def _nuts_settings(n_samples: int) -> dict:
    if n_samples >= REFERENCE_SIZE:
        return {"chains": 2, "draws": 1000, "tune": 500}
    return {"chains": 4, "draws": 1000, "tune": 1000}


def _truth_order(means: np.ndarray) -> np.ndarray:
    """Component order matching ``means`` (K, D) to the true means (Hungarian)."""
    from scipy.optimize import linear_sum_assignment

    cost = ((means[:, None, :] - SCALE_TRUTH.means[None]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    return rows[np.argsort(cols)]


def _lower(covariances: np.ndarray) -> np.ndarray:
    rows, cols = np.tril_indices(covariances.shape[-1])
    return covariances[..., rows, cols]


def posterior_summary(weights, means, covariances) -> dict:
    """Posterior means and sds of (weights, means, covariance lower triangles), truth-ordered.

    Parameters
    ----------
    weights : ndarray of shape (n_draws, K)
    means : ndarray of shape (n_draws, K, D)
    covariances : ndarray of shape (n_draws, K, D, D)

    Returns
    -------
    dict with lists ``mean``, ``sd`` (flattened in that order) and ``mean_sd``
    (the sds of the component means alone, shape (K, D)), ``means`` (K, D).
    """
    order = _truth_order(means.mean(axis=0))
    stacked = np.concatenate([weights[:, order], means[:, order].reshape(len(means), -1),
                              _lower(covariances[:, order]).reshape(len(means), -1)], axis=1)
    return {"mean": stacked.mean(axis=0).tolist(), "sd": stacked.std(axis=0).tolist(),
            "means": means[:, order].mean(axis=0).tolist(),
            "mean_sd": means[:, order].std(axis=0).tolist()}


# ---------------------------------------------------------------- workers
def worker_fit(method: str, n_samples: int) -> dict:
    X, _ = synthetic_clusters(n_samples, seed=DATA_SEED)
    began = time.perf_counter()
    if method == "sklearn":
        from sklearn.mixture import BayesianGaussianMixture

        model = BayesianGaussianMixture(n_components=4, covariance_type="full",
                                        random_state=FIT_SEED, max_iter=500).fit(X)
        elapsed = time.perf_counter() - began
        order = _truth_order(model.means_)
        return {"seconds": elapsed, "converged": bool(model.converged_),
                "means": model.means_[order].tolist()}
    from bayesgmm import BayesianGMM
    from bayesgmm.bayes import diagnostics_reported

    settings = _nuts_settings(n_samples) if method == "nuts" else {}
    with diagnostics_reported():
        model = BayesianGMM(4, method=method, random_state=FIT_SEED, progressbar=False,
                            **settings).fit(X)
    elapsed = time.perf_counter() - began
    posterior = model.idata_.posterior.to_dataset().stack(sample=("chain", "draw"))
    posterior = posterior.transpose("sample", ...)
    result = posterior_summary(posterior["weights"].values, posterior["means"].values,
                               posterior["covariances"].values)
    table = model.diagnostics_.table
    result.update(seconds=elapsed, method_ran=model.idata_.attrs["method"],
                  diagnostics={gate: float(table.loc[gate, "value"]) for gate in table.index})
    return result


def _local_client(n_workers: int):
    from dask.distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                           dashboard_address=None,
                           scheduler_kwargs={"dashboard_address": ":0"})
    return Client(cluster), cluster


def worker_em(kind: str, n_samples: int) -> dict:
    """EM at ``n_samples`` rows: in memory, on a 2-worker LocalCluster, or scikit-learn's."""
    X, _ = synthetic_clusters(n_samples, seed=DATA_SEED)
    if kind == "em_dask":
        import dask.array as da

        client, cluster = _local_client(2)
        data = da.from_array(X, chunks=(max(n_samples // 8, 1), -1)).persist()
        del X
    else:
        data = X
    began = time.perf_counter()
    if kind == "em_sklearn":
        from sklearn.mixture import GaussianMixture

        model = GaussianMixture(4, n_init=1, random_state=FIT_SEED).fit(data)
    else:
        from bayesgmm import GaussianMixtureEM

        model = GaussianMixtureEM(4, n_init=1, random_state=FIT_SEED).fit(data)
    elapsed = time.perf_counter() - began
    if kind == "em_dask":
        client.close()
        cluster.close()
    return {"seconds": elapsed, "n_iter": int(model.n_iter_),
            "lower_bound": float(model.lower_bound_)}


def worker_scoring(n_workers: int, n_samples: int) -> dict:
    """Rows per second of ``membership_summary`` on a Dask array, 100 draws."""
    import dask
    import dask.array as da

    from bayesgmm import BayesianGMM

    fit_rows, _ = synthetic_clusters(REFERENCE_SIZE, seed=DATA_SEED)
    model = BayesianGMM(4, method="laplace", random_state=FIT_SEED,
                        progressbar=False).fit(fit_rows)
    X, _ = synthetic_clusters(n_samples, seed=DATA_SEED + 1)
    client, cluster = _local_client(n_workers)
    data = da.from_array(X, chunks=(max(n_samples // 8, 1), -1)).persist()
    began = time.perf_counter()
    summary = model.membership_summary(data, max_draws=SCORING_DRAWS)
    dask.compute(*(variable.data for variable in summary.data_vars.values()))
    elapsed = time.perf_counter() - began
    client.close()
    cluster.close()
    return {"seconds": elapsed, "rows_per_second": n_samples / elapsed}


def _run_worker(*args: str) -> dict:
    command = [sys.executable, "-m", "bayesgmm.validation.bench_scale", "--worker", *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- statistics
def agreement(candidate: dict, reference: dict) -> dict:
    """Largest mean shift in reference sds and the range of sd ratios."""
    mean, sd = np.array(candidate["mean"]), np.array(candidate["sd"])
    ref_mean, ref_sd = np.array(reference["mean"]), np.array(reference["sd"])
    shift = np.abs(mean - ref_mean) / ref_sd
    ratio = sd / ref_sd
    return {"max_shift_sd": float(shift.max()), "sd_ratio_min": float(ratio.min()),
            "sd_ratio_max": float(ratio.max()),
            "ok": bool(shift.max() <= TARGET_SD_SHIFT
                       and TARGET_SD_RATIO[0] <= ratio.min() <= ratio.max() <= TARGET_SD_RATIO[1])}


def calibration(candidate: dict) -> float:
    """Largest ``|posterior mean - true mean| / posterior sd`` over the component means."""
    means, sds = np.array(candidate["means"]), np.array(candidate["mean_sd"])
    return float((np.abs(means - SCALE_TRUTH.means) / sds).max())


# ---------------------------------------------------------------- report
def _fit_rows(results: dict) -> list[str]:
    lines = ["| method | N | seconds | x sklearn | peak RSS (MB) | max calibration z | "
             "diagnostic |", "|---|---|---|---|---|---|---|"]
    for key, value in results["fits"].items():
        method, n_samples = key.split("@")
        if "error" in value:
            lines.append(f"| {method} | {n_samples} | failed: {value['error']} | | | | |")
            continue
        peer = results["fits"].get(f"sklearn@{n_samples}", {}).get("seconds")
        ratio = f"{value['seconds'] / peer:.1f}" if peer and method != "sklearn" else ""
        z = f"{calibration(value):.2f}" if "mean_sd" in value else ""
        gates = value.get("diagnostics", {})
        gate = ", ".join(f"{name} {number:.3g}" for name, number in gates.items()
                         if name in ("khat", "rhat", "ess_bulk", "divergences"))
        lines.append(f"| {method} | {int(n_samples):,} | {value['seconds']:.1f} | {ratio} | "
                     f"{value['rss_mb']:.0f} | {z} | {gate} |")
    return lines


def _em_rows(results: dict) -> list[str]:
    lines = ["## Distributed EM (LocalCluster, 2 worker processes) against in-memory EM", "",
             "`n_init=1`, default tolerance, the same `random_state`; the Dask fit draws its "
             "start from a 100,000-row sample, so iteration counts may differ: compare the "
             "time per iteration too.", "",
             "| N | method | seconds | iterations | s / iteration | x in-memory | "
             "log-lik / row |", "|---|---|---|---|---|---|---|"]
    for key, value in results["em"].items():
        kind, n_samples = key.split("@")
        if "error" in value:
            lines.append(f"| {int(n_samples):,} | {kind} | failed: {value['error']} | | | | |")
            continue
        memory = results["em"].get(f"em_memory@{n_samples}", {}).get("seconds")
        ratio = f"{value['seconds'] / memory:.2f}" if memory else ""
        per_iteration = value["seconds"] / max(value["n_iter"], 1)
        lines.append(f"| {int(n_samples):,} | {kind} | {value['seconds']:.1f} | "
                     f"{value['n_iter']} | {per_iteration:.2f} | {ratio} | "
                     f"{value['lower_bound']:.6f} |")
    return lines


def _scoring_rows(results: dict) -> list[str]:
    lines = [f"## Scoring throughput: `membership_summary` of {SCORING_ROWS:,} Dask rows, "
             f"{SCORING_DRAWS} draws", "", "| workers | seconds | rows / s |", "|---|---|---|"]
    for workers, value in results["scoring"].items():
        if "error" in value:
            lines.append(f"| {workers} | failed: {value['error']} | |")
            continue
        lines.append(f"| {workers} | {value['seconds']:.1f} | "
                     f"{value['rows_per_second']:,.0f} |")
    return lines


def write_report(results: dict, total: float) -> None:
    lines = ["# Large-N Bayesian fits (`make bench` -> bayesgmm.validation.bench_scale)", "",
             __doc__.split("\n\n")[1].replace("\n", " "), "",
             "## Time, peak memory and calibration against N", ""]
    lines += _fit_rows(results)
    lines += ["", f"## Agreement with full NUTS at N = {REFERENCE_SIZE:,}", "",
              f"Target: means within {TARGET_SD_SHIFT} NUTS sd, sd ratio in "
              f"[{TARGET_SD_RATIO[0]}, {TARGET_SD_RATIO[1]}].", "",
              "| method | max shift (NUTS sds) | sd ratio min | sd ratio max | meets target |",
              "|---|---|---|---|---|"]
    for method, value in results.get("agreement", {}).items():
        lines.append(f"| {method} | {value['max_shift_sd']:.2f} | {value['sd_ratio_min']:.2f} "
                     f"| {value['sd_ratio_max']:.2f} | {'yes' if value['ok'] else 'no'} |")
    for section in results.get("sections", []):
        lines += ["", *section]
    lines += ["", machine_note(total, numpy=np.__version__)]
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text("\n".join(lines) + "\n")
    REPORT.with_suffix(".json").write_text(json.dumps(results, indent=1))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "N"))
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    parser.add_argument("--methods", nargs="*",
                        default=["sklearn", "laplace", "minibatch_advi", "coreset_nuts", "nuts"])
    parser.add_argument("--skip-dask", action="store_true",
                        help="skip distributed EM and the scoring throughput")
    parser.add_argument("--rerun-reference", action="store_true",
                        help=f"rerun full NUTS at {REFERENCE_SIZE:,} rows instead of reading "
                             f"{REFERENCE}")
    args = parser.parse_args(argv)
    if args.worker:
        kind, size = args.worker[0], int(args.worker[1])
        if kind.startswith("em_"):
            result = worker_em(kind, size)
        elif kind.startswith("scoring_"):
            result = worker_scoring(int(kind.split("_")[1]), size)
        else:
            result = worker_fit(kind, size)
        result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    began = time.perf_counter()
    results = {"fits": {}, "agreement": {}, "em": {}, "scoring": {}}
    for n_samples in args.sizes:
        for method in args.methods:
            if method == "nuts" and n_samples > NUTS_LARGEST:
                continue
            if method == "coreset_nuts" and n_samples > CORESET_LARGEST:
                continue
            if (method == "nuts" and n_samples == REFERENCE_SIZE and not args.rerun_reference
                    and REFERENCE.exists()):
                results["fits"][f"nuts@{n_samples}"] = json.loads(REFERENCE.read_text())
                continue
            print(f"{method} at {n_samples:,} rows", flush=True)
            results["fits"][f"{method}@{n_samples}"] = _run_worker(method, str(n_samples))
    if not args.skip_dask:
        for n_samples in EM_SIZES:
            for kind in ("em_memory", "em_dask", "em_sklearn"):
                if kind == "em_sklearn" and n_samples > SKLEARN_EM_LARGEST:
                    continue
                print(f"{kind} at {n_samples:,} rows", flush=True)
                results["em"][f"{kind}@{n_samples}"] = _run_worker(kind, str(n_samples))
        for n_workers in (1, 2):
            print(f"scoring with {n_workers} workers", flush=True)
            results["scoring"][str(n_workers)] = _run_worker(f"scoring_{n_workers}",
                                                             str(SCORING_ROWS))
    results["sections"] = [_em_rows(results), _scoring_rows(results)]
    reference = results["fits"].get(f"nuts@{REFERENCE_SIZE}")
    if reference and "error" not in reference and args.rerun_reference:
        REFERENCE.write_text(json.dumps(reference, indent=1))
    if reference and "error" not in reference:
        for method in args.methods:
            candidate = results["fits"].get(f"{method}@{REFERENCE_SIZE}", {})
            if method not in ("nuts", "sklearn") and "mean" in candidate:
                results["agreement"][method] = agreement(candidate, reference)
    write_report(results, time.perf_counter() - began)


if __name__ == "__main__":
    main()
