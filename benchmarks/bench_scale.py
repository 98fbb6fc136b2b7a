"""ODIM at scale: fit on a sample, memory, and scoring in-process and on Dask.

    python benchmarks/bench_scale.py [--sections sample,growth,throughput,sparse]
                                     [--cap 200000] [--quick]
                                     [--seeds 0,1] [--cover-caps 20000,none]
                                     [--synth-caps 50000,none] [--sparse-updates N]
                                     [--sparse-precisions float32,bfloat16]
                                     [--sparse-threads 1,2]

Every measurement runs in a fresh child process, one at a time, single
threaded (``n_jobs=1``, one torch thread; the sparse section's
``--sparse-threads`` can ask for more), so its peak RSS
(``resource.getrusage``) is its own. Sections:

* ``sample``: how training AUC and fit time change with ``max_fit_rows``:
  cover (286048 x 10, ``../shared/datasets``) at caps 20k, 50k, 100k and
  none, seeds 0 and 1; the synthetic 2,000,000 x 20 float32 set at caps
  50k, 200k and none, seed 0 (with peak RSS).
* ``growth``: fit time and peak RSS as n grows (10k, 100k, 1M, 2M synthetic
  rows, and cover) at ``--cap``: the in-memory fit (which still scores
  every row into ``decision_scores_``) split into training and the final
  scoring pass, and :func:`pyod_odim.dask.fit_on_sample` on a dask array
  (synchronous scheduler), which only gathers the sample.
* ``sparse``: a default fit on a synthetic sparse TF-IDF matrix of the
  paper's Reuters shape (1,800 x 26,147, :func:`synthetic_text`): fit time,
  its parts, peak RSS and the NumPy peak (``tracemalloc``), AUC, once per
  ``precision`` of ``--sparse-precisions`` (``--sparse-updates N`` caps the
  fits for a quicker reading), on each thread count of ``--sparse-threads``
  (``n_jobs``; default 1), with a fingerprint of the scores to show that
  the thread count changes none of them.
* ``throughput``: rows per second of scoring 200k synthetic rows with a
  fitted model, in-process and on a ``distributed.LocalCluster`` of 2
  worker processes x 1 thread (data generated and held on the workers
  before the clock starts), for ODIM and PyOD's IForest side by side.

The synthetic set is deterministic: blocks of 100k rows, each from its own
seed, so the first n rows of a larger set are the smaller set. Inliers lie
near a random 5-dimensional subspace (plus noise); 1 % outliers are
independent normals with 1.25 times the inliers' per-feature spread.
"""

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np

from _common import ResultsText, add_results_argument, markdown_table, write_results

# The tables of this run (docs/results.md, sections "scale" and "scale-sparse").
REPORT = ResultsText()
SPARSE_REPORT = ResultsText()

SYNTH_FEATURES = 20
SYNTH_BLOCK = 100_000
SYNTH_LATENT = 5


# ------------------------------------------------------------------ the data
def _synthetic_parts(seed, n_features):
    root = np.random.SeedSequence(seed)
    W = np.random.default_rng(root.spawn(1)[0]).normal(size=(SYNTH_LATENT, n_features))
    spread = np.sqrt((W**2).sum(axis=0) + 0.25)
    return W, spread


def synthetic_block(index, n_rows, seed=0, n_features=SYNTH_FEATURES, contamination=0.01):
    """Rows ``[index * SYNTH_BLOCK, ...)`` of the synthetic set: (X float32, y int8)."""
    W, spread = _synthetic_parts(seed, n_features)
    lo = index * SYNTH_BLOCK
    m = min(SYNTH_BLOCK, n_rows - lo)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1, index]))
    outlier = rng.random(m) < contamination
    X = rng.normal(size=(m, SYNTH_LATENT)) @ W + 0.5 * rng.normal(size=(m, n_features))
    X[outlier] = rng.normal(size=(int(outlier.sum()), n_features)) * spread * 1.25
    return X.astype(np.float32), outlier.astype(np.int8)


