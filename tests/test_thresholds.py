"""PyThresh thresholders as ``contamination``, and pyod_odim.thresholds."""

import numpy as np
import pytest
from sklearn.base import clone

from pyod_odim import ODIM
from pyod_odim.thresholds import (
    check_contamination,
    is_thresholder,
    score_cut,
    thresholder_by_name,
    thresholder_names,
)

SMALL = dict(n_estimators=2, patience=2, check_every=5, max_updates=60, min_updates=0,
             n_samples_iwae=8, random_state=0)


def _thresholder(name, **params):
    pytest.importorskip("pythresh", reason="pythresh is not installed")
    if name == "clust":
        pytest.importorskip("pyclustering", reason="PyThresh's CLUST needs pyclustering")
    return thresholder_by_name(name, **params)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5))
    X[:30] += rng.choice([-6.0, 6.0], size=(30, 5))   # 10 % far outliers
    y = np.zeros(300, dtype=int)
    y[:30] = 1
    X_new = np.vstack([rng.normal(size=(40, 5)), rng.normal(size=(10, 5)) + 6.0])
    y_new = np.r_[np.zeros(40, dtype=int), np.ones(10, dtype=int)]
    return X, y, X_new, y_new


# A clustering thresholder (k-means on the scores) beside the two
# statistical ones the issue names.
THRESHOLDERS = [("iqr", {}), ("mad", {}), ("clust", {"method": "kmeans"})]


@pytest.mark.parametrize("name, params", THRESHOLDERS, ids=[t[0] for t in THRESHOLDERS])
def test_thresholder_end_to_end(data, name, params):
    X, y, X_new, y_new = data
    thresholder = _thresholder(name, **params)
    clf = ODIM(contamination=thresholder, **SMALL).fit(X)

    # labels_ are the thresholder's labels of the training scores.
    assert clf.contamination is thresholder
    assert clf.labels_.shape == (300,) and set(np.unique(clf.labels_)) <= {0, 1}
    np.testing.assert_array_equal(clf.labels_, clone(thresholder).eval(clf.decision_scores_))
    assert np.isfinite(clf.threshold_)
    assert clf.labels_[y == 1].mean() > 0.9 > 0.1 > clf.labels_[y == 0].mean()

    labels = clf.predict(X_new)
    assert labels.shape == (50,) and set(np.unique(labels)) <= {0, 1}
    assert labels[y_new == 1].mean() > labels[y_new == 0].mean()
    if getattr(thresholder, "thresh_", None) is not None:
        # A fitted cut labels the training rows again as it did in fit.
        np.testing.assert_array_equal(clf.predict(X), clf.labels_)

    labels, confidence = clf.predict(X_new, return_confidence=True)
    assert confidence.shape == (50,) and np.all((confidence >= 0) & (confidence <= 1))

    for method in ("linear", "unify"):
        proba = clf.predict_proba(X_new, method=method)
        assert proba.shape == (50, 2)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)
        assert np.all((proba >= 0) & (proba <= 1))
        assert proba[y_new == 1, 1].mean() > proba[y_new == 0, 1].mean()

    confidence = clf.predict_confidence(X_new)
    assert confidence.shape == (50,) and np.all((confidence >= 0) & (confidence <= 1))


def test_thresholder_survives_clone_and_refit(data):
    X = data[0]
    clf = ODIM(contamination=_thresholder("iqr"), **SMALL)
    copy = clone(clf)
    assert type(copy.contamination).__name__ == "IQR"
    assert copy.contamination is not clf.contamination
    first = copy.fit(X).labels_.copy()
    np.testing.assert_array_equal(copy.fit(X).labels_, first)


def test_thresholder_through_adengine(data):
    pytest.importorskip("pyod.utils.ad_engine", reason="this PyOD has no ADEngine")
    from pyod.utils.ad_engine import ADEngine

    from pyod_odim.adengine import engine_knowledge

    X = data[0]
    iqr = _thresholder("iqr")
    engine = ADEngine(knowledge_dir=engine_knowledge(), random_state=0)
    plan = engine.make_plan(["ODIM"], params=[dict(SMALL, contamination=iqr)])
    result = engine.run_detection(X, plan, X_test=X[:20])
    clf = result["detector"]
    assert clf.contamination is iqr
    np.testing.assert_array_equal(result["labels_train"], clf.labels_)
    np.testing.assert_array_equal(result["labels_test"], clf.predict(X[:20]))


