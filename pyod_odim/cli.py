"""The ``odim`` command line: a demo on bundled data, and scoring of a file.

``odim demo`` compares ODIM with the PyOD detectors a user tries first
(IForest, KNN, LOF, ECOD) on the bundled cardio set, under both protocols:
the paper's (fit on all rows, score them) and PyOD's benchmark script's
(fit on 60 % of the rows, score the other 40 %). ``odim score INPUT`` fits ODIM on a CSV,
``.npy``, ``.npz`` or Parquet file (or loads a saved model) and writes each
row's score and label (with ``--explain K``, also its K features with the
largest contributions to the score). Errors are one line on stderr and a non-zero exit.
"""

import argparse
import os
import sys
import time
import warnings

import numpy as np

from ._version import __version__
from ._io import InputError, atomic_path, check_output_path, read_table, suffix_of, write_scores

PROG = "odim"

# Fit-only options and their ODIM parameter; they make no sense with --model.
_FIT_OPTIONS = {
    "contamination": "contamination",
    "n_estimators": "n_estimators",
    "n_samples_iwae": "n_samples_iwae",
    "patience": "patience",
    "check_every": "check_every",
    "engine": "engine",
    "precision": "precision",
    "seed": "random_state",
    "max_fit_rows": "max_fit_rows",
}
DEFAULT_SEED = 0


# ----------------------------------------------------------------------
# Argument parsing
def _n_jobs(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value == 0:
        raise argparse.ArgumentTypeError("must be a positive count, or -1 for every CPU")
    return value


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _add_fit_options(parser, seed_help):
    parser.add_argument("--seed", type=int, default=None, metavar="N", help=seed_help)
    parser.add_argument("--n-estimators", type=_positive_int, metavar="M",
                        help="ensemble members (ODIM's default: 10, or 5 above 256 features)")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="show a progress bar (default when stderr is a terminal); "
                             "-vv prints a line per check")
    parser.add_argument("--n-samples-iwae", type=_positive_int, metavar="K",
                        help="importance samples per row (ODIM's default: 50)")
    parser.add_argument("--n-jobs", "--threads", dest="n_jobs", type=_n_jobs, metavar="N",
                        help="CPU threads of the fit and scoring (default: 1; -1: every CPU)")
    parser.add_argument("--max-fit-rows", type=_positive_int, metavar="N",
                        help="train on a uniform sample of at most N rows; every row is "
                             "still scored (default: all rows)")
    parser.add_argument("--precision", choices=("auto", "float32", "bfloat16"),
                        help="products of the training updates (default: float32; auto: "
                             "bfloat16 above 256 features where the CPU has AMX)")
    # Speed knobs for tests and quick trials; kept out of --help.
    parser.add_argument("--patience", type=_positive_int, help=argparse.SUPPRESS)
    parser.add_argument("--check-every", type=_positive_int, help=argparse.SUPPRESS)
    parser.add_argument("--engine", choices=("auto", "kernel", "inductor", "eager", "none"),
                        help=argparse.SUPPRESS)


# The options of 'odim score' besides INPUT and the fit options: flags,
# argparse keywords, help.
_SCORE_OPTIONS = (
    ("-o --output", dict(metavar="OUTPUT"),
     "write 'score,label' per row: .csv (with header) or .npy (shape (n, 2)); without it "
     "a summary is printed"),
    ("--label-column", dict(metavar="NAME_OR_INDEX"),
     "column with ground truth (1 = outlier): kept out of the features and used to print "
     "ROC-AUC and average precision"),
    ("--contamination", dict(type=float, metavar="C"),
     "expected share of outliers, sets the label threshold (default: 0.1)"),
    ("--threshold", dict(metavar="NAME"),
     "label outliers with a PyThresh thresholder instead of --contamination: iqr, mad, "
     "zscore, clust, ... (needs pythresh)"),
    ("--explain", dict(type=_positive_int, metavar="K"),
     "add each row's K features with the largest contributions to its score to the .csv "
     "output (name, value and contribution of each); without -o, show them for the "
     "highest scores"),
    ("--device", {}, "torch device, e.g. cpu or cuda (default: cuda when available)"),
    ("--save-model", dict(metavar="PATH"),
     "save the fitted model as a pyod-odim model file (arrays and JSON, no pickle; load it "
     "with --model or pyod_odim.load)"),
    ("--model", dict(metavar="PATH"),
     "score INPUT with a model saved by --save-model instead of fitting; loading a model "
     "file runs no code from it"),
    ("--trust-pickle", dict(action="store_true"),
     "with --model: also accept a pickled (joblib) ODIM, as earlier versions saved; "
     "unpickling runs code from the file, so use it only for files you trust"),
    ("--plot", dict(metavar="PATH"),
     "save checkpoint-selection and score plots, and the feature contributions of the "
     "highest-scored rows (needs matplotlib)"),
)


