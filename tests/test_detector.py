"""PyOD's detector checklist applied to ODIM."""

import os
import pickle

import joblib
import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from pyod.utils.data import generate_data
from scipy.stats import rankdata
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from pyod_odim import ODIM, gmm

# Small settings: these tests check the API, not accuracy.
FAST = dict(
    n_estimators=2, n_samples_iwae=8, patience=3, max_updates=200, min_updates=0, random_state=0
)


@pytest.fixture(scope="module")
def data():
    X_train, X_test, y_train, y_test = generate_data(
        n_train=300, n_test=100, n_features=5, contamination=0.1, random_state=42
    )
    return X_train, X_test, y_train, y_test


@pytest.fixture(scope="module")
def fitted(data):
    X_train = data[0]
    return ODIM(**FAST).fit(X_train)


def test_fitted_attributes(fitted, data):
    X_train = data[0]
    n = X_train.shape[0]
    assert fitted.decision_scores_.shape == (n,)
    assert np.isfinite(fitted.decision_scores_).all()
    assert fitted.labels_.shape == (n,)
    assert set(np.unique(fitted.labels_)) <= {0, 1}
    assert np.isfinite(fitted.threshold_)
    assert fitted._mu is not None and fitted._sigma is not None
    assert fitted.n_features_in_ == X_train.shape[1]
    # Diagnostics.
    n_checks = len(fitted.history_["update"])
    assert fitted.history_["distance"].shape == (n_checks, 2)
    assert fitted.best_update_.shape == (2,)
    assert (fitted.best_update_ > 0).all()
    assert (fitted.best_update_ <= fitted.n_updates_).all()
    assert fitted.best_update_.max() <= fitted.history_["update"].max()
    assert fitted.gmm_backend_ == gmm.BACKEND
    assert fitted.device_ == "cpu"
    assert fitted.engine_ in ("kernel", "eager")
    assert set(fitted.timings_) == {"train", "score", "gmm", "final_score"}


def test_patience_stops_each_member(fitted):
    # A member stops after `patience` checks without a new best distance;
    # its later checks are NaN while the other members go on.
    updates = fitted.history_["update"]
    for m in range(2):
        dist = fitted.history_["distance"][:, m]
        checked_after_best = np.isfinite(dist) & (updates > fitted.best_update_[m])
        assert checked_after_best.sum() <= 3
        if fitted.n_updates_ < 200:
            assert checked_after_best.sum() == 3
            assert np.isnan(dist[updates > updates[checked_after_best][-1]]).all()


def test_warm_up_checks_are_recorded_not_kept(data):
    X_train = data[0]
    clf = ODIM(**dict(FAST, min_updates=40, smoothing=2)).fit(X_train)
    assert (clf.best_update_ >= 40).all()
    # Only the warm-up check the first smoothed criterion reads is scored.
    assert clf.history_["update"][:2].tolist() == [30, 40]
    assert np.isfinite(clf.history_["distance"][0]).all()
    # A warm-up longer than the run still leaves a checkpoint: the last check.
    short = ODIM(**dict(FAST, min_updates=1000, max_updates=30)).fit(X_train)
    assert (short.best_update_ == 30).all()


def test_prediction_ranges(fitted, data):
    X_test = data[1]
    pred = fitted.predict(X_test)
    assert pred.shape == (X_test.shape[0],)
    assert set(np.unique(pred)) <= {0, 1}
    for method in ("linear", "unify"):
        proba = fitted.predict_proba(X_test, method=method)
        assert proba.shape == (X_test.shape[0], 2)
        assert (proba >= 0).all() and (proba <= 1).all()
        assert_allclose(proba.sum(axis=1), 1.0)
    pred, conf = fitted.predict(X_test, return_confidence=True)
    assert (conf >= 0).all() and (conf <= 1).all()
    conf = fitted.predict_confidence(X_test)
    assert conf.shape == (X_test.shape[0],)
    rejected = fitted.predict_with_rejection(X_test, T=32)
    assert set(np.unique(rejected)) <= {0, 1, -2}


def test_fit_predict(data):
    X_train = data[0]
    labels = ODIM(**FAST).fit_predict(X_train)
    assert_array_equal(labels, ODIM(**FAST).fit(X_train).labels_)


