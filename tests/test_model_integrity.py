"""A damaged model never scores: damaged files are refused, damaged models score +inf, never NaN."""

import json
import zipfile

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import pyod_odim
from pyod_odim import ODIM, model_file, parameter_bounds
from model_corruption import corruption_counts
from fit_helpers import QUICK_FIT as FAST
from fit_helpers import planted_rows
from model_fixture import VERSIONS, expected_path, model_path


@pytest.fixture(scope="module")
def data():
    return planted_rows(1, 300, 7, 10, 5.0)


@pytest.fixture(scope="module")
def fitted(data):
    return ODIM(**FAST).fit(data[0])


@pytest.fixture()
def saved(fitted, tmp_path):
    path = tmp_path / "good.odim"
    fitted.save(path)
    return path


def _meta(path):
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("meta.json"))


def _repack(src, dst, change_blob):
    """Copy a model file with ``arrays.bin`` edited and every zip CRC recomputed."""
    meta = _meta(src)
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as b:
        for name in a.namelist():
            body = a.read(name)
            if name == "arrays.bin":
                body = bytearray(body)
                change_blob(meta, body)
            b.writestr(name, bytes(body))


def _scale(name, factor):
    def change(meta, blob):
        dtype, shape, at = meta["arrays"][name]
        end = at + np.dtype(dtype).itemsize * int(np.prod(shape))
        values = np.frombuffer(bytes(blob[at:end]), dtype) * np.asarray(factor, dtype)
        blob[at:end] = values.astype(dtype).tobytes()
    return change


def test_random_corruptions_are_refused_or_score_as_the_original(fitted, saved, data, tmp_path):
    counts, by_kind = corruption_counts(saved, fitted, data[1], 60, seed=0,
                                        load=pyod_odim.load, folder=tmp_path)
    assert counts["other scores"] == 0 and counts["NaN"] == 0 and counts["crashed"] == 0, by_kind
    # Every kind of damage was met, and most of it refused.
    assert all(sum(c.values()) == 15 for c in by_kind.values())
    assert counts["refused"] >= 40, by_kind
    # The damage reaches the values: without the CRC check some flips load with other scores.
    unchecked, _ = corruption_counts(saved, fitted, data[1], 60, seed=0,
                                     load=lambda p: pyod_odim.load(p, verify=False),
                                     folder=tmp_path)
    assert unchecked["other scores"] > 0 and unchecked["NaN"] == 0


@pytest.mark.parametrize("name", ["params/enc_w", "params/dec_w", "params/dec_b",
                                  "params/bn_mean", "params/bn_var", "score_eps"])
def test_values_scaled_on_purpose_are_refused_naming_the_array_and_file(name, saved, tmp_path):
    bad = tmp_path / "tampered.odim"
    _repack(saved, bad, _scale(name, 1e30))  # valid CRCs, unchanged metadata and digest
    with pytest.raises(ValueError, match=f"tampered.odim: array '{name}'.* outside"):
        pyod_odim.load(bad)


def test_a_learning_rate_claim_cannot_lift_the_ceiling(saved, tmp_path):
    meta = _meta(saved)
    meta["params"]["lr"] = 1e30
    meta["digest"] = model_file.meta_digest(meta)
    bad = tmp_path / "claims.odim"
    with zipfile.ZipFile(saved) as a, zipfile.ZipFile(bad, "w", zipfile.ZIP_STORED) as b:
        b.writestr("meta.json", json.dumps(meta))
        blob = bytearray(a.read("arrays.bin"))
        _scale("params/dec_w", 2 * parameter_bounds.MAX_PARAMETER)(meta, blob)
        b.writestr("arrays.bin", bytes(blob))
    with pytest.raises(ValueError, match="'params/dec_w'"):
        pyod_odim.load(bad)


