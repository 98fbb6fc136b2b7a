"""Semi-supervised ODIM against unsupervised ODIM and PyOD's XGBOD.

For each data set, seed and labeled fraction l, a random l of the outliers
is known (``y_known = 1``, drawn per seed) and every other row is 0. Three
detectors are fitted on all rows, side by side in one run:

* ODIM without labels (one fit per seed, shared by every fraction);
* ODIM with ``use_labels=True`` and every other parameter at its default
  (or as set with ``--param``);
* PyOD's XGBOD fed the same ``y_known`` (``pip install "pyod-odim[bench]"``).

ROC-AUC and average precision are measured on all rows (the ODIM paper's
protocol, its Tables 11 and 12) and on the unlabeled rows only: the
outliers a user still has to find.

    python benchmarks/bench_semisupervised.py [--seeds 3] [--datasets cardio,...]
        [--fractions 0.05,0.1,0.3,0.5] [--param cubo_weight=2]
        [--methods odim_unsup,odim_labels,xgbod]
        [--records runs.jsonl] [--table-only runs.jsonl]

XGBOD's unsupervised detectors never see the labels, so their training
scores are computed once per data set (per seed for the randomized ones)
and cached on disk (``--cache``); XGBOD itself is fitted per label vector
through its own ``fit``. ``--check-xgbod`` confirms on one set that the
cached path gives XGBOD's scores to the last bit.
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import sys
import time
import warnings
from ast import literal_eval

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

# Measure the checkout this script lives in, not an installed copy.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import pyod_odim  # noqa: E402
from _common import (  # noqa: E402
    add_results_argument, load, markdown_table, require_datasets, write_results,
)
from pyod_odim import ODIM  # noqa: E402

TABULAR = ["cardio", "satellite", "satimage-2", "shuttle", "thyroid"]
EMBEDDINGS = ["mvtec-ad_bottle", "20news_3"]
FRACTIONS = (0.05, 0.1, 0.3, 0.5)
METHODS = ("odim_unsup", "odim_labels", "xgbod")
METHOD_NAMES = {"odim_unsup": "ODIM no labels", "odim_labels": "ODIM labels", "xgbod": "XGBOD"}
DEFAULT_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "pyod_odim_bench")


def known_outliers(y, fraction, seed):
    """y with a random ``fraction`` of the outliers kept, the rest set to 0."""
    rng = np.random.default_rng(1000 + seed)
    outliers = np.flatnonzero(y == 1)
    keep = rng.choice(outliers, size=int(round(fraction * len(outliers))), replace=False)
    partial = np.zeros_like(y)
    partial[keep] = 1
    return partial


def metrics(y, scores, y_known):
    """AUC / AP on all rows and on the rows not labeled in ``y_known``."""
    unl = y_known == 0
    return dict(
        auc_all=roc_auc_score(y, scores), ap_all=average_precision_score(y, scores),
        auc_unl=roc_auc_score(y[unl], scores[unl]),
        ap_unl=average_precision_score(y[unl], scores[unl]),
    )


# ----------------------------------------------------------------- XGBOD
class _Precomputed:
    """A fitted detector's training scores, handed to XGBOD in its place."""

    def __init__(self, scores):
        self.scores = scores

    def fit(self, X, y=None):
        self.decision_scores_ = self.scores
        return self

    def decision_function(self, X):  # XGBOD checks that it exists
        raise NotImplementedError("training scores only")


def _detector_key(name, X, estimator, standardize):
    params = sorted(estimator.get_params().items())
    text = f"{name}|{X.shape}|{type(estimator).__name__}|{params}|{standardize}"
    text += "|" + hashlib.sha1(np.ascontiguousarray(X).tobytes()).hexdigest()
    return hashlib.sha1(text.encode()).hexdigest()[:20]


def xgbod_detectors(name, X, seed, cache):
    """XGBOD's default detectors (fitted on X, no labels), with cached scores."""
    from pyod.models.xgbod import XGBOD
    from pyod.utils.utility import standardizer

    estimators, flags = XGBOD(random_state=seed)._init_detectors(X)
    X_norm = standardizer(X)
    out = []
    for estimator, standardize in zip(estimators, flags):
        path = None
        if cache:
            os.makedirs(cache, exist_ok=True)
            path = os.path.join(cache, _detector_key(name, X, estimator, standardize) + ".npy")
        if path and os.path.exists(path):
            scores = np.load(path)
        else:
            scores = estimator.fit(X_norm if standardize else X).decision_scores_
            if path:
                np.save(path, scores)
        out.append(_Precomputed(np.asarray(scores, dtype=np.float64)))
    return out, flags


