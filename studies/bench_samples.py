"""How many importance samples training and checks need (scores keep K = 50).

    python studies/bench_samples.py [--seeds 3] [--jobs 2] [--cache FILE]

Each variant sets ``n_samples_train`` (the K of every training update) and
``n_samples_check`` (the K of the checks that choose the checkpoints);
final scores and ``decision_function`` always use ``n_samples_iwae=50``.
Training ROC-AUC / AP on all rows and fit seconds, per data set (mean over
seeds) and averaged over the 12 paper-comparable sets and over all 17.
The paper's setting trains, checks and scores with K = 50.
"""

import argparse
import os
import sys

import numpy as np

# The benchmarks' shared helpers (_common, _grid) live in ../benchmarks.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benchmarks"))

from _common import COMPARABLE, markdown_table, require_datasets  # noqa: E402
from _grid import ALL_SETS, add_grid_arguments, mean_by, odim_tasks, run_grid  # noqa: E402
import pyod_odim  # noqa: E402

VARIANTS = {
    "train 50, checks 50 (paper)": {"n_samples_train": 50, "n_samples_check": 50},
    "train 20, checks 20": {"n_samples_train": 20, "n_samples_check": 20},
    "train 10, checks 10 (defaults)": {},
    "train 5, checks 5": {"n_samples_train": 5, "n_samples_check": 5},
    "train 10, checks 50": {"n_samples_train": 10, "n_samples_check": 50},
}
# K = 50 training on the widest set costs about an hour per fit here.
SKIP = {("train 50, checks 50 (paper)", "20news_3")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--datasets", default=",".join(ALL_SETS))
    parser.add_argument("--variants", default=";".join(VARIANTS),
                        help="variant labels separated by semicolons")
    add_grid_arguments(parser)
    args = parser.parse_args()
    require_datasets()
    names = args.datasets.split(",")
    variants = {k: VARIANTS[k] for k in args.variants.split(";")}
    tasks = [t for t in odim_tasks(variants, names, list(range(args.seeds)))
             if (t["label"], t["dataset"]) not in SKIP]
    results = run_grid(tasks, jobs=args.jobs, cache=args.cache)
    auc, ap, secs = mean_by(results), mean_by(results, "ap"), mean_by(results, "seconds")

    labels = list(variants)
    rows = []
    for n in names:
        rows.append([n] + [f"{auc[(lab, n)]:.3f}" if (lab, n) in auc else "-" for lab in labels])

    def summary(title, table, sets, fmt):
        cells = []
        for lab in labels:
            have = [n for n in sets if (lab, n) in table]
            value = fmt.format(np.mean([table[(lab, n)] for n in have])) if have else "-"
            cells.append(value + ("" if len(have) == len(sets) else f" ({len(have)} sets)"))
        rows.append([f"**{title}**"] + cells)

    comparable = [n for n in names if n in COMPARABLE]
    summary(f"mean AUC, {len(comparable)} comparable sets", auc, comparable, "{:.4f}")
    summary(f"mean AUC, all {len(names)} sets", auc, names, "{:.4f}")
    summary(f"mean AP, all {len(names)} sets", ap, names, "{:.4f}")
    summary("mean fit s (one thread)", secs, names, "{:.1f}")
    print()
    print(f"pyod-odim {pyod_odim.__version__}; ODIM defaults otherwise (n_samples_iwae=50 "
          f"for the scores); seeds 0..{args.seeds - 1}; training AUC on all rows, mean over "
          "seeds; one thread per fit")
    print(markdown_table(["data set"] + labels, rows))


if __name__ == "__main__":
    main()