def synthetic(n_rows, seed=0):
    """The first ``n_rows`` rows of the synthetic set, filled block by block."""
    X = np.empty((n_rows, SYNTH_FEATURES), dtype=np.float32)
    y = np.empty(n_rows, dtype=np.int8)
    for index in range(-(-n_rows // SYNTH_BLOCK)):
        lo = index * SYNTH_BLOCK
        X_b, y_b = synthetic_block(index, n_rows, seed)
        X[lo:lo + len(X_b)], y[lo:lo + len(y_b)] = X_b, y_b
    return X, y


TEXT_ROWS, TEXT_FEATURES = 1800, 26147  # the paper's Reuters shape
TEXT_TOPICS, TEXT_OUTLIER_TOPICS = 8, 2
TEXT_TOPIC_WORDS = 400  # words each topic makes 25 times likelier
TEXT_TOKENS = 260  # mean tokens per document
TEXT_CONTAMINATION = 0.03


def synthetic_text(n_rows=TEXT_ROWS, n_features=TEXT_FEATURES, seed=0,
                   contamination=TEXT_CONTAMINATION):
    """A synthetic TF-IDF matrix of the paper's Reuters shape: (X CSR float64, y int8).

    A Zipf vocabulary (word ``r`` of rank ``r`` has weight ``1 / (r + 2.7)``)
    reweighted by topics: each topic makes its own ``TEXT_TOPIC_WORDS``
    random words 25 times likelier. An inlier document draws its words from
    one of the first ``TEXT_TOPICS - TEXT_OUTLIER_TOPICS`` topics, an
    outlier document (``contamination`` of the rows) from one of the other
    topics. Document lengths are Poisson(``TEXT_TOKENS``); the counts become
    scikit-learn's TF-IDF (smooth idf, sublinear tf, L2-normalized rows).
    """
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import TfidfTransformer

    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x7E47]))
    base = 1.0 / (np.arange(1, n_features + 1) + 2.7)
    cdfs = []
    for _ in range(TEXT_TOPICS):
        weights = base.copy()
        weights[rng.choice(n_features, TEXT_TOPIC_WORDS, replace=False)] *= 25.0
        cdfs.append(np.cumsum(weights) / weights.sum())
    outlier = rng.random(n_rows) < contamination
    n_inlier_topics = TEXT_TOPICS - TEXT_OUTLIER_TOPICS
    topic = np.where(outlier, n_inlier_topics + rng.integers(0, TEXT_OUTLIER_TOPICS, n_rows),
                     rng.integers(0, n_inlier_topics, n_rows))
    rows, cols = [], []
    for i in range(n_rows):
        words = np.searchsorted(cdfs[topic[i]], rng.random(max(1, rng.poisson(TEXT_TOKENS))))
        rows.append(np.full(words.size, i))
        cols.append(np.minimum(words, n_features - 1))
    counts = sp.csr_matrix((np.ones(sum(r.size for r in rows)),
                            (np.concatenate(rows), np.concatenate(cols))),
                           shape=(n_rows, n_features))
    counts.sum_duplicates()
    X = TfidfTransformer(sublinear_tf=True).fit_transform(counts).tocsr()
    return X, outlier.astype(np.int8)


def load_data(name):
    if name.startswith("synth"):
        return synthetic(int(name[len("synth"):]))
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _common import load, require_datasets

    require_datasets()
    return load(name)


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


