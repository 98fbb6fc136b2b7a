"""What deploying a fitted ODIM costs: model files, TorchScript and ONNX Runtime.

    python benchmarks/bench_export.py [--sections throughput,load,parity] [--sets ...]
    python benchmarks/bench_export.py --sections corruptions [--corruptions 400]

Every figure is measured in this run, one thread everywhere
(each fit is stopped after ``--max-updates`` updates, 100 by default:
what an export costs and how closely it matches depends on the data and
the network's size, which the defaults set, not on when training stops;
``--max-updates 5000`` runs the full default fits)
(``torch.set_num_threads(1)``, ONNX Runtime with one intra-op and one
inter-op thread). Sections:

* ``throughput``: on shuttle (49,097 x 9) and cifar10_0 (5,263 x 512), a
  default fit, then rows per second of ``decision_function`` (the C++
  kernels), of the TorchScript module (float64 network, the default, and
  float32) and of an ONNX Runtime session
  (median of ``--repeats`` passes over all rows; ONNX Runtime is fed batches
  of the TorchScript module's chunk size, or ``--onnx-batch`` rows); file sizes of the model file, a pickle
  (``pickle.dumps`` of the fitted detector), the TorchScript module and the
  ONNX graph; and the largest relative difference of each export from
  ``decision_function``.
* ``load``: on the same two fits, median load times from files on disk
  (``--load-repeats`` loads each, the loaders taking turns in a shuffled order):
  ``pyod_odim.load`` with and without its CRC check, ``pickle.load``,
  ``joblib.load``, PyOD's ``pyod.utils.persistence.load`` (a joblib file
  with a version envelope), ``torch.jit.load`` and an ONNX Runtime session.
* ``corruptions``: a default fit on glass (7 features) saved, then
  ``--corruptions`` damaged copies of the file (byte flips, truncation,
  inserted bytes, edits of ``meta.json`` repacked with valid zip CRCs, in
  turn; ``tests/model_corruption.py``) loaded with ``pyod_odim.load`` at its
  defaults and with ``verify=False``: how many were refused, scored as the
  original, scored otherwise, or scored NaN.
* ``parity``: a default fit on every shared set (``--sets``), then the
  largest relative difference of the TorchScript and ONNX scores from
  ``decision_function`` over all rows, ``|a - b| / max(|b|, 1)`` (scores
  of order 1 and below are compared absolutely: the float32 rounding of a
  likelihood's terms is not small relative to a sum near zero).
"""

import argparse
import os
import pickle
import sys
import tempfile
import time

import joblib
import numpy as np
import torch

from _common import (
    ResultsText, add_results_argument, load, markdown_table, median_seconds, require_datasets,
    write_results,
)

# The tables of this run (docs/results.md, section "export").
# One results section per benchmark section (export-throughput, export-load, ...).
REPORTS = {}


def report(section):
    """The kept text of ``section``, written to its own results section."""
    return REPORTS.setdefault(section, ResultsText())
from _grid import SHARED_SETS
import pyod_odim
from pyod_odim import ODIM
from pyod_odim.export import _chunk_rows

ALL_SETS = SHARED_SETS


def relative_error(got, expected):
    return float(np.max(np.abs(got - expected) / np.maximum(np.abs(expected), 1.0)))


def make_odim(args):
    """ODIM at its defaults, stopped after ``args.max_updates`` updates."""
    stop = {} if args.max_updates >= 5000 else dict(
        max_updates=args.max_updates, min_updates=0, patience=2)
    return ODIM(random_state=0, n_jobs=1, **stop)