def test_decision_function_reproduces_training_scores(fitted, data):
    X_train = data[0]
    assert_allclose(fitted.decision_function(X_train), fitted.decision_scores_, rtol=1e-5)


def test_decision_function_is_deterministic_and_row_local(fitted, data):
    X_test = data[1]
    first = fitted.decision_function(X_test)
    assert_array_equal(first, fitted.decision_function(X_test))
    # A row's score does not depend on the other rows scored with it.
    assert_allclose(fitted.decision_function(X_test[5:9]), first[5:9], rtol=1e-5)


def test_same_seed_same_scores(data):
    X_train = data[0]
    a = ODIM(**FAST).fit(X_train).decision_scores_
    b = ODIM(**FAST).fit(X_train).decision_scores_
    assert_array_equal(a, b)
    c = ODIM(**dict(FAST, random_state=1)).fit(X_train).decision_scores_
    assert not np.allclose(a, c)


def test_global_rng_untouched(data):
    X_train = data[0]
    np.random.seed(123)
    torch.manual_seed(123)
    state_np = np.random.get_state()[1].copy()
    state_torch = torch.get_rng_state().clone()
    ODIM(**FAST).fit(X_train)
    assert_array_equal(np.random.get_state()[1], state_np)
    assert torch.equal(torch.get_rng_state(), state_torch)


def test_clone_and_params(fitted, data):
    params = fitted.get_params()
    assert params["n_estimators"] == 2 and params["device"] is None
    twin = clone(fitted)
    assert not hasattr(twin, "decision_scores_")
    twin.fit(data[0])
    assert_array_equal(twin.decision_scores_, fitted.decision_scores_)
    twin.set_params(contamination=0.2)
    assert twin.get_params()["contamination"] == 0.2


@pytest.mark.parametrize("dump", ["pickle", "joblib", "pyod"])
def test_persistence_round_trip(fitted, data, tmp_path, dump):
    X_test = data[1]
    expected = fitted.decision_function(X_test)
    path = os.fspath(tmp_path / "odim.model")
    if dump == "pickle":
        with open(path, "wb") as f:
            pickle.dump(fitted, f)
        with open(path, "rb") as f:
            loaded = pickle.load(f)
    elif dump == "joblib":
        joblib.dump(fitted, path)
        loaded = joblib.load(path)
    else:
        persistence = pytest.importorskip("pyod.utils.persistence")
        persistence.save(fitted, path)
        loaded = persistence.load(path, trusted=True)
    assert_array_equal(loaded.decision_function(X_test), expected)
    assert_array_equal(loaded.predict(X_test), fitted.predict(X_test))


def test_fitted_state_is_device_free(fitted):
    # Only NumPy arrays: a model fitted on a GPU loads on a CPU-only machine.
    for arrays in fitted.scorer_.params.values():
        assert all(isinstance(a, np.ndarray) for a in arrays)
    assert isinstance(fitted.scorer_.score_eps, np.ndarray)


@pytest.mark.parametrize("n", [2, 3, 50])
def test_small_data(n):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 3))
    clf = ODIM(**FAST).fit(X)
    assert clf.decision_scores_.shape == (n,)
    assert np.isfinite(clf.decision_scores_).all()


def test_subset_selection_scores_all_rows():
    X, _ = generate_data(n_train=400, train_only=True, n_features=4, random_state=1)
    clf = ODIM(**dict(FAST, selection_size=64)).fit(X)
    assert clf.decision_scores_.shape == (400,)
    assert_allclose(clf.decision_function(X), clf.decision_scores_, rtol=1e-5)


def test_bernoulli_likelihood():
    rng = np.random.default_rng(0)
    X = (rng.random((200, 6)) < 0.2).astype(float)
    X[:10] = 1.0 - X[:10]
    clf = ODIM(**dict(FAST, likelihood="bernoulli")).fit(X)
    assert np.isfinite(clf.decision_scores_).all()
    # Values outside [0, 1] after scaling are clipped, not NaN.
    assert np.isfinite(clf.decision_function(X * 3 - 1)).all()


def test_standardized_combination_ranks_like_members(data):
    X_train = data[0]
    clf = ODIM(**dict(FAST, combination="standardized")).fit(X_train)
    assert_allclose(clf.decision_function(X_train), clf.decision_scores_, rtol=1e-5, atol=1e-6)




