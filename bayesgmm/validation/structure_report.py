"""``compare_k`` over covariance structures and K: ``reports/validation/compare_structures.md``.

Old Faithful, the four structures x K = 1..4, default sampler settings, no
sparse fit (it answers a different question), with the wall time and the
two-panel plot (elpd and EM's BIC per structure against K, mclust's view).
Run by ``make validate`` or ``python -m bayesgmm.validation.structure_report``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from bayesgmm.datasets import load_faithful  # noqa: E402
from bayesgmm.parameters import COVARIANCE_TYPES  # noqa: E402
from bayesgmm.report import markdown_table  # noqa: E402
from bayesgmm.selection import REPORT_COLUMNS, compare_k  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    """Run the sweep and write the report and its figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path,
                        default=Path("reports/validation/compare_structures.md"))
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args(argv)
    began = time.perf_counter()
    selection = compare_k(load_faithful(), ks=range(1, 5), covariance_types=COVARIANCE_TYPES,
                          sparse=False, random_state=0, n_jobs=args.jobs, progressbar=False)
    seconds = time.perf_counter() - began
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure_name = args.out.with_suffix(".png").name
    axes = selection.plot()
    axes[0].figure.savefig(args.out.parent / figure_name, dpi=100, bbox_inches="tight")
    plt.close("all")
    lines = ["# Choosing the covariance structure and K together (Old Faithful)", "",
             "`compare_k(X, ks=range(1, 5), covariance_types=COVARIANCE_TYPES, sparse=False, "
             "random_state=0)` with default settings. elpd: higher is better; BIC/ICL: lower is "
             "better; n_parameters: free parameters of the Bayesian model.", "",
             f"**best: {selection.best_covariance_type}, K = {selection.best_k}**: "
             f"{selection.rule}. Sweep wall time {seconds:.0f} s ({args.jobs} process(es), "
             "2-core machine).", "", markdown_table(selection.view(REPORT_COLUMNS)), "",
             f"![elpd and BIC per structure]({figure_name})", ""]
    args.out.write_text("\n".join(lines))
    print(f"best {selection.best_covariance_type} K={selection.best_k}, {seconds:.0f} s")


if __name__ == "__main__":
    main()