def fit_xgbod(X, y_known, seed, detectors):
    """PyOD's XGBOD.fit with the detectors' scores precomputed."""
    from pyod.models.xgbod import XGBOD

    estimators, flags = detectors
    with warnings.catch_warnings():
        # PyOD warns that y is given; xgboost that XGBOD's "silent" is unused.
        warnings.simplefilter("ignore", UserWarning)
        clf = XGBOD(random_state=seed, estimator_list=estimators,
                    standardization_flag_list=flags)
        return clf.fit(X, y_known).decision_scores_


def check_xgbod(name, cache):
    """The cached path gives plain XGBOD's scores exactly."""
    from pyod.models.xgbod import XGBOD

    X, y = load(name)
    y_known = known_outliers(y, 0.3, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        plain = XGBOD(random_state=0).fit(X, y_known).decision_scores_
    cached = fit_xgbod(X, y_known, 0, xgbod_detectors(name, X, 0, cache))
    same = np.array_equal(plain, cached)
    print(f"XGBOD check on {name}: cached detectors give XGBOD's scores exactly: {same}")
    return same


# ------------------------------------------------------------------ runs
def run_dataset(name, seeds, fractions, params, methods, cache, emit):
    X, y = load(name)
    for seed in seeds:
        if "odim_unsup" in methods:
            t0 = time.perf_counter()
            unsup = ODIM(random_state=seed, **params).fit(X).decision_scores_
            t_unsup = time.perf_counter() - t0
        detectors = xgbod_detectors(name, X, seed, cache) if "xgbod" in methods else None
        for fraction in fractions:
            y_known = known_outliers(y, fraction, seed)
            base = dict(dataset=name, seed=seed, fraction=fraction,
                        n_known=int(y_known.sum()))
            if "odim_unsup" in methods:
                emit(dict(base, method="odim_unsup", seconds=t_unsup,
                          **metrics(y, unsup, y_known)))
            if "odim_labels" in methods:
                t0 = time.perf_counter()
                clf = ODIM(random_state=seed, use_labels=True, **params).fit(X, y_known)
                emit(dict(base, method="odim_labels", seconds=time.perf_counter() - t0,
                          **metrics(y, clf.decision_scores_, y_known)))
            if "xgbod" in methods:
                t0 = time.perf_counter()
                scores = fit_xgbod(X, y_known, seed, detectors)
                emit(dict(base, method="xgbod", seconds=time.perf_counter() - t0,
                          **metrics(y, scores, y_known)))


# ---------------------------------------------------------------- tables
def _cell(records, dataset, fraction, method, key):
    values = [r[key] for r in records
              if r["dataset"] == dataset and r["fraction"] == fraction and r["method"] == method]
    return (np.mean(values), len(values)) if values else (np.nan, 0)


def _fmt(value):
    return "-" if np.isnan(value) else f"{value:.3f}"


def tables(records):
    """Markdown tables of the mean over seeds, per data set and fraction."""
    datasets = list(dict.fromkeys(r["dataset"] for r in records))
    fractions = sorted({r["fraction"] for r in records})
    methods = [m for m in METHODS if any(r["method"] == m for r in records)]
    out = []
    for rows_name, suffix in (("the unlabeled rows", "unl"), ("all rows", "all")):
        header = ["dataset", "l", "known", "seeds"]
        header += [f"AUC {METHOD_NAMES[m]}" for m in methods]
        header += [f"AP {METHOD_NAMES[m]}" for m in methods]
        rows = []
        for d in datasets:
            for f in fractions:
                n_seeds = _cell(records, d, f, "odim_labels", "auc_all")[1]
                if not n_seeds:
                    continue
                known = [r["n_known"] for r in records if r["dataset"] == d
                         and r["fraction"] == f and r["method"] == "odim_labels"]
                row = [d, f, f"{np.mean(known):.0f}", n_seeds]
                row += [_fmt(_cell(records, d, f, m, "auc_" + suffix)[0]) for m in methods]
                row += [_fmt(_cell(records, d, f, m, "ap_" + suffix)[0]) for m in methods]
                rows.append(row)
        out.append(f"ROC-AUC and AP on {rows_name}, mean over seeds\n")
        out.append(markdown_table(header, rows))
        out.append("")
    # Means over the data sets, per fraction, on the unlabeled rows.
    groups = [("tabular", [d for d in datasets if d in TABULAR])]
    groups += [("embeddings", [d for d in datasets if d not in TABULAR])]
    header = ["sets", "l"] + [f"mean AUC {METHOD_NAMES[m]}" for m in methods]
    header += ["labels - no labels, worst set", "labels - XGBOD"]
    rows = []
    for group, members in groups:
        if not members:
            continue
        for f in fractions:
            means = {m: np.array([_cell(records, d, f, m, "auc_unl")[0] for d in members])
                     for m in methods}
            if np.isnan(means["odim_labels"]).any():
                continue
            row = [f"{group} ({len(members)})", f]
            row += [_fmt(np.mean(means[m])) for m in methods]
            if "odim_unsup" in means:
                gain = means["odim_labels"] - means["odim_unsup"]
                worst = int(np.nanargmin(gain))
                row.append(f"{gain[worst]:+.3f} ({members[worst]})")
            else:
                row.append("-")
            row.append(_versus_xgbod(means, members))
            rows.append(row)
    if rows:
        out.append("Mean ROC-AUC over the data sets on the unlabeled rows\n")
        out.append(markdown_table(header, rows))
    return "\n".join(out)


def _versus_xgbod(means, members):
    """Mean AUC of ODIM with labels minus XGBOD's; a bound where XGBOD is missing."""
    if "xgbod" not in means:
        return "-"
    xgbod = means["xgbod"]
    missing = np.isnan(xgbod)
    diff = np.mean(means["odim_labels"]) - np.mean(np.where(missing, 1.0, xgbod))
    if not missing.any():
        return f"{diff:+.3f}"
    names = ", ".join(m for m, miss in zip(members, missing) if miss)
    # AUC is at most 1: the difference can only be larger than this.
    return f">= {diff:+.3f} (XGBOD not run on {names}; counted as AUC 1)"


def describe(params, use_xgbod):
    """Versions and the ODIM parameters of the run."""
    import pyod
    import torch

    defaults = ODIM().get_params()
    used = dict(defaults, use_labels=True, **params)
    lines = [
        f"pyod-odim {pyod_odim.__version__} ({os.path.dirname(pyod_odim.__file__)}), "
        f"pyod {pyod.__version__}, torch {torch.__version__}, "
        f"python {platform.python_version()}, {datetime.date.today().isoformat()}",
        "ODIM with labels: " + ", ".join(f"{k}={v!r}" for k, v in sorted(used.items())
                                         if k not in ("random_state",)),
        "changed from the defaults: " + (", ".join(f"{k}={v!r}" for k, v in params.items())
                                         or "none (use_labels=True only)"),
    ]
    if use_xgbod:
        import xgboost

        lines.append(f"XGBOD: PyOD's defaults, random_state=seed, xgboost {xgboost.__version__}")
    return "\n".join(lines)


def parse_param(text):
    key, _, value = text.partition("=")
    try:
        value = literal_eval(value)
    except (ValueError, SyntaxError):
        pass
    return key, value


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--datasets", default=",".join(TABULAR),
                        help="comma separated; the embedding sets are "
                             + ",".join(EMBEDDINGS))
    parser.add_argument("--fractions", default=",".join(map(str, FRACTIONS)))
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="ODIM parameter for both ODIM fits (repeatable)")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="which of " + ",".join(METHODS) + " to run")
    parser.add_argument("--cache", default=DEFAULT_CACHE,
                        help="folder for XGBOD's detector scores ('' for none)")
    parser.add_argument("--check-xgbod", metavar="DATASET")
    parser.add_argument("--records", help="append one JSON line per fit to this file")
    parser.add_argument("--table-only", metavar="RECORDS",
                        help="print the tables of a records file and exit")
    add_results_argument(parser)
    args = parser.parse_args()
    if args.table_only:
        with open(args.table_only) as f:
            records = [json.loads(line) for line in f if line.strip()]
        text = tables(records)
        print(text)
        if args.write_results:
            write_results("semisupervised", text)
        return
    require_datasets()
    if args.check_xgbod:
        sys.exit(0 if check_xgbod(args.check_xgbod, args.cache) else 1)
    params = dict(parse_param(p) for p in args.param)
    methods = args.methods.split(",")
    unknown = set(methods) - set(METHODS)
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)}; choose from {METHODS}")
    setup = describe(params, "xgbod" in methods)
    print(setup, flush=True)
    records = []

    def emit(record):
        records.append(record)
        print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in record.items()), flush=True)
        if args.records:
            with open(args.records, "a") as f:
                f.write(json.dumps(record) + "\n")

    fractions = [float(f) for f in args.fractions.split(",")]
    for name in args.datasets.split(","):
        run_dataset(name, range(args.seeds), fractions, params, methods, args.cache, emit)
    text = tables(records)
    print()
    print(text)
    if args.write_results:
        write_results("semisupervised", setup + "\n\n" + text)


if __name__ == "__main__":
    main()
