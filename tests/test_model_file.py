"""Model files: pickle-free round trips, the committed fixture, and every way a file can be bad."""

import json
import pickle
import pickletools
import zipfile

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import pyod_odim
from pyod_odim import ODIM
from pyod_odim import model_file
from model_fixture import EXPECTED, MODEL

FAST = dict(n_estimators=2, n_samples_iwae=8, patience=2, check_every=5, max_updates=60,
            min_updates=0, random_state=0)


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = rng.randn(400, 5)
    X[:20] += 4.0
    return X, rng.randn(50, 5)


@pytest.fixture(scope="module")
def fitted(data):
    return ODIM(**FAST).fit(data[0])


def _same_predictions(a, b, X):
    assert_array_equal(a.decision_function(X), b.decision_function(X))
    assert_array_equal(a.predict(X), b.predict(X))
    for method in ("linear", "unify"):
        assert_array_equal(a.predict_proba(X, method=method), b.predict_proba(X, method=method))
    assert_array_equal(a.predict_confidence(X), b.predict_confidence(X))


@pytest.mark.parametrize("kind", ["unsupervised", "standardized", "semi-supervised",
                                  "max_fit_rows", "bernoulli"])
def test_round_trip_is_bit_identical(kind, data, tmp_path):
    X, new = data
    params = dict(FAST)
    y = None
    if kind == "standardized":
        params["combination"] = "standardized"
    elif kind == "semi-supervised":
        params["use_labels"] = True
        y = np.zeros(len(X), dtype=int)
        y[:8] = 1
    elif kind == "max_fit_rows":
        params["max_fit_rows"] = 150
    elif kind == "bernoulli":
        params["likelihood"] = "bernoulli"
        X, new = (X > 0).astype(float), (new > 0).astype(float)
    clf = ODIM(**params).fit(X, y)
    path = tmp_path / "model.odim"
    clf.save(path)
    loaded = pyod_odim.load(path)
    assert isinstance(loaded, ODIM)
    _same_predictions(clf, loaded, np.vstack([X[:30], new]))
    assert_array_equal(loaded.decision_scores_, clf.decision_scores_)
    assert_array_equal(loaded.labels_, clf.labels_)
    assert loaded.threshold_ == clf.threshold_
    assert loaded.get_params() == clf.get_params()
    if kind == "semi-supervised":
        assert loaded.label_neighbors_ is not None
        assert_array_equal(loaded.likelihood_scores_, clf.likelihood_scores_)


def test_file_holds_no_pickle_and_names_versions(fitted, tmp_path):
    path = tmp_path / "m.odim"
    fitted.save(path)
    raw = path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        meta = json.loads(archive.read("meta.json"))
        for name in archive.namelist():
            body = archive.read(name)
            # A pickle stream starts with the PROTO opcode (0x80) and a protocol number.
            assert not (body[:1] == b"\x80" and body[1:2] in b"\x02\x03\x04\x05"), name
    assert b"cnumpy" not in raw and b"\x80\x04\x95" not in raw
    with pytest.raises(Exception):
        pickletools.dis(raw)  # not a pickle stream
    assert meta["format"] == "pyod-odim-model"
    assert meta["format_version"] == model_file.FORMAT_VERSION
    assert meta["written_by"]["pyod_odim"] == pyod_odim.__version__
    assert "torch" in meta["written_by"]
    assert meta["params"]["n_estimators"] == 2


def test_feature_names_from_a_dataframe(data, tmp_path):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(data[0], columns=[f"f{i}" for i in range(5)])
    clf = ODIM(**FAST).fit(frame)
    assert list(clf.feature_names_in_) == ["f0", "f1", "f2", "f3", "f4"]
    clf.save(tmp_path / "m.odim")
    loaded = pyod_odim.load(tmp_path / "m.odim")
    assert list(loaded.feature_names_in_) == ["f0", "f1", "f2", "f3", "f4"]
    assert not hasattr(ODIM(**FAST).fit(data[0]), "feature_names_in_")


def test_committed_fixture_keeps_loading_with_the_same_scores():
    loaded = pyod_odim.load(MODEL)
    expected = np.load(EXPECTED, allow_pickle=False)
    query = expected["query"]
    # Written by format version 1; a later version must give the same values.
    np.testing.assert_allclose(loaded.decision_function(query), expected["scores"],
                               rtol=1e-6, atol=1e-6)
    assert_array_equal(loaded.predict(query), expected["labels"])
    np.testing.assert_allclose(loaded.predict_proba(query), expected["proba"], rtol=1e-6,
                               atol=1e-6)


