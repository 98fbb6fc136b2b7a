"""Record every check of long ODIM fits, to study selection rules offline.

    python studies/record_trajectories.py OUT_DIR [--datasets ...] [--seeds 3]
        [--updates 800] [--jobs 2]

Each fit runs ``--updates`` updates with no early stopping (patience larger
than the run) and saves, per check, every member's losses of the selection
set and its GMM-2 distance, with the labels of those rows, to
``OUT_DIR/{dataset}_{seed}.npz``:

* ``updates`` (C,), ``distance`` (C, M), ``losses`` (C, M, m) float32,
* ``y`` (m,) labels of the selection rows, ``rows`` (m,) their indices.

``studies/study_selection.py`` replays checkpoint selection, stopping and
member combination rules on these files without refitting.
"""

import argparse
import multiprocessing as mp
import os
import sys

import numpy as np

# The benchmarks' shared helpers (_common, _grid) live in ../benchmarks.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benchmarks"))

from _common import load  # noqa: E402
from _grid import ALL_SETS  # noqa: E402


def record(task):
    name, seed, updates, out_dir = task
    import torch

    torch.set_num_threads(1)
    from pyod_odim import ODIM
    from pyod_odim import training

    path = os.path.join(out_dir, f"{name}_{seed}.npz")
    if os.path.exists(path):
        return path
    X, y = load(name)
    seen = {"updates": [], "distance": [], "losses": []}
    original = training.EnsembleFit.keep_or_stop

    def keep_or_stop(self, losses, distance):
        seen["updates"].append(self.n_updates)
        seen["distance"].append(distance.copy())
        seen["losses"].append(losses.astype(np.float32))
        seen["rows"] = self.selection_index
        return original(self, losses, distance)

    training.EnsembleFit.keep_or_stop = keep_or_stop
    try:
        ODIM(random_state=seed, patience=updates, max_updates=updates).fit(X)
    finally:
        training.EnsembleFit.keep_or_stop = original
    rows = seen["rows"] if seen["rows"] is not None else np.arange(X.shape[0])
    np.savez_compressed(
        path, updates=np.asarray(seen["updates"]), distance=np.stack(seen["distance"]),
        losses=np.stack(seen["losses"]), y=y[rows], rows=rows,
    )
    print(f"{name} seed {seed}: {len(seen['updates'])} checks", flush=True)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--datasets", default=",".join(ALL_SETS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--updates", type=int, default=800)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    tasks = [(n, s, args.updates, args.out_dir) for n in args.datasets.split(",")
             for s in range(args.seeds)]
    with mp.get_context("spawn").Pool(args.jobs) as pool:
        for _ in pool.imap_unordered(record, tasks):
            pass


if __name__ == "__main__":
    main()
