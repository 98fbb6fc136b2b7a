"""ODIM beside PyOD's detectors under two protocols, in one run.

* ``paper``: the ODIM paper's protocol, as ``bench_accuracy.py`` runs it:
  fit on all rows with the labels hidden, score the same rows
  (``decision_scores_``), ROC-AUC and average precision. ODIM on the raw
  features, the peers at PyOD's defaults on min-max scaled features, seeds
  0..n-1 (a detector without a ``random_state`` runs once). Results share
  their keys with ``bench_accuracy.py``, so one cache file serves both.
* ``pyod``: the protocol of PyOD's own benchmark script
  (``notebooks/benchmark.py`` in PyOD's repository). For iteration ``i``:
  ``random_state = np.random.RandomState(i)``, ``train_test_split(X, y,
  test_size=0.4, random_state=random_state)``, ``standardizer(X_train,
  X_test)``, every detector built with ``contamination`` = the outlier
  fraction of ``y`` (and ``random_state=random_state`` where its constructor
  takes one), ``fit(X_train_norm)``, then ``roc_auc_score`` and
  ``precision_n_scores`` of ``decision_function(X_test_norm)``.

PyOD's script passes one ``RandomState`` object to every detector, so each
detector's draws depend on those fitted before it. That is mirrored: the
detectors of an iteration run in a fixed order in one process, the script's
own (ABOD, CBLOF with ``n_clusters=10, check_estimator=False``,
FeatureBagging, HBOS, IForest, KNN, LOF, MCD, OCSVM, PCA), then COPOD, ECOD,
GMM, KDE, LODA, INNE, DIF, LUNAR, AutoEncoder, VAE, DeepSVDD, then ODIM.
Each ODIM variant gets its own copy of the stream at ODIM's place, so that
variants compare on equal terms and do not change the peers. DIF,
AutoEncoder, VAE and DeepSVDD reject a ``RandomState`` (they seed torch
with it), so they get the integer ``i`` instead and leave the stream alone.
Before every fit the global NumPy/torch/random RNGs are seeded with ``i``
(the script leaves them as they are), so that every fit repeats. The stream's state after every fit is cached with the fit, so a resumed run
continues exactly where the first stopped. ODIM's records are keyed by its
parameters, not by the code's version: measure changed code with another
``--cache`` file (copy the peers' records over to keep them).

Per-fit budget (``--budget``, seconds of fit plus scoring): a peer whose fit
exceeds it on a set is reported "over budget" there, and is skipped on the
rest of that set's seeds and on every set with at least as many rows and at
least as many features (sets run in increasing rows x features, so with one
worker the rule is exact). ODIM always runs. A detector that raises is
recorded with its error.

    python benchmarks/bench_protocols.py [--protocols pyod,paper] [--sets all]
        [--exclude cover,shuttle] [--seeds 3] [--budget 60] [--peers ...]
        [--variants ODIM] [--odim 'label={"param": value}'] [--jobs 1]
        [--cache results/protocols.jsonl] [--report-only] [--write-results]

``--sets`` takes set names and the family names tabular, sparse-image,
dense-image, text and all.
"""

import argparse
import base64
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
from scipy.stats import rankdata

from _common import add_results_argument, markdown_table, require_datasets, write_results
from _grid import (
    FAMILIES, INT_SEED_ONLY, SHARED_SETS, _key, _run_one, average_ranks, build_peer, error_text,
    odim_tasks, peer_tasks, read_cache, run_tasks, seed_globals, shape, takes_random_state,
)

# PyOD's benchmark script, in its order, with its constructor arguments
# beyond contamination and random_state.
PYOD_SCRIPT = ["ABOD", "CBLOF", "FeatureBagging", "HBOS", "IForest", "KNN", "LOF", "MCD",
               "OCSVM", "PCA"]
SCRIPT_KWARGS = {"CBLOF": {"n_clusters": 10, "check_estimator": False}}
# PyOD's other detectors for tabular data that the issue asks for.
MORE_PEERS = ["COPOD", "ECOD", "GMM", "KDE", "LODA", "INNE", "DIF", "LUNAR", "AutoEncoder",
              "VAE", "DeepSVDD"]
