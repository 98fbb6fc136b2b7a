"""Extreme values: a few corrupted rows must not blind ODIM.

    python benchmarks/bench_robustness.py [--sets ...] [--seeds 3] [--rows 0.01] [--value 1e12]

For every shared tabular set and seed: ODIM (defaults, ``random_state=seed``)
and PyOD's IForest fitted on the clean rows, and on the same rows plus
``--rows`` (default 1 %) extra rows, each a copy of a random inlier with one
random feature set to ``--value`` (default 1e12): a sentinel or an unscaled
unit. Both protocols read the AUC over the original rows only. ODIM is also
fitted with ``scaling_fence=None`` (plain min-max bounds, the scaling before
the fence) on the corrupted rows of the first seed, to show what the fence
buys. Every figure
is measured in this run.
"""

import argparse
import time

import numpy as np
from pyod.models.iforest import IForest
from sklearn.metrics import roc_auc_score

from _common import (
    COMPARABLE, DIFFERENT, ResultsText, add_results_argument, load, markdown_table,
    require_datasets, write_results,
)
import pyod_odim
from pyod_odim import ODIM

TABULAR = sorted(COMPARABLE + DIFFERENT)


def corrupt(X, y, share, value, seed):
    """X with ``share * n`` extra rows: random inliers, one random feature set to ``value``."""
    rng = np.random.RandomState(seed)
    inliers = np.flatnonzero(y == 0)
    n_extra = max(1, int(round(share * len(X))))
    extra = X[rng.choice(inliers, n_extra)].copy()
    extra[np.arange(n_extra), rng.randint(0, X.shape[1], n_extra)] = value
    return np.vstack([X, extra])


def auc_on_original(detector, X, y):
    scores = detector.fit(X).decision_scores_[: len(y)]
    return roc_auc_score(y, scores)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=TABULAR)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rows", type=float, default=0.01)
    parser.add_argument("--value", type=float, default=1e12)
    add_results_argument(parser)
    args = parser.parse_args()
    require_datasets()
    out = ResultsText()
    out.add(f"bench_robustness: pyod-odim {pyod_odim.__version__}, ODIM defaults "
            f"(scaling_fence={ODIM().scaling_fence:g}), n_jobs=1; {args.rows:.0%} extra rows "
            f"with one feature at {args.value:g}; seeds 0..{args.seeds - 1}; AUC over the "
            "original rows")
    t0 = time.perf_counter()
    rows, worst = [], 0.0
    for name in args.sets:
        X, y = load(name)
        figures = {k: [] for k in ("odim", "odim_bad", "minmax_bad", "if", "if_bad")}
        for seed in range(args.seeds):
            bad = corrupt(X, y, args.rows, args.value, seed)
            figures["odim"].append(auc_on_original(ODIM(random_state=seed), X, y))
            figures["odim_bad"].append(auc_on_original(ODIM(random_state=seed), bad, y))
            if seed == 0:
                figures["minmax_bad"].append(
                    auc_on_original(ODIM(random_state=seed, scaling_fence=None), bad, y))
            figures["if"].append(auc_on_original(IForest(random_state=seed), X, y))
            figures["if_bad"].append(auc_on_original(IForest(random_state=seed), bad, y))
        mean = {k: float(np.mean(v)) for k, v in figures.items()}
        drop = mean["odim"] - mean["odim_bad"]
        worst = max(worst, drop)
        rows.append([name, f"{X.shape[0]} x {X.shape[1]}", f"{mean['odim']:.3f}",
                     f"{mean['odim_bad']:.3f}", f"{-drop:+.3f}", f"{mean['minmax_bad']:.3f}",
                     f"{mean['if']:.3f}", f"{mean['if_bad']:.3f}"])
        print(f"  {name}: {rows[-1][2:]}", flush=True)
    out.add()
    out.add(markdown_table(
        ["data", "n x d", "ODIM clean", "ODIM corrupted", "change", "ODIM corrupted, min-max (seed 0)",
         "IForest clean", "IForest corrupted"], rows))
    out.add(f"\nlargest ODIM drop (clean - corrupted, mean over seeds): {worst:.3f} "
            f"over {len(rows)} sets; ran {time.perf_counter() - t0:.0f} s")
    if args.write_results:
        write_results("robustness", out.text())


if __name__ == "__main__":
    main()