def test_pickling_still_works(fitted, data):
    again = pickle.loads(pickle.dumps(fitted))
    assert_array_equal(again.decision_function(data[1]), fitted.decision_function(data[1]))


# ------------------------------------------------------------ bad files
def _rewrite(src, dst, change_meta=None, change_array=None, drop=None):
    """Copy a model file, editing its metadata or one array's bytes."""
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst, "w") as b:
        for name in a.namelist():
            body = a.read(name)
            if name == drop:
                continue
            if name == "meta.json" and change_meta is not None:
                meta = json.loads(body)
                change_meta(meta)
                body = json.dumps(meta).encode()
            if change_array is not None and name == f"arrays/{change_array[0]}.npy":
                body = change_array[1](body)
            b.writestr(name, body)


def _nan_array(body):
    # Overwrite the first float32 value after the .npy header with NaN.
    header_end = body.index(b"\n") + 1
    return body[:header_end] + np.float32(np.nan).tobytes() + body[header_end + 4:]


@pytest.fixture()
def saved(fitted, tmp_path):
    path = tmp_path / "good.odim"
    fitted.save(path)
    return path


def _newer(meta):
    meta["format_version"] = model_file.FORMAT_VERSION + 1


def _shape_lie(meta):
    meta["arrays"]["params/enc_w/0"][1][1] += 1


def _arch_lie(meta):
    meta["architecture"]["latent_dim"] += 1


def _bad_json(path):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("meta.json", "{not json")


BAD = {
    "newer_version": (dict(change_meta=_newer), "format version 2 .* reads format versions up to 1"),
    "array_shape_lie": (dict(change_meta=_shape_lie), "params/enc_w/0"),
    "architecture_lie": (dict(change_meta=_arch_lie), "score_eps|shapes"),
    "nan_parameter": (dict(change_array=("params/enc_w/0", _nan_array)), "non-finite"),
    "missing_array": (dict(drop="arrays/score_eps.npy"), "truncated or corrupted|missing"),
    "no_meta": (dict(drop="meta.json"), "no meta.json"),
    "wrong_format": (dict(change_meta=lambda m: m.update(format="something-else")),
                     "not a pyod-odim model file"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_tampered_files_raise_value_error(case, saved, tmp_path):
    edit, message = BAD[case]
    bad = tmp_path / "bad.odim"
    _rewrite(saved, bad, **edit)
    with pytest.raises(ValueError, match=message):
        pyod_odim.load(bad)


@pytest.mark.parametrize("cut", [0.1, 0.5, 0.9, 0.999])
def test_truncated_files_raise_value_error(cut, saved, tmp_path):
    raw = saved.read_bytes()
    bad = tmp_path / "cut.odim"
    bad.write_bytes(raw[: int(len(raw) * cut)])
    with pytest.raises(ValueError, match="cut.odim"):
        pyod_odim.load(bad)


def test_flipped_bytes_raise_value_error(saved, tmp_path):
    raw = bytearray(saved.read_bytes())
    rng = np.random.RandomState(0)
    for trial in range(20):
        damaged = bytearray(raw)
        for i in rng.randint(4, len(raw), size=3):
            damaged[i] ^= 0xFF
        bad = tmp_path / f"flip{trial}.odim"
        bad.write_bytes(bytes(damaged))
        try:
            loaded = pyod_odim.load(bad)
        except ValueError:
            continue
        # A flip the checks cannot see (e.g. in a diagnostic string) still scores finitely.
        assert np.isfinite(loaded.decision_function(np.zeros((3, 5)))).all()


def test_other_files_raise_value_error(tmp_path):
    text = tmp_path / "x.odim"
    text.write_text("hello")
    with pytest.raises(ValueError, match="zip signature"):
        pyod_odim.load(text)
    pickled = tmp_path / "p.odim"
    pickled.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ValueError, match="not a pyod-odim model file"):
        pyod_odim.load(pickled)
    json_only = tmp_path / "j.odim"
    _bad_json(json_only)
    with pytest.raises(ValueError, match="not valid JSON"):
        pyod_odim.load(json_only)
    with pytest.raises(FileNotFoundError):
        pyod_odim.load(tmp_path / "missing.odim")


def test_unfitted_cannot_be_saved(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        ODIM().save(tmp_path / "m.odim")
