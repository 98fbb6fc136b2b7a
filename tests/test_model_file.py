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
from fit_helpers import QUICK_FIT as FAST
from fit_helpers import planted_rows
from model_fixture import VERSIONS, expected_path, model_path


@pytest.fixture(scope="module")
def data():
    return planted_rows(0, 400, 5, 20, 4.0)


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
                                  "max_fit_rows", "bernoulli", "rectified"])
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
    elif kind == "rectified":
        params["likelihood"] = "rectified"
        X, new = np.maximum(X, 0.0), np.maximum(new, 0.0)
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
    assert loaded.likelihood_ == clf.likelihood_
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


@pytest.mark.parametrize("version", VERSIONS)
def test_committed_fixture_keeps_loading_with_the_same_scores(version):
    loaded = pyod_odim.load(model_path(version))
    expected = np.load(expected_path(version), allow_pickle=False)
    query = expected["query"]
    # Written by an earlier format version; every later version gives the same values.
    np.testing.assert_allclose(loaded.decision_function(query), expected["scores"],
                               rtol=1e-6, atol=1e-6)
    assert_array_equal(loaded.predict(query), expected["labels"])
    np.testing.assert_allclose(loaded.predict_proba(query), expected["proba"], rtol=1e-6,
                               atol=1e-6)


def test_the_newest_fixture_has_the_current_format_version():
    with zipfile.ZipFile(model_path(VERSIONS[-1])) as archive:
        meta = json.loads(archive.read("meta.json"))
    assert meta["format_version"] == model_file.FORMAT_VERSION


def test_pickling_still_works(fitted, data):
    again = pickle.loads(pickle.dumps(fitted))
    assert_array_equal(again.decision_function(data[1]), fitted.decision_function(data[1]))


# ------------------------------------------------------------ bad files
def _rewrite(src, dst, change_meta=None, change_blob=None, drop=None, blob_compression=None,
             redigest=True):
    """Copy a model file, editing its metadata or the bytes of ``arrays.bin``.

    ``change_blob(meta, blob)`` edits the bytearray in place, with the
    (already edited) metadata at hand to find an array's offset. The zip
    CRCs are recomputed, and so is the metadata's digest unless
    ``redigest`` is False: each case then reaches the check it is about.
    """
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst, "w") as b:
        meta = json.loads(a.read("meta.json"))
        if change_meta is not None:
            change_meta(meta)
            if redigest and "digest" in meta:
                meta["digest"] = model_file.meta_digest(meta)
        for name in a.namelist():
            if name == drop:
                continue
            body = a.read(name)
            compression = zipfile.ZIP_STORED
            if name == "meta.json":
                body = json.dumps(meta).encode()
            elif name == "arrays.bin":
                body = bytearray(body)
                if change_blob is not None:
                    change_blob(meta, body)
                compression = blob_compression or zipfile.ZIP_STORED
            b.writestr(name, bytes(body), compress_type=compression)


def _offset(meta, name):
    return meta["arrays"][name][2]


def _scale_array(meta, blob, name, factor):
    """Multiply a float32 array of ``arrays.bin`` by ``factor`` in place."""
    _, shape, at = meta["arrays"][name]
    end = at + 4 * int(np.prod(shape))
    blob[at:end] = (np.frombuffer(bytes(blob[at:end]), "<f4") * np.float32(factor)).tobytes()


def _nan_parameter(meta, blob):
    at = _offset(meta, "params/enc_w")
    blob[at:at + 4] = np.float32(np.nan).tobytes()


@pytest.fixture()
def saved(fitted, tmp_path):
    path = tmp_path / "good.odim"
    fitted.save(path)
    return path


def _newer(meta):
    meta["format_version"] = model_file.FORMAT_VERSION + 1


def _shape_lie(meta):
    meta["arrays"]["params/enc_w"][1][0] -= 1


def _arch_lie(meta):
    meta["architecture"]["latent_dim"] += 1


def _past_the_end(meta):
    meta["arrays"]["decision_scores"][2] = meta["arrays_bytes"]


def _overlap(meta):
    meta["arrays"]["params/enc_b"][2] = meta["arrays"]["params/enc_w"][2]


def _bad_json(path):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("meta.json", "{not json")