# ---------------------------------------------------------- one measurement
def job_fit(data, cap, seed, score_stage="auto"):
    """An in-memory ODIM fit: seconds, its parts, AUC, peak RSS."""
    import torch
    from sklearn.metrics import roc_auc_score

    from pyod_odim import ODIM

    torch.set_num_threads(1)
    X, y = load_data(data)
    data_mb = peak_rss_mb()
    clf = ODIM(max_fit_rows=cap, random_state=seed, n_jobs=1, score_stage=score_stage)
    t0 = time.perf_counter()
    clf.fit(X)
    seconds = time.perf_counter() - t0
    t = clf.timings_
    return dict(
        fit_s=seconds, train_s=t["train"] + t["score"] + t["gmm"], final_s=t["final_score"],
        updates=int(clf.n_updates_), auc=float(roc_auc_score(y, clf.decision_scores_)),
        data_mb=data_mb, peak_mb=peak_rss_mb(), dtype=str(X.dtype),
    )


def job_sample_fit(data, cap, seed):
    """fit_on_sample on a dask array of the data (synchronous scheduler)."""
    import dask
    import dask.array as da
    import torch

    from pyod_odim import ODIM
    from pyod_odim.dask import fit_on_sample

    torch.set_num_threads(1)
    X, _ = load_data(data)
    data_mb = peak_rss_mb()
    dX = da.from_array(X, chunks=(SYNTH_BLOCK, -1))
    t0 = time.perf_counter()
    with dask.config.set(scheduler="synchronous"):
        clf = fit_on_sample(ODIM(max_fit_rows=cap, random_state=seed, n_jobs=1), dX)
    return dict(fit_s=time.perf_counter() - t0, rows=int(clf.decision_scores_.size),
                data_mb=data_mb, peak_mb=peak_rss_mb())


def _rate(fn, n_rows):
    t0 = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t0
    return out, dict(seconds=seconds, rows_per_s=n_rows / seconds)


