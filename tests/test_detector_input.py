"""Bad input and bad parameters give clear errors that name the problem."""

import numpy as np
import pytest

from pyod_odim import ODIM

FAST = dict(n_estimators=2, n_samples_iwae=8, patience=2, max_updates=60, random_state=0)


@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(0).normal(size=(60, 4))


@pytest.fixture(scope="module")
def fitted(X):
    return ODIM(**FAST).fit(X)


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (np.array([[1.0, np.nan], [2.0, 3.0]]), ValueError, "NaN"),
        (np.array([[1.0, np.inf], [2.0, 3.0]]), ValueError, "infinite"),
        (np.empty((0, 3)), ValueError, "0 sample"),
        (np.empty((5, 0)), ValueError, "0 features"),
        (np.arange(10.0), ValueError, "2-D"),
        (np.ones((2, 2, 2)), ValueError, "2-D"),
        (np.array([["a", "b"], ["c", "d"]]), TypeError, "numeric"),
        (np.array([[1, "x"], [2, 3]], dtype=object), TypeError, "numeric"),
        (np.ones((3, 2), dtype=complex), TypeError, "numeric"),
        (np.ones((1, 3)), ValueError, "at least 2"),
    ],
)
def test_bad_training_data(bad, error, match):
    with pytest.raises(error, match=match):
        ODIM(**FAST).fit(bad)


def test_wrong_feature_count(fitted):
    with pytest.raises(ValueError, match="5 features, but the model was fitted with 4"):
        fitted.decision_function(np.ones((3, 5)))


def test_nan_at_scoring_time(fitted):
    X = np.ones((3, 4))
    X[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fitted.decision_function(X)


def test_unfitted():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        ODIM().decision_function(np.ones((3, 4)))


@pytest.mark.parametrize(
    "params, error, match",
    [
        (dict(contamination=0.0), ValueError, "contamination"),
        (dict(contamination=0.7), ValueError, "contamination"),
        (dict(n_samples_iwae=0), ValueError, "n_samples_iwae"),
        (dict(patience=0), ValueError, "patience"),
        (dict(min_updates=-1), ValueError, "min_updates"),
        (dict(patience=2.5), TypeError, "patience"),
        (dict(n_estimators=0), ValueError, "n_estimators"),
        (dict(check_every=-1), ValueError, "check_every"),
        (dict(batch_size=0), ValueError, "batch_size"),
        (dict(lr=0.0), ValueError, "lr"),
        (dict(lr=float("nan")), ValueError, "lr"),
        (dict(likelihood="poisson"), ValueError, "likelihood"),
        (dict(distance="kl"), ValueError, "distance"),
        (dict(combination="max"), ValueError, "combination"),
        (dict(engine="jit"), ValueError, "engine"),
        (dict(hidden_sizes=()), ValueError, "hidden_sizes"),
        (dict(latent_dim=0), ValueError, "latent_dim"),
        (dict(selection_size=1), ValueError, "selection_size"),
        (dict(device="tpu:0"), ValueError, "device"),
        (dict(random_state="seed"), TypeError, "random_state"),
        (dict(cubo_order=1.0), ValueError, "cubo_order"),
        (dict(batch_norm="yes"), TypeError, "batch_norm"),
        (dict(label_selection="auc"), ValueError, "label_selection"),
        (dict(use_labels=1), TypeError, "use_labels"),
        (dict(max_fit_rows=1), ValueError, "max_fit_rows"),
        (dict(max_fit_rows=2.5), TypeError, "max_fit_rows"),
        (dict(working_memory=0), ValueError, "working_memory"),
        (dict(working_memory="1GB"), TypeError, "working_memory"),
    ],
)
def test_bad_parameters(X, params, error, match):
    clf = ODIM(**FAST)
    clf.set_params(**params)
    with pytest.raises(error, match=match):
        clf.fit(X)


def test_constructor_rejects_bad_contamination():
    # PyOD's BaseDetector validates contamination at construction too.
    with pytest.raises(ValueError, match="contamination"):
        ODIM(contamination=0.9)


def test_constant_columns_are_fine():
    X = np.random.default_rng(1).normal(size=(80, 4))
    X[:, 2] = 7.0
    clf = ODIM(**FAST).fit(X)
    assert np.isfinite(clf.decision_scores_).all()


def test_bool_and_int_input(X):
    clf = ODIM(**FAST).fit((X > 0).astype(int))
    assert np.isfinite(clf.decision_function(X > 0)).all()


def test_custom_architecture(X):
    clf = ODIM(**dict(FAST, hidden_sizes=(8,), latent_dim=3)).fit(X)
    assert clf.scorer_.params["enc_w"][0].shape == (2, 4, 8)
    assert clf.scorer_.architecture.latent_dim == 3


def test_dataframe_columns_named_in_errors(fitted):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(np.ones((3, 4)), columns=list("abcd"))
    frame["c"] = ["x", "y", "z"]
    with pytest.raises(TypeError, match=r"non-numeric column\(s\): 'c'"):
        fitted.decision_function(frame)
    frame["c"] = pd.array([1, None, 3], dtype="Int64")  # a nullable column with a gap
    with pytest.raises(ValueError, match=r"NaN values \(first at row 1\)"):
        fitted.decision_function(frame)
    frame["c"] = 1.0
    assert np.isfinite(fitted.decision_function(frame)).all()