def onnx_session(path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def onnx_batch_rows(clf, requested):
    """Rows per ONNX Runtime call: ``requested``, or what the TorchScript module chunks by.

    The graph scores a batch at once, holding M * K * rows * width float64
    activations: 4096 rows of a 512-feature model would need about 17 GB.
    """
    return requested or _chunk_rows(clf.scorer_)


def onnx_scores(session, X, batch):
    return np.concatenate([session.run(None, {"x": X[i:i + batch]})[0]
                           for i in range(0, len(X), batch)])


def exports(clf, folder):
    paths = {k: os.path.join(folder, f"model.{k}") for k in ("odim", "pt", "onnx")}
    clf.save(paths["odim"])
    clf.to_torchscript(paths["pt"])
    clf.to_onnx(paths["onnx"])
    return paths


def throughput(args):
    rows, size_rows = [], []
    for name in ("shuttle", "cifar10_0"):
        X, _ = load(name)
        t0 = time.perf_counter()
        clf = make_odim(args).fit(X)
        fit_s = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as folder:
            paths = exports(clf, folder)
            module = torch.jit.load(paths["pt"])
            clf.to_torchscript(os.path.join(folder, "model32.pt"), precision="float32")
            module32 = torch.jit.load(os.path.join(folder, "model32.pt"))
            session = onnx_session(paths["onnx"])
            reference = clf.decision_function(X)
            xt = torch.from_numpy(X)
            ts_scores = module(xt).numpy()
            batch = onnx_batch_rows(clf, args.onnx_batch)
            ort_scores = onnx_scores(session, X, batch)
            kernel_s = median_seconds(lambda: clf.decision_function(X), args.repeats)
            ts_s = median_seconds(lambda: module(xt), args.repeats)
            ts32_s = median_seconds(lambda: module32(xt), args.repeats)
            ts32_scores = module32(xt).numpy()
            ort_s = median_seconds(lambda: onnx_scores(session, X, batch), args.repeats)
            pickled = pickle.dumps(clf)
            sizes = {k: os.path.getsize(p) for k, p in paths.items()}
        n = len(X)
        rows.append([
            f"{name} ({n} x {X.shape[1]})", f"{fit_s:.1f}",
            f"{n / kernel_s:,.0f}", f"{n / ts_s:,.0f} ({kernel_s / ts_s:.2f}x)",
            f"{n / ts32_s:,.0f} ({kernel_s / ts32_s:.2f}x)",
            f"{n / ort_s:,.0f} ({kernel_s / ort_s:.2f}x)",
            f"{relative_error(ts_scores, reference):.1e} / {relative_error(ts32_scores, reference):.1e}"
            f" / {relative_error(ort_scores, reference):.1e}",
        ])
        size_rows.append([name, f"{sizes['odim'] / 1024:.0f}", f"{len(pickled) / 1024:.0f}",
                          f"{sizes['pt'] / 1024:.0f}", f"{sizes['onnx'] / 1024:.0f}"])
    out = report("throughput")
    out.add("\n### Scoring throughput, one thread (rows per second; ratio against the kernels)\n")
    out.add(markdown_table(
        ["data", "fit s", "decision_function (kernels)", "TorchScript", "TorchScript float32",
         "ONNX Runtime", "max rel. diff TorchScript / float32 / ONNX"], rows))
    out.add("\n### File sizes (KiB)\n")
    out.add(markdown_table(["data", "model file (.odim)", "pickle", "TorchScript", "ONNX"],
                       size_rows))


def interleaved_medians(loaders, repeats):
    """Median seconds of each loader, the loaders taking turns in a shuffled order.

    Taking turns spreads drifts over all alike; shuffling keeps any one
    loader from always following the one that evicted the caches.
    """
    for fn in loaders.values():
        fn()  # warm the page cache and the imports
    times = {k: [] for k in loaders}
    order = np.random.RandomState(0)
    keys = list(loaders)
    for _ in range(repeats):
        for key in order.permutation(keys):
            fn = loaders[key]
            t0 = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}


def load_times(args):
    from pyod.utils import persistence

    rows = []
    for name in ("shuttle", "cifar10_0"):
        X, _ = load(name)
        clf = make_odim(args).fit(X)
        with tempfile.TemporaryDirectory() as folder:
            paths = exports(clf, folder)
            pickle_path = os.path.join(folder, "model.pkl")
            with open(pickle_path, "wb") as f:
                pickle.dump(clf, f)
            joblib_path = os.path.join(folder, "model.joblib")
            joblib.dump(clf, joblib_path)
            pyod_path = os.path.join(folder, "model.pyod")
            persistence.save(clf, pyod_path)
            size_kib = os.path.getsize(paths["odim"]) / 1024

            def pickle_load():
                with open(pickle_path, "rb") as f:
                    return pickle.load(f)
            loads = interleaved_medians({
                "pyod_odim.load": lambda: pyod_odim.load(paths["odim"]),
                "pyod_odim.load(verify=False)": lambda: pyod_odim.load(paths["odim"], verify=False),
                "pickle.load": pickle_load,
                "joblib.load": lambda: joblib.load(joblib_path),
                "pyod persistence.load": lambda: persistence.load(pyod_path, trusted=True),
                "torch.jit.load": lambda: torch.jit.load(paths["pt"]),
                "onnxruntime session": lambda: onnx_session(paths["onnx"]),
            }, args.load_repeats)
        base = loads["pyod_odim.load"]
        rows.append([f"{name} ({size_kib:,.0f} KiB)"]
                    + [f"{loads[k] * 1000:.2f}" + ("" if k == "pyod_odim.load" else
                                                   f" ({loads[k] / base:.2f}x)") for k in loads])
        header = ["data (model file)"] + list(loads)
        print(f"  {name}: done", file=sys.stderr, flush=True)
    out = report("load")
    out.add(f"\n### Load times (median ms of {args.load_repeats} interleaved loads; "
               "ratio against pyod_odim.load)\n")
    out.add(markdown_table(header, rows))


