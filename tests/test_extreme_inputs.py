"""Every finite input gets a meaningful score; a few extreme rows do not decide the scale."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_array_equal
from pyod.utils.data import generate_data
from sklearn.metrics import roc_auc_score

from pyod_odim import ODIM, kernels
from pyod_odim.scaling import FeatureScaling, fenced_bounds

FAST = dict(n_estimators=3, n_samples_iwae=16, patience=3, check_every=5, max_updates=120,
            min_updates=0, random_state=0)
ENGINES = ["eager"] + (["kernel"] if kernels.AVAILABLE else [])
D = 4


@pytest.fixture(scope="module")
def data():
    X, y = generate_data(n_train=600, n_features=D, contamination=0.1, train_only=True,
                         random_state=0)
    return X, y


@pytest.fixture(scope="module", params=ENGINES)
def fitted(request, data):
    return ODIM(**dict(FAST, engine=request.param)).fit(data[0])


# Finite float64 values over the whole range, subnormals and both signs included.
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
magnitudes = st.builds(lambda m, e, s: s * m * 10.0 ** e,
                       st.floats(1.0, 9.99), st.integers(-307, 307), st.sampled_from([-1.0, 1.0]))
values = st.one_of(finite, magnitudes, st.sampled_from([5e-324, -5e-324, 1.7e308, -1.7e308, 0.0]))
rows = st.lists(st.lists(values, min_size=D, max_size=D), min_size=1, max_size=8)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows)
def test_no_finite_row_scores_nan(fitted, batch):
    X = np.array(batch, dtype=np.float64)
    scores = fitted.decision_function(X)
    assert not np.isnan(scores).any()
    assert (np.isfinite(scores) | (scores == np.inf)).all()
    # A row's score does not depend on the rows scored with it (eager
    # PyTorch: to float32 rounding, its matmuls block by batch size).
    np.testing.assert_allclose(fitted.decision_function(X[:1]), scores[:1], rtol=1e-6)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, D - 1), st.floats(1.0, 300.0), st.floats(1e-6, 300.0),
       st.sampled_from([-1.0, 1.0]))
def test_farther_out_never_scores_lower(fitted, data, feature, log_near, log_step, sign):
    base = np.median(data[0], axis=0)
    bound = data[0][:, feature].max() if sign > 0 else data[0][:, feature].min()
    near, far = base.copy(), base.copy()
    # Both beyond the training bound on the same side, far beyond near.
    near_offset = 10.0 ** min(log_near, 307.0)
    far_offset = 10.0 ** min(log_near + log_step, 307.5)
    near[feature] = bound + sign * near_offset
    far[feature] = bound + sign * far_offset
    s_near, s_far = fitted.decision_function(np.vstack([near, far]))
    assert s_far >= s_near


@pytest.mark.parametrize("value", [1e10, 1e20, 1e38, 1e100, 1e308, -1e308])
def test_extreme_rows_are_outliers(fitted, data, value):
    row = np.median(data[0], axis=0)
    row[1] = value
    X = row[None, :]
    assert np.isfinite(fitted.decision_function(X)).all()
    assert fitted.predict(X)[0] == 1
    assert fitted.predict_proba(X)[0, 1] > 0.99
    assert fitted.predict_proba(X, method="unify")[0, 1] > 0.99


def test_fit_on_extreme_rows_gives_finite_scores(data):
    X = data[0].copy()
    X[0, 0], X[1, 1], X[2, 2], X[3, 3] = 1e308, -1e308, 5e-324, 1e-300
    clf = ODIM(**FAST).fit(X)
    assert np.isfinite(clf.decision_scores_).all()
    assert clf.labels_[:2].tolist() == [1, 1]
    assert np.isfinite(clf.predict_proba(X)).all()


def test_one_corrupted_row_does_not_blind_the_detector(data):
    X, y = data
    clean = roc_auc_score(y, ODIM(**FAST).fit(X).decision_scores_)
    corrupted = np.vstack([X, np.full((1, D), 1e12)])
    scores = ODIM(**FAST).fit(corrupted).decision_scores_
    assert roc_auc_score(y, scores[:-1]) > clean - 0.02
    assert scores[-1] == scores.max()
    assert len(np.unique(scores)) > 0.9 * len(scores)


def test_paper_scaling_is_kept_without_detached_values(data):
    X = data[0]
    low, high = fenced_bounds(X)
    assert_array_equal(low, X.min(axis=0))
    assert_array_equal(high, X.max(axis=0))
    # scaling_fence=None is the plain min-max map whatever the data.
    spiked = np.vstack([X, np.full((1, D), 1e12)])
    assert_array_equal(fenced_bounds(spiked, None)[1], spiked.max(axis=0))
    assert (fenced_bounds(spiked)[1] < 1e6).all()


def test_min_max_arithmetic_matches_scikit_learn(data):
    from sklearn.preprocessing import MinMaxScaler

    X = data[0]
    ours = FeatureScaling(X.min(axis=0), X.max(axis=0)).transform(X)
    assert_array_equal(ours, MinMaxScaler().fit(X).transform(X))


def test_cli_scores_extreme_rows(tmp_path, data):
    from pyod_odim import cli

    X = data[0].copy()
    X[5, 0] = 1e300
    path = tmp_path / "x.npy"
    np.save(path, X)
    out = tmp_path / "s.npy"
    assert cli.main(["score", str(path), "-o", str(out), "--n-estimators", "2",
                     "--patience", "2", "--check-every", "5", "--n-jobs", "1"]) == 0
    scores = np.load(out)
    assert np.isfinite(scores).all() and scores[5, 1] == 1


def test_dask_scores_extreme_rows_like_in_memory(fitted):
    da = pytest.importorskip("dask.array")
    from pyod_odim.dask import score

    X = np.random.RandomState(0).randn(200, D) * 10.0 ** np.random.RandomState(1).randint(-300, 300, size=(200, D))
    scores, labels = score(fitted, da.from_array(X, chunks=(64, D)))
    assert_array_equal(scores.compute(), fitted.decision_function(X))
    assert not np.isnan(scores.compute()).any()


def test_fence_leaves_the_shared_sets_min_max(monkeypatch):
    # The claim of pyod_odim.scaling.DEFAULT_FENCE on the shared benchmark
    # data, whole and in the training splits of PyOD's benchmark protocol.
    import os

    from pyod.utils.utility import standardizer
    from sklearn.model_selection import train_test_split

    folder = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "datasets")
    if not os.path.isfile(os.path.join(folder, "load.py")):
        pytest.skip("shared datasets not available")
    monkeypatch.syspath_prepend(folder)
    from load import load, names

    def n_detached(X):
        low, high = fenced_bounds(X)
        return int(((X < low) | (X > high)).any(axis=1).sum())

    whole, splits = {}, {}
    for name in names():
        X, y = load(name)
        if n_detached(X):
            whole[name] = n_detached(X)
        for i in range(3):
            train, _, _, _ = train_test_split(X, y, test_size=0.4,
                                              random_state=np.random.RandomState(i))
            splits[name] = max(splits.get(name, 0), n_detached(standardizer(train)))
    assert whole == {"20news_3": 1, "svhn_0": 1}
    assert max(splits.values()) <= 1
