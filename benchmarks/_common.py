"""Shared pieces of the benchmark scripts: datasets, the paper's figures, the results page."""

import os
import re
import statistics
import sys
import time

import numpy as np

# ../shared/datasets beside the repository, or $ODIM_DATASETS.
DATASET_DIR = os.environ.get(
    "ODIM_DATASETS",
    os.path.join(os.path.dirname(__file__), "..", "..", "shared", "datasets"),
)

# The 12 sets that match the paper's versions (see the datasets' MANIFEST).
COMPARABLE = [
    "breastw", "cover", "mammography", "musk", "pendigits", "pima",
    "vowels", "cardio", "satellite", "satimage-2", "shuttle", "thyroid",
]
# Present but different from the paper's versions: reported, not compared.
DIFFERENT = ["glass", "ionosphere", "wbc"]

# ODIM and IForest training ROC-AUC as published by the ODIM authors
# (their results file for the paper, mean of 5 seeds, in percent / 100).
# These reproduce the paper's 12-set means: ODIM 0.896, IForest 0.897.
PAPER_ODIM_AUC = {
    "breastw": 0.9920, "cover": 0.8369, "mammography": 0.8476, "musk": 1.0000,
    "pendigits": 0.9531, "pima": 0.7057, "vowels": 0.9039, "cardio": 0.9161,
    "satellite": 0.6901, "satimage-2": 0.9966, "shuttle": 0.9809,
    "thyroid": 0.9282, "glass": 0.7246, "ionosphere": 0.9139, "wbc": 0.9405,
}
PAPER_IFOREST_AUC = {
    "breastw": 0.9834, "cover": 0.8943, "mammography": 0.8621, "musk": 0.9995,
    "pendigits": 0.9569, "pima": 0.6718, "vowels": 0.8075, "cardio": 0.9305,
    "satellite": 0.6902, "satimage-2": 0.9915, "shuttle": 0.9970,
    "thyroid": 0.9771, "glass": 0.7138, "ionosphere": 0.8587, "wbc": 0.9377,
}


def datasets_available():
    return os.path.isfile(os.path.join(DATASET_DIR, "load.py"))


def load(name):
    """(X float64, y int64) of a shared dataset."""
    if DATASET_DIR not in sys.path:
        sys.path.insert(0, DATASET_DIR)
    from load import load as _load

    return _load(name)


def timed(fn, *args, **kwargs):
    """Run ``fn`` and return (result, wall seconds)."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def median_seconds(fn, repeats):
    """Median wall seconds of ``repeats`` calls of ``fn()``."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def require_datasets():
    if not datasets_available():
        sys.exit(f"datasets not found at {DATASET_DIR}; set ODIM_DATASETS")


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def mean_std(values):
    values = np.asarray(values, dtype=float)
    return f"{values.mean():.3f} ± {values.std():.3f}"


# docs/results.md: each table sits between two markers that name it,
# <!-- results:NAME --> and <!-- /results:NAME -->, and the benchmark that
# measures it rewrites what lies between them.
RESULTS_PAGE = os.path.join(os.path.dirname(__file__), "..", "docs", "results.md")


def add_results_argument(parser):
    """The ``--write-results`` switch: also write the tables into docs/results.md."""
    parser.add_argument("--write-results", action="store_true",
                        help="also replace this benchmark's tables in docs/results.md")


def write_results(name, text, page=RESULTS_PAGE):
    """Replace the text between the markers of section ``name`` in ``page``.

    Parameters
    ----------
    name : str
        The section's name, as in ``<!-- results:NAME -->``.
    text : str
        Markdown that goes between the two markers (the measurement's
        version and parameters, then its tables).
    page : str, optional
        The results page (default: docs/results.md).

    Raises
    ------
    ValueError
        If the page does not hold both markers of ``name``, once each.
    """
    with open(page) as handle:
        content = handle.read()
    start, end = f"<!-- results:{name} -->", f"<!-- /results:{name} -->"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if content.count(start) != 1 or content.count(end) != 1 or not pattern.search(content):
        raise ValueError(f"{page} has no single pair of markers {start} ... {end}")
    replacement = f"{start}\n\n{text.strip()}\n\n{end}"
    content = pattern.sub(lambda _: replacement, content)
    with open(page, "w") as handle:
        handle.write(content)
    print(f"wrote section {name!r} of {os.path.normpath(page)}")


class ResultsText:
    """What a benchmark prints as its result, kept for :func:`write_results`."""

    def __init__(self):
        self.parts = []

    def add(self, text=""):
        """Print ``text`` and keep it."""
        print(text, flush=True)
        self.parts.append(text)

    def text(self):
        """Everything kept, one part per line."""
        return "\n".join(self.parts)
