"""``compare_k`` on the bundled datasets: ``reports/validation/compare_k.md``.

Old Faithful and the galaxy velocities (in 1000 km/s), K = 1..6, default
settings (4 chains x 1000 draws + 1000 tune, sparse overfitted mixture with
K = 6), with the wall time of each sweep.  Run by ``make validate`` or
``python -m bayesgmm.validation.selection_report``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bayesgmm.datasets import load_faithful, load_galaxies
from bayesgmm.report import markdown_table
from bayesgmm.selection import REPORT_COLUMNS, compare_k


def main(argv: list[str] | None = None) -> None:
    """Run both sweeps and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("reports/validation/compare_k.md"))
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args(argv)
    lines = ["# Choosing K on the bundled datasets", "",
             "`compare_k(X, ks=range(1, 7), random_state=0)` with default settings. elpd: higher "
             "is better; BIC/ICL: lower is better; p_occupied: posterior probability that "
             "exactly K components are occupied under the sparse mixture (K = 6, Dirichlet "
             "concentration 0.01).", ""]
    for name, frame in (("Old Faithful", load_faithful()),
                        ("Galaxies (velocity / 1000 km/s)", load_galaxies() / 1000)):
        began = time.perf_counter()
        selection = compare_k(frame, ks=range(1, 7), random_state=0, n_jobs=args.jobs,
                              progressbar=False)
        seconds = time.perf_counter() - began
        lines += [f"## {name}", "", f"**best_k = {selection.best_k}**: {selection.rule}. "
                  f"Sweep wall time {seconds:.0f} s ({args.jobs} process(es), 2-core machine).",
                  "", markdown_table(selection.view(REPORT_COLUMNS)), ""]
        print(f"{name}: best_k {selection.best_k}, {seconds:.0f} s", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