def test_names_round_trip():
    _thresholder("iqr")
    names = thresholder_names()
    assert {"iqr", "mad", "dsn", "clf", "clust"} <= set(names)
    assert "base" not in names and "thresh_utility" not in names
    for name in ("iqr", "mad", "dsn", "clf"):
        thresholder = thresholder_by_name(name)
        assert type(thresholder).__name__ == name.upper()
        assert is_thresholder(thresholder)
        assert check_contamination(thresholder) is thresholder
        # The class name as PyThresh spells it finds the same class.
        assert type(thresholder_by_name(name.upper())) is type(thresholder)
    assert thresholder_by_name("MAD", factor=2).factor == 2


def test_unknown_name_lists_the_known_ones():
    _thresholder("iqr")
    with pytest.raises(ValueError, match="unknown PyThresh thresholder 'nope'.*iqr.*mad"):
        thresholder_by_name("nope")
    with pytest.raises(TypeError, match="must be a string"):
        thresholder_by_name(3)


def test_missing_pythresh_says_what_to_install(monkeypatch):
    import sys

    for module in [m for m in sys.modules if m == "pythresh" or m.startswith("pythresh.")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "pythresh", None)  # import raises ImportError
    with pytest.raises(ImportError, match="pip install pythresh"):
        thresholder_by_name("iqr")
    with pytest.raises(ImportError, match="pip install pythresh"):
        thresholder_names()


def test_missing_optional_dependency_is_named(monkeypatch):
    import sys

    _thresholder("iqr")
    cached = [m for m in sys.modules if m == "pythresh.thresholds.clust"
              or m == "pyclustering" or m.startswith("pyclustering.")]
    for module in cached:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "pyclustering", None)
    with pytest.raises(ImportError, match="CLUST thresholder needs 'pyclustering'.*"
                                          "pip install pyclustering"):
        thresholder_by_name("clust")


class _Protocol:
    """The least PyOD needs: fit sets labels_ and thresh_; predict labels."""

    def fit(self, scores):
        self.thresh_ = float(np.quantile(scores, 0.9))
        self.labels_ = (scores > self.thresh_).astype(int)
        return self

    def predict(self, scores):
        return (np.asarray(scores) > self.thresh_).astype(int)

    def get_params(self, deep=True):
        return {}


def test_any_object_with_the_protocol_works(data):
    X = data[0]
    clf = ODIM(contamination=_Protocol(), **SMALL).fit(X)
    assert clf.threshold_ == clf.contamination.thresh_
    np.testing.assert_array_equal(clf.predict(X), clf.labels_)


@pytest.mark.parametrize("value", [0.1, 0.5, 1e-3, 0.25])
def test_numbers_pass(value):
    assert check_contamination(value) == value


@pytest.mark.parametrize("value, error, match", [
    ("iqr", TypeError, r"thresholder_by_name\('iqr'\)"),
    (None, TypeError, "float in \\(0, 0.5\\] or a thresholder object"),
    (object(), TypeError, "thresholder object"),
    ([0.1], TypeError, "thresholder object"),
    (True, TypeError, "must be a float"),
    (np.float32(0.1), TypeError, "Python float"),
    (_Protocol, TypeError, r"not the class _Protocol; pass _Protocol\(\)"),
    (0.0, ValueError, r"\(0, 0.5\]"),
    (0.6, ValueError, r"\(0, 0.5\]"),
    (-0.1, ValueError, r"\(0, 0.5\]"),
    (float("nan"), ValueError, r"\(0, 0.5\]"),
    (1, ValueError, r"\(0, 0.5\]"),
])
def test_bad_values_raise_clearly(value, error, match):
    with pytest.raises(error, match=match):
        check_contamination(value)


@pytest.mark.parametrize("value", ["iqr", object(), np.float32(0.1)])
def test_fit_rejects_what_pyod_cannot_use(data, value):
    # Values PyOD's constructor lets through fail at fit with the same message.
    clf = ODIM(**SMALL)
    clf.contamination = value
    with pytest.raises(TypeError, match="contamination"):
        clf.fit(data[0])


# ------------------------------------------------ the cut in score units
@pytest.fixture(scope="module", params=["iqr", "mad"])
def thresholder_fit(request, data):
    clf = ODIM(contamination=_thresholder(request.param), **SMALL).fit(data[0])
    return request.param, clf


