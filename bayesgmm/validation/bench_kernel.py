"""Benchmark: one gradient of the log density, the kernel of named terms against the old one.

The old kernel is the single 209-line function of the base revision
(``bayesgmm/logdensity.py`` at ``--base``, default ``b890ec2``, read with
``git show`` into a temporary folder and compiled there); the new one is
:func:`bayesgmm._kernel.logp_grad`.  Both are timed through their own
``logp_batch`` (a numba loop over the points that calls the kernel once per
point, gradient included), so Python call overhead does not enter.  Repeats
alternate between the kernels, and which goes first, so that the noise of a
shared machine hits both alike; the table shows medians, and the ratio is the
median of the per-repeat ratios.  Each case also checks that both kernels give
the same density and gradient.

Cases: Old Faithful (standardised, K = 3, full, N = 272) and a synthetic
N = 100,000, D = 5, K = 4 full-covariance mixture.

Run with ``python -m bayesgmm.validation.bench_kernel``; writes
``reports/benchmarks/kernel.md``.  Without git or the base revision the old
column is left out.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

import numba
import numpy as np

from bayesgmm._kernel import logp_and_grad, logp_batch, pack_block
from bayesgmm.datasets import load_faithful
from bayesgmm.parameters import Layout
from bayesgmm.priors import GMMPriors
from bayesgmm.scaling import model_scale
from bayesgmm.validation import machine_note

BASE_REVISION = "b890ec2"
OLD_KERNEL_PATH = "bayesgmm/logdensity.py"
_CHECKED_POINTS = 5


class Case(NamedTuple):
    """One benchmark problem."""

    name: str
    X: np.ndarray
    n_components: int
    n_points: int  # gradients per timed batch
    repeats: int


class Timing(NamedTuple):
    """Results of one case; times in microseconds per gradient."""

    case: Case
    new_us: float
    old_us: float | None
    ratio: float | None
    max_rel_diff: float | None


def load_old_kernel(revision: str, folder: Path) -> ModuleType | None:
    """The base revision's ``logdensity`` module, or None where git cannot provide it."""
    try:
        source = subprocess.run(
            ["git", "show", f"{revision}:{OLD_KERNEL_PATH}"], capture_output=True, text=True,
            check=True, cwd=Path(__file__).resolve().parent,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        print(f"old kernel not available ({error}); timing the new kernel only")
        return None
    path = folder / "_base_logdensity.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("_base_logdensity", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # numba's cache looks the module up by name
    spec.loader.exec_module(module)
    return module


def cases(rng: np.random.Generator) -> list[Case]:
    """Old Faithful and the large synthetic mixture."""
    faithful = load_faithful().to_numpy()
    n_features, n_components = 5, 4
    centres = rng.normal(scale=3.0, size=(n_components, n_features))
    labels = rng.integers(n_components, size=100_000)
    synthetic = centres[labels] + rng.normal(size=(labels.size, n_features))
    return [
        Case("Old Faithful", faithful, 3, 2000, 21),
        Case("synthetic", synthetic, n_components, 10, 9),
    ]


def _relative_difference(old: tuple, new: tuple) -> float:
    """Largest of the log density's and the gradient's relative differences."""
    (old_logp, old_grad), (new_logp, new_grad) = old, new
    return max(abs(new_logp - old_logp) / abs(old_logp),
               float(np.max(np.abs(new_grad - old_grad)) / np.max(np.abs(old_grad))))


def _per_gradient_us(batch, thetas: np.ndarray, block: np.ndarray) -> float:
    began = time.perf_counter()
    batch(thetas, block)
    return (time.perf_counter() - began) / thetas.shape[0] * 1e6


def bench_case(case: Case, old: ModuleType | None, rng: np.random.Generator) -> Timing:
    """Time both kernels on one case, interleaved."""
    # A scale prior both kernels know (the old one predates the inverse gamma),
    # so the two compute the same density and the timing compares like with like.
    priors = GMMPriors(scale_prior="half_normal")
    values, _, _, resolved = model_scale(case.X, priors, case.n_components)
    layout = Layout(case.n_components, values.shape[1], "full")
    thetas = rng.normal(scale=0.3, size=(case.n_points, layout.size))
    new_block = pack_block(values, resolved, case.n_components, "full")
    kernels = {"new": (logp_batch, new_block)}
    max_rel_diff = None
    if old is not None:
        old_block = old.pack_block(values, resolved, case.n_components, "full")
        kernels["old"] = (old.logp_batch, old_block)
        max_rel_diff = max(_relative_difference(old.logp_and_grad(theta, old_block),
                                                logp_and_grad(theta, new_block))
                           for theta in thetas[:_CHECKED_POINTS])
    for batch, block in kernels.values():
        batch(thetas[:2], block)  # compile, or load from numba's cache
    times = {name: [] for name in kernels}
    for repeat in range(case.repeats):
        order = list(kernels) if repeat % 2 == 0 else list(reversed(kernels))
        for name in order:
            batch, block = kernels[name]
            times[name].append(_per_gradient_us(batch, thetas, block))
    new_us = float(np.median(times["new"]))
    if old is None:
        return Timing(case, new_us, None, None, None)
    ratio = float(np.median(np.divide(times["new"], times["old"])))
    return Timing(case, new_us, float(np.median(times["old"])), ratio, max_rel_diff)


def render(timings: list[Timing], revision: str, total_seconds: float) -> str:
    """The markdown report."""
    lines = [
        "# Log-density kernel: one gradient, named terms vs the single function",
        "",
        f"Old: `{OLD_KERNEL_PATH}` at `{revision}` (one 209-line numba function). "
        "New: `bayesgmm._kernel.logp_grad` (a driver over one numba function per "
        "term). Each timing is one call of the kernel's own `logp_batch` over a "
        "batch of points (log density and gradient at each), divided by the batch "
        "size; the kernels alternate, and which goes first, repeat by repeat. "
        "Times are medians; the ratio is the median of the per-repeat ratios "
        "(below 1 means the new kernel is faster).",
        "",
        "| case | N | D | K | points x repeats | old us/gradient | new us/gradient "
        "| **ratio new/old** | max rel. difference |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in timings:
        old = f"{t.old_us:,.1f}" if t.old_us is not None else "n/a"
        ratio = f"**{t.ratio:.3f}**" if t.ratio is not None else "n/a"
        diff = f"{t.max_rel_diff:.1e}" if t.max_rel_diff is not None else "n/a"
        n_samples, n_features = t.case.X.shape
        lines.append(
            f"| {t.case.name} | {n_samples:,} | {n_features} | {t.case.n_components} | "
            f"{t.case.n_points:,} x {t.case.repeats} | {old} | {t.new_us:,.1f} | {ratio} "
            f"| {diff} |"
        )
    lines += [
        "",
        "Target: ratio <= 1.05 at an unchanged density and gradient. Max rel. "
        "difference: over the first "
        f"{_CHECKED_POINTS} points, the larger of the log density's relative "
        "difference and the largest gradient difference relative to the largest "
        "gradient entry; 0 means bit-identical.",
        "",
        machine_note(total_seconds, numpy=np.__version__, numba=numba.__version__),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and write ``reports/benchmarks/kernel.md``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=BASE_REVISION,
                        help="git revision holding the old kernel")
    parser.add_argument("--out", type=Path, default=Path("reports/benchmarks/kernel.md"))
    args = parser.parse_args(argv)
    began = time.perf_counter()
    rng = np.random.default_rng(20261129)
    with tempfile.TemporaryDirectory() as folder:
        old = load_old_kernel(args.base, Path(folder))
        timings = []
        for case in cases(rng):
            timing = bench_case(case, old, rng)
            compared = (f", old {timing.old_us:,.1f} us, ratio {timing.ratio:.3f}"
                        if timing.old_us is not None else "")
            print(f"{case.name}: new {timing.new_us:,.1f} us{compared}", flush=True)
            timings.append(timing)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(timings, args.base, time.perf_counter() - began))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
