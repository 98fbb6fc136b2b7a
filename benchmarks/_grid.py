"""Fit detectors over data sets and seeds in worker processes, and tabulate.

A task is one fit: an ODIM variant (a dict of parameters over the defaults)
or a PyOD peer at its defaults, on one shared data set with one seed. Tasks
run in ``jobs`` worker processes, one thread each (ODIM's ``n_jobs=1``; the
peers' PyTorch pool and the BLAS/OpenMP pools are set to one thread too, so
that two workers share two cores fairly). Results can be appended to a
JSON-lines file and read back, so that an interrupted run resumes where it
stopped, and scripts that share the file share the fits they have in common.

:func:`run_tasks` is the general runner under :func:`run_grid`: a task may
yield several records (a chain of fits that share state, as PyOD's benchmark
protocol needs), and a ``prepare`` hook sees every result so far just before
a task is submitted (so that a detector over a time budget can be skipped on
larger sets).
"""

import inspect
import json
import math
import multiprocessing as mp
import os
import queue
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

# The 22 shared sets by kind of feature (../shared/datasets/MANIFEST.md).
FAMILIES = {
    "tabular": COMPARABLE + DIFFERENT,
    "sparse image": ["mvtec-ad_bottle", "mvtec-ad_screw", "mvtec-ad_carpet", "cifar10_0", "svhn_0"],
    "dense image": ["mvtec-ad_carpet_vit"],
    "text": ["20news_3"],
}
SHARED_SETS = [name for members in FAMILIES.values() for name in members]

# PyOD detectors by class name: module under pyod.models.
PYOD_MODULES = {
    "ABOD": "abod", "CBLOF": "cblof", "FeatureBagging": "feature_bagging", "HBOS": "hbos",
    "IForest": "iforest", "KNN": "knn", "LOF": "lof", "MCD": "mcd", "OCSVM": "ocsvm",
    "PCA": "pca", "COPOD": "copod", "ECOD": "ecod", "GMM": "gmm", "KDE": "kde",
    "LODA": "loda", "INNE": "inne", "DIF": "dif", "LUNAR": "lunar",
    "AutoEncoder": "auto_encoder", "VAE": "vae", "DeepSVDD": "deep_svdd",
}
# These seed torch/NumPy with ``random_state`` and accept only an integer.
INT_SEED_ONLY = {"DIF", "AutoEncoder", "VAE", "DeepSVDD"}
# Deep models print a line per epoch unless told not to.
QUIET = {"AutoEncoder", "VAE", "DeepSVDD"}


def peer_class(name):
    """The PyOD detector class called ``name``."""
    import importlib

    return getattr(importlib.import_module("pyod.models." + PYOD_MODULES[name]), name)


def takes_random_state(name):
    """Whether the constructor of PyOD's ``name`` has a ``random_state``."""
    return "random_state" in inspect.signature(peer_class(name).__init__).parameters


def build_peer(name, n_features, random_state=None, **kwargs):
    """PyOD's ``name`` with ``kwargs`` over its defaults, ``random_state``
    where its constructor takes one, quiet, and the input width where the
    constructor requires it (DeepSVDD)."""
    cls = peer_class(name)
    params = inspect.signature(cls.__init__).parameters
    if random_state is not None and "random_state" in params:
        kwargs["random_state"] = random_state
    if name in QUIET:
        kwargs["verbose"] = 0
    if name == "DeepSVDD":
        kwargs["n_features"] = n_features
    return cls(**kwargs)


def make_peer(name, n_features, seed):
    """PyOD's ``name`` at its defaults, seeded with ``seed`` where it takes one."""
    return build_peer(name, n_features, random_state=seed)


def _key(task):
    """What identifies a fit: an ODIM variant by its parameters (whatever its
    label, so that scripts sharing a cache file share fits), a peer by name.
    A task of another protocol than the paper's carries its name and the
    detectors that drew from its random stream before it (``upstream``)."""
    fields = ("kind", "params" if task["kind"] == "odim" else "label", "dataset", "seed")
    if "protocol" in task:
        fields += ("protocol", "upstream")
    return json.dumps({k: task[k] for k in fields}, sort_keys=True)


def _init_worker():
    import torch

    torch.set_num_threads(1)


def seed_globals(seed):
    """Seed the global RNGs, for the detectors that draw from them unasked."""
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def error_text(exc):
    return f"{type(exc).__name__}: {exc}"[:300]


def run_task(task):
    """Fit one detector; return the task with its AUC, AP, seconds (and updates).

    A detector that raises is recorded with ``status="error"``, its message
    and NaN scores rather than stopping the run.
    """
    from pyod_odim import ODIM

    X, y = load(task["dataset"])
    seed_globals(task["seed"])
    try:
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
    except Exception as exc:  # noqa: BLE001 - one failing detector must not end the grid
        return dict(task, status="error", error=error_text(exc), auc=math.nan, ap=math.nan,
                    seconds=time.perf_counter() - t0)


def _run_one(task, emit):
    emit(run_task(task))


def odim_tasks(variants, datasets, seeds):
    return [dict(kind="odim", label=label, params=params, dataset=name, seed=seed)
            for label, params in variants.items() for name in datasets for seed in seeds]


def peer_tasks(peers, datasets, seeds):
    # A detector without a random_state gives the same fit for every seed.
    return [dict(kind="peer", label=p, params={}, dataset=name, seed=seed)
            for p in peers for name in datasets
            for seed in (seeds if takes_random_state(p) else seeds[:1])
            if (p, name) not in PEER_SKIPS]