BAD = {
    "newer_version": (dict(change_meta=_newer),
                      f"format version {model_file.FORMAT_VERSION + 1} .* reads format "
                      f"versions up to {model_file.FORMAT_VERSION}"),
    "array_shape_lie": (dict(change_meta=_shape_lie), "params/enc_w"),
    "architecture_lie": (dict(change_meta=_arch_lie), "score_eps|shapes|architecture needs"),
    "nan_parameter": (dict(change_blob=_nan_parameter), "non-finite"),
    "missing_array": (dict(change_meta=lambda m: m["arrays"].pop("score_eps")), "missing"),
    "missing_blob": (dict(drop="arrays.bin"), "arrays.bin is missing"),
    "array_past_the_end": (dict(change_meta=_past_the_end), "does not fit"),
    "overlapping_arrays": (dict(change_meta=_overlap), "overlap"),
    "blob_size_lie": (dict(change_meta=lambda m: m.update(arrays_bytes=m["arrays_bytes"] + 64)),
                      "arrays.bin holds"),
    "compressed_blob": (dict(blob_compression=zipfile.ZIP_DEFLATED), "compression"),
    "big_endian": (dict(change_meta=lambda m: m["arrays"]["labels"].__setitem__(0, ">i8")),
                   "little-endian"),
    "no_meta": (dict(drop="meta.json"), "no meta.json"),
    "wrong_format": (dict(change_meta=lambda m: m.update(format="something-else")),
                     "not a pyod-odim model file"),
    "meta_edit": (dict(change_meta=lambda m: m.update(threshold=m["threshold"] + 1.0),
                       redigest=False), "does not match its 'digest'"),
    "meta_digest_dropped": (dict(change_meta=lambda m: m.pop("digest")), "has no 'digest'"),
    "old_version_keeps_its_digest": (dict(change_meta=lambda m: m.update(format_version=2),
                                          redigest=False), "does not match its 'digest'"),
    "scaled_parameters": (dict(change_blob=lambda m, b: _scale_array(m, b, "params/dec_w", 1e30)),
                          "'params/dec_w' .* outside"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_tampered_files_raise_value_error(case, saved, tmp_path):
    edit, message = BAD[case]
    bad = tmp_path / "bad.odim"
    _rewrite(saved, bad, **edit)
    with pytest.raises(ValueError, match=message):
        pyod_odim.load(bad)


def test_an_unchanged_rewrite_still_loads(saved, tmp_path, data):
    # The editing helper itself keeps a good file good, so the cases above test their edit.
    copy = tmp_path / "copy.odim"
    _rewrite(saved, copy)
    assert_array_equal(pyod_odim.load(copy).decision_function(data[1]),
                       pyod_odim.load(saved).decision_function(data[1]))


def _blob_start(path):
    """Where the bytes of ``arrays.bin`` start in the file (past its local header)."""
    with zipfile.ZipFile(path) as archive:
        at = archive.getinfo("arrays.bin").header_offset
    raw = path.read_bytes()
    name_length, extra_length = np.frombuffer(raw[at + 26:at + 30], "<u2")
    return at + 30 + int(name_length) + int(extra_length)


def test_the_default_load_catches_a_finite_flip_that_verify_false_accepts(saved, tmp_path, data):
    with zipfile.ZipFile(saved) as archive:
        meta = json.loads(archive.read("meta.json"))
    raw = bytearray(saved.read_bytes())
    # The lowest mantissa bit of a value: still finite, and the zip's CRC now disagrees.
    raw[_blob_start(saved) + _offset(meta, "feature_reference")] ^= 0x01
    bad = tmp_path / "flip.odim"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="flip.odim: arrays.bin fails its CRC-32"):
        pyod_odim.load(bad)
    assert np.isfinite(pyod_odim.load(bad, verify=False).decision_function(data[1])).all()
    assert np.isfinite(pyod_odim.load(saved).decision_function(data[1])).all()


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
        # Without the checksum a flip may change values, but it never crashes the loader.
        try:
            pyod_odim.load(bad, verify=False)
        except ValueError:
            pass


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


@pytest.mark.parametrize("version", (1, 2, 3))  # written before the rename
def test_a_stored_compile_parameter_loads_as_engine(version):
    # Files written before the parameter was renamed store it as "compile".
    with zipfile.ZipFile(model_path(version)) as archive:
        meta = json.loads(archive.read("meta.json"))
    assert "compile" in meta["params"] and "engine" not in meta["params"]
    loaded = pyod_odim.load(model_path(version))
    assert loaded.get_params()["engine"] == meta["params"]["compile"]
    assert loaded.engine_ == meta["fitted"]["compile"]
    assert "compile" not in loaded.get_params()


def test_a_new_file_stores_engine(fitted, tmp_path):
    fitted.save(tmp_path / "m.odim")
    with zipfile.ZipFile(tmp_path / "m.odim") as archive:
        meta = json.loads(archive.read("meta.json"))
    assert meta["params"]["engine"] == fitted.engine and "compile" not in meta["params"]
    assert meta["fitted"]["engine"] == fitted.engine_
