"""Training ROC-AUC / AP of ODIM next to the paper and PyOD's IForest.

The paper's protocol: fit on all rows with the labels hidden, then score the
same rows. Default parameters, several seeds, IForest run in the same script.

    python benchmarks/bench_accuracy.py [--seeds 3] [--datasets cardio,thyroid]
"""

import argparse
import json

import numpy as np
from pyod.models.iforest import IForest
from sklearn.metrics import average_precision_score, roc_auc_score

from _common import (
    COMPARABLE, DIFFERENT, PAPER_IFOREST_AUC, PAPER_ODIM_AUC,
    load, markdown_table, require_datasets, timed,
)
from pyod_odim import ODIM


def evaluate(name, seeds, odim_params):
    X, y = load(name)
    rows = {"odim_auc": [], "odim_ap": [], "if_auc": [], "if_ap": [], "odim_s": [], "updates": []}
    for seed in seeds:
        clf, seconds = timed(ODIM(random_state=seed, **odim_params).fit, X)
        rows["odim_auc"].append(roc_auc_score(y, clf.decision_scores_))
        rows["odim_ap"].append(average_precision_score(y, clf.decision_scores_))
        rows["odim_s"].append(seconds)
        rows["updates"].append(clf.n_updates_)
        iforest = IForest(random_state=seed).fit(X)
        rows["if_auc"].append(roc_auc_score(y, iforest.decision_scores_))
        rows["if_ap"].append(average_precision_score(y, iforest.decision_scores_))
    return {k: float(np.mean(v)) for k, v in rows.items()} | {
        "odim_auc_std": float(np.std(rows["odim_auc"]))
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--datasets", default=",".join(COMPARABLE + DIFFERENT))
    parser.add_argument("--params", default="{}", help="ODIM parameters as JSON")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    require_datasets()
    params = json.loads(args.params)
    names = args.datasets.split(",")
    results = {}
    table = []
    for name in names:
        r = evaluate(name, range(args.seeds), params)
        results[name] = r
        paper = PAPER_ODIM_AUC.get(name)
        delta = "" if paper is None else f"{r['odim_auc'] - paper:+.3f}"
        note = "" if name in COMPARABLE else " (differs from paper's set)"
        table.append([
            name + note, f"{r['odim_auc']:.3f} ± {r['odim_auc_std']:.3f}",
            f"{paper:.3f}" if paper else "-", delta, f"{r['odim_ap']:.3f}",
            f"{r['if_auc']:.3f}", f"{PAPER_IFOREST_AUC.get(name, float('nan')):.3f}",
            f"{r['if_ap']:.3f}", f"{r['odim_s']:.1f}", f"{r['updates']:.0f}",
        ])
        print(f"{name}: ODIM AUC {r['odim_auc']:.4f} AP {r['odim_ap']:.4f} "
              f"({r['odim_s']:.1f} s, {r['updates']:.0f} updates); "
              f"IForest AUC {r['if_auc']:.4f}", flush=True)
    comparable = [n for n in names if n in COMPARABLE]
    if comparable:
        ours = np.mean([results[n]["odim_auc"] for n in comparable])
        paper = np.mean([PAPER_ODIM_AUC[n] for n in comparable])
        iforest = np.mean([results[n]["if_auc"] for n in comparable])
        table.append([
            f"**mean of {len(comparable)} comparable**", f"**{ours:.3f}**", f"{paper:.3f}",
            f"{ours - paper:+.3f}", "", f"{iforest:.3f}",
            f"{np.mean([PAPER_IFOREST_AUC[n] for n in comparable]):.3f}", "", "", "",
        ])
    print()
    print(f"ODIM parameters: defaults {params or ''}; seeds 0..{args.seeds - 1}; "
          "training AUC/AP on all rows")
    print(markdown_table(
        ["dataset", "ODIM AUC", "paper ODIM", "Δ", "ODIM AP", "IForest AUC",
         "paper IForest", "IForest AP", "ODIM fit s", "updates"], table))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"params": params, "seeds": args.seeds, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