PEERS = PYOD_SCRIPT + MORE_PEERS

# ODIM variants: a dict of parameters over the defaults each.
# "ODIM, paper's score": the ensemble's score alone, without the neighbour stage.
VARIANTS = {"ODIM": {}, "ODIM, paper's score": {"score_stage": "paper"}}

DEFAULT_CACHE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "results",
                             "protocols.jsonl")
PROTOCOL_NAMES = {"pyod": "PyOD's benchmark protocol (60/40 split, test scores)",
                  "paper": "the paper's protocol (all rows, training scores)"}
PROTOCOL_SHORT = {"pyod": "PyOD protocol", "paper": "paper protocol"}


# ---------------------------------------------------------------- the stream

def _encode_state(random_state):
    """A RandomState's state as JSON-friendly values."""
    kind, keys, pos, has_gauss, gauss = random_state.get_state()
    return {"kind": kind, "keys": base64.b64encode(keys.astype("<u4").tobytes()).decode(),
            "pos": int(pos), "has_gauss": int(has_gauss), "gauss": float(gauss)}


def _decode_state(state):
    keys = np.frombuffer(base64.b64decode(state["keys"]), dtype="<u4").astype(np.uint32)
    return state["kind"], keys, state["pos"], state["has_gauss"], state["gauss"]


def draws_from_stream(name):
    """Whether the peer ``name`` is handed the shared RandomState."""
    return takes_random_state(name) and name not in INT_SEED_ONLY


# ------------------------------------------------------------ budget, plans

def fit_seconds(record):
    return record.get("seconds", 0.0) + record.get("score_seconds", 0.0)


def _over_budget(records, budget):
    """{label: [(dataset, seed)]} of the peer fits that took longer than ``budget``."""
    over = {}
    for r in records:
        if r["kind"] == "peer" and fit_seconds(r) > budget:
            over.setdefault(r["label"], []).append((r["dataset"], r["seed"]))
    return over


def skip_reason(over, label, dataset, seed):
    """Why the budget rule skips ``label`` on (dataset, seed), or None.

    Over budget earlier on the same set, or on a set no larger in rows and
    in features (whose fits come first), skips it here.
    """
    n, d = shape(dataset)
    for name, s in over.get(label, ()):
        if name == dataset and s < seed:
            return f"over budget on seed {s}"
        if name != dataset:
            n_other, d_other = shape(name)
            if n_other <= n and d_other <= d:
                return f"over budget on {name}"
    return None


def _protocol_records(done, protocol):
    return [r for r in done.values() if r.get("protocol", "paper") == protocol]


def plan_pyod(dataset, seed, peers, variants, done, budget):
    """The fits of one PyOD-protocol iteration, in order, and the skipped peers.

    Each step carries the names of the detectors that drew from the stream
    before it (``upstream``), part of its cache key.
    """
    over = _over_budget(_protocol_records(done, "pyod"), budget)
    steps, skipped, upstream = [], {}, []
    for name in peers:
        reason = skip_reason(over, name, dataset, seed)
        if reason:
            skipped[name] = reason
            continue
        steps.append(dict(protocol="pyod", kind="peer", label=name, params={}, dataset=dataset,
                          seed=seed, upstream=list(upstream)))
        if draws_from_stream(name):
            upstream.append(name)
    for label, params in variants.items():
        steps.append(dict(protocol="pyod", kind="odim", label=label, params=params,
                          dataset=dataset, seed=seed, upstream=list(upstream)))
    return steps, skipped


def pyod_chains(datasets, seeds):
    """One task per (set, iteration), smallest sets first (the budget rule's order)."""
    return [dict(protocol="pyod", dataset=name, seed=seed)
            for name in sorted(datasets, key=lambda n: (np.prod(shape(n)), n)) for seed in seeds]


def paper_tasks(variants, peers, datasets, seeds):
    tasks = odim_tasks(variants, datasets, seeds) + peer_tasks(peers, datasets, seeds)
    return sorted(tasks, key=lambda t: (np.prod(shape(t["dataset"])), t["dataset"], t["seed"]))


