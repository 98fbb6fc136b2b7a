"""PyThresh thresholders as ``contamination``, and pyod_odim.thresholds."""

import numpy as np
import pytest
from sklearn.base import clone

from pyod_odim import ODIM
from pyod_odim.thresholds import (
    check_contamination,
    is_thresholder,
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
