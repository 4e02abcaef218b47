"""Benchmark: ``GaussianMixtureEM`` against scikit-learn's ``GaussianMixture``.

Both estimators get the same data, the same starting weights, means and
precisions, the same ``tol`` and ``max_iter``, and run in the same process in
alternating order, so machine noise hits both alike.  The report gives the
median time ratio (ours / sklearn), the final mean log-likelihood of each and
the peak memory each allocates on top of the data (``tracemalloc``, which
numpy reports to, measured in separate untimed runs).

The data are standardised before the benchmark so that bayesgmm's relative
``reg_covar`` equals sklearn's absolute one: both then solve the same problem.

Run with ``make bench`` or ``python -m bayesgmm.validation.bench_em``.
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from bayesgmm.em import (
    GaussianMixtureEM,
    initial_responsibilities,
    state_from_responsibilities,
)
from bayesgmm.validation import machine_note

N_FEATURES = 10
N_COMPONENTS = 8
TOL = 1e-4
MAX_ITER = 500
REPEATS = {10_000: 7, 100_000: 5, 1_000_000: 3}


def overlapping_data(n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Eight overlapping Gaussian clusters in 10-D, standardised."""
    centres = rng.normal(scale=1.2, size=(N_COMPONENTS, N_FEATURES))
    scales = rng.uniform(0.7, 1.3, size=N_COMPONENTS)
    labels = rng.integers(N_COMPONENTS, size=n_samples)
    X = centres[labels] + scales[labels, None] * rng.standard_normal(
        (n_samples, N_FEATURES)
    )
    return (X - X.mean(axis=0)) / X.std(axis=0)


def shared_start(X: np.ndarray, rng: np.random.Generator) -> dict:
    """k-means++ starting parameters, handed identically to both estimators."""
    responsibilities = initial_responsibilities(X, N_COMPONENTS, "k-means++", rng)
    state = state_from_responsibilities(X, responsibilities, "full", 1e-6)
    precisions = state.precisions_cholesky @ state.precisions_cholesky.transpose(
        0, 2, 1
    )
    return {
        "weights_init": state.weights,
        "means_init": state.means,
        "precisions_init": precisions,
    }


def _estimator(name: str, start: dict):
    common = dict(tol=TOL, max_iter=MAX_ITER, reg_covar=1e-6, **start)
    if name == "bayesgmm":
        return GaussianMixtureEM(N_COMPONENTS, **common)
    return GaussianMixture(N_COMPONENTS, **common)


def _fit(name: str, X: np.ndarray, start: dict):
    estimator = _estimator(name, start)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        began = time.perf_counter()
        estimator.fit(X)
        elapsed = time.perf_counter() - began
    return elapsed, estimator


def _peak_memory(name: str, X: np.ndarray, start: dict) -> int:
    tracemalloc.start()
    tracemalloc.reset_peak()
    _fit(name, X, start)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def bench_one(n_samples: int, repeats: int, seed: int = 0) -> dict:
    """Time both estimators on one data size; return a result row."""
    rng = np.random.default_rng(seed)
    X = overlapping_data(n_samples, rng)
    start = shared_start(X, rng)
    times = {"bayesgmm": [], "sklearn": []}
    fitted = {}
    for repeat in range(repeats):
        order = ("bayesgmm", "sklearn") if repeat % 2 == 0 else ("sklearn", "bayesgmm")
        for name in order:
            elapsed, fitted[name] = _fit(name, X, start)
            times[name].append(elapsed)
    ratios = [ours / peer for ours, peer in zip(times["bayesgmm"], times["sklearn"])]
    ours, peer = fitted["bayesgmm"], fitted["sklearn"]
    loglik_ours, loglik_peer = ours.score(X), peer.score(X)
    return {
        "n_samples": n_samples,
        "repeats": repeats,
        "iterations": (ours.n_iter_, peer.n_iter_),
        "median_s": (statistics.median(times["bayesgmm"]), statistics.median(times["sklearn"])),
        "median_ratio": statistics.median(ratios),
        "loglik": (loglik_ours, loglik_peer),
        "loglik_rel_diff": abs(loglik_ours - loglik_peer) / abs(loglik_peer),
        "peak_mib": tuple(_peak_memory(name, X, start) / 2**20 for name in ("bayesgmm", "sklearn")),
        "data_mib": X.nbytes / 2**20,
    }


def render(rows: list[dict], total_seconds: float) -> str:
    """Markdown report of the benchmark rows."""
    lines = [
        "# EM benchmark: bayesgmm `GaussianMixtureEM` vs scikit-learn `GaussianMixture`",
        "",
        f"D = {N_FEATURES}, K = {N_COMPONENTS}, full covariance, overlapping clusters, "
        f"tol = {TOL:g}, identical k-means++ starting weights/means/precisions, "
        "standardised data (so both use the same reg_covar = 1e-6). "
        "Runs alternate between the two estimators in one process; the ratio is "
        "the median of per-repeat ratios (bayesgmm / sklearn, below 1 means bayesgmm "
        "is faster). Peak memory is what each fit allocates beyond the data, by "
        "tracemalloc, in separate untimed runs.",
        "",
        "| N | repeats | iterations (ours / sklearn) | median time s (ours / sklearn) "
        "| **time ratio** | mean log-lik (ours / sklearn) | rel. diff | peak MiB "
        "(ours / sklearn) | data MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['n_samples']:,} | {row['repeats']} | {row['iterations'][0]} / "
            f"{row['iterations'][1]} | {row['median_s'][0]:.2f} / {row['median_s'][1]:.2f}"
            f" | **{row['median_ratio']:.2f}** | {row['loglik'][0]:.10f} / "
            f"{row['loglik'][1]:.10f} | {row['loglik_rel_diff']:.1e} | "
            f"{row['peak_mib'][0]:.0f} / {row['peak_mib'][1]:.0f} | {row['data_mib']:.0f} |"
        )
    lines += [
        "",
        "Target: time ratio <= 1.0 (stretch 0.5) at a relative log-likelihood "
        "difference < 1e-6, and no more memory than sklearn.",
        "",
        machine_note(total_seconds, numpy=np.__version__, scikit_learn=sklearn.__version__),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and write ``reports/benchmarks/em.md``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=list(REPEATS))
    parser.add_argument("--out", type=Path, default=Path("reports/benchmarks/em.md"))
    args = parser.parse_args(argv)
    began = time.perf_counter()
    rows = []
    for n_samples in args.sizes:
        row = bench_one(n_samples, REPEATS.get(n_samples, 3))
        print(
            f"N={n_samples:>9,}: ratio {row['median_ratio']:.2f}, "
            f"log-lik rel diff {row['loglik_rel_diff']:.1e}, "
            f"peak MiB {row['peak_mib'][0]:.0f} vs {row['peak_mib'][1]:.0f}",
            flush=True,
        )
        rows.append(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(rows, time.perf_counter() - began))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