def build_parser():
    """The argument parser of the ``odim`` command."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="ODIM unsupervised outlier detection (pyod-odim).",
        epilog="Run 'odim COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser(
        "demo",
        help="compare ODIM with IForest, KNN, LOF and ECOD on the bundled cardio data",
        description="Fit ODIM (default settings) and PyOD's IForest, KNN, LOF and ECOD "
                    "(their defaults) on the bundled Cardiotocography set (ADBench/ODDS, "
                    "1831 rows, 9.6% outliers) under two protocols: the paper's (fit on "
                    "all rows, ROC-AUC and average precision of their scores) and PyOD's "
                    "benchmark script's (a 60/40 split, standardizer fitted on the "
                    "training part, contamination = the outlier fraction; ROC-AUC and "
                    "precision at n of the held-out rows). The labels are used only to "
                    "evaluate.",
    )
    demo.add_argument("--plot", metavar="PATH",
                      help="save ODIM's checkpoint-selection and score plots and the "
                           "feature contributions of its highest-scored rows "
                           "(.png, .pdf, .svg; needs matplotlib)")
    _add_fit_options(demo, f"random seed of the detectors and of the split (default: "
                           f"{DEFAULT_SEED})")
    demo.set_defaults(handler=run_demo)

    score = commands.add_parser(
        "score",
        help="score the rows of a file",
        description="Fit ODIM on INPUT (or load a saved model with --model) and score "
                    "every row. INPUT is .csv/.tsv (header detected: a first row with "
                    "text is a header), .npy, .npz (arrays X and optional y, or a "
                    "sparse CSR/CSC matrix written by scipy.sparse.save_npz, read "
                    "without pickle and made dense a chunk of rows at a time) or "
                    ".parquet (needs pyarrow). All feature columns must be numeric and "
                    "complete.",
    )
    score.add_argument("input", metavar="INPUT", help="the data file")
    for flag, options, text in _SCORE_OPTIONS:
        score.add_argument(*flag.split(), **options, help=text)
    _add_fit_options(score, f"random seed (default: {DEFAULT_SEED})")
    score.set_defaults(handler=run_score)
    return parser


# ----------------------------------------------------------------------
# Shared helpers
def _verbosity(args):
    # progress.py shows its bar only on a terminal, so 1 is safe elsewhere.
    level = args.verbose or (1 if _stderr_is_terminal() else 0)
    return min(level, 2)


def _stderr_is_terminal():
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _odim_params(args):
    params = {"verbose": _verbosity(args)}
    for option, param in _FIT_OPTIONS.items():
        value = getattr(args, option, None)
        if value is not None:
            params[param] = value
    params.setdefault("random_state", DEFAULT_SEED)
    # Also valid with --model: where and on how many threads to score.
    for option in ("device", "n_jobs"):
        if getattr(args, option, None) is not None:
            params[option] = getattr(args, option)
    return params


def _fit_odim(X, args, **overrides):
    from .detector import ODIM

    model = ODIM(**dict(_odim_params(args), **overrides))
    start = time.perf_counter()
    model.fit(X)
    return model, time.perf_counter() - start


def _metrics(y, scores):
    """(ROC-AUC, average precision), or None when y has a single class."""
    import numpy as np
    from sklearn.metrics import average_precision_score, roc_auc_score

    if np.unique(y).size < 2:
        return None
    return roc_auc_score(y, scores), average_precision_score(y, scores)


def _check_plot_path(path):
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise InputError("--plot needs matplotlib: pip install pyod-odim[plot]") from None
    kinds = tuple("." + kind for kind in FigureCanvasBase.get_supported_filetypes())
    check_output_path(path, kinds, what="plot")


def _save_plot(path, model, X, y=None, scores=None, feature_names=None):
    import matplotlib

    matplotlib.use("Agg")  # never open windows from the command line
    import matplotlib.pyplot as plt

    from .explain import plot_top_contributions
    from .plotting import plot_score_histogram, plot_selection

    # One file: selection and scores above, the top rows' contributions below.
    fig = plt.figure(figsize=(11, 8.6), layout="constrained")
    grid = fig.add_gridspec(2, 2, height_ratios=(1.0, 0.95))
    plot_selection(model, ax=fig.add_subplot(grid[0, 0]))
    plot_score_histogram(model, y=y, scores=scores, ax=fig.add_subplot(grid[0, 1]))
    plot_top_contributions(model, X, scores=model.decision_scores_ if scores is None else scores,
                           feature_names=feature_names, ax=fig.add_subplot(grid[1, :]))
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=suffix_of(path)[1:], dpi=100)
    finally:
        plt.close(fig)


def _count(n, noun):
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _fit_summary(model):
    low, high = int(model.best_update_.min()), int(model.best_update_.max())
    kept = f"update {low}" if low == high else f"updates {low}-{high}"
    return (f"device {model.device_}, GMM backend {model.gmm_backend_}, IWAE {model.engine_} "
            f"({model.precision_}); "
            f"{_count(model.best_update_.size, 'member')}, {_count(model.n_updates_, 'update')}, "
            f"kept checkpoints at {kept}")


# ----------------------------------------------------------------------
# odim demo
def run_demo(args):
    """Compare ODIM with PyOD's first-choice detectors on cardio, both protocols."""
    if args.plot:
        _check_plot_path(args.plot)
    from pyod.utils.utility import precision_n_scores, standardizer
    from sklearn.model_selection import train_test_split

    from .datasets import load_demo

    X, y = load_demo()
    seed = DEFAULT_SEED if args.seed is None else args.seed
    # PyOD's benchmark script: one RandomState drives the split and the detectors.
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.4, random_state=np.random.RandomState(seed))
    X_train_norm, X_test_norm = standardizer(X_train, X_test)
    X_norm = standardizer(X)
    outlier_fraction = float(np.mean(y))  # the script's contamination: the whole set's share

    rows = []
    odim, odim_seconds = _fit_odim(X_norm, args)
    held_out, _ = _fit_odim(X_train_norm, args, contamination=outlier_fraction)
    rows.append(("ODIM", odim.decision_scores_, odim_seconds,
                 held_out.decision_function(X_test_norm)))
    for name, make in _demo_peers(seed):
        start = time.perf_counter()
        peer = make(0.1).fit(X_norm)
        seconds = time.perf_counter() - start
        test_scores = make(outlier_fraction).fit(X_train_norm).decision_function(X_test_norm)
        rows.append((name, peer.decision_scores_, seconds, test_scores))

    print(f"odim demo: cardio (UCI Cardiotocography via ODDS/ADBench), {X.shape[0]} rows x "
          f"{X.shape[1]} features, {int(y.sum())} outliers ({y.mean():.1%}); seed {seed}")
    print("labels are used only to evaluate the scores; features standardized (PyOD's "
          "standardizer)")
    print("training rows: the paper's protocol (fit on all rows, score them); held-out rows: "
          "PyOD's\nbenchmark script (fit on 60 %, score the other 40 %, contamination = "
          f"{outlier_fraction:.3f})\n")
    print(f"{'':<10}{'training rows':>25}{'held-out rows':>27}")
    print(f"{'detector':<10}{'ROC-AUC':>9}{'avg. precision':>16}{'ROC-AUC':>12}"
          f"{'precision@n':>15}{'fit time':>11}")
    for name, scores, seconds, test_scores in rows:
        auc, ap = _metrics(y, scores)
        test_auc, _ = _metrics(y_test, test_scores)
        at_n = precision_n_scores(y_test, test_scores)
        print(f"{name:<10}{auc:>9.3f}{ap:>16.3f}{test_auc:>12.3f}{at_n:>15.3f}"
              f"{seconds:>9.1f} s")
    print("\nfit time: the fit on all rows, one thread for ODIM")
    print(f"ODIM: {_fit_summary(odim)}")
    if args.plot:
        _save_plot(args.plot, odim, X_norm, y=y)
        print(f"plot saved to {args.plot}")
    return 0