def paper_skip(task, done, budget):
    if task["kind"] != "peer":
        return None
    over = _over_budget(_protocol_records(done, "paper"), budget)
    return skip_reason(over, task["label"], task["dataset"], task["seed"])


# ------------------------------------------------------------------- workers

def run_pyod_chain(task, emit):
    """Worker: one iteration of PyOD's protocol on one set, every step in order.

    Cached steps are not refitted; their stored stream state is restored so
    that the steps after them draw what they would have drawn.
    """
    from pyod.utils.utility import precision_n_scores, standardizer
    from pyod_odim import ODIM
    from sklearn.metrics import average_precision_score, roc_auc_score
    from sklearn.model_selection import train_test_split

    from _common import load

    X, y = load(task["dataset"])
    i = task["seed"]
    outliers_fraction = np.count_nonzero(y) / len(y)
    random_state = np.random.RandomState(i)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.4, random_state=random_state)
    X_train_norm, X_test_norm = standardizer(X_train, X_test)
    odim_state = None
    for step in task["steps"]:
        cached = task["cached"].get(_key(step))
        if step["kind"] == "odim":
            if odim_state is None:
                odim_state = random_state.get_state()
            if cached is not None:
                continue
            stream = np.random.RandomState()
            stream.set_state(odim_state)
        elif cached is not None:
            if "rng_after" in cached:
                random_state.set_state(_decode_state(cached["rng_after"]))
            continue
        record = dict(step, n_train=len(y_train), n_test=len(y_test), status="ok")
        seed_globals(i)
        t0 = time.perf_counter()
        try:
            if step["kind"] == "odim":
                clf = ODIM(contamination=outliers_fraction, random_state=stream,
                           **step["params"])
            else:
                kwargs = dict(SCRIPT_KWARGS.get(step["label"], {}),
                              contamination=outliers_fraction)
                seed = i if step["label"] in INT_SEED_ONLY else random_state
                clf = build_peer(step["label"], X.shape[1], random_state=seed, **kwargs)
            clf.fit(X_train_norm)
            record["seconds"] = time.perf_counter() - t0
            t1 = time.perf_counter()
            test_scores = clf.decision_function(X_test_norm)
            record["score_seconds"] = time.perf_counter() - t1
            record.update(auc=float(roc_auc_score(y_test, test_scores)),
                          prn=float(precision_n_scores(y_test, test_scores)),
                          ap=float(average_precision_score(y_test, test_scores)))
            if step["kind"] == "odim":
                record["updates"] = int(clf.n_updates_)
        except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
            record.update(status="error", error=error_text(exc), auc=math.nan, prn=math.nan,
                          ap=math.nan)
            record.setdefault("seconds", time.perf_counter() - t0)
        if step["kind"] == "peer" and draws_from_stream(step["label"]):
            record["rng_after"] = _encode_state(random_state)
        emit(record)


# ------------------------------------------------------------------- results

class Cell:
    """What one detector did on one set under one protocol."""

    def __init__(self, status, values=None, seconds=None, note=""):
        self.status, self.values, self.seconds, self.note = status, values or {}, seconds, note

    @property
    def ok(self):
        return self.status == "ok"


def _cell(records, expected, skipped, budget, odim):
    """Combine the records of the expected seeds into a Cell."""
    errors = [r for r in records if r.get("status") == "error"]
    if errors:
        return Cell("error", note=errors[0].get("error", ""))
    # Over budget here (the later seeds then skipped) reads as over budget.
    if not odim and any(fit_seconds(r) > budget for r in records):
        slow = max(fit_seconds(r) for r in records)
        return Cell("over", seconds=slow, note=f"{slow:.0f} s")
    if skipped:
        return Cell("skip", note=skipped)
    if len(records) < expected:
        return Cell("missing")
    return Cell("ok", {f: float(np.mean([r[f] for r in records]))
                       for f in ("auc", "prn", "ap") if f in records[0]},
                seconds=float(np.mean([fit_seconds(r) for r in records])))


