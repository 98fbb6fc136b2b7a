"""``contamination`` as a number or as a PyThresh thresholder object.

PyOD's ``BaseDetector`` takes either a float, the share of outliers, or a
thresholder object such as those of PyThresh (``pip install pythresh``),
PyOD's thresholding companion. With a float, ``threshold_`` is the
``1 - contamination`` quantile of ``decision_scores_``. With an object,
PyOD calls ``contamination.fit(decision_scores_)`` and takes the
object's ``labels_`` as ``labels_`` and its ``thresh_`` as ``threshold_``;
``predict`` and ``predict_confidence`` label new scores with
``contamination.predict(scores)``, and ``predict_confidence`` uses the
share of training rows labelled 1 as the contamination. Any object with ``fit`` and ``predict`` that behave that
way works; PyThresh's thresholders also have ``eval(scores)``, which
labels scores without fitting.

>>> from pythresh.thresholds.iqr import IQR               # doctest: +SKIP
>>> clf = ODIM(contamination=IQR()).fit(X)               # doctest: +SKIP
>>> clf = ODIM(contamination=thresholder_by_name("mad"))  # doctest: +SKIP

Two things differ from a float. PyThresh's ``thresh_`` is a cut on the
training scores after its own min-max normalization, not on the raw
scores, so ``threshold_`` is not on the scale of ``decision_scores_``.
And a thresholder that sets no ``thresh_`` (PyThresh's CLF, CLUST, COMB
and OCSVM, for example) labels the scores passed to ``predict`` among
themselves, so labels of new rows depend on the rows scored with them
(PyOD then sets ``threshold_`` to the share of training rows labelled 1;
some of them cannot label a single row).

So ``ODIM.fit`` also derives a cut in score units from the training
labels (:func:`score_cut`), ``score_threshold_``: scores above it are the
rows the thresholder labelled 1. ``threshold_`` stays as PyOD sets it, and
an in-memory detector's ``predict`` keeps PyOD's behaviour (the
thresholder's ``predict`` on the new scores). Everything that labels rows
one at a time uses the score cut instead: :func:`pyod_odim.dask.score`,
the plots of :mod:`pyod_odim.plotting`, and a model file, whose loaded
detector labels by the cut, a number, and so labels every row on its own
(:mod:`pyod_odim.model_file`). For row-local labels in memory, compare
``clf.decision_function(X) > clf.score_threshold_``.
"""

import importlib
import numbers
import pkgutil
import warnings

import numpy as np

__all__ = ["check_contamination", "fitted_score_threshold", "is_thresholder", "score_cut",
           "thresholder_by_name", "thresholder_names"]

# Modules of pythresh.thresholds that hold no thresholder.
_NOT_THRESHOLDERS = frozenset({"base", "thresh_utility"})

_INSTALL_HINT = 'pip install pythresh (or pip install "pyod-odim[thresh]")'

# Import names of PyThresh's optional dependencies that differ on PyPI.
_PIP_NAMES = {"sklego": "scikit-lego"}


def is_thresholder(value):
    """Whether ``value`` follows PyOD's thresholder protocol.

    Parameters
    ----------
    value : object

    Returns
    -------
    bool
        True for an instance (not a class) with callable ``fit`` and
        ``predict``, the two methods PyOD's ``BaseDetector`` calls.
    """
    if isinstance(value, type):
        return False
    return callable(getattr(value, "fit", None)) and callable(getattr(value, "predict", None))