def test_batch_norm_state_is_kept_and_used(data):
    X_train, X_test = data[0], data[1]
    clf = ODIM(**dict(FAST, batch_norm=True)).fit(X_train)
    means = clf.scorer_.params["bn_mean"]
    # Encoder and decoder hidden layers: (5 -> 32 -> 16) and (4 -> 16 -> 32).
    assert [m.shape for m in means] == [(2, 1, 32), (2, 1, 16), (2, 1, 16), (2, 1, 32)]
    assert all(np.abs(m).sum() > 0 for m in means)
    assert_allclose(clf.decision_function(X_train), clf.decision_scores_, rtol=1e-5)
    loaded = pickle.loads(pickle.dumps(clf))
    assert_array_equal(loaded.decision_function(X_test), clf.decision_function(X_test))
    plain = ODIM(**dict(FAST, batch_norm=False)).fit(X_train)
    assert not np.allclose(plain.decision_scores_, clf.decision_scores_)
    assert plain.scorer_.params["bn_mean"] == []


def test_no_warning_leaks(data, recwarn):
    ODIM(**FAST).fit(data[0]).decision_function(data[1])
    assert not [w for w in recwarn if issubclass(w.category, (DeprecationWarning, FutureWarning))]


def test_flush_denormal_restored(data):
    torch.set_flush_denormal(False)
    ODIM(**FAST).fit(data[0])
    tiny = torch.tensor([1e-40], dtype=torch.float32)
    assert (tiny * 1.0).item() != 0.0


def test_detects_outliers():
    # PyOD's standard direction check: outliers get the higher scores.
    X, y = generate_data(
        n_train=2000, n_features=10, contamination=0.1, train_only=True, random_state=42
    )
    clf = ODIM(n_estimators=3, random_state=0).fit(X)
    assert roc_auc_score(y, clf.decision_scores_) > 0.9
    assert roc_auc_score(y, clf.decision_function(X)) > 0.9


def test_ensemble_members_differ(data):
    # Members start from different weights, so their rankings differ.
    X_train = data[0]
    clf = ODIM(**FAST).fit(X_train)
    assert clf.scorer_.params["enc_w"][0][0].tolist() != clf.scorer_.params["enc_w"][0][1].tolist()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_cuda_fit_scores_on_cpu(data):
    X_train, X_test = data[0], data[1]
    gpu = ODIM(**dict(FAST, device="cuda")).fit(X_train)
    assert gpu.device_.startswith("cuda")
    cpu_copy = pickle.loads(pickle.dumps(gpu))
    cpu_copy.set_params(device="cpu")
    assert_allclose(
        rankdata(cpu_copy.decision_function(X_test)),
        rankdata(gpu.decision_function(X_test)),
        atol=2,
    )


def test_cuda_request_without_cuda_fails_clearly(data):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match="CUDA is not available"):
        ODIM(**dict(FAST, device="cuda")).fit(data[0])


def test_skipped_warm_up_checks_change_only_the_history(data, monkeypatch):
    import pyod_odim.training as training

    real = training.train_ensemble

    def every_check(X, arch, config, *args, **kwargs):
        return real(X, arch, config._replace(every_check=True), *args, **kwargs)

    params = dict(FAST, min_updates=60, smoothing=3, max_updates=120)
    skipping = ODIM(**params).fit(data[0])
    monkeypatch.setattr(training, "train_ensemble", every_check)
    scoring_all = ODIM(**params).fit(data[0])
    assert scoring_all.history_["update"][:3].tolist() == [10, 20, 30]
    assert skipping.history_["update"][0] == 40  # the first smoothed window: 40, 50, 60
    tail = scoring_all.history_["update"] >= 40
    assert_array_equal(skipping.history_["update"], scoring_all.history_["update"][tail])
    assert_array_equal(skipping.history_["raw_distance"],
                       scoring_all.history_["raw_distance"][tail])
    counted = skipping.history_["update"] >= 60  # earlier windows held fewer checks
    assert_array_equal(skipping.history_["distance"][counted],
                       scoring_all.history_["distance"][tail][counted])
    assert_array_equal(skipping.best_update_, scoring_all.best_update_)
    assert_array_equal(skipping.decision_scores_, scoring_all.decision_scores_)