def collect_pyod(datasets, seeds, peers, variants, done, budget):
    """{(label, dataset): Cell} of the PyOD protocol."""
    cells = {}
    for name in datasets:
        found, skips = {}, {}
        for seed in seeds:
            steps, skipped = plan_pyod(name, seed, peers, variants, done, budget)
            for label, reason in skipped.items():
                skips.setdefault(label, reason)
            for step in steps:
                record = done.get(_key(step))
                if record is not None:
                    found.setdefault(step["label"], []).append(record)
        for label in list(variants) + list(peers):
            cells[(label, name)] = _cell(found.get(label, []), len(seeds),
                                         skips.get(label) if label in peers else None,
                                         budget, label in variants)
    return cells


def collect_paper(datasets, seeds, peers, variants, done, budget):
    """{(label, dataset): Cell} of the paper's protocol."""
    cells = {}
    tasks = paper_tasks(variants, peers, datasets, seeds)
    found, skips, expected = {}, {}, {}
    for task in tasks:
        where = (task["label"], task["dataset"])
        expected[where] = expected.get(where, 0) + 1
        reason = paper_skip(task, done, budget)
        if reason:
            skips.setdefault(where, reason)
            continue
        record = done.get(_key(task))
        if record is not None:
            found.setdefault(where, []).append(record)
    for name in datasets:
        for label in list(variants) + list(peers):
            where = (label, name)
            cells[where] = _cell(found.get(where, []), expected.get(where, 1), skips.get(where),
                                 budget, label in variants) if where in expected else Cell(
                                     "skip", note="not run on this set")
    return cells


# -------------------------------------------------------------------- tables

def fmt(value, digits=3):
    return "-" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


MARKS = {"skip": "skip", "error": "err", "over": "⏱", "missing": ""}
METRIC_NAMES = {"auc": "ROC-AUC", "prn": "P@n", "ap": "AP"}


def per_set_table(cells, labels, datasets, field, digits=3):
    """Sets x detectors, the best of each row in bold."""
    rows = []
    for name in datasets:
        values = {lab: cells[(lab, name)].values.get(field) for lab in labels
                  if cells[(lab, name)].ok}
        best = max(values.values()) if values else None
        row = [f"{name} ({shape(name)[0]}x{shape(name)[1]})"]
        for lab in labels:
            cell = cells[(lab, name)]
            if not cell.ok:
                row.append(MARKS[cell.status])
            else:
                text = fmt(values[lab], digits)
                row.append(f"**{text}**" if fmt(best, digits) == text else text)
        rows.append(row)
    return markdown_table(["data set"] + labels, rows)


def seconds_table(cells, labels, datasets):
    rows = []
    for name in datasets:
        row = [name]
        for lab in labels:
            cell = cells[(lab, name)]
            row.append(fmt(cell.seconds, 1) if cell.ok else (
                f"⏱ {cell.note}" if cell.status == "over" else MARKS[cell.status]))
        rows.append(row)
    return markdown_table(["data set"] + labels, rows)


def _means(cells, field):
    return {k: c.values[field] for k, c in cells.items() if c.ok and field in c.values}


def rank_table(cells, labels, datasets, field):
    """Average rank of each detector overall and per family, ranked over the
    sets where every one of ``labels`` ran; also the mean value overall."""
    means = _means(cells, field)
    columns = [("all", datasets)] + [
        (family, [d for d in datasets if d in members]) for family, members in FAMILIES.items()]
    columns = [(title, sets) for title, sets in columns if sets]
    results = [(title, average_ranks(means, labels, sets), len(sets)) for title, sets in columns]
    overall, used_all = results[0][1]
    order = sorted(labels, key=lambda lab: (not np.isfinite(overall[lab]), overall[lab]))
    rows = []
    for lab in order:
        mean_value = np.mean([means[(lab, d)] for d in used_all]) if used_all else math.nan
        rows.append([lab] + [fmt(ranks[lab], 2) for _, (ranks, _), _ in results]
                    + [fmt(mean_value)])
    header = (["detector"] + [f"{title} ({len(used)} of {n} sets)"
                              for title, (_, used), n in results]
              + [f"mean {METRIC_NAMES[field]} ({len(used_all)} sets)"])
    left_out = [d for d in datasets if d not in used_all]
    return markdown_table(header, rows), used_all, left_out


