"""Should the final scores of a bfloat16 fit use bfloat16 products too? (issue 28)

A ``precision="bfloat16"`` fit runs its updates and its checks with
bfloat16 products; its final scores (``decision_scores_`` and
``decision_function``) are float32. This study fits each shared embedding
set with ``precision="bfloat16"`` and scores the same rows both ways with
the same fitted model: float32 (what users get) and bfloat16 products
(``pyod_odim.kernels.score_losses(..., bf16=True)`` in place of the
scorer's engine). Both protocols, seeds 0..n-1:

* ``paper``: fit on all rows, AUC of the training rows' scores;
* ``pyod``: PyOD's protocol (60/40 split by ``RandomState(seed)``,
  ``standardizer``), AUC of the held-out rows' scores.

It reports, per set, the mean AUC of each scoring, the largest change of a
member loss relative to its spread, and the seconds of each scoring pass
(one thread, alone on the machine).

    python studies/bf16_scoring.py [--sets ...] [--seeds 3]
"""

import argparse
import os
import sys
import time

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benchmarks"))

from _common import load, markdown_table  # noqa: E402
from _grid import FAMILIES  # noqa: E402

SETS = FAMILIES["sparse image"] + FAMILIES["dense image"] + FAMILIES["text"]


class Bf16Scoring:
    """A kernel engine whose scoring passes run bfloat16 products."""

    def __init__(self, engine):
        self.engine = engine

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def score(self, params, X, score_eps, bf16=False):
        return self.engine.score(params, X, score_eps, bf16=True)


def scored_both_ways(clf, X):
    """(float32 scores, seconds), (bfloat16 scores, seconds) of the rows X."""
    scorer = clf.scorer_
    plain = scorer.scoring_engine

    def bf16_engine(*args, **kwargs):
        return Bf16Scoring(plain(*args, **kwargs))

    t0 = time.perf_counter()
    f32 = clf.decision_function(X)
    t1 = time.perf_counter()
    scorer.scoring_engine = bf16_engine
    try:
        b16 = clf.decision_function(X)
    finally:
        del scorer.scoring_engine  # back to the class's method
    t2 = time.perf_counter()
    return (f32, t1 - t0), (b16, t2 - t1)


def run(name, seed, protocol):
    import torch
    from pyod.utils.utility import standardizer
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    from pyod_odim import ODIM

    torch.set_num_threads(1)
    X, y = load(name)
    if protocol == "pyod":
        X_train, X_eval, _, y_eval = train_test_split(
            X, y, test_size=0.4, random_state=np.random.RandomState(seed))
        X_train, X_eval = standardizer(X_train, X_eval)
        clf = ODIM(contamination=float(np.mean(y)), random_state=seed, n_jobs=1,
                   precision="bfloat16").fit(X_train)
    else:
        X_eval, y_eval = X, y
        clf = ODIM(random_state=seed, n_jobs=1, precision="bfloat16").fit(X)
    (f32, t32), (b16, t16) = scored_both_ways(clf, X_eval)
    spread = np.std(f32)
    return dict(auc32=roc_auc_score(y_eval, f32), auc16=roc_auc_score(y_eval, b16),
                shift=float(np.max(np.abs(b16 - f32)) / spread), t32=t32, t16=t16,
                precision=clf.precision_)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    rows, deltas = [], {"paper": [], "pyod": []}
    for name in args.sets.split(","):
        for protocol in ("paper", "pyod"):
            runs = [run(name, seed, protocol) for seed in range(args.seeds)]
            assert all(r["precision"] == "bfloat16" for r in runs)
            a32 = np.mean([r["auc32"] for r in runs])
            a16 = np.mean([r["auc16"] for r in runs])
            deltas[protocol].append(a16 - a32)
            rows.append([name, protocol, f"{a32:.4f}", f"{a16:.4f}", f"{a16 - a32:+.4f}",
                         f"{max(r['shift'] for r in runs):.3f}",
                         f"{np.mean([r['t32'] for r in runs]):.2f}",
                         f"{np.mean([r['t16'] for r in runs]):.2f}"])
            print(" | ".join(rows[-1]), flush=True)
    print()
    print(markdown_table(["data", "protocol", "AUC, float32 scoring", "AUC, bfloat16 scoring",
                          "change", "largest score change / score s.d.",
                          "float32 scoring s", "bfloat16 scoring s"], rows))
    for protocol, d in deltas.items():
        print(f"{protocol}: mean change {np.mean(d):+.4f}, worst {np.min(d):+.4f}")


if __name__ == "__main__":
    main()