def job_throughput(n_rows, fit_rows, seed):
    """Scoring rows/s of ODIM and IForest, in-process and on a LocalCluster."""
    import logging

    import dask
    import dask.array as da
    import torch
    from distributed import Client, LocalCluster
    from pyod.models.iforest import IForest

    from pyod_odim import ODIM
    from pyod_odim.dask import score

    torch.set_num_threads(1)
    X, _ = synthetic(n_rows, seed)
    odim = ODIM(random_state=seed, n_jobs=1).fit(X[:fit_rows])
    iforest = IForest(random_state=seed, n_jobs=1).fit(X[:fit_rows])
    rows = {}
    odim_local, rows["ODIM in-process"] = _rate(lambda: odim.decision_function(X), n_rows)
    iforest_local, rows["IForest in-process"] = _rate(lambda: iforest.decision_function(X), n_rows)

    t0 = time.perf_counter()
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None, silence_logs=logging.ERROR)
    client = Client(cluster)
    start_s = time.perf_counter() - t0
    try:
        blocks = [
            da.from_delayed(dask.delayed(synthetic_block)(i, n_rows, seed)[0],
                            shape=(min(SYNTH_BLOCK, n_rows - i * SYNTH_BLOCK), SYNTH_FEATURES),
                            dtype=np.float32)
            for i in range(-(-n_rows // SYNTH_BLOCK))
        ]
        # 25k-row chunks: 8 tasks for 2 workers; data made and held on the workers.
        dX = client.persist(da.concatenate(blocks).rechunk((25_000, -1)))
        distributed_wait(dX)
        # Workers import torch, PyOD and this package on their first task:
        # a one-off cost, timed apart from the rates.
        t0 = time.perf_counter()
        client.run(_warm_up)
        warm_s = time.perf_counter() - t0
        odim_cluster, rows["ODIM LocalCluster (2 x 1)"] = _rate(
            lambda: client.compute(score(odim, dX)[0], sync=True), n_rows)
        shipped = dask.delayed(iforest, pure=True)
        iforest_scores = da.map_blocks(lambda b, m: m.decision_function(b), dX, shipped,
                                       drop_axis=1, dtype=np.float64,
                                       meta=np.empty((0,), dtype=np.float64))
        iforest_cluster, rows["IForest LocalCluster (2 x 1)"] = _rate(
            lambda: client.compute(iforest_scores, sync=True), n_rows)
    finally:
        client.close()
        cluster.close()
    return dict(
        rows=rows, cluster_start_s=start_s, warm_up_s=warm_s,
        odim_identical=bool(np.array_equal(odim_cluster, odim_local)),
        iforest_identical=bool(np.allclose(iforest_cluster, iforest_local)),
    )


def _warm_up():
    import pyod.models.iforest  # noqa: F401
    import torch

    import pyod_odim.detector  # noqa: F401

    torch.set_num_threads(1)


def distributed_wait(collection):
    from distributed import wait

    wait(collection)


def job_sparse_fit(seed, n_jobs=1, **params):
    """A default fit on the synthetic TF-IDF matrix: seconds, parts, AUC, memory."""
    import hashlib
    import tracemalloc

    import torch
    from sklearn.metrics import roc_auc_score

    from pyod_odim import ODIM, kernels

    torch.set_num_threads(1)
    X, y = synthetic_text(seed=seed)
    clf = ODIM(random_state=seed, n_jobs=n_jobs, **params)
    data_mb = peak_rss_mb()
    tracemalloc.start()
    t0 = time.perf_counter()
    clf.fit(X)
    seconds = time.perf_counter() - t0
    numpy_peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    t = clf.timings_
    dense_mb = X.shape[0] * X.shape[1] * X.dtype.itemsize / 2**20
    return dict(
        fit_s=seconds, train_s=t["train"], checks_s=t["score"] + t["gmm"],
        final_s=t["final_score"], updates=int(clf.n_updates_),
        members=int(clf.best_update_.size), likelihood=clf.likelihood_,
        auc=float(roc_auc_score(y, clf.decision_scores_)),
        nnz_per_row=float(X.nnz / X.shape[0]), sparse_mb=float(
            (X.data.nbytes + X.indices.nbytes + X.indptr.nbytes) / 2**20),
        dense_mb=dense_mb, data_mb=data_mb, peak_mb=peak_rss_mb(),
        numpy_peak_mb=numpy_peak_mb, outliers=int(y.sum()), isa=kernels.ISA,
        scores_sha=hashlib.sha256(clf.decision_scores_.tobytes()).hexdigest()[:12],
    )


JOBS = {"fit": job_fit, "sample_fit": job_sample_fit, "throughput": job_throughput,
        "sparse_fit": job_sparse_fit}


# ------------------------------------------------------------- orchestration
def run_child(kind, **kwargs):
    """Run one job in a fresh single-threaded Python; return its JSON result."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    spec = json.dumps(dict(kind=kind, **kwargs))
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--job", spec],
                         env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise RuntimeError(f"job {spec} failed")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["load_1min"] = round(os.getloadavg()[0], 1)  # other jobs on the machine
    print(f"  {spec} -> {json.dumps(result)}", flush=True)
    return result


def cap_name(cap):
    return "none" if cap is None else f"{cap // 1000}k"


def section_sample(args, cache):
    rows = []
    for cap in args.cover_caps:
        for seed in args.seeds:
            rows.append(("cover", cap, seed, cache("fit", data="cover", cap=cap, seed=seed)))
    for cap in args.synth_caps:
        rows.append((f"synth{args.n_max}", cap, 0, cache("fit", data=f"synth{args.n_max}",
                                                         cap=cap, seed=0)))
    REPORT.add("\n### max_fit_rows: training AUC and fit time\n")
    table = []
    for data in dict.fromkeys(r[0] for r in rows):
        for cap in dict.fromkeys(r[1] for r in rows if r[0] == data):
            res = [r[3] for r in rows if r[0] == data and r[1] == cap]
            auc = np.array([r["auc"] for r in res])
            table.append([
                data, cap_name(cap), len(res), f"{auc.mean():.4f}",
                " / ".join(f"{a:.4f}" for a in auc),
                f"{np.mean([r['fit_s'] for r in res]):.1f}",
                f"{np.mean([r['train_s'] for r in res]):.1f}",
                f"{np.mean([r['final_s'] for r in res]):.1f}",
                f"{max(r['peak_mb'] for r in res):.0f}",
            ])
    REPORT.add(markdown_table(["data", "max_fit_rows", "seeds", "mean AUC", "AUC per seed",
                               "fit s", "train + checks s", "final scoring s", "peak RSS MB"],
                              table))


def section_growth(args, cache):
    table = []
    datas = [(f"synth{n}", f"synthetic {n:,} x {SYNTH_FEATURES}") for n in args.sizes]
    if "cover" in args.growth_extra:
        datas.append(("cover", "cover 286,048 x 10"))
    for data, title in datas:
        fit = cache("fit", data=data, cap=args.cap, seed=0)
        paper = cache("fit", data=data, cap=args.cap, seed=0, score_stage="paper")
        sample = (cache("sample_fit", data=data, cap=args.cap, seed=0)
                  if data.startswith("synth") else None)
        table.append([title, fit["dtype"], f"{fit['fit_s']:.1f}", f"{paper['fit_s']:.1f}",
                      f"{fit['train_s']:.1f}", f"{fit['final_s']:.1f}", f"{fit['data_mb']:.0f}",
                      f"{fit['peak_mb']:.0f}", f"{paper['peak_mb']:.0f}", f"{fit['auc']:.4f}",
                      f"{paper['auc']:.4f}",
                      "-" if sample is None else f"{sample['fit_s']:.1f}",
                      "-" if sample is None else f"{sample['peak_mb']:.0f}"])
    REPORT.add(f"\n### Fit cost as n grows (max_fit_rows={args.cap}, seed 0)\n")
    REPORT.add("Each fit at the defaults, then the same fit with the paper's score alone "
               "(`score_stage=\"paper\"`, no neighbour stage), one after the other.\n")
    REPORT.add(markdown_table(["data", "dtype", "fit s", "fit s, paper's score",
                               "train + checks s", "final scoring s", "RSS after loading MB",
                               "peak RSS MB", "peak RSS MB, paper's score", "AUC",
                               "AUC, paper's score", "fit_on_sample s",
                               "fit_on_sample peak RSS MB"], table))


def section_throughput(args, cache):
    res = cache("throughput", n_rows=args.score_rows, fit_rows=args.score_fit_rows, seed=0)
    table = [[name, f"{r['seconds']:.1f}", f"{r['rows_per_s']:,.0f}"]
             for name, r in res["rows"].items()]
    REPORT.add(f"\n### Scoring throughput ({args.score_rows:,} rows x {SYNTH_FEATURES}, models "
               f"fitted on {args.score_fit_rows:,} rows, default parameters)\n")
    REPORT.add(markdown_table(["scorer", "seconds", "rows/s"], table))
    REPORT.add(f"\nLocalCluster start {res['cluster_start_s']:.1f} s and the workers' first "
               f"imports {res['warm_up_s']:.1f} s, not in the rates. "
               f"Cluster scores identical to in-process: ODIM {res['odim_identical']}, "
               f"IForest {res['iforest_identical']}.")


def sparse_caps(value, precisions):
    """``max_updates`` of each precision's sparse fit (None: the default fit).

    ``value`` is None (every fit a default fit), a count for every fit, or
    ``precision=count`` pairs ("none" for a default fit), e.g.
    ``float32=10,bfloat16=none``.
    """
    def count(v):
        return None if v in (None, "none") else int(v)

    if value is None or "=" not in value:
        return {p: count(value) for p in precisions}
    caps = dict(item.split("=", 1) for item in value.split(","))
    return {p: count(caps.get(p)) for p in precisions}


def section_sparse(args, cache):
    """The paper's Reuters shape as synthetic sparse TF-IDF (docs/results.md, "scale-sparse")."""
    precisions = args.sparse_precisions.split(",")
    threads = [int(v) for v in args.sparse_threads.split(",")]
    caps = sparse_caps(args.sparse_updates, precisions)
    runs = [(precision, n_jobs, cache("sparse_fit", seed=0, precision=precision, n_jobs=n_jobs,
                                      **({} if caps[precision] is None
                                         else dict(max_updates=caps[precision]))))
            for precision in precisions for n_jobs in threads]
    first = runs[0][2]
    how = "; ".join(f"{p}: " + ("the default fit" if caps[p] is None else
                                f"capped at max_updates={caps[p]}, NOT the default fit")
                    for p in precisions)
    SPARSE_REPORT.add(
        f"\n### Sparse TF-IDF input, the paper's Reuters shape ({TEXT_ROWS:,} x "
        f"{TEXT_FEATURES:,}, synthetic; {how})\n")
    SPARSE_REPORT.add(
        f"Synthetic data (`synthetic_text` in benchmarks/bench_scale.py): a Zipf vocabulary "
        f"reweighted by {TEXT_TOPICS} topics, {first['outliers']} outlier documents "
        f"({TEXT_CONTAMINATION:.0%}) from {TEXT_OUTLIER_TOPICS} topics of their own, "
        f"scikit-learn's TF-IDF (L2 rows), {first['nnz_per_row']:.0f} non-zeros per row "
        f"({first['nnz_per_row'] / TEXT_FEATURES:.2%}); CSR float64, "
        f"{first['sparse_mb']:.1f} MB (its dense copy: {first['dense_mb']:.0f} MB). ODIM's "
        f"defaults but `precision` and `n_jobs` (the threads), seed 0, kernels "
        f"{first.get('isa', '?')}; "
        f"likelihood {first['likelihood']!r}, {first['members']} members. `precision` sets "
        f"the products of the training updates, of their checks and of the final scoring "
        f"(\"final\" also holds the feature contributions' reference, in the same precision); "
        f"\"scores\" is the start of the SHA-256 of `decision_scores_`, equal where the scores "
        f"are equal bit for bit.\n")
    SPARSE_REPORT.add(markdown_table(
        ["precision", "threads", "updates", "fit s", "updates s", "s per update", "checks s",
         "final scoring s", "RSS after loading MB", "peak RSS MB",
         "NumPy peak (tracemalloc) MB", "AUC", "scores"],
        [[precision, n_jobs, res["updates"], f"{res['fit_s']:.0f}", f"{res['train_s']:.0f}",
          f"{res['train_s'] / max(1, res['updates']):.2f}", f"{res['checks_s']:.0f}",
          f"{res['final_s']:.0f}", f"{res['data_mb']:.0f}", f"{res['peak_mb']:.0f}",
          f"{res['numpy_peak_mb']:.0f}", f"{res['auc']:.3f}", res.get("scores_sha", "-")]
         for precision, n_jobs, res in runs]))
    capped = [(precision, res) for precision, n_jobs, res in runs
              if caps[precision] is not None and n_jobs == 1]
    if capped:
        # A default fit runs at least the warm-up and `patience` checks after it.
        from pyod_odim.defaults import WIDE_DEFAULTS

        least = WIDE_DEFAULTS.min_updates + 10 * WIDE_DEFAULTS.patience
        projections = []
        for precision, res in capped:
            n_checks = max(1, res["updates"] // 10)
            projected = (res["final_s"] + least * res["train_s"] / max(1, res["updates"])
                         + (least // 10) * res["checks_s"] / n_checks)
            projections.append(f"{projected / 60:.0f} minutes in {precision}")
        SPARSE_REPORT.add(
            f"\nA default fit runs at least {least} updates (warm-up "
            f"{WIDE_DEFAULTS.min_updates}, then {WIDE_DEFAULTS.patience} checks of patience "
            f"every 10): for the capped fits, at these rates at least {', '.join(projections)} "
            f"(a projection from the rates above, not a measurement).")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", help=argparse.SUPPRESS)
    parser.add_argument("--sections", default="sample,growth,throughput,sparse")
    parser.add_argument("--sparse-updates", default=None, metavar="N",
                        help="cap the sparse section's fits at N updates, or per precision "
                             "(float32=10,bfloat16=none) (default: none, the default fit)")
    parser.add_argument("--sparse-precisions", default="float32,bfloat16",
                        help="precisions of the sparse section's fits (comma-separated)")
    parser.add_argument("--sparse-threads", default="1",
                        help="n_jobs of the sparse section's fits (comma-separated)")
    parser.add_argument("--cap", type=int, default=200_000,
                        help="max_fit_rows of the growth section")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes only (a smoke run, minutes)")
    parser.add_argument("--seeds", dest="seed_list",
                        help="seeds of the sample section (default 0,1)")
    parser.add_argument("--cover-caps", dest="cover_list",
                        help="e.g. 20000,none (default 20k, 50k, 100k, none)")
    parser.add_argument("--synth-caps", dest="synth_list",
                        help="e.g. 50000,none; empty: skip the synthetic set")
    add_results_argument(parser)
    args = parser.parse_args()
    if args.job:
        spec = json.loads(args.job)
        print(json.dumps(JOBS[spec.pop("kind")](**spec)))
        return

    def caps(*values):
        return [None if v == "none" else int(v) for v in values]

    if args.quick:
        args.sizes, args.n_max = [10_000, 100_000], 100_000
        args.cover_caps, args.synth_caps, args.seeds = caps(20_000, "none"), caps(20_000, "none"), [0]
        args.score_rows, args.score_fit_rows, args.growth_extra = 50_000, 5_000, []
    else:
        args.sizes, args.n_max = [10_000, 100_000, 1_000_000, 2_000_000], 2_000_000
        args.cover_caps = caps(20_000, 50_000, 100_000, "none")
        args.synth_caps = caps(50_000, 200_000, "none")
        args.seeds = [0, 1]
        args.score_rows, args.score_fit_rows, args.growth_extra = 200_000, 20_000, ["cover"]
    if args.seed_list:
        args.seeds = [int(v) for v in args.seed_list.split(",")]
    if args.cover_list is not None:
        args.cover_caps = caps(*filter(None, args.cover_list.split(",")))
    if args.synth_list is not None:
        args.synth_caps = caps(*filter(None, args.synth_list.split(",")))

    import pyod_odim
    import torch

    setup = (f"pyod-odim {pyod_odim.__version__}, torch {torch.__version__}, "
             f"numpy {np.__version__}, python {platform.python_version()}, "
             f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
             f"{datetime.date.today().isoformat()}; every job in its own process, 1 thread "
             f"unless its table says otherwise")
    print(f"{setup} ({os.path.dirname(pyod_odim.__file__)})", flush=True)
    results = {}

    def cache(kind, **kwargs):
        key = json.dumps(dict(kind=kind, **kwargs), sort_keys=True)
        if key not in results:
            results[key] = run_child(kind, **kwargs)
        return results[key]

    sections = {"sample": section_sample, "growth": section_growth,
                "throughput": section_throughput, "sparse": section_sparse}
    t0 = time.perf_counter()
    for name in args.sections.split(","):
        sections[name](args, cache)
    loads = [r["load_1min"] for r in results.values()]
    print(f"\n(bench_scale ran {time.perf_counter() - t0:.0f} s; 1-minute load average after "
          f"each job {min(loads)} to {max(loads)} on {os.cpu_count()} CPUs)")
    if args.write_results and REPORT.parts:
        write_results("scale", setup + "\n" + REPORT.text())
    if args.write_results and SPARSE_REPORT.parts:
        write_results("scale-sparse", setup + "\n" + SPARSE_REPORT.text())


if __name__ == "__main__":
    main()