def complete_labels(cells, labels, datasets):
    return [lab for lab in labels if all(cells[(lab, d)].ok for d in datasets)]


def rank_section(cells, labels, datasets, field, title):
    """Ranks over the sets every detector ran; and, where some detector is
    missing somewhere, ranks of the detectors that ran on every set."""
    out = []
    table, used, left_out = rank_table(cells, labels, datasets, field)
    out.append(f"**{title}, all {len(labels)} detectors** (ranked over the sets where every "
               f"one of them ran: {len(used)} of {len(datasets)}"
               + (f"; left out: {', '.join(left_out)}" if left_out else "") + ")\n")
    out.append(table)
    complete = complete_labels(cells, labels, datasets)
    if left_out and len(complete) >= 2:
        missing = [lab for lab in labels if lab not in complete]
        table, used, _ = rank_table(cells, complete, datasets, field)
        out.append(f"\n**{title}, the {len(complete)} detectors that ran on all "
                   f"{len(datasets)} sets** (without {', '.join(missing)})\n")
        out.append(table)
    return "\n".join(out)


def losses_table(cells, odim_label, labels, datasets, field="auc"):
    """Per set: ODIM, its rank among the detectors that ran, the best one, the gap."""
    rows = []
    for name in datasets:
        cell = cells[(odim_label, name)]
        ran = {lab: cells[(lab, name)].values[field] for lab in labels if cells[(lab, name)].ok}
        if not cell.ok or len(ran) < 2:
            continue
        best = max((lab for lab in ran if lab != odim_label), key=lambda lab: ran[lab])
        rank = rankdata([-ran[lab] for lab in ran])[list(ran).index(odim_label)]
        rows.append((ran[odim_label] - ran[best], [
            name, fmt(ran[odim_label]), f"{rank:g} of {len(ran)}", best, fmt(ran[best]),
            f"{ran[odim_label] - ran[best]:+.3f}"]))
    rows.sort(key=lambda item: item[0])
    return markdown_table(["data set", f"{odim_label} {METRIC_NAMES[field]}", "rank",
                           "best other detector", METRIC_NAMES[field], "gap"],
                          [row for _, row in rows])


def footnotes(cells, labels, datasets):
    """The errors and over-budget fits, one line each."""
    lines = []
    for lab in labels:
        for name in datasets:
            cell = cells[(lab, name)]
            if cell.status == "error":
                lines.append(f"- {lab} on {name}: error `{cell.note[:160]}`")
            elif cell.status == "over":
                lines.append(f"- {lab} on {name}: over budget ({cell.note})")
    return lines


def skipped_summary(cells, labels, datasets):
    by_label = {}
    for lab in labels:
        for name in datasets:
            cell = cells[(lab, name)]
            if cell.status == "skip":
                by_label.setdefault(lab, []).append(name)
    return [f"- {lab}: skipped on {', '.join(names)}" for lab, names in by_label.items()]


# ----------------------------------------------------------------- main

def expand_sets(spec, exclude):
    names = []
    for item in spec.split(","):
        item = item.strip()
        family = item.replace("-", " ").replace("_", " ")
        if item == "all":
            names += SHARED_SETS
        elif family in FAMILIES:
            names += FAMILIES[family]
        elif item in SHARED_SETS:
            names.append(item)
        elif item:
            sys.exit(f"unknown set or family {item!r}; families: all, "
                     + ", ".join(f.replace(" ", "-") for f in FAMILIES))
    dropped = set(exclude.split(",")) if exclude else set()
    names = [n for n in dict.fromkeys(names) if n not in dropped]
    # Family, then size: the order of every table.
    family_of = {d: i for i, members in enumerate(FAMILIES.values()) for d in members}
    return sorted(names, key=lambda n: (family_of[n], np.prod(shape(n)), n))


