"""Ablations of ODIM's design choices, one row per variant.

Each variant changes one parameter of the defaults; training ROC-AUC and AP
(fit on all rows, score the same rows) are averaged over datasets and seeds,
with the mean fit time.

    python studies/bench_ablation.py [--seeds 2] [--datasets ...] [--variants 0 5]
        [--jobs 2] [--cache FILE]
"""

import argparse
import os
import sys

import numpy as np

# The benchmarks' shared helpers (_common, _grid) live in ../benchmarks.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benchmarks"))

from _common import markdown_table, require_datasets  # noqa: E402
from _grid import add_grid_arguments, mean_by, odim_tasks, run_grid  # noqa: E402
import pyod_odim  # noqa: E402

DEFAULT_SETS = "cardio,thyroid,pendigits,mammography,shuttle,vowels"
VARIANTS = {
    "defaults": {},
    "selection on all rows (selection_size=None)": {"selection_size": None},
    "variance distance (authors' code)": {"distance": "variance"},
    "lr 5e-4 (paper)": {"lr": 5e-4},
    "standardized member combination": {"combination": "standardized"},
    "no batch normalization": {"batch_norm": False},
    "no warm-up (min_updates=0, the paper's)": {"min_updates": 0},
    "one check, no smoothing (smoothing=1, the paper's)": {"smoothing": 1},
    "no batch normalization, 50 importance samples in training": {
        "batch_norm": False, "n_samples_train": 50},
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--datasets", default=DEFAULT_SETS)
    parser.add_argument("--variants", type=int, nargs="*",
                        help="run only these rows (0-based), e.g. to re-time one")
    add_grid_arguments(parser, jobs=1)
    args = parser.parse_args()
    require_datasets()
    names = args.datasets.split(",")
    chosen = {label: params for row, (label, params) in enumerate(VARIANTS.items())
              if not args.variants or row in args.variants}
    results = run_grid(odim_tasks(chosen, names, list(range(args.seeds))),
                       jobs=args.jobs, cache=args.cache)
    auc, ap, secs = mean_by(results), mean_by(results, "ap"), mean_by(results, "seconds")
    rows = []
    for label in chosen:
        rows.append([label] + [f"{np.mean([table[(label, n)] for n in names]):{spec}}"
                               for table, spec in ((auc, ".4f"), (ap, ".4f"), (secs, ".1f"))]
                    + [f"{auc[(label, n)]:.3f}" for n in names])
    print()
    print(f"pyod-odim {pyod_odim.__version__}; one change to the ODIM defaults per row; "
          f"mean over {', '.join(names)}; seeds 0..{args.seeds - 1}; one thread per fit, "
          f"{args.jobs} fit(s) at a time")
    print(markdown_table(["variant", "mean AUC", "mean AP", "mean fit s"]
                         + [f"{n} AUC" for n in names], rows))


if __name__ == "__main__":
    main()