def test_score_cut_reproduces_the_training_labels(thresholder_fit, data):
    name, clf = thresholder_fit
    X, _, X_new, _ = data
    cut = clf.score_threshold_
    labels = clf.labels_
    assert 0 < labels.sum() < labels.size  # both labels: the check below can fail
    np.testing.assert_array_equal((clf.decision_scores_ > cut).astype(int), labels)
    # The midpoint between the highest score labelled 0 and the lowest labelled 1.
    lo = clf.decision_scores_[labels == 0].max()
    hi = clf.decision_scores_[labels == 1].min()
    assert cut == pytest.approx((lo + hi) / 2, rel=1e-12)
    # PyOD's threshold_ is left as PyOD sets it: on the thresholder's scale.
    assert clf.threshold_ == clf.contamination.thresh_
    assert 0 <= clf.threshold_ <= 1 and not lo <= clf.threshold_ <= hi
    # In memory, predict stays PyOD's: the thresholder labels the new scores.
    np.testing.assert_array_equal(
        clf.predict(X_new), clf.contamination.predict(clf.decision_function(X_new))
    )


def test_numeric_contamination_cut_is_threshold(data):
    clf = ODIM(contamination=0.1, **SMALL).fit(data[0])
    assert clf.score_threshold_ == clf.threshold_


class _Scrambled(_Protocol):
    """Labels that no cut gives: the top 10 % of scores, but the top row is an inlier."""

    def fit(self, scores):
        super().fit(scores)
        self.labels_[np.argmax(scores)] = 0
        return self


def test_labels_no_cut_gives_warn(data):
    with pytest.warns(UserWarning, match="_Scrambled's labels are not a cut.*1 of 300"):
        clf = ODIM(contamination=_Scrambled(), **SMALL).fit(data[0])
    wrong = (clf.decision_scores_ > clf.score_threshold_) != clf.labels_
    assert wrong.sum() == 1 and np.argmax(clf.decision_scores_) == np.flatnonzero(wrong)[0]


@pytest.mark.parametrize("scores, labels, cut", [
    ([1.0, 2.0, 3.0, 4.0], [0, 0, 1, 1], 2.5),
    ([4.0, 1.0, 3.0, 2.0], [1, 0, 1, 0], 2.5),               # order does not matter
    ([1.0, 1.0, 5.0, 5.0], [0, 0, 1, 1], 3.0),               # ties with one label
    ([1.0, 2.0, 3.0], [0, 0, 0], 3.0),                       # no outlier: the highest score
    ([-1e308, 1e308], [0, 1], 0.0),                          # no overflow
    ([1.0, np.inf], [0, 1], 1.0),                            # an infinite outlier
    ([0.0, 5e-324], [0, 1], 0.0),                            # adjacent floats: the lower one
])
def test_score_cut_rule(scores, labels, cut):
    got, n_differ = score_cut(scores, labels)
    assert got == cut and n_differ == 0
    np.testing.assert_array_equal(np.asarray(scores) > got, np.asarray(labels) == 1)


def test_score_cut_all_outliers():
    got, n_differ = score_cut([2.0, 3.0], [1, 1])
    assert n_differ == 0 and got < 2.0 and np.nextafter(got, np.inf) == 2.0


def test_score_cut_fewest_disagreements_brute_force():
    rng = np.random.default_rng(3)
    for trial in range(200):
        scores = rng.integers(0, 8, size=12).astype(float)  # many ties
        labels = rng.integers(0, 2, size=12)
        cut, n_differ = score_cut(scores, labels)
        wrong = int(((scores > cut) != (labels == 1)).sum())
        assert wrong == n_differ
        candidates = np.r_[scores.min() - 1, np.unique(scores)]
        best = min(int(((scores > c) != (labels == 1)).sum()) for c in candidates)
        assert n_differ == best


@pytest.mark.parametrize("scores, labels, match", [
    ([], [], "one label per score"),
    ([1.0, 2.0], [0], "one label per score"),
    ([1.0, np.nan], [0, 1], "NaN"),
    ([1.0, 2.0], [0, 2], "0 or 1"),
])
def test_score_cut_bad_input(scores, labels, match):
    with pytest.raises(ValueError, match=match):
        score_cut(scores, labels)


def test_dask_labels_by_the_score_cut(thresholder_fit, data):
    da = pytest.importorskip("dask.array")
    from pyod_odim.dask import score

    _, clf = thresholder_fit
    X, _, X_new, _ = data
    rows = np.vstack([X, X_new])
    scores, labels = score(clf, da.from_array(rows, chunks=(37, 5)))
    scores, labels = (a.compute(scheduler="synchronous") for a in (scores, labels))
    expected = clf.decision_function(rows)
    np.testing.assert_array_equal(scores, expected)
    np.testing.assert_array_equal(labels, (expected > clf.score_threshold_).astype(int))
    np.testing.assert_array_equal(labels[:len(X)], clf.labels_)