def _demo_peers(seed):
    """(name, make(contamination)) of the PyOD detectors a user tries first, at their defaults."""
    from pyod.models.ecod import ECOD
    from pyod.models.iforest import IForest
    from pyod.models.knn import KNN
    from pyod.models.lof import LOF

    return [
        ("IForest", lambda c: IForest(contamination=c, random_state=seed)),
        ("KNN", lambda c: KNN(contamination=c)),
        ("LOF", lambda c: LOF(contamination=c)),
        ("ECOD", lambda c: ECOD(contamination=c)),
    ]


# ----------------------------------------------------------------------
# odim score
def _check_score_args(args):
    if args.model is None and args.trust_pickle:
        raise InputError("--trust-pickle applies only with --model")
    if args.threshold is not None and args.contamination is not None:
        raise InputError("--threshold and --contamination both set how rows are labelled; "
                         "give one of them")
    if args.explain is not None and args.output and suffix_of(args.output) == ".npy":
        raise InputError(f"{args.output}: --explain writes feature names, which a .npy "
                         "file cannot hold; write -o OUTPUT.csv")
    if args.model is None:
        return
    given = ["--" + option.replace("_", "-") for option in _FIT_OPTIONS
             if getattr(args, option) is not None]
    if args.threshold is not None:
        given.append("--threshold")
    if args.save_model is not None:
        given.append("--save-model")
    if given:
        raise InputError(
            f"not allowed with --model, which scores with the saved model as it is: "
            f"{', '.join(given)}"
        )


