"""Fit detectors over data sets and seeds in worker processes, and tabulate.

A task is one fit: an ODIM variant (a dict of parameters over the defaults)
or a PyOD peer at its defaults, on one shared data set with one seed. Tasks
run in ``jobs`` worker processes, one thread each (ODIM's ``n_jobs=1``; the
peers' PyTorch pool is set to one thread too, so that two workers share two
cores fairly). Results can be appended to a JSON-lines file and read back,
so that an interrupted run resumes where it stopped, and scripts that share
the file share the fits they have in common.
"""

import json
import multiprocessing as mp
import os
import time

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.preprocessing import MinMaxScaler

from _common import COMPARABLE, DIFFERENT, load

EMBEDDINGS = ["mvtec-ad_bottle", "20news_3"]
ALL_SETS = COMPARABLE + DIFFERENT + EMBEDDINGS
PEERS = ("IForest", "KNN", "LOF", "ECOD", "OCSVM", "AutoEncoder", "VAE", "DeepSVDD")
# Peers too slow to run on the largest set here (see ../shared/baselines).
PEER_SKIPS = {("OCSVM", "cover"), ("VAE", "cover"), ("DeepSVDD", "cover")}


def make_peer(name, n_features, seed):
    from pyod.models.auto_encoder import AutoEncoder
    from pyod.models.deep_svdd import DeepSVDD
    from pyod.models.ecod import ECOD
    from pyod.models.iforest import IForest
    from pyod.models.knn import KNN
    from pyod.models.lof import LOF
    from pyod.models.ocsvm import OCSVM
    from pyod.models.vae import VAE

    return {
        "IForest": lambda: IForest(random_state=seed),
        "KNN": KNN,
        "LOF": LOF,
        "ECOD": ECOD,
        "OCSVM": OCSVM,
        "AutoEncoder": lambda: AutoEncoder(verbose=0, random_state=seed),
        "VAE": lambda: VAE(verbose=0, random_state=seed),
        "DeepSVDD": lambda: DeepSVDD(n_features=n_features, verbose=0, random_state=seed),
    }[name]()


def _key(task):
    """What identifies a fit: an ODIM variant by its parameters (whatever its
    label, so that scripts sharing a cache file share fits), a peer by name."""
    fields = ("kind", "params", "dataset", "seed") if task["kind"] == "odim" else (
        "kind", "label", "dataset", "seed")
    return json.dumps({k: task[k] for k in fields}, sort_keys=True)


def _init_worker():
    import torch

    torch.set_num_threads(1)


def run_task(task):
    """Fit one detector; return the task with its AUC, AP, seconds (and updates)."""
    from pyod_odim import ODIM

    X, y = load(task["dataset"])
    t0 = time.perf_counter()
    if task["kind"] == "odim":
        clf = ODIM(random_state=task["seed"], **task["params"]).fit(X)
        extra = {"updates": int(clf.n_updates_)}
    else:
        # As ../shared/baselines: features min-max scaled, PyOD defaults.
        Xs = MinMaxScaler().fit_transform(X)
        t0 = time.perf_counter()
        clf = make_peer(task["label"], X.shape[1], task["seed"]).fit(Xs)
        extra = {}
    seconds = time.perf_counter() - t0
    scores = clf.decision_scores_
    return dict(task, auc=float(roc_auc_score(y, scores)),
                ap=float(average_precision_score(y, scores)), seconds=seconds, **extra)


def odim_tasks(variants, datasets, seeds):
    return [dict(kind="odim", label=label, params=params, dataset=name, seed=seed)
            for label, params in variants.items() for name in datasets for seed in seeds]


def peer_tasks(peers, datasets, seeds):
    deterministic = {"KNN", "LOF", "ECOD", "OCSVM"}
    return [dict(kind="peer", label=p, params={}, dataset=name, seed=seed)
            for p in peers for name in datasets
            for seed in (seeds[:1] if p in deterministic else seeds)
            if (p, name) not in PEER_SKIPS]


def add_grid_arguments(parser, jobs=2):
    """The options every script built on :func:`run_grid` takes."""
    parser.add_argument("--jobs", type=int, default=jobs, help="worker processes")
    parser.add_argument("--cache", help="JSON-lines file of results to resume from")


def run_grid(tasks, jobs=2, cache=None):
    """Run every task not already in ``cache``; return all results."""
    done = {}
    if cache and os.path.exists(cache):
        with open(cache) as handle:
            for line in handle:
                record = json.loads(line)
                done[_key(record)] = record
    todo = [t for t in tasks if _key(t) not in done]
    # Largest data sets first, so that the workers finish together.
    todo.sort(key=lambda t: -_size(t["dataset"]))
    if todo:
        with mp.get_context("spawn").Pool(jobs, initializer=_init_worker) as pool:
            for record in pool.imap_unordered(run_task, todo):
                done[_key(record)] = record
                if cache:
                    with open(cache, "a") as handle:
                        handle.write(json.dumps(record) + "\n")
                print(f"{record['label']:>28} {record['dataset']:>16} seed {record['seed']}: "
                      f"AUC {record['auc']:.4f} ({record['seconds']:.1f} s)", flush=True)
    return [dict(done[_key(t)], label=t["label"]) for t in tasks]


_SIZES = {}


def _size(name):
    if name not in _SIZES:
        X, _ = load(name)
        _SIZES[name] = X.shape[0] * X.shape[1]
    return _SIZES[name]


def mean_by(results, field="auc"):
    """{(label, dataset): mean of field over seeds}."""
    groups = {}
    for r in results:
        groups.setdefault((r["label"], r["dataset"]), []).append(r[field])
    return {k: float(np.mean(v)) for k, v in groups.items()}


def average_ranks(means, labels, datasets):
    """Mean rank (1 = best, ties averaged) of each label over the data sets
    where every label has a result."""
    from scipy.stats import rankdata

    used = [d for d in datasets if all((lab, d) in means for lab in labels)]
    ranks = np.array([rankdata([-means[(lab, d)] for lab in labels]) for d in used])
    return dict(zip(labels, ranks.mean(axis=0))), used