def test_saved_thresholder_fit_labels_by_the_cut(thresholder_fit, data, tmp_path, monkeypatch):
    import json
    import sys
    import zipfile

    import pyod_odim

    name, clf = thresholder_fit
    X, _, X_new, _ = data
    path = tmp_path / "model.odim"
    clf.save(path)
    with zipfile.ZipFile(path) as archive:
        meta = json.loads(archive.read("meta.json"))
    info = meta["thresholder"]
    assert info["class"] == name.upper()
    assert info["module"] == f"pythresh.thresholds.{name}"
    assert info["params"] == {k: v for k, v in clf.contamination.get_params(deep=False).items()}
    assert info["pyod_threshold"] == clf.threshold_
    assert meta["threshold"] == clf.score_threshold_
    assert meta["contamination"] == clf.labels_.mean()

    # Loading imports nothing the file names: it works without pythresh.
    monkeypatch.setitem(sys.modules, "pythresh", None)
    loaded = pyod_odim.load(path)
    assert loaded.contamination == clf.labels_.mean()
    assert loaded.threshold_ == loaded.score_threshold_ == clf.score_threshold_
    rows = np.vstack([X, X_new])
    scores = clf.decision_function(rows)
    np.testing.assert_array_equal(loaded.decision_function(rows), scores)
    labels = loaded.predict(rows)
    np.testing.assert_array_equal(labels, (scores > clf.score_threshold_).astype(int))
    np.testing.assert_array_equal(labels[:len(X)], clf.labels_)
    # Row-local: one row at a time gives the batch's labels.
    np.testing.assert_array_equal([loaded.predict(r[None])[0] for r in X_new], labels[len(X):])
    np.testing.assert_array_equal(loaded.predict_proba(rows), clf.predict_proba(rows))
    same = labels == clf.predict(rows)
    np.testing.assert_array_equal(loaded.predict_confidence(rows)[same],
                                  clf.predict_confidence(rows)[same])


def _rewrite_meta(src, dst, change):
    """Copy a model file with its metadata edited (and its digest recomputed)."""
    import json
    import zipfile

    from pyod_odim.model_file import meta_digest

    with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst, "w") as b:
        for entry in a.namelist():
            body = a.read(entry)
            if entry == "meta.json":
                meta = json.loads(body)
                change(meta)
                meta["digest"] = meta_digest(meta)
                body = json.dumps(meta).encode()
            b.writestr(entry, body)


def test_saved_thresholder_entry_is_information_only(thresholder_fit, tmp_path):
    import pyod_odim

    _, clf = thresholder_fit
    path = tmp_path / "model.odim"
    clf.save(path)

    def point_at_code(meta):
        meta["thresholder"].update(module="os", **{"class": "system"},
                                   params={"command": "exit 1"})
    odd = tmp_path / "odd.odim"
    _rewrite_meta(path, odd, point_at_code)
    np.testing.assert_array_equal(pyod_odim.load(odd).labels_, clf.labels_)

    # A thresholder may label no row: a share of 0 loads with its entry ...
    none = tmp_path / "none.odim"
    _rewrite_meta(path, none, lambda m: m.update(contamination=0.0))
    assert pyod_odim.load(none).contamination == 0.0
    # ... but not as a numeric fit, and a malformed entry is refused.
    for change, bad in [(lambda m: m.update(contamination=0.0, thresholder=None), "zero"),
                        (lambda m: m.update(contamination=1.5), "share"),
                        (lambda m: m.update(thresholder="IQR"), "entry")]:
        target = tmp_path / f"{bad}.odim"
        _rewrite_meta(path, target, change)
        with pytest.raises(ValueError, match="contamination|thresholder entry"):
            pyod_odim.load(target)


def test_histogram_draws_the_score_cut(thresholder_fit):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from pyod_odim import plotting

    name, clf = thresholder_fit
    try:
        fig = plotting.plot_score_histogram(clf)
        ax = fig.axes[0]
        cut_lines = [line for line in ax.lines if line.get_linestyle() == "--"]
        assert len(cut_lines) == 1
        assert cut_lines[0].get_xdata()[0] == clf.score_threshold_
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert f"threshold ({name.upper()} thresholder)" in legend
        plotting.plot_summary(clf)
    finally:
        plt.close("all")