def _load_model(path, trust_pickle=False):
    from . import load
    from .detector import ODIM

    if not os.path.isfile(path):
        raise InputError(f"{path}: no such model file")
    try:
        return load(path)
    except ValueError as exc:
        if not trust_pickle:
            hint = ("; a pickled model from an earlier version loads with --trust-pickle "
                    "(only for files you trust)" if _looks_pickled(path) else "")
            raise InputError(f"cannot load a model: {exc}{hint}") from None
    import joblib

    try:
        model = joblib.load(path)
    except Exception as exc:  # unpickling can fail in many ways
        raise InputError(f"{path}: cannot load a model ({type(exc).__name__}: {exc})") from None
    if not isinstance(model, ODIM) or not hasattr(model, "n_features_in_"):
        raise InputError(f"{path}: does not hold a fitted ODIM model "
                         f"(found {type(model).__name__})")
    return model


def _looks_pickled(path):
    # Pickle protocol 2+ starts with 0x80; joblib may compress (zlib 0x78, gzip 0x1f8b).
    with open(path, "rb") as f:
        head = f.read(2)
    return head[:1] in (b"\x80", b"\x78") or head == b"\x1f\x8b"


def _thresholder(name):
    from .thresholds import thresholder_by_name

    try:
        return thresholder_by_name(name)
    except ValueError as exc:  # an unknown name: say which option it came from
        raise InputError(f"--threshold {name}: {exc}") from None


def _predict_labels(model, scores):
    """The labels ``model.predict(X)`` gives, from the scores of X (no second pass)."""
    if isinstance(model.contamination, (float, int)):
        return (scores > model.threshold_).astype(int)
    return np.asarray(model.contamination.predict(scores)).astype(int)


def _labelling(model):
    """How the labels were set, for the summary line."""
    from .thresholds import fitted_score_threshold

    cut = f"threshold {fitted_score_threshold(model):.6g}"
    contamination = model.contamination
    if isinstance(contamination, (float, int)):
        return f"contamination {contamination:g}, {cut}"
    share = float(np.mean(model.labels_)) if hasattr(model, "labels_") else float("nan")
    return (f"thresholder {type(contamination).__name__}, {share:.3g} of the training "
            f"rows labelled 1, {cut} in score units")


