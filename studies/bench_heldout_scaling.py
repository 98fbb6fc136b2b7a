"""Held-out rows beyond the training range: clipped with an overshoot cost, or extrapolated.

    python studies/bench_heldout_scaling.py [--sets ...] [--seeds 3]

PyOD's benchmark protocol (``notebooks/benchmark.py`` in PyOD's
repository): for iteration ``i``, a 60/40 split with
``np.random.RandomState(i)``, ``standardizer`` fitted on the training
part, ODIM with ``contamination`` = the outlier fraction and
``random_state=i`` fitted on the training rows, test ROC-AUC and precision
@ n. Each fit is scored twice on the test rows, in the same process:

* ``clipped`` (this version): the network sees every scaled value clipped
  to its box (ten bound-widths beyond the training bounds on either side,
  ``pyod_odim.scaling.network_box``) and a value beyond the box adds the
  overshoot cost of :mod:`pyod_odim.scaling`;
* ``extrapolated`` (the scoring before it): the network sees the scaled
  values as they are, however far outside [0, 1], with no added cost.

On the training rows the two are the same, so the fit is shared and only
the scoring of unseen rows differs. Also printed: the share of test rows
with a value outside the training bounds, and with one beyond the box.
"""

import argparse
import os
import sys
import time

import numpy as np
import torch
from pyod.utils.utility import precision_n_scores, standardizer
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

# The benchmarks' shared helpers (_common, _grid) live in ../benchmarks.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benchmarks"))

from _common import load, markdown_table, require_datasets  # noqa: E402
from _grid import SHARED_SETS  # noqa: E402
import pyod_odim  # noqa: E402
from pyod_odim import ODIM  # noqa: E402

ALL_SETS = SHARED_SETS


def extrapolated_scores(clf, X):
    """Scores of rows under the fitted model without clipping or overshoot cost."""
    scorer = clf.scorer_
    engine = scorer.scoring_engine(clf.engine, torch.device("cpu"), 1)
    params, eps = scorer.torch_params(torch.device("cpu"))
    scaled = torch.as_tensor(scorer.scaling.transform(X), dtype=torch.float32)
    return scorer.combine(engine.score(params, scaled, eps))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=ALL_SETS)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    require_datasets()
    torch.set_num_threads(1)
    print(f"bench_heldout_scaling: pyod-odim {pyod_odim.__version__}, ODIM defaults, "
          f"n_jobs=1, iterations 0..{args.seeds - 1}, PyOD's 60/40 protocol")
    t0 = time.perf_counter()
    rows = []
    means = {"clipped": [], "extrapolated": []}
    for name in args.sets:
        X, y = load(name)
        auc = {"clipped": [], "extrapolated": []}
        prn = {"clipped": [], "extrapolated": []}
        outside, beyond = [], []
        for i in range(args.seeds):
            X_train, X_test, _, y_test = train_test_split(
                X, y, test_size=0.4, random_state=np.random.RandomState(i))
            X_train, X_test = standardizer(X_train, X_test)
            clf = ODIM(contamination=float(y.mean()), random_state=i).fit(X_train)
            scaled = clf.scorer_.scaling.transform(X_test)
            low, high = clf.scorer_.box
            outside.append(float(((scaled < 0) | (scaled > 1)).any(axis=1).mean()))
            beyond.append(float(((scaled < low) | (scaled > high)).any(axis=1).mean()))
            for kind, scores in (("clipped", clf.decision_function(X_test)),
                                 ("extrapolated", extrapolated_scores(clf, X_test))):
                auc[kind].append(roc_auc_score(y_test, scores))
                prn[kind].append(precision_n_scores(y_test, scores))
        for kind in means:
            means[kind].append(np.mean(auc[kind]))
        rows.append([name, f"{X.shape[0]} x {X.shape[1]}", f"{np.mean(outside):.0%}",
                     f"{np.mean(beyond):.1%}",
                     f"{np.mean(auc['extrapolated']):.3f}", f"{np.mean(auc['clipped']):.3f}",
                     f"{np.mean(auc['clipped']) - np.mean(auc['extrapolated']):+.3f}",
                     f"{np.mean(prn['extrapolated']):.3f}", f"{np.mean(prn['clipped']):.3f}"])
        print(f"  {name}: {rows[-1][2:]}", flush=True)
    print()
    print(markdown_table(
        ["data", "n x d", "test rows outside the bounds", "beyond the box", "ROC extrapolated",
         "ROC clipped",
         "change", "P@n extrapolated", "P@n clipped"], rows))
    print(f"\nmean test ROC over {len(rows)} sets: extrapolated {np.mean(means['extrapolated']):.4f}, "
          f"clipped {np.mean(means['clipped']):.4f}; ran {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
