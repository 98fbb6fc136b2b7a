"""ODIM's accuracy and fit time on the shared embedding sets, variant against variant.

    python benchmarks/bench_embeddings.py [--variants today,defaults] [--seeds 0,1,2] [--jobs 2]
        [--sets ...] [--tag TAG] [--report-only]

Each variant is a set of ODIM constructor arguments (``VARIANTS``):
``today`` spells out the defaults this comparison started from, so it
keeps meaning the same fit after a default changes; ``defaults`` is the
package as it is. Every (variant, set, seed) is one single-thread fit on
all rows of a shared embedding set (the paper's protocol: training AUC),
run ``--jobs`` at a time; the fit times therefore include sharing the
cores and compare variants only within one run
(``benchmarks/bench_speed.py --sections embeddings`` times fits alone,
beside PyOD's VAE). Results are cached in ``results/embeddings.jsonl`` under
``--tag`` (default: the current commit), so a rerun fits only what is
missing; ``--fresh`` ignores the cache.

The report gives, per set, the mean training AUC over the seeds and the
mean fit seconds of each variant, and for each variant the change of the
mean AUC from the first variant, its worst set, and its fit-time ratio.
"""

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time

import numpy as np
from sklearn.metrics import roc_auc_score

from _common import load, markdown_table, require_datasets
from _grid import FAMILIES

SETS = FAMILIES["sparse image"] + FAMILIES["dense image"] + FAMILIES["text"]
# The variants spell out every default that changed after them (patience,
# checks, warm-up, rate), so that each name keeps naming the same fits.
EARLIER = dict(min_updates=100, lr=1e-3)
TODAY = dict(n_samples_train=10, n_samples_check=None, patience=10, n_estimators=10,
             likelihood="gaussian", selection_size=8192, **EARLIER)
# The wide-data patience and check subset, with the warm-up and rate before them.
P5_SEL2K = dict(patience=5, selection_size=2048, **EARLIER)
# k5_m5 is the first wide-data rule (5 members, 5 training samples); the
# variants after it are the alternatives measured beside it (docs/speed.md,
# "Embedding sets").
VARIANTS = {
    "today": TODAY,
    "defaults": {},
    # The defaults before the wide-data patience and check subset
    # (pyod_odim.defaults.WIDE_DEFAULTS), rectified decoder included.
    "before": dict(patience=10, selection_size=8192, **EARLIER),
    # The defaults before likelihood="auto" (docs/accuracy.md, "A
    # likelihood for sparse features"); on sets "auto" leaves Gaussian it is
    # the same fit as "before".
    "gaussian": dict(likelihood="gaussian", patience=10, selection_size=8192, **EARLIER),
    "k5": dict(TODAY, n_samples_train=5),
    "k5_m5": dict(TODAY, n_samples_train=5, n_estimators=5),
    "m5": dict(TODAY, n_estimators=5),
    "h64": dict(TODAY, hidden_sizes=(64, 32)),
    "h64_k5": dict(TODAY, hidden_sizes=(64, 32), n_samples_train=5),
    # Candidates of the cheaper wide-data defaults (docs/speed.md), as
    # changes from the defaults before them; p5_sel2k is what the defaults
    # did above 256 features before the warm-up and rate below.
    "b64": dict(batch_size=64, patience=10, selection_size=8192, **EARLIER),
    "p5": dict(patience=5, selection_size=8192, **EARLIER),
    "sel2k": dict(patience=10, selection_size=2048, **EARLIER),
    "iw20": dict(n_samples_iwae=20, patience=10, selection_size=8192, **EARLIER),
    "fast": dict(batch_size=64, patience=5, selection_size=2048, **EARLIER),
    "fast_iw20": dict(batch_size=64, patience=5, selection_size=2048, n_samples_iwae=20,
                      **EARLIER),
    "p5_sel2k": P5_SEL2K,
    # A shorter warm-up on top of p5_sel2k.
    "w50": dict(P5_SEL2K, min_updates=50),
    # Longer warm-ups on top of p5_sel2k: half the members kept one of the
    # first three checks allowed (100-120) and the shorter warm-up lost.
    "w150": dict(P5_SEL2K, min_updates=150),
    "w200": dict(P5_SEL2K, min_updates=200),
    # A larger step instead of more updates (same cost as p5_sel2k); the
    # defaults now take lr2_w150 on the ResNet sets, w150 on the dense ones.
    "lr2": dict(P5_SEL2K, lr=2e-3),
    "lr2_w150": dict(P5_SEL2K, lr=2e-3, min_updates=150),
    # A still larger rate on top of the current defaults.
    "lr3_w150": dict(P5_SEL2K, lr=3e-3, min_updates=150),
    # Which state a member keeps: its best check (the paper's) or the state
    # it stops in, with the wide-data warm-up and rates of commit 42384a4.
    "best": dict(P5_SEL2K, min_updates=150, lr="auto", checkpoint="best"),
    "last": dict(P5_SEL2K, min_updates=150, lr="auto", checkpoint="last"),
    # The same with the warm-up of at least 5 passes over the rows.
    "best_e5": dict(P5_SEL2K, min_updates="auto", lr="auto", checkpoint="best"),
    "last_e5": dict(P5_SEL2K, min_updates="auto", lr="auto", checkpoint="last"),
}
CACHE = os.path.join(os.path.dirname(__file__), "..", "results", "embeddings.jsonl")


