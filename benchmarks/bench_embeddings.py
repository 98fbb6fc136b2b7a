"""ODIM's accuracy and fit time at its defaults on the shared embedding sets.

    python benchmarks/bench_embeddings.py [--seeds 0,1,2] [--jobs 2] [--sets ...]
        [--variants defaults] [--heldout] [--tag TAG] [--report-only] [--write-results]

Every (variant, set, seed) is one single-thread fit on all rows of a shared
embedding set (the paper's protocol: training AUC), run ``--jobs`` at a
time; the fit times therefore include sharing the cores and compare
variants only within one run (``benchmarks/bench_speed.py --sections
embedding_speed`` times fits alone, beside PyOD's VAE). Results are cached
in ``results/embeddings.jsonl`` under ``--tag`` (default: the current
commit), so a rerun fits only what is missing; ``--fresh`` ignores the
cache. ``studies/embedding_variants.py`` runs the candidate variants
through the same code.

``--heldout`` adds PyOD's protocol for each fit: for seed ``i``,
``train_test_split(X, y, test_size=0.4, random_state=np.random.RandomState(i))``,
PyOD's ``standardizer``, a fit on the training part and the ROC-AUC of
``decision_function`` on the held-out part.

The report gives, per set, the mean training AUC over the seeds and the
mean fit seconds of each variant, and for each variant the change of the
mean AUC from the first variant, its worst set, and its fit-time ratio
(with ``--heldout``, the same for the held-out AUC). ``--variants
float32,bfloat16`` compares the two precisions of the training products.
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

from _common import add_results_argument, load, markdown_table, require_datasets, write_results
from _grid import FAMILIES

SETS = FAMILIES["sparse image"] + FAMILIES["dense image"] + FAMILIES["text"]
# Constructor arguments of each variant; studies/embedding_variants.py has the
# candidates measured beside the defaults.
VARIANTS = {"defaults": {}, "float32": {"precision": "float32"},
            "bfloat16": {"precision": "bfloat16"}}

CACHE = os.path.join(os.path.dirname(__file__), "..", "results", "embeddings.jsonl")


def commit():
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, cwd=os.path.dirname(__file__), check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def heldout_auc(params, X, y, seed):
    """PyOD's protocol: 60/40 split by RandomState(seed), standardized, test ROC-AUC."""
    from pyod.utils.utility import standardizer
    from sklearn.model_selection import train_test_split

    from pyod_odim import ODIM

    X_train, X_test, _, y_test = train_test_split(
        X, y, test_size=0.4, random_state=np.random.RandomState(seed))
    X_train, X_test = standardizer(X_train, X_test)
    clf = ODIM(contamination=float(np.mean(y)), random_state=seed, n_jobs=1, **params)
    clf.fit(X_train)
    return float(roc_auc_score(y_test, clf.decision_function(X_test)))


def fit_one(job):
    variant, params, name, seed, heldout = job
    import torch

    from pyod_odim import ODIM

    torch.set_num_threads(1)
    X, y = load(name)
    t0 = time.perf_counter()
    clf = ODIM(random_state=seed, n_jobs=1, **params).fit(X)
    seconds = time.perf_counter() - t0
    row = dict(variant=variant, set=name, seed=seed, seconds=seconds,
               auc=float(roc_auc_score(y, clf.decision_scores_)),
               precision=getattr(clf, "precision_", "float32"),
               n_updates=int(clf.n_updates_), best_update=[int(u) for u in clf.best_update_],
               timings={k: round(float(v), 3) for k, v in clf.timings_.items()})
    if heldout:
        row["heldout_auc"] = heldout_auc(params, X, y, seed)
    return row


def read_cache(tag):
    done = {}
    if os.path.exists(CACHE):
        with open(CACHE) as f:
            for line in f:
                row = json.loads(line)
                if row.get("tag") == tag:
                    done[(row["variant"], row["set"], row["seed"])] = row
    return done


def report(variants, sets, seeds, done, auc_key="auc"):
    first = variants[0]
    header = ["data"] + [f"{v} AUC" for v in variants] + [f"{v} s" for v in variants]
    rows, summary = [], []
    means = {v: {} for v in variants}
    for name in sets:
        row = [name]
        for key in (auc_key, "seconds"):
            for v in variants:
                got = [done[(v, name, s)].get(key, np.nan) for s in seeds if (v, name, s) in done]
                value = float(np.mean(got)) if len(got) == len(seeds) else float("nan")
                means[v].setdefault("seconds" if key == "seconds" else "auc", {})[name] = value
                row.append(f"{value:.1f}" if key == "seconds" else f"{value:.4f}")
        rows.append(row)
    for v in variants:
        auc = np.array([means[v]["auc"][n] for n in sets])
        base = np.array([means[first]["auc"][n] for n in sets])
        secs = np.array([means[v]["seconds"][n] for n in sets])
        base_secs = np.array([means[first]["seconds"][n] for n in sets])
        worst = int(np.nanargmin(auc - base)) if np.isfinite(auc - base).any() else 0
        summary.append([v, f"{np.mean(auc):.4f}", f"{np.mean(auc - base):+.4f}",
                        f"{sets[worst]} {auc[worst] - base[worst]:+.4f}",
                        f"{np.sum(secs):.0f}", f"{np.sum(secs) / np.sum(base_secs):.2f}x"])
    return (markdown_table(header, rows) + "\n\n"
            + markdown_table(["variant", "mean AUC", f"vs {first}", "worst set", "total fit s",
                              f"time vs {first}"], summary))


def main(variant_table=VARIANTS, default_variants="defaults"):
    """Fit and report the variants of ``variant_table`` chosen by ``--variants``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=default_variants,
                        help=f"comma-separated, of: {', '.join(variant_table)}")
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--tag", default=None)
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument("--heldout", action="store_true",
                        help="also run PyOD's protocol (60/40 split) for every fit")
    parser.add_argument("--report-only", action="store_true",
                        help="report the cached fits, fitting nothing")
    add_results_argument(parser)
    args = parser.parse_args()
    require_datasets()
    import pyod_odim
    import torch

    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in variant_table]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; choose from {list(variant_table)}")
    sets = args.sets.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    tag = args.tag or commit()
    setup = (f"pyod-odim {pyod_odim.__version__}, torch {torch.__version__}; training ROC-AUC "
             f"of fits on all rows (the paper's protocol), mean of seeds "
             f"{', '.join(map(str, seeds))}; one thread per fit, {args.jobs} fits at a time; "
             + "; ".join(f"{v}: {variant_table[v] or 'the defaults'}" for v in variants))
    print(f"bench_embeddings at {tag}: {setup}")
    done = {} if args.fresh else read_cache(tag)
    # A cached fit without the held-out AUC asked for runs again.
    jobs = [(v, variant_table[v], n, s, args.heldout) for n in sets for s in seeds
            for v in variants
            if (v, n, s) not in done or (args.heldout and "heldout_auc" not in done[(v, n, s)])]
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
    text = report(variants, sets, seeds, done)
    if args.heldout:
        text += ("\n\nPyOD's protocol (60/40 split, standardized, held-out ROC-AUC; the "
                 "seconds are the training-row fits'):\n\n"
                 + report(variants, sets, seeds, done, auc_key="heldout_auc"))
    print(text)
    if args.write_results and variant_table is VARIANTS:
        section = "embeddings" if variants == ["defaults"] else "embeddings_" + "_".join(variants)
        write_results(section, setup + "\n\n" + text)


if __name__ == "__main__":
    main()