def corruptions(args):
    import pathlib

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    from model_corruption import OUTCOMES, corruption_counts

    X, _ = load("glass")
    clf = ODIM(random_state=0, n_jobs=1).fit(X)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        folder = pathlib.Path(folder)
        clf.save(folder / "model.odim")
        for label, loader in (("pyod_odim.load", pyod_odim.load),
                              ("pyod_odim.load(verify=False)",
                               lambda path: pyod_odim.load(path, verify=False))):
            counts, by_kind = corruption_counts(folder / "model.odim", clf, X, args.corruptions,
                                                seed=0, load=loader, folder=folder)
            rows.append([label, "all"] + [str(counts[k]) for k in OUTCOMES])
            rows += [[label, kind] + [str(c[k]) for k in OUTCOMES] for kind, c in by_kind.items()]
    print(f"\n### {args.corruptions} random corruptions of a glass model file (7 features), "
          "loaded and scored on glass\n")
    print(markdown_table(["load", "damage"] + list(OUTCOMES), rows))


def parity(args):
    rows = []
    worst = 0.0
    for name in args.sets:
        X, _ = load(name)
        clf = make_odim(args).fit(X)
        reference = clf.decision_function(X)
        with tempfile.TemporaryDirectory() as folder:
            paths = exports(clf, folder)
            ts = torch.jit.load(paths["pt"])(torch.from_numpy(X)).numpy()
            ort_scores = onnx_scores(onnx_session(paths["onnx"]), X,
                                     onnx_batch_rows(clf, args.onnx_batch))
        errors = relative_error(ts, reference), relative_error(ort_scores, reference)
        worst = max(worst, *errors)
        rows.append([name, f"{X.shape[0]} x {X.shape[1]}", f"{errors[0]:.1e}", f"{errors[1]:.1e}"])
        print(f"  {name}: {errors[0]:.1e} {errors[1]:.1e}", file=sys.stderr, flush=True)
    out = report("parity")
    out.add("\n### Export parity with decision_function (max |a - b| / max(|b|, 1), all rows)\n")
    out.add(markdown_table(["data", "n x d", "TorchScript", "ONNX Runtime"], rows))
    out.add(f"\nlargest difference over {len(rows)} sets: {worst:.1e}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="throughput,load,parity")
    parser.add_argument("--sets", nargs="+", default=ALL_SETS)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--load-repeats", type=int, default=100)
    parser.add_argument("--onnx-batch", type=int, default=0,
                        help="rows per ONNX Runtime call (0: the TorchScript module's chunk)")
    parser.add_argument("--max-updates", type=int, default=100)
    add_results_argument(parser)
    parser.add_argument("--corruptions", type=int, default=400,
                        help="damaged copies of the model file (section corruptions)")
    args = parser.parse_args()
    require_datasets()
    torch.set_num_threads(1)
    versions = (f"pyod-odim {pyod_odim.__version__}, torch {torch.__version__}, "
                f"defaults (10 members, 5 above 256 features; n_samples_iwae=50, engine='auto'), "
                f"n_jobs=1, seed 0, "
                f"fits stopped after {args.max_updates} updates")
    print(f"bench_export: {versions}")
    t0 = time.perf_counter()
    for section in args.sections.split(","):
        {"throughput": throughput, "load": load_times, "parity": parity,
         "corruptions": corruptions}[section](args)
    print(f"\n(bench_export ran {time.perf_counter() - t0:.0f} s)")
    if args.write_results:
        for section, text in REPORTS.items():
            write_results(f"export-{section}", versions + "\n" + text.text())


if __name__ == "__main__":
    main()