def check_contamination(contamination):
    """Validate ``contamination`` as PyOD's ``BaseDetector`` will use it.

    Parameters
    ----------
    contamination : float or thresholder object
        A Python float in (0, 0.5], or an instance with PyOD's thresholder
        protocol (:func:`is_thresholder`), such as a PyThresh thresholder.

    Returns
    -------
    contamination : float or thresholder object
        The float as a float, or the object itself.

    Raises
    ------
    TypeError
        Neither a Python number nor a thresholder instance: a string (with
        a pointer to :func:`thresholder_by_name`), a thresholder class
        instead of an instance, a bool, or a NumPy scalar (PyOD would take
        a ``numpy.float32`` for a thresholder object).
    ValueError
        A number outside (0, 0.5], or not finite.
    """
    if isinstance(contamination, str):
        raise TypeError(
            f"contamination must be a float or a thresholder object, got the string "
            f"{contamination!r}; for a PyThresh thresholder by name use "
            f"pyod_odim.thresholds.thresholder_by_name({contamination!r})"
        )
    if isinstance(contamination, type):
        raise TypeError(
            f"contamination must be a thresholder instance, not the class "
            f"{contamination.__name__}; pass {contamination.__name__}()"
        )
    if isinstance(contamination, (bool, np.bool_)):
        raise TypeError(f"contamination must be a float, got {contamination!r}")
    if isinstance(contamination, numbers.Real):
        # PyOD tests isinstance(c, (float, int)) and treats anything else as
        # a thresholder object, so a NumPy scalar would fail deep inside fit.
        if not isinstance(contamination, (float, int)):
            raise TypeError(
                f"contamination must be a Python float, got {type(contamination).__name__} "
                f"{contamination!r}; pass float(contamination)"
            )
        value = float(contamination)
        if not np.isfinite(value) or not 0.0 < value <= 0.5:
            raise ValueError(f"contamination must be in (0, 0.5], got {contamination!r}")
        return value
    if is_thresholder(contamination):
        return contamination
    raise TypeError(
        f"contamination must be a float in (0, 0.5] or a thresholder object with "
        f"fit(scores) and predict(scores) methods (e.g. PyThresh's IQR()), got "
        f"{type(contamination).__name__}"
    )


def _thresholds_package():
    try:
        return importlib.import_module("pythresh.thresholds")
    except ImportError:
        raise ImportError(f"PyThresh thresholders need the pythresh package: {_INSTALL_HINT}") from None


def thresholder_names():
    """Names of the installed PyThresh thresholders, lower case.

    Read from the module names of ``pythresh.thresholds`` without importing
    them (some import optional dependencies of their own).

    Returns
    -------
    names : list of str
        Sorted, e.g. ``["aucp", "boot", ..., "iqr", ..., "zscore"]``.

    Raises
    ------
    ImportError
        If pythresh is not installed.
    """
    package = _thresholds_package()
    return sorted(
        info.name for info in pkgutil.iter_modules(package.__path__)
        if info.name not in _NOT_THRESHOLDERS and not info.name.startswith("_")
    )


def thresholder_by_name(name, **params):
    """A PyThresh thresholder from its name, as a command line would give it.

    Parameters
    ----------
    name : str
        The thresholder's module or class name in PyThresh, in any case:
        ``"iqr"`` or ``"IQR"`` for ``pythresh.thresholds.iqr.IQR``, and
        likewise ``"mad"``, ``"dsn"``, ``"clf"``, ``"clust"``, ...
        (:func:`thresholder_names` lists them).
    **params
        Passed to the thresholder's constructor, e.g. ``method="kmeans"``
        for ``"clust"``.

    Returns
    -------
    thresholder : pythresh.thresholds.base.BaseThresholder
        A new, unfitted instance, ready to pass as ``contamination``.

    Raises
    ------
    ImportError
        If pythresh is not installed, or the thresholder needs an optional
        package that is not (PyThresh's CLUST needs pyclustering); the
        message says what to install.
    ValueError
        If no thresholder has that name; the message lists the known names.
    TypeError
        If ``name`` is not a string.
    """
    if not isinstance(name, str):
        raise TypeError(f"thresholder name must be a string, got {type(name).__name__}")
    names = thresholder_names()
    key = name.strip().lower()
    if key not in names:
        raise ValueError(
            f"unknown PyThresh thresholder {name!r}; known names: {', '.join(names)}"
        )
    try:
        module = importlib.import_module(f"pythresh.thresholds.{key}")
    except ImportError as exc:
        missing = (getattr(exc, "name", None) or "").split(".")[0]
        if not missing:
            raise
        raise ImportError(
            f"PyThresh's {key.upper()} thresholder needs {missing!r}, which is not "
            f"installed: pip install {_PIP_NAMES.get(missing, missing)}"
        ) from exc
    cls = getattr(module, key.upper(), None)
    if cls is None:  # a module that breaks PyThresh's naming convention
        raise ValueError(
            f"pythresh.thresholds.{key} has no class {key.upper()}; known names: "
            f"{', '.join(names)}"
        )
    return cls(**params)


