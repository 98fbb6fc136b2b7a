"""Benchmark of the GMM-2 selector: scikit-learn vs the NumPy fallback vs C++.

Run ``python benchmarks/bench_gmm.py`` (or ``--quick``). For every size it
times, side by side in the same process on the same data:

* sklearn: ``GaussianMixture(n_components=2)`` fit + predict_proba on each
  min-max normalized row, looped over the M rows (what a user would write);
* numpy:   ``fit_gmm2(..., backend="numpy")``;
* cpp:     ``fit_gmm2(..., backend="cpp")`` with OpenMP's default threads,
  and the raw kernel on one thread (``cpp 1thr``).

Each time is the median of several repeats (fewer for the slow sklearn
runs). Data: loss-like rows, a lognormal bulk plus a 2% far tail, fixed seed.
This is a script, not a test.
"""

import argparse
import platform
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from _common import median_seconds
from pyod_odim import gmm

FULL_SIZES = [(2000, 1), (2000, 10), (50000, 1), (50000, 10), (300000, 1), (300000, 10)]
QUICK_SIZES = [(2000, 1), (2000, 10), (50000, 1), (50000, 10)]


def loss_like_rows(m, n, seed=0):
    """(m, n) losses: lognormal bulk plus a 2% tail far above it."""
    rng = np.random.default_rng(seed)
    n_tail = max(1, n // 50)
    bulk = rng.lognormal(0.0, 0.5, size=(m, n - n_tail))
    tail = rng.normal(8.0, 1.0, size=(m, n_tail))
    return np.concatenate([bulk, tail], axis=1)


def sklearn_rows(losses):
    """Per-row sklearn fit + predict_proba on min-max normalized rows."""
    for row in losses:
        x = ((row - row.min()) / (row.max() - row.min()))[:, None]
        GaussianMixture(n_components=2).fit(x).predict_proba(x)


def median_time(fn, repeats):
    """Median wall time of fn() over `repeats` runs, after one warm-up run."""
    fn()
    return median_seconds(fn, repeats)


def repeats_for(n, m, slow, quick):
    """Fewer repeats for big inputs, fewest for the slow (sklearn) runs."""
    work = n * m
    if slow:
        base = 1 if work >= 1_000_000 else 3 if work >= 100_000 else 5
    else:
        base = 3 if work >= 1_000_000 else 7 if work >= 100_000 else 15
    return max(1, base // 2) if quick else base


def measure(n, m, quick):
    losses = loss_like_rows(m, n)
    row = {"n": n, "M": m}
    row["sklearn"] = median_time(lambda: sklearn_rows(losses), repeats_for(n, m, True, quick))
    row["numpy"] = median_time(
        lambda: gmm.fit_gmm2(losses, backend="numpy"), repeats_for(n, m, True, quick)
    )
    if gmm.BACKEND == "cpp":
        from pyod_odim import _gmm

        reps = repeats_for(n, m, False, quick)
        row["cpp"] = median_time(lambda: gmm.fit_gmm2(losses, backend="cpp"), reps)
        row["cpp1"] = median_time(lambda: _gmm.fit(losses, 1e-3, 100, 1e-6, "sigma", 1), reps)
    return row


def fmt_time(seconds):
    return f"{seconds * 1e3:10.2f}" if seconds is not None else f"{'-':>10}"


def fmt_ratio(num, den):
    return f"{num / den:9.1f}x" if num is not None and den else f"{'-':>10}"


def print_header():
    print(f"python {platform.python_version()}, numpy {np.__version__}, backend {gmm.BACKEND}", end="")
    if gmm.BACKEND == "cpp":
        from pyod_odim import _gmm

        print(f", OpenMP {_gmm.openmp} ({_gmm.default_threads()} threads), E-step {_gmm.pack_kind()}")
    else:
        print()
    print("median wall time in ms")
    cols = ["n", "M", "sklearn", "numpy", "cpp", "cpp 1thr", "sklearn/cpp", "numpy/cpp"]
    widths = [7, 3, 10, 10, 10, 10, 11, 10]
    print(" ".join(f"{c:>{w}}" for c, w in zip(cols, widths)))


def print_row(r):
    cpp = r.get("cpp")
    print(
        f"{r['n']:>7} {r['M']:>3} {fmt_time(r['sklearn'])} {fmt_time(r['numpy'])} "
        f"{fmt_time(cpp)} {fmt_time(r.get('cpp1'))}  {fmt_ratio(r['sklearn'], cpp)} "
        f"{fmt_ratio(r['numpy'], cpp)}",
        flush=True,
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", ConvergenceWarning)
    print_header()
    for n, m in QUICK_SIZES if args.quick else FULL_SIZES:
        print_row(measure(n, m, args.quick))


if __name__ == "__main__":
    main()
