"""Ablations of ODIM's design choices, one row per variant.

Each variant changes one parameter of the defaults; training ROC-AUC and AP
(fit on all rows, score the same rows) are averaged over datasets and seeds,
with the mean fit time.

    python benchmarks/bench_ablation.py [--seeds 2] [--datasets ...]
"""

import argparse

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from _common import load, markdown_table, require_datasets, timed
import pyod_odim
from pyod_odim import ODIM

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
    args = parser.parse_args()
    require_datasets()
    names = args.datasets.split(",")
    data = {name: load(name) for name in names}
    rows = []
    per_set_header = [f"{n} AUC" for n in names]
    for row, (label, params) in enumerate(VARIANTS.items()):
        if args.variants and row not in args.variants:
            continue
        aucs, aps, secs = {n: [] for n in names}, [], []
        for name in names:
            X, y = data[name]
            for seed in range(args.seeds):
                clf, seconds = timed(ODIM(random_state=seed, **params).fit, X)
                aucs[name].append(roc_auc_score(y, clf.decision_scores_))
                aps.append(average_precision_score(y, clf.decision_scores_))
                secs.append(seconds)
        mean_auc = np.mean([np.mean(v) for v in aucs.values()])
        rows.append([label, f"{mean_auc:.4f}", f"{np.mean(aps):.4f}", f"{np.mean(secs):.1f}"]
                    + [f"{np.mean(aucs[n]):.3f}" for n in names])
        print(" | ".join(rows[-1]), flush=True)
    print()
    print(f"pyod-odim {pyod_odim.__version__}; one change to the ODIM defaults per row; "
          f"mean over {', '.join(names)}; seeds 0..{args.seeds - 1}; one thread per fit")
    print(markdown_table(["variant", "mean AUC", "mean AP", "mean fit s"] + per_set_header, rows))


if __name__ == "__main__":
    main()