def test_parameter_bounds_leave_room_for_training(fitted, saved):
    meta = _meta(saved)
    scorer = fitted.scorer_
    bounds = parameter_bounds.parameter_bounds(meta, scorer.architecture, scorer.likelihood,
                                         scorer.params)
    for key in ("enc_w", "dec_w"):
        for layer, (low, high) in zip(scorer.params[key], bounds[f"params/{key}"]):
            assert np.abs(layer).max() < high and low == -high
            # The initial range, 1 / sqrt(fan_in), plus what 60 updates can add.
            assert high == pytest.approx(1 / np.sqrt(layer.shape[1])
                                         + meta["fitted"]["n_updates"] * parameter_bounds.ADAM_STEP
                                         * 1e-3, rel=1e-5)
    assert parameter_bounds.ADAM_STEP == pytest.approx(7.2703, abs=1e-4)


@pytest.mark.parametrize("version", VERSIONS)
def test_committed_fixtures_load_by_default_with_the_same_scores(version):
    loaded = pyod_odim.load(model_path(version))  # CRC, digest (version 3) and ranges checked
    expected = np.load(expected_path(version), allow_pickle=False)
    np.testing.assert_allclose(loaded.decision_function(expected["query"]), expected["scores"],
                               rtol=1e-6, atol=1e-6)
    assert_array_equal(loaded.predict(expected["query"]), expected["labels"])


def _damage(model, how):
    if how == "nan_weight":
        model.scorer_.params["dec_w"][0][...] = np.nan
    elif how == "huge_weights":
        for layer in model.scorer_.params["enc_w"] + model.scorer_.params["dec_w"]:
            layer *= np.float32(1e30)
    elif how == "one_nan_member":
        model.scorer_.params["enc_w"][0][1] = np.nan
    elif how == "nan_draws":
        model.scorer_.score_eps[0, 0] = np.nan
    elif how == "negative_variance":
        for var in model.scorer_.params["bn_var"]:
            var[...] = np.float32(-1.0)  # rsqrt(var + 1e-5) of a negative number


@pytest.mark.parametrize("how", ["nan_weight", "huge_weights", "one_nan_member", "nan_draws",
                                 "negative_variance"])
def test_a_model_damaged_in_memory_never_scores_nan(how, data):
    model = ODIM(**FAST).fit(data[0])
    _damage(model, how)
    X = data[1]
    scores = model.decision_function(X)
    assert not np.isnan(scores).any()
    assert (np.isfinite(scores) | (scores == np.inf)).all()
    assert (~np.isfinite(scores)).any()  # the damage shows, as +inf
    assert_array_equal(model.predict(X)[scores == np.inf], 1)
    for method in ("linear", "unify"):
        proba = model.predict_proba(X, method=method)
        assert np.isfinite(proba).all()
        assert_array_equal(proba[scores == np.inf, 1], 1.0)
    assert not np.isnan(model.feature_contributions(X)).any()


def test_the_torchscript_export_of_a_damaged_model_scores_inf(data, tmp_path):
    torch = pytest.importorskip("torch")
    model = ODIM(**FAST).fit(data[0])
    good = model.to_torchscript(tmp_path / "good.pt")(torch.from_numpy(data[1])).numpy()
    np.testing.assert_allclose(good, model.decision_function(data[1]), rtol=1e-5, atol=1e-5)
    _damage(model, "nan_weight")
    scores = model.to_torchscript(tmp_path / "bad.pt")(torch.from_numpy(data[1])).numpy()
    assert (scores == np.inf).all()


def test_the_onnx_export_of_a_damaged_model_scores_inf(data, tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    model = ODIM(**FAST).fit(data[0])
    _damage(model, "nan_weight")
    model.to_onnx(tmp_path / "bad.onnx")
    session = ort.InferenceSession(str(tmp_path / "bad.onnx"), providers=["CPUExecutionProvider"])
    scores = session.run(None, {"x": data[1]})[0]
    assert (scores == np.inf).all()


def test_the_compiled_crc32_equals_zlibs():
    import zlib

    crc32 = pytest.importorskip("pyod_odim._crc32").crc32
    rng = np.random.RandomState(0)
    data = rng.randint(0, 256, size=5000).astype(np.uint8)
    view = memoryview(data)
    # Every length around the 16- and 64-byte folding steps, at odd offsets, chained.
    for start in (0, 1, 7):
        for length in list(range(0, 200)) + [1000, 4093]:
            piece = view[start:start + length]
            for value in (0, 1, 0xFFFFFFFF):
                assert crc32(piece, value) == zlib.crc32(piece, value)