def parse_variants(args):
    variants = {label: VARIANTS[label] for label in args.variants.split(";") if label}
    for spec in args.odim or []:
        label, _, params = spec.partition("=")
        variants[label.strip()] = json.loads(params) if params.strip() else {}
    if not variants:
        sys.exit("no ODIM variant chosen")
    return variants


def code_version(commit=True):
    """pyod-odim's version, and where it was imported from and its commit unless ``commit`` is False."""
    import pyod_odim

    where = os.path.dirname(os.path.abspath(pyod_odim.__file__))
    if not commit:
        return f"pyod-odim {pyod_odim.__version__}"
    text = f"pyod-odim {pyod_odim.__version__} ({where}"
    try:
        commit = subprocess.run(["git", "-C", where, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", where, "status", "--porcelain", "--", "."],
                               capture_output=True, text=True, check=True).stdout.strip()
        text += f", commit {commit}" + (" with uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        text += ", not a git checkout"
    return text + ")"


def environment_text(args, variants, commit=True):
    import pyod
    import sklearn
    import torch

    from pyod_odim import ODIM

    defaults = ODIM().get_params()
    shown = ", ".join(f"{k}={v!r}" for k, v in sorted(defaults.items()))
    lines = [
        f"- Code: {code_version(commit)}; pyod {pyod.__version__}, torch {torch.__version__}, "
        f"scikit-learn {sklearn.__version__}, numpy {np.__version__}, Python "
        f"{sys.version.split()[0]}; {os.cpu_count()} CPUs, {args.jobs} worker(s), one thread "
        "per fit (ODIM `n_jobs=1`, torch/BLAS/OpenMP pools at 1).",
        f"- Seeds / iterations: 0..{args.seeds - 1}. Per-fit budget: {args.budget:g} s of fit "
        "plus scoring (peers only; see the rule above).",
        f"- ODIM defaults: {shown} (PyOD's protocol sets contamination and random_state "
        "as described above; the paper's sets random_state to the seed).",
    ]
    lines += [f"- ODIM variant \"{label}\": {json.dumps(params) if params else 'the defaults'}"
              for label, params in variants.items()]
    return "\n".join(lines)


# docs/results.md explains the two protocols and the budget rule above the
# section this script writes ("protocols").


def report(args, variants, peers, datasets, seeds, done, commit=True):
    labels = list(variants) + list(peers)
    odim_label = next(iter(variants))
    parts = ["### Setup", "", environment_text(args, variants, commit)]
    if args.note:
        parts += ["", args.note]
    for protocol in args.protocols:
        collect = collect_pyod if protocol == "pyod" else collect_paper
        cells = collect(datasets, seeds, peers, variants, done, args.budget)
        ran = [d for d in datasets if any(cells[(lab, d)].ok for lab in labels)]
        not_run = [d for d in datasets if d not in ran]
        title = PROTOCOL_NAMES[protocol]
        parts += ["", f"### {title[0].upper() + title[1:]}", ""]
        parts.append(f"{len(ran)} sets with results"
                     + (f" (no result yet: {', '.join(not_run)})" if not_run else "")
                     + f"; {len(seeds)} {'iterations' if protocol == 'pyod' else 'seeds'}; "
                     f"{len(labels)} detectors.")
        if not ran:
            continue
        metric = "test ROC-AUC" if protocol == "pyod" else "training ROC-AUC"
        short = PROTOCOL_SHORT[protocol]
        parts += ["", f"#### Average ranks, {short}", "",
                  rank_section(cells, labels, ran, "auc", metric)]
        if protocol == "pyod":
            parts += ["", rank_section(cells, labels, ran, "prn", "precision @ rank n")]
        else:
            parts += ["", rank_section(cells, labels, ran, "ap", "average precision")]
        parts += ["", f"#### Where {odim_label} stands, set by set ({short}, {metric})", "",
                  losses_table(cells, odim_label, labels, ran)]
        parts += ["", f"#### {metric[0].upper() + metric[1:]} per set ({short}, mean over seeds)",
                  "",
                  per_set_table(cells, labels, ran, "auc")]
        if protocol == "pyod":
            parts += ["", f"#### Precision @ rank n per set ({short}, mean over iterations)", "",
                      per_set_table(cells, labels, ran, "prn")]
        else:
            parts += ["", f"#### Average precision per set ({short}, mean over seeds)", "",
                      per_set_table(cells, labels, ran, "ap")]
        parts += ["", f"#### Seconds per fit ({short}, fit + scoring, mean over seeds)", "",
                  seconds_table(cells, labels, ran)]
        notes = skipped_summary(cells, labels, ran) + footnotes(cells, labels, ran)
        if notes:
            parts += ["", f"#### Skipped, over budget and failed fits ({short})", ""] + notes
    return "\n".join(parts) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocols", default="pyod,paper",
                        help="comma-separated: pyod, paper (run and reported in this order)")
    parser.add_argument("--sets", default="all", help="set names and families, comma-separated")
    parser.add_argument("--exclude", default="", help="sets to leave out, comma-separated")
    parser.add_argument("--seeds", type=int, default=3, help="seeds / iterations 0..n-1")
    parser.add_argument("--budget", type=float, default=60.0,
                        help="per-fit budget of a peer, seconds of fit plus scoring")
    parser.add_argument("--peers", default=",".join(PEERS),
                        help="PyOD detectors beside ODIM, comma-separated ('' for none)")
    parser.add_argument("--variants", default=";".join(VARIANTS),
                        help="ODIM variants of this script's VARIANTS, separated by semicolons")
    parser.add_argument("--odim", action="append", metavar='LABEL={"param": value}',
                        help="one more ODIM variant (parameters over the defaults); repeatable")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--cache", default=DEFAULT_CACHE, help="JSON-lines result file")
    parser.add_argument("--report-only", action="store_true",
                        help="tabulate the cache, fit nothing")
    add_results_argument(parser)
    parser.add_argument("--note", default="", help="a line added to the report's setup section")
    args = parser.parse_args()
    require_datasets()
    args.protocols = [p for p in args.protocols.split(",") if p]
    unknown = [p for p in args.protocols if p not in PROTOCOL_NAMES]
    if unknown:
        sys.exit(f"unknown protocol(s) {unknown}; choose from {list(PROTOCOL_NAMES)}")
    peers = [p for p in args.peers.split(",") if p]
    bad = [p for p in peers if p not in PEERS]
    if bad:
        sys.exit(f"unknown peer(s) {bad}; choose from {PEERS}")
    variants = parse_variants(args)
    datasets = expand_sets(args.sets, args.exclude)
    seeds = list(range(args.seeds))
    done = read_cache(args.cache)

    if not args.report_only:
        for protocol in args.protocols:
            t0 = time.perf_counter()
            if protocol == "pyod":
                def prepare(chain, known):
                    steps, _ = plan_pyod(chain["dataset"], chain["seed"], peers, variants, known,
                                         args.budget)
                    cached = {_key(s): known[_key(s)] for s in steps if _key(s) in known}
                    if len(cached) == len(steps):
                        return None
                    return dict(chain, steps=steps, cached=cached)

                done = run_tasks(pyod_chains(datasets, seeds), run_pyod_chain, jobs=args.jobs,
                                 cache=args.cache, prepare=prepare, done=done)
            else:
                def prepare(task, known):
                    if _key(task) in known or paper_skip(task, known, args.budget):
                        return None
                    return task

                done = run_tasks(paper_tasks(variants, peers, datasets, seeds), _run_one,
                                 jobs=args.jobs, cache=args.cache, prepare=prepare, done=done)
            print(f"{protocol} protocol: {time.perf_counter() - t0:.0f} s", flush=True)

    text = report(args, variants, peers, datasets, seeds, done)
    print()
    print(text)
    if args.write_results:
        write_results("protocols", report(args, variants, peers, datasets, seeds, done,
                                          commit=False))


if __name__ == "__main__":
    main()
