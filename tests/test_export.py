"""TorchScript and ONNX exports score as decision_function does."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from pyod_odim import ODIM

FAST = dict(n_estimators=3, n_samples_iwae=16, patience=2, check_every=5, max_updates=60,
            min_updates=0, random_state=0)
# Scores of order 1 and below are compared absolutely: float32 rounding of
# the terms of a likelihood near zero is not small relative to the sum.
RTOL = 1e-5


def assert_parity(got, expected, rtol=RTOL):
    err = np.abs(got - expected) / np.maximum(np.abs(expected), 1.0)
    assert err.max() <= rtol, f"max relative error {err.max():.2e}"


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(1)
    X = rng.randn(500, 7) * [1, 2, 3, 4, 5, 6, 100]
    X[:25] += 8.0
    return X, rng.randn(80, 7) * 3


@pytest.fixture(scope="module", params=["mean", "standardized", "bernoulli", "no_bn",
                                        "rectified"])
def fitted(request, data):
    X, new = data
    params = dict(FAST)
    if request.param == "standardized":
        params["combination"] = "standardized"
    elif request.param == "bernoulli":
        params["likelihood"] = "bernoulli"
        X, new = (X > 0).astype(float), (new > 0).astype(float)
    elif request.param == "rectified":
        # Sparse non-negative rows, new rows with values below and above
        # the training range.
        X, new = np.maximum(X, 0.0), np.maximum(new, -1.0)
        clf = ODIM(likelihood="rectified", **params).fit(X)
        assert clf.likelihood_ == "rectified"
        return clf, np.vstack([X, new])
    elif request.param == "no_bn":
        params["batch_norm"] = False
    return ODIM(**params).fit(X), np.vstack([X, new])


def test_torchscript_matches_decision_function(fitted, tmp_path):
    clf, X = fitted
    clf.to_torchscript(tmp_path / "m.pt")
    module = torch.jit.load(str(tmp_path / "m.pt"))
    for dtype in (np.float64, np.float32):
        rows = X.astype(dtype)
        got = module(torch.from_numpy(rows)).numpy()
        assert got.dtype == np.float64 and got.shape == (len(X),)
        assert_parity(got, clf.decision_function(rows))
    # In float32 it runs the eager engine's PyTorch functions: equal to the bit.
    clf.to_torchscript(tmp_path / "m32.pt", precision="float32")
    single = torch.jit.load(str(tmp_path / "m32.pt"))
    eager = ODIM(**dict(clf.get_params(), engine="eager"))
    eager.scorer_ = clf.scorer_
    # Rows with an overshoot cost differ in the float64 sum's rounding only; the
    # neighbour stage's distances (a product against a tree search) in the last bits.
    inside = clf.scorer_.scale_with_cost(X)[1] == 0
    got32, want32 = single(torch.from_numpy(X)).numpy(), eager._score_samples(X)
    if clf.scorer_.stage is None:
        np.testing.assert_array_equal(got32[inside], want32[inside])
    np.testing.assert_allclose(got32, want32, rtol=1e-13, atol=0 if clf.scorer_.stage is None else 1e-11)
    assert_parity(single(torch.from_numpy(X)).numpy(), clf.decision_function(X), rtol=1e-4)
    with pytest.raises(ValueError, match="precision"):
        clf.to_torchscript(tmp_path / "bad.pt", precision="float16")


def test_torchscript_scores_in_chunks(data, tmp_path):
    X, _ = data
    clf = ODIM(**FAST).fit(X)
    module = clf.to_torchscript(tmp_path / "m.pt", chunk_rows=64)  # many chunks
    big = np.vstack([X] * 3)
    assert_parity(module(torch.from_numpy(big)).numpy(), clf.decision_function(big))


def test_onnx_matches_decision_function(fitted, tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    clf, X = fitted
    clf.to_onnx(tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    for rows in (X, X[:1], X[:37]):
        got = session.run(None, {"x": rows.astype(np.float64)})[0]
        assert got.shape == (len(rows),)
        assert_parity(got, clf.decision_function(rows))


def test_torchscript_runs_without_pyod_odim(data, tmp_path):
    X, _ = data
    clf = ODIM(**FAST).fit(X)
    clf.to_torchscript(tmp_path / "m.pt")
    np.save(tmp_path / "rows.npy", X[:40])
    script = textwrap.dedent(f"""
        import sys
        sys.modules["pyod_odim"] = None      # importing it now fails
        try:
            import pyod_odim  # noqa: F401
        except ImportError:
            pass
        else:
            raise SystemExit("pyod_odim importable")
        import numpy as np, torch
        module = torch.jit.load({str(tmp_path / 'm.pt')!r})
        scores = module(torch.from_numpy(np.load({str(tmp_path / 'rows.npy')!r}))).numpy()
        np.save({str(tmp_path / 'out.npy')!r}, scores)
        print("pyod_odim" in sys.modules and sys.modules["pyod_odim"] is not None)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
    assert_parity(np.load(tmp_path / "out.npy"), clf.decision_function(X[:40]))


def test_neighbour_blend_is_refused_with_a_reason(data, tmp_path):
    X, _ = data
    y = np.zeros(len(X), dtype=int)
    y[:10] = 1
    clf = ODIM(**dict(FAST, use_labels=True)).fit(X, y)
    for export in (clf.to_torchscript, clf.to_onnx):
        with pytest.raises(ValueError, match="neighbour ratio.*neighbor_weight=0"):
            export(tmp_path / "m.out")
    # Without the blend the semi-supervised likelihood exports.
    plain = ODIM(**dict(FAST, use_labels=True, neighbor_weight=0.0)).fit(X, y)
    module = plain.to_torchscript(tmp_path / "m.pt")
    assert_parity(module(torch.from_numpy(X)).numpy(), plain.decision_function(X))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_torchscript_on_cuda(data, tmp_path):
    X, _ = data
    clf = ODIM(**dict(FAST, device="cpu")).fit(X)
    clf.to_torchscript(tmp_path / "m.pt")
    module = torch.jit.load(str(tmp_path / "m.pt"), map_location="cuda")
    got = module(torch.from_numpy(X).cuda()).cpu().numpy()
    assert_parity(got, clf.decision_function(X), rtol=1e-4)


@pytest.mark.parametrize("value", [1e300, -1e300, 1e30])
def test_exports_score_extreme_rows_as_decision_function(data, tmp_path, value):
    X, _ = data
    clf = ODIM(**FAST).fit(X)
    rows = X[:4].copy()
    rows[:, 2] = value
    expected = clf.decision_function(rows)
    assert np.isfinite(expected).all()
    module = clf.to_torchscript(tmp_path / "m.pt")
    assert_parity(module(torch.from_numpy(rows)).numpy(), expected)
    ort = pytest.importorskip("onnxruntime")
    clf.to_onnx(tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert_parity(session.run(None, {"x": rows})[0], expected)