def add_grid_arguments(parser, jobs=2):
    """The options every script built on :func:`run_grid` takes."""
    parser.add_argument("--jobs", type=int, default=jobs, help="worker processes")
    parser.add_argument("--cache", help="JSON-lines file of results to resume from")


def read_cache(cache):
    """{key: record} of a JSON-lines result file (empty if there is none)."""
    done = {}
    if cache and os.path.exists(cache):
        with open(cache) as handle:
            for line in handle:
                if line.strip():
                    record = json.loads(line)
                    done[_key(record)] = record
    return done


def describe(record):
    """One progress line for a record."""
    status = record.get("status", "ok")
    text = f"AUC {record['auc']:.4f}" if status == "ok" else status
    if status == "error":
        text += f" ({record.get('error', '')[:80]})"
    seed = record["seed"]
    where = f"{record.get('protocol', 'paper')} " if "protocol" in record else ""
    return (f"{where}{record['label']:>28} {record['dataset']:>16} seed {seed}: {text} "
            f"({record['seconds']:.1f} s)")


def _work(runner, task, cache):
    """Worker side of :func:`run_tasks`: run one task, storing each record
    as soon as it exists (a chain of fits can take long)."""
    records = []

    def emit(record):
        records.append(record)
        if cache:
            # One write on an O_APPEND descriptor: lines of parallel workers
            # do not interleave.
            fd = os.open(cache, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, (json.dumps(record) + "\n").encode())
            finally:
                os.close(fd)
        print(describe(record), flush=True)

    runner(task, emit)
    return records


def single_threaded_environment():
    """Ask the BLAS/OpenMP pools of the (spawned) workers for one thread."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMBA_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def run_tasks(tasks, runner, jobs=1, cache=None, prepare=None, done=None):
    """Run ``tasks`` in order in ``jobs`` worker processes; return {key: record}.

    Parameters
    ----------
    tasks : iterable of dict
        Submitted in this order, at most ``jobs`` at a time.
    runner : callable
        ``runner(task, emit)``, a module-level function run in a worker; it
        calls ``emit(record)`` once per result (each record is stored at
        once and printed).
    jobs : int
        Worker processes, one thread each.
    cache : str or None
        JSON-lines file the records are appended to and read from.
    prepare : callable or None
        ``prepare(task, done)`` just before submission, with every record so
        far (cached or new): returns the task to run (possibly changed) or
        None to run nothing. Without it a task whose key is cached is skipped.
    done : dict or None
        Records already read (``read_cache``); read from ``cache`` if None.

    Returns
    -------
    dict
        Every record by key, the cached ones included.
    """
    done = read_cache(cache) if done is None else done
    if cache and os.path.dirname(cache):
        os.makedirs(os.path.dirname(cache), exist_ok=True)
    pending = iter(tasks)
    if prepare is None:
        def prepare(task, known):
            return None if _key(task) in known else task

    def next_task():
        for task in pending:
            task = prepare(task, done)
            if task is not None:
                return task
        return None

    first = next_task()
    if first is None:
        return done
    single_threaded_environment()
    finished = queue.Queue()
    with mp.get_context("spawn").Pool(jobs, initializer=_init_worker) as pool:
        running = 0
        task = first
        while True:
            while task is not None and running < jobs:
                pool.apply_async(_work, (runner, task, cache),
                                 callback=lambda records: finished.put((records, None)),
                                 error_callback=lambda exc: finished.put((None, exc)))
                running += 1
                task = next_task() if running < jobs else None
            if running == 0:
                break
            records, exc = finished.get()
            running -= 1
            if exc is not None:
                raise exc
            for record in records:
                done[_key(record)] = record
            if task is None:
                task = next_task()
    return done


def run_grid(tasks, jobs=2, cache=None):
    """Run every task not already in ``cache``; return all results."""
    done = read_cache(cache)
    todo = [t for t in tasks if _key(t) not in done]
    # Largest data sets first, so that the workers finish together.
    todo.sort(key=lambda t: -_size(t["dataset"]))
    done = run_tasks(todo, _run_one, jobs=jobs, cache=cache, done=done)
    return [dict(done[_key(t)], label=t["label"]) for t in tasks]


_SHAPES = {}


def shape(name):
    """(rows, features) of a shared set."""
    if name not in _SHAPES:
        X, _ = load(name)
        _SHAPES[name] = X.shape
    return _SHAPES[name]


def _size(name):
    """Rows x features of a shared set."""
    n, d = shape(name)
    return n * d


def mean_by(results, field="auc"):
    """{(label, dataset): mean of field over seeds}."""
    groups = {}
    for r in results:
        groups.setdefault((r["label"], r["dataset"]), []).append(r[field])
    return {k: float(np.mean(v)) for k, v in groups.items()}


def average_ranks(means, labels, datasets):
    """Mean rank (1 = best, ties averaged) of each label over the data sets
    where every label has a (finite) result; also returns those sets."""
    from scipy.stats import rankdata

    used = [d for d in datasets
            if all(np.isfinite(means.get((lab, d), math.nan)) for lab in labels)]
    if not used:
        return {lab: math.nan for lab in labels}, used
    ranks = np.array([rankdata([-means[(lab, d)] for lab in labels]) for d in used])
    return dict(zip(labels, ranks.mean(axis=0))), used