def score_cut(scores, labels):
    """A cut on the score scale that labels ``scores`` as ``labels`` do.

    The rule: with ``lo`` the highest score labelled 0 and ``hi`` the
    lowest score labelled 1, the cut is their midpoint, so that
    ``scores > cut`` equals ``labels`` on every training row (when the
    midpoint rounds to ``hi``, as for two adjacent floats, or overflows,
    the cut is ``lo``). With every row labelled 0 the cut is the highest
    score; with every row labelled 1, the float just below the lowest.

    Labels that no single cut reproduces (a score labelled 0 above one
    labelled 1, or equal scores with different labels) get the cut that
    labels the fewest training rows differently, the lowest such cut when
    several do; the count is returned so that the caller can warn.

    Parameters
    ----------
    scores : array-like of shape (n_samples,)
        Training scores (higher is more abnormal); not NaN.
    labels : array-like of shape (n_samples,)
        Their 0/1 labels (1 = outlier).

    Returns
    -------
    cut : float
        Scores strictly above it are labelled 1.
    n_differ : int
        Training rows whose label ``scores > cut`` does not reproduce; 0
        for labels that a cut can reproduce, as a thresholder that cuts
        the (normalized) scores gives.

    Raises
    ------
    ValueError
        Empty or NaN scores, labels of another length, or labels other
        than 0 and 1.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel()
    if scores.size == 0 or labels.shape != scores.shape:
        raise ValueError(f"need one label per score, got {labels.size} labels for "
                         f"{scores.size} scores")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN values")
    outlier = labels == 1
    if not (outlier | (labels == 0)).all():
        raise ValueError("labels must be 0 or 1")
    if not outlier.any():
        return float(scores.max()), 0
    if outlier.all():
        return float(np.nextafter(scores.min(), -np.inf)), 0
    lo, hi = scores[~outlier].max(), scores[outlier].min()
    if lo < hi:
        return _between(lo, hi), 0
    # No cut reproduces the labels: the one with the fewest disagreements.
    order = np.argsort(scores, kind="stable")
    s, y = scores[order], outlier[order]
    # Cutting below sorted position i labels rows i.. as 1: the 1s before i
    # and the 0s from i on disagree. Only positions between distinct values
    # (and the two ends) are cuts.
    ones_before = np.concatenate([[0], np.cumsum(y)])
    zeros_after = np.concatenate([np.cumsum(~y[::-1])[::-1], [0]])
    wrong = ones_before + zeros_after
    allowed = np.ones(s.size + 1, dtype=bool)
    allowed[1:-1] = s[1:] > s[:-1]
    i = int(np.flatnonzero(allowed)[np.argmin(wrong[allowed])])
    if i == 0:
        cut = float(np.nextafter(s[0], -np.inf))
    elif i == s.size:
        cut = float(s[-1])
    else:
        cut = _between(s[i - 1], s[i])
    return cut, int(wrong[i])


def _between(lo, hi):
    """A float in [lo, hi), their midpoint where it is representable."""
    mid = lo / 2 + hi / 2  # halves first: no overflow at +-1e308
    return float(mid if lo <= mid < hi else lo)


def score_threshold(contamination, threshold, scores, labels):
    """The cut in score units of a fit: training rows scoring above it are labelled 1.

    Parameters
    ----------
    contamination : float or thresholder
    threshold : float
        PyOD's ``threshold_``: in score units for a numeric
        ``contamination``, on the thresholder's own scale otherwise.
    scores : ndarray of shape (n,)
        The training scores.
    labels : ndarray of shape (n,)
        Their labels.

    Returns
    -------
    cut : float
        ``threshold`` for a numeric ``contamination``; for a thresholder the
        cut :func:`score_cut` derives from its labels, with a warning when
        no cut gives them all.
    """
    if isinstance(contamination, numbers.Real):
        return float(threshold)
    cut, n_differ = score_cut(scores, labels)
    if n_differ:
        warnings.warn(
            f"{type(contamination).__name__}'s labels are not a cut on the scores: "
            f"score_threshold_={cut:.6g} labels {n_differ} of {len(labels)} training rows "
            "differently", UserWarning, stacklevel=3)
    return cut


def fitted_score_threshold(estimator):
    """The cut in score units of a fitted detector: scores above it are outliers.

    Parameters
    ----------
    estimator : pyod_odim.ODIM
        Fitted.

    Returns
    -------
    cut : float
        ``score_threshold_``; for a detector pickled before that attribute
        existed, ``threshold_`` when ``contamination`` is a number, else the
        cut :func:`score_cut` derives from ``decision_scores_`` and
        ``labels_``.
    """
    cut = getattr(estimator, "score_threshold_", None)
    if cut is not None:
        return float(cut)
    if isinstance(estimator.contamination, (float, int)):
        return float(estimator.threshold_)
    return score_cut(estimator.decision_scores_, estimator.labels_)[0]


def _info_value(value):
    """A value as JSON for information: numbers and strings as they are, else its repr."""
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if np.isfinite(value) else repr(value)
    if isinstance(value, (tuple, list)) and len(value) <= 64:
        return [_info_value(v) for v in value]
    return repr(value)[:200]


def thresholder_info(thresholder, pyod_threshold):
    """What a thresholder was, as JSON: recorded in a model file for information, never rebuilt."""
    get_params = getattr(thresholder, "get_params", None)
    try:
        params = get_params(deep=False) if callable(get_params) else {}
    except Exception:  # a protocol object without sklearn's get_params
        params = {}
    if not isinstance(params, dict):
        params = {}
    return {
        "class": type(thresholder).__name__,
        "module": type(thresholder).__module__,
        "params": {str(k): _info_value(v) for k, v in params.items()},
        # PyOD's threshold_: on the thresholder's own scale, or the share it labelled.
        "pyod_threshold": _info_value(pyod_threshold),
    }


def stored_labels_and_cut(fields, arrays):
    """The training scores, labels and cut a model file stores, checked.

    Parameters
    ----------
    fields : dict
        ``threshold``, ``contamination``, ``thresholder`` and
        ``score_moments`` as ``ODIM._get_fitted_state`` writes them.
    arrays : dict of str to ndarray
        ``decision_scores`` and ``labels``.

    Returns
    -------
    dict
        ``scores``, ``labels`` (int), ``threshold`` and ``contamination``
        (floats), ``score_moments`` (the mean and standard deviation of the
        scores, as PyOD's ``predict_proba`` uses them).

    Raises
    ------
    ValueError
        Missing or inconsistent values. A thresholder fit stores the share
        of rows it labelled, which may be any share in [0, 1]; a numeric
        ``contamination`` must be in (0, 0.5].
    """
    if "decision_scores" not in arrays or "labels" not in arrays:
        raise ValueError("array 'decision_scores' or 'labels' is missing")
    scores, labels = arrays["decision_scores"], arrays["labels"]
    if scores.ndim != 1 or labels.shape != scores.shape or scores.size == 0:
        raise ValueError("training scores and labels do not match")
    threshold, contamination = fields.get("threshold"), fields.get("contamination")
    for name, value in (("threshold", threshold), ("contamination", contamination)):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ValueError(f"{name!r} is missing or malformed")
    thresholder = fields.get("thresholder")
    if thresholder is not None and not isinstance(thresholder, dict):
        raise ValueError("malformed thresholder entry")
    if thresholder is None:
        share_ok = 0.0 < contamination <= 0.5
    else:
        share_ok = 0.0 <= contamination <= 1.0
    if not np.isfinite(threshold) or not share_ok:
        raise ValueError(f"threshold {threshold!r} or contamination {contamination!r} invalid")
    moments = fields.get("score_moments")  # stored from format 2 on
    if (isinstance(moments, list) and len(moments) == 2
            and all(isinstance(v, float) and np.isfinite(v) for v in moments)):
        moments = (np.float64(moments[0]), np.float64(moments[1]))
    else:
        moments = (np.mean(scores), np.std(scores))
    return {"scores": scores, "labels": labels.astype(int, copy=False),
            "threshold": float(threshold), "contamination": float(contamination),
            "score_moments": moments}


def linear_outlier_probability(train_scores, scores, n_classes=2):
    """PyOD's ``predict_proba(method="linear")`` that gives a ``+inf`` score probability 1.

    Finite scores are min-max scaled by the training scores and clipped to
    [0, 1], as PyOD does; ``+inf`` (a row a damaged model cannot score) is
    an outlier with probability 1.

    Parameters
    ----------
    train_scores : ndarray of shape (n_train,)
        ``decision_scores_``.
    scores : ndarray of shape (n_samples,)
        The rows' scores; finite or ``+inf``.
    n_classes : int, optional (default=2)

    Returns
    -------
    probs : ndarray of shape (n_samples, n_classes)
        ``[probability of normal, probability of outlier]`` per row.
    """
    from sklearn.preprocessing import MinMaxScaler

    finite = np.isfinite(scores)
    outlier = np.ones(scores.shape[0])
    if finite.any():
        scaler = MinMaxScaler().fit(np.reshape(train_scores, (-1, 1)))
        outlier[finite] = scaler.transform(scores[finite].reshape(-1, 1)).ravel().clip(0, 1)
    probs = np.zeros((scores.shape[0], n_classes))
    probs[:, 1] = outlier
    probs[:, 0] = 1 - outlier
    return probs