def _explanation(model, X, names, k, chunk_bytes=64 << 20):
    """Per row: its k features with the largest contributions, their values, contributions."""
    from .explain import top_features

    from .sparse import dense

    top = np.empty((X.shape[0], k), dtype=np.intp)
    shares = np.empty((X.shape[0], k))
    values = np.empty((X.shape[0], k))
    # Only the top k of each row are kept, so all n x d contributions never coexist
    # (nor a dense copy of a sparse X).
    chunk = max(1, chunk_bytes // (8 * X.shape[1]))
    for start in range(0, X.shape[0], chunk):
        rows = slice(start, start + chunk)
        part = model.feature_contributions(X[rows])
        index = top_features(part, k)
        top[rows] = index
        shares[rows] = np.take_along_axis(part, index, axis=1)
        values[rows] = np.take_along_axis(dense(X[rows]), index, axis=1)
    return np.asarray(names, dtype=object)[top], values, shares


def _feature_names(table, model):
    # The file's header first, then a loaded model's DataFrame names, then #N.
    if table.columns is None and getattr(model, "feature_names_in_", None) is not None:
        return [str(n) for n in model.feature_names_in_]
    return table.feature_names()


def run_score(args):
    """Score INPUT's rows with a new fit or a loaded model."""
    _check_score_args(args)
    # Before reading the data: an unknown name or a missing pythresh fails fast.
    thresholder = _thresholder(args.threshold) if args.threshold is not None else None
    # Check every output before the (possibly long) fit.
    if args.output:
        check_output_path(args.output)
    if args.save_model:
        check_output_path(args.save_model, suffixes=None, what="model")
    if args.plot:
        _check_plot_path(args.plot)

    table = read_table(args.input, args.label_column)
    X = table.X
    if args.model:
        model = _load_model(args.model, args.trust_pickle)
        if X.shape[1] != model.n_features_in_:
            raise InputError(
                f"{args.input}: has {X.shape[1]} feature columns, but the model in "
                f"{args.model} was fitted on {model.n_features_in_}"
            )
        if args.device is not None:
            model.device = args.device
        if args.n_jobs is not None:
            model.n_jobs = args.n_jobs
        start = time.perf_counter()
        scores = model.decision_function(X)
        seconds = time.perf_counter() - start
        labels = _predict_labels(model, scores)
        how = f"scored with {args.model} in {seconds:.1f} s"
    else:
        overrides = {} if thresholder is None else {"contamination": thresholder}
        model, seconds = _fit_odim(X, args, **overrides)
        scores, labels = model.decision_scores_, model.labels_
        how = f"fitted in {seconds:.1f} s: {_fit_summary(model)}"

    names = _feature_names(table, model)
    explanation = None
    if args.explain is not None:
        k = min(args.explain, X.shape[1])
        if k < args.explain:
            warnings.warn(f"--explain {args.explain}: {args.input} has "
                          f"{_count(X.shape[1], 'feature')}; explaining with {k}")
        explanation = _explanation(model, X, names, k)
    if args.output:
        write_scores(args.output, scores, labels, explanation)
    if args.save_model:
        model.save(args.save_model)
    if args.plot:
        _save_plot(args.plot, model, X, y=table.y, feature_names=names,
                   scores=None if args.model is None else scores)

    _print_score_summary(args, table, model, scores, labels, how, explanation)
    return 0


def _print_score_summary(args, table, model, scores, labels, how, explanation=None):
    excluded = f" (label column {table.label_name} excluded)" if args.label_column else ""
    print(f"{args.input}: {table.X.shape[0]} rows x {table.X.shape[1]} features{excluded}")
    print(f"ODIM {how}")
    print(f"{_count(int(labels.sum()), 'row')} flagged as outliers ({_labelling(model)})")
    if table.y is not None:
        metrics = _metrics(table.y, scores)
        if metrics is None:
            print(f"ROC-AUC and average precision undefined: {table.label_name} "
                  "holds a single class")
        else:
            print(f"ROC-AUC {metrics[0]:.4f}, average precision {metrics[1]:.4f} "
                  f"against {table.label_name}")
    if args.output:
        extra = "" if explanation is None else \
            f" with each row's top {np.shape(explanation[0])[1]} features"
        print(f"scores written to {args.output}{extra}")
    else:
        top = np.argsort(-scores, kind="stable")[:5]
        print("highest scores (row numbers count data rows from 0):")
        for i in top:
            line = f"  row {i:>6}  score {scores[i]:.6g}"
            if explanation is not None:
                names, values, contributions = (part[i] for part in explanation)
                line += "  top features: " + ", ".join(
                    f"{n}={v:.6g} ({c:+.3g})" for n, v, c in zip(names, values, contributions))
            print(line)
        print("use -o OUTPUT.csv or OUTPUT.npy to write every row's score and label")
    if args.save_model:
        print(f"model saved to {args.save_model}")
    if args.plot:
        print(f"plot saved to {args.plot}")


# ----------------------------------------------------------------------
def _error(message):
    # One line, whatever the exception text holds.
    print(f"{PROG}: error: {' '.join(str(message).split())}", file=sys.stderr)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"{PROG}: warning: {' '.join(str(message).split())}", file=sys.stderr)


def _describe_os_error(exc):
    where = exc.filename if exc.filename is not None else ""
    reason = exc.strerror or str(exc)
    return f"{where}: {reason}" if where else reason


def main(argv=None):
    """Run the ``odim`` command.

    Parameters
    ----------
    argv : list of str or None, optional (default=None)
        The arguments after the program name; ``None`` reads ``sys.argv``.

    Returns
    -------
    status : int
        0 on success, 1 on an error (reported on one line of stderr),
        2 on a command-line usage error.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else 1
    from sklearn.exceptions import NotFittedError

    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            return args.handler(args)
        except (InputError, ValueError, TypeError, ImportError, NotFittedError) as exc:
            _error(str(exc) or type(exc).__name__)
        except OSError as exc:
            _error(_describe_os_error(exc))
        except KeyboardInterrupt:
            _error("interrupted")
            return 130
    return 1