def commit():
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, cwd=os.path.dirname(__file__), check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def fit_one(job):
    variant, name, seed = job
    import torch

    from pyod_odim import ODIM

    torch.set_num_threads(1)
    X, y = load(name)
    t0 = time.perf_counter()
    clf = ODIM(random_state=seed, n_jobs=1, **VARIANTS[variant]).fit(X)
    seconds = time.perf_counter() - t0
    return dict(variant=variant, set=name, seed=seed, seconds=seconds,
                auc=float(roc_auc_score(y, clf.decision_scores_)),
                n_updates=int(clf.n_updates_), best_update=[int(u) for u in clf.best_update_],
                timings={k: round(float(v), 3) for k, v in clf.timings_.items()})


def read_cache(tag):
    done = {}
    if os.path.exists(CACHE):
        with open(CACHE) as f:
            for line in f:
                row = json.loads(line)
                if row.get("tag") == tag:
                    done[(row["variant"], row["set"], row["seed"])] = row
    return done


def report(variants, sets, seeds, done):
    first = variants[0]
    header = ["data"] + [f"{v} AUC" for v in variants] + [f"{v} s" for v in variants]
    rows, summary = [], []
    means = {v: {} for v in variants}
    for name in sets:
        row = [name]
        for key in ("auc", "seconds"):
            for v in variants:
                got = [done[(v, name, s)][key] for s in seeds if (v, name, s) in done]
                value = float(np.mean(got)) if len(got) == len(seeds) else float("nan")
                means[v].setdefault(key, {})[name] = value
                row.append(f"{value:.4f}" if key == "auc" else f"{value:.1f}")
        rows.append(row)
    print(markdown_table(header, rows))
    for v in variants:
        auc = np.array([means[v]["auc"][n] for n in sets])
        base = np.array([means[first]["auc"][n] for n in sets])
        secs = np.array([means[v]["seconds"][n] for n in sets])
        base_secs = np.array([means[first]["seconds"][n] for n in sets])
        worst = int(np.nanargmin(auc - base)) if np.isfinite(auc - base).any() else 0
        summary.append([v, f"{np.mean(auc):.4f}", f"{np.mean(auc - base):+.4f}",
                        f"{sets[worst]} {auc[worst] - base[worst]:+.4f}",
                        f"{np.sum(secs):.0f}", f"{np.sum(secs) / np.sum(base_secs):.2f}x"])
    print()
    print(markdown_table(["variant", "mean AUC", f"vs {first}", "worst set", "total fit s",
                          f"time vs {first}"], summary))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="today,defaults")
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--tag", default=None)
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument("--report-only", action="store_true",
                        help="report the cached fits, fitting nothing")
    args = parser.parse_args()
    require_datasets()
    import pyod_odim
    import torch

    variants = args.variants.split(",")
    sets = args.sets.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    tag = args.tag or commit()
    print(f"bench_embeddings: pyod-odim {pyod_odim.__version__} at {tag}, torch "
          f"{torch.__version__}, variants {variants}, seeds {seeds}, {args.jobs} fits at a time, "
          "n_jobs=1 each")
    for v in variants:
        print(f"  {v}: {VARIANTS[v] or 'the defaults'}")
    done = {} if args.fresh else read_cache(tag)
    jobs = [(v, n, s) for n in sets for s in seeds for v in variants if (v, n, s) not in done]
    if args.report_only:
        jobs = []
    os.makedirs(os.path.dirname(CACHE), exist_ok=True)
    with mp.get_context("spawn").Pool(args.jobs) as pool, open(CACHE, "a") as cache:
        for row in pool.imap_unordered(fit_one, jobs):
            row["tag"] = tag
            done[(row["variant"], row["set"], row["seed"])] = row
            cache.write(json.dumps(row) + "\n")
            cache.flush()
            print(f"  {row['variant']} {row['set']} seed {row['seed']}: AUC {row['auc']:.4f}, "
                  f"{row['seconds']:.1f} s, {row['n_updates']} updates", file=sys.stderr,
                  flush=True)
    report(variants, sets, seeds, done)


if __name__ == "__main__":
    main()
