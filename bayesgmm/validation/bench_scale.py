"""Benchmark: Bayesian fits at large N, against full NUTS and scikit-learn, in one run.

Data: :func:`bayesgmm.validation.scale_data.synthetic_clusters` (D = 5,
K = 4, separated clusters, full covariances).  Every fit runs in its own
subprocess, so its peak RSS (``ru_maxrss``) is its own.  Rows:

* ``nuts``: ``BayesianGMM(method="nuts")``, 4 x (1000 + 1000) up to 1e4
  rows; at 1e5 rows 2 x (1000 + 500) (a default run there takes ~19 min
  on this machine; the agreement statistics need the draws, not the chains).
  The 1e5 run is stored in ``scale_nuts_reference.json`` and reused unless
  ``--rerun-reference`` is given (it took 26 min beside other jobs);
* ``laplace``, ``coreset_nuts``: the large-N methods (defaults: 1000 draws);
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
REFERENCE_SIZE = 100_000
DATA_SEED = 1
FIT_SEED = 0
TARGET_SD_SHIFT = 0.5
TARGET_SD_RATIO = (0.75, 1.33)
CALIBRATION_SDS = 4.0
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
                        default=["sklearn", "laplace", "coreset_nuts", "nuts"])
    parser.add_argument("--rerun-reference", action="store_true",
                        help=f"rerun full NUTS at {REFERENCE_SIZE:,} rows instead of reading "
                             f"{REFERENCE}")
    args = parser.parse_args(argv)
    if args.worker:
        result = worker_fit(args.worker[0], int(args.worker[1]))
        result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    began = time.perf_counter()
    results = {"fits": {}, "agreement": {}}
    for n_samples in args.sizes:
        for method in args.methods:
            if method == "nuts" and n_samples > NUTS_LARGEST:
                continue
            if (method == "nuts" and n_samples == REFERENCE_SIZE and not args.rerun_reference
                    and REFERENCE.exists()):
                results["fits"][f"nuts@{n_samples}"] = json.loads(REFERENCE.read_text())
                continue
            print(f"{method} at {n_samples:,} rows", flush=True)
            results["fits"][f"{method}@{n_samples}"] = _run_worker(method, str(n_samples))
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
