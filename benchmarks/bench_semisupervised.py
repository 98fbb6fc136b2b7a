"""Semi-supervised ODIM: a fraction of the outliers is known (paper sec. 5.2).

For each labeled fraction l, l of the outliers are marked in y (drawn per
seed), ODIM is fitted with ``use_labels=True`` (CUBO term on the known
outliers), and training ROC-AUC / AP are measured on all rows, as in the
paper's Tables 11 and 12. Both checkpoint criteria are run: the unsupervised
GMM distance and the label-aware rank criterion.

    python benchmarks/bench_semisupervised.py [--seeds 3] [--datasets ...]
"""

import argparse

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from _common import load, markdown_table, require_datasets
from pyod_odim import ODIM

DEFAULT_SETS = "cardio,satellite,satimage-2,shuttle,thyroid"
FRACTIONS = (0.0, 0.1, 0.3, 0.5)
# The paper's training AUC at l = 0 and l = 0.3 (section 5.2); others unknown here.
PAPER_AUC = {
    ("cardio", 0.0): 0.916, ("cardio", 0.3): 0.991,
    ("satellite", 0.0): 0.690, ("satellite", 0.3): 0.868,
    ("thyroid", 0.0): 0.928, ("thyroid", 0.3): 0.995,
}


def known_outliers(y, fraction, seed):
    """y with a random ``fraction`` of the outliers kept, the rest set to 0."""
    rng = np.random.default_rng(1000 + seed)
    outliers = np.flatnonzero(y == 1)
    keep = rng.choice(outliers, size=int(round(fraction * len(outliers))), replace=False)
    partial = np.zeros_like(y)
    partial[keep] = 1
    return partial


def run(name, fraction, selection, seeds):
    X, y = load(name)
    aucs, aps = [], []
    for seed in seeds:
        partial = known_outliers(y, fraction, seed)
        clf = ODIM(random_state=seed, use_labels=fraction > 0, label_selection=selection)
        clf.fit(X, partial if fraction > 0 else None)
        aucs.append(roc_auc_score(y, clf.decision_scores_))
        aps.append(average_precision_score(y, clf.decision_scores_))
    return np.mean(aucs), np.mean(aps)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--datasets", default=DEFAULT_SETS)
    args = parser.parse_args()
    require_datasets()
    rows = []
    for name in args.datasets.split(","):
        for fraction in FRACTIONS:
            selections = ("gmm",) if fraction == 0 else ("gmm", "rank")
            cells = {}
            for selection in selections:
                cells[selection] = run(name, fraction, selection, range(args.seeds))
            auc_g, ap_g = cells["gmm"]
            auc_r, ap_r = cells.get("rank", (float("nan"), float("nan")))
            paper = PAPER_AUC.get((name, fraction))
            rows.append([name, fraction, f"{auc_g:.3f}", f"{ap_g:.3f}",
                         "-" if fraction == 0 else f"{auc_r:.3f}",
                         "-" if fraction == 0 else f"{ap_r:.3f}",
                         f"{paper:.3f}" if paper else "-"])
            print(" ".join(map(str, rows[-1])), flush=True)
    print()
    print(f"Training AUC / AP on all rows, mean of {args.seeds} seeds")
    print(markdown_table(
        ["dataset", "labeled l", "AUC (GMM select)", "AP (GMM select)",
         "AUC (rank select)", "AP (rank select)", "paper AUC"], rows))


if __name__ == "__main__":
    main()
