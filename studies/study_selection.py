"""Replay checkpoint-selection, stopping and combination rules on recorded fits.

    python studies/study_selection.py TRAJ_DIR [--rules all]

Reads the files of ``record_trajectories.py`` and, for every rule, picks
each member's checkpoint from the recorded checks, combines the members'
losses at those checkpoints, and reports the AUC over the recorded rows
(all rows, or the fixed selection subset of large sets) and the mean
update at which members stop (the training cost). Rules are general: the
same settings on every data set.

A study, not a benchmark: candidates that look good here are then run as
real fits, side by side with the defaults, by ``bench_accuracy.py``.
"""

import argparse
import glob
import os
import sys
from collections import defaultdict

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

# The benchmarks' shared helpers (_common, _grid) live in ../benchmarks.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benchmarks"))

from _common import COMPARABLE, markdown_table  # noqa: E402


# ------------------------------------------------------------ stopping rules
def choose(distance, updates, warmup=50, patience=10, smooth=1):
    """Per member: (index of the chosen check, update at which it stopped).

    The paper's rule with a warm-up: the check with the largest criterion,
    a member stopping after ``patience`` checks without a new maximum. With
    ``smooth`` > 1 the criterion is a trailing mean over that many checks.
    """
    C, M = distance.shape
    crit = distance.copy()
    if smooth > 1:
        crit = np.stack([np.nanmean(distance[max(0, c - smooth + 1):c + 1], axis=0)
                         for c in range(C)])
    chosen = np.full(M, C - 1)
    stopped = np.full(M, updates[-1])
    for m in range(M):
        best, waited = -np.inf, 0
        for c in range(C):
            if updates[c] < warmup:
                continue
            if np.isfinite(crit[c, m]) and crit[c, m] > best:
                best, chosen[m], waited = crit[c, m], c, 0
            else:
                waited += 1
            if waited >= patience:
                stopped[m] = updates[c]
                break
    return chosen, stopped


# ---------------------------------------------------------- combination rules
def _minmax(a):
    lo, hi = a.min(axis=-1, keepdims=True), a.max(axis=-1, keepdims=True)
    return (a - lo) / np.where(hi > lo, hi - lo, 1.0)


def combine(member_losses, how="mean", distance=None):
    """Scores (m,) from the chosen checkpoints' losses (M, m)."""
    L = member_losses
    if how == "mean":
        return L.mean(axis=0)
    if how == "rank":
        return np.mean([rankdata(row) for row in L], axis=0)
    if how == "robust":
        med = np.median(L, axis=1, keepdims=True)
        iqr = np.subtract(*np.percentile(L, [75, 25], axis=1))[:, None]
        return ((L - med) / np.where(iqr > 0, iqr, 1.0)).mean(axis=0)
    if how == "minmax":
        return _minmax(L).mean(axis=0)
    if how == "weighted":  # members weighted by their chosen criterion
        w = np.clip(np.nan_to_num(distance), 0, None)
        return (w[:, None] * _minmax(L)).sum(axis=0) / max(w.sum(), 1e-12)
    raise ValueError(how)


def evaluate(traj, rule):
    losses, distance, updates, y = traj["losses"], traj["distance"], traj["updates"], traj["y"]
    chosen, stopped = choose(distance, updates, **rule.get("choose", {}))
    M = losses.shape[1]
    window = rule.get("average", 0)
    picked = []
    for m in range(M):
        c = chosen[m]
        if window:
            # Average the normalized losses of the checks around the chosen one
            # (only checks the member reached before stopping).
            last = np.searchsorted(updates, stopped[m], side="right") - 1
            lo, hi = max(0, c - window), min(last, c + window)
            picked.append(_minmax(losses[lo:hi + 1, m]).mean(axis=0))
        else:
            picked.append(losses[c, m])
    picked = np.stack(picked)
    dist = distance[chosen, np.arange(M)]
    keep = np.ones(M, dtype=bool)
    if rule.get("drop", 0):
        keep = dist >= rule["drop"] * np.nanmedian(dist)
        if not keep.any():
            keep[:] = True
    scores = combine(picked[keep], rule.get("combine", "mean"), dist[keep])
    return roc_auc_score(y, scores), float(np.mean(stopped))


RULES = {
    "paper + warm-up (defaults)": {},
    "patience 5": {"choose": {"patience": 5}},
    "patience 20": {"choose": {"patience": 20}},
    "patience 30": {"choose": {"patience": 30}},
    "smoothed x3": {"choose": {"smooth": 3}},
    "smoothed x5, patience 15": {"choose": {"smooth": 5, "patience": 15}},
    "rank combination": {"combine": "rank"},
    "robust z combination": {"combine": "robust"},
    "min-max combination": {"combine": "minmax"},
    "distance-weighted": {"combine": "weighted"},
    "drop members < 0.5 median distance": {"drop": 0.5},
    "average checks +-2": {"average": 2},
    "average checks +-5, patience 20": {"average": 5, "choose": {"patience": 20}},
    "warm-up 100": {"choose": {"warmup": 100}},
    "smoothed x2": {"choose": {"smooth": 2}},
    "smoothed x4": {"choose": {"smooth": 4}},
    "smoothed x3, patience 12": {"choose": {"smooth": 3, "patience": 12}},
    "smoothed x3, patience 15": {"choose": {"smooth": 3, "patience": 15}},
    "smoothed x3, warm-up 100": {"choose": {"smooth": 3, "warmup": 100}},
    "smoothed x3, patience 8": {"choose": {"smooth": 3, "patience": 8}},
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("traj_dir")
    parser.add_argument("--rules", default="all")
    args = parser.parse_args()
    rules = RULES if args.rules == "all" else {k: RULES[k] for k in args.rules.split(";")}
    files = sorted(glob.glob(os.path.join(args.traj_dir, "*.npz")))
    auc = defaultdict(lambda: defaultdict(list))
    cost = defaultdict(list)
    names = []
    for path in files:
        name = os.path.basename(path).rsplit("_", 1)[0]
        if name not in names:
            names.append(name)
        with np.load(path) as f:
            traj = {k: f[k] for k in f.files}
        for label, rule in rules.items():
            a, stop = evaluate(traj, rule)
            auc[label][name].append(a)
            cost[label].append(stop)
    rows = []
    for label in rules:
        per = {n: np.mean(v) for n, v in auc[label].items()}
        comp = [per[n] for n in names if n in COMPARABLE]
        rows.append([label, f"{np.mean(comp):.4f} ({len(comp)})", f"{np.mean(list(per.values())):.4f}",
                     f"{np.mean(cost[label]):.0f}"] + [f"{per[n]:.3f}" for n in names])
    print(markdown_table(["rule", "mean AUC comparable", "mean AUC all", "mean stop update"]
                         + names, rows))


if __name__ == "__main__":
    main()
