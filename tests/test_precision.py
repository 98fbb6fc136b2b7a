"""precision="bfloat16": bfloat16 products with float32 accumulation in training updates.

Tolerances (measured on random wide networks, docs/decisions.md):

* one update's gradients, bfloat16 against float32: up to about 8 % relative
  (Frobenius) for the encoder's first layer, whose gradient is the smallest
  difference of large terms; asserted below 15 %;
* the kernels' bfloat16 (AMX tiles) against PyTorch's bfloat16 emulation
  (the same rounded operands, products in float32): below 1 % relative, the
  engines' agreement in bfloat16 (float32: float32 rounding,
  tests/test_engines.py);
* the objective: below 1e-4 relative (the forward pass rounds only the
  products' operands).
"""

import copy
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.testing import assert_array_equal
from scipy.special import log_ndtr
from scipy.stats import norm

from pyod_odim import ODIM, defaults, engines, kernels, network
from random_network import random_parameters

needs_units = pytest.mark.skipif(not kernels.bf16_units(),
                                 reason="no AMX with AVX512-BF16 (or kernels not built)")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

D_WIDE = defaults.WIDE_FEATURES + 44


# (features, hidden, latent, members, batch, K): the wide default network, and
# widths and rows that leave partial tiles at every edge.
SHAPES = {"wide": (D_WIDE, (128, 64), 32, 3, 64, 3), "odd": (203, (100, 70), 20, 2, 37, 3),
          # 200 padded features: the log-variances start mid-tile, the last
          # block of 32 features is partial.
          "ragged": (197, (100, 70), 20, 2, 37, 3),
          # Above the kernels' 6,144 features training runs the output layer
          # with the likelihood by feature blocks.
          "very wide": (6151, (64, 32), 16, 2, 9, 2),
          # More than 256 decoder rows and 16 MB of output gradients: the
          # weight gradient goes by column blocks, both backward products
          # by one pass over the gradients; an odd row count leaves one
          # row of a 32-row block to go alone beside the pairs.
          "very wide, many rows": (6151, (64, 32), 16, 1, 121, 3)}


def _update_grads(run, likelihood, batch_norm, shape="wide", seed=0):
    """Gradients by name of one update of a random ensemble, and its objective."""
    d, hidden, latent, members, batch, k = SHAPES[shape]
    params, gen = random_parameters(network.Architecture(d, hidden, latent), likelihood,
                                    batch_norm, members, seed)
    x = torch.rand(members, batch, d, generator=gen)
    eps = torch.randn(members, k, batch, latent, generator=gen)
    live = {k: [t.clone().requires_grad_(k in network.TRAINABLE) for t in v]
            for k, v in params.items()}
    objective = run(live, x, eps)
    grads = {f"{k}{i}": t.grad.clone() for k in network.TRAINABLE for i, t in enumerate(live[k])}
    return grads, float(np.sum(objective))


def _kernel(bf16, likelihood):
    return lambda p, x, eps: kernels.train_step(p, x, eps, likelihood, bf16=bf16)


def _torch(bf16, likelihood, device="cpu"):
    def run(p, x, eps):
        q = network.Parameters(*[[t.to(device) for t in v] for v in network.as_parameters(p)])
        loss = engines._objective(x.to(device), eps.to(device), q, likelihood, None, None,
                                  1.0, 2.0, bf16)
        loss.backward()
        return loss.item()
    return run


def _relative(a, b):
    return float((a - b).norm() / b.norm())


def _compared(grads, batch_norm):
    """The gradients worth comparing: hidden biases before batch norm have none."""
    if not batch_norm:
        return grads
    return {k: v for k, v in grads.items() if k not in ("enc_b0", "enc_b1", "dec_b0", "dec_b1")}


@needs_units
@pytest.mark.parametrize("likelihood", network.LIKELIHOODS)
@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("reference, objective_tol, grad_tol, shape", [
    ("kernel float32", 1e-4, 0.15, "wide"),  # bfloat16 against float32
    ("torch bfloat16", 1e-5, 1e-2, "wide"),  # the engines' agreement in bfloat16
    ("torch bfloat16", 1e-5, 1e-2, "odd"),
    ("torch bfloat16", 1e-5, 1e-2, "ragged"),
    ("torch bfloat16", 1e-5, 1e-2, "very wide"),
    ("torch bfloat16", 1e-5, 1e-2, "very wide, many rows"),
])
def test_kernel_bf16_update(likelihood, batch_norm, reference, objective_tol, grad_tol, shape):
    run = (_kernel(False, likelihood) if reference == "kernel float32"
           else _torch(True, likelihood))
    g16, o16 = _update_grads(_kernel(True, likelihood), likelihood, batch_norm, shape)
    g_ref, o_ref = _update_grads(run, likelihood, batch_norm, shape)
    assert abs(o16 - o_ref) <= objective_tol * abs(o_ref)
    for name, g in _compared(g_ref, batch_norm).items():
        assert _relative(g16[name], g) < grad_tol, name
    # The products are not float32: something must differ.
    assert any(not torch.equal(g16[k], g_ref[k]) for k in g_ref)


@needs_units
def test_kernel_bf16_is_deterministic():
    first, _ = _update_grads(_kernel(True, "gaussian"), "gaussian", True)
    again, _ = _update_grads(_kernel(True, "gaussian"), "gaussian", True)
    for name in first:
        assert torch.equal(first[name], again[name])


def test_torch_bf16_update_near_float32():
    g16, o16 = _update_grads(_torch(True, "gaussian"), "gaussian", False)
    g32, o32 = _update_grads(_torch(False, "gaussian"), "gaussian", False)
    assert abs(o16 - o32) <= 1e-4 * abs(o32)
    for name, g in g32.items():
        assert _relative(g16[name], g) < 0.15, name


@needs_cuda
def test_cuda_bf16_update_near_float32():
    g16, _ = _update_grads(_torch(True, "gaussian", "cuda"), "gaussian", False)
    g32, _ = _update_grads(_torch(False, "gaussian", "cpu"), "gaussian", False)
    for name, g in g32.items():
        assert _relative(g16[name].cpu(), g) < 0.15, name


def _planted(n=240, d=D_WIDE, n_out=12, seed=0):
    """Rows on a low-dimensional structure in d dimensions, the first n_out far off it."""
    rng = np.random.RandomState(seed)
    X = rng.rand(n, 6) @ rng.rand(6, d) + 0.05 * rng.randn(n, d)
    X[:n_out] += rng.uniform(1.5, 3.0, size=(n_out, d)) * rng.choice([-1, 1], size=(n_out, d))
    return X


def _fit(X, **kwargs):
    params = dict(n_estimators=2, max_updates=60, min_updates=20, n_samples_iwae=10,
                  random_state=0)
    params.update(kwargs)
    return ODIM(**params).fit(X)


@pytest.mark.parametrize("precision, engine", [
    ("float32", "auto"),
    pytest.param("bfloat16", "kernel", marks=needs_units),
    ("bfloat16", "eager"),
])
def test_fit_ranks_planted_outliers_first(precision, engine):
    X = _planted()
    clf = _fit(X, precision=precision, engine=engine)
    assert clf.precision_ == precision
    top = np.argsort(-clf.decision_scores_)[:12]
    assert set(top) == set(range(12))


@needs_units
def test_bf16_fit_is_deterministic_and_differs_from_float32():
    X = _planted()
    first = _fit(X, precision="bfloat16")
    again = _fit(X, precision="bfloat16", n_jobs=2)  # results do not depend on threads
    assert_array_equal(first.decision_scores_, again.decision_scores_)
    assert_array_equal(first.decision_function(X[:50]), again.decision_function(X[:50]))
    assert not np.array_equal(first.decision_scores_,
                              _fit(X, precision="float32").decision_scores_)


@needs_units
@pytest.mark.parametrize("likelihood", network.LIKELIHOODS)
@pytest.mark.parametrize("shape", ["wide", "odd"])
def test_kernel_bf16_scoring(likelihood, shape):
    # The checks' scoring pass: against float32 and against PyTorch's
    # emulation (batch normalization folded into the weights before their
    # rounding in the kernels, applied after it in PyTorch).
    d, hidden, latent, members, _, _ = SHAPES[shape]
    params, gen = random_parameters(network.Architecture(d, hidden, latent), likelihood,
                                    True, members, 3)
    X = torch.rand(57, d, generator=gen)
    eps = torch.randn(members, 10, 1, latent, generator=gen)
    b16 = kernels.score_losses(params, X, eps, likelihood, bf16=True).numpy()
    f32 = kernels.score_losses(params, X, eps, likelihood).numpy()
    emulated = engines.TorchEngine(likelihood).score(params, X, eps, bf16=True)
    assert_array_equal(b16, kernels.score_losses(params, X, eps, likelihood, bf16=True).numpy())
    assert not np.array_equal(b16, f32)
    for reference in (f32, emulated):
        assert np.abs(b16 - reference).max() < 1e-2 * np.abs(reference).max()
        # The rows keep their order.
        for m in range(members):
            assert np.corrcoef(b16[m], reference[m])[0, 1] > 0.999


@needs_units
@pytest.mark.parametrize("likelihood", ["gaussian", "rectified"])
def test_kernel_bf16_row_scores_do_not_depend_on_their_neighbours(likelihood):
    # The output layer and the likelihood run a block of features at a
    # time over tiles of many rows: a row's score must be the same bits
    # whichever rows share its tiles, and near PyTorch's emulation.
    d, hidden, latent, members, _, _ = SHAPES["ragged"]
    params, gen = random_parameters(network.Architecture(d, hidden, latent), likelihood,
                                    False, members, 4)
    X = torch.rand(300, d, generator=gen)
    X[X < 0.5] = 0
    eps = torch.randn(members, 7, 1, latent, generator=gen)
    every = kernels.score_losses(params, X, eps, likelihood, bf16=True).numpy()
    for rows in (slice(0, 1), slice(31, 70), slice(250, 300)):
        alone = kernels.score_losses(params, X[rows], eps, likelihood, bf16=True).numpy()
        assert_array_equal(alone, every[:, rows])
    emulated = engines.TorchEngine(likelihood).score(params, X, eps, bf16=True)
    assert np.abs(every - emulated).max() < 1e-2 * np.abs(emulated).max()


@pytest.mark.skipif(not kernels.AVAILABLE, reason="C++ kernels not built")
@pytest.mark.parametrize("bf16", [False, pytest.param(True, marks=needs_units)])
def test_rectified_mass_at_zero_is_log_phi(bf16):
    # With every weight zero, each feature's share of the loss is the
    # rectified Gaussian's -log Phi(-mean / sd) at x = 0 exactly, from
    # the means in the output layer's bias: u from -30 to 12 crosses the
    # float32 chain below -24, every piece and the zeros from 8 on.
    d = D_WIDE
    arch = network.Architecture(d, (128, 64), 32)
    params = network.init_parameters(arch, 1, torch.Generator().manual_seed(0),
                                     torch.device("cpu"), "rectified", False)
    u = torch.linspace(-30.0, 12.0, d)
    with torch.no_grad():
        for t in params["enc_w"] + params["dec_w"]:
            t.zero_()
        params["dec_b"][-1][..., :d] = -u
        params["dec_b"][-1][..., d:] = 0.0  # log-variance 0: sd = 1
    eps = torch.randn(1, 4, 1, 32, generator=torch.Generator().manual_seed(1))
    shares, _ = kernels.score_contributions(params, torch.zeros(3, d), eps, "rectified",
                                            bf16=bf16)
    expected = -log_ndtr(u.double().numpy())
    error = np.abs(shares.numpy()[0] - expected) / np.maximum(1.0, expected)
    assert error.max() < 4e-7
    # The update's gradient for those biases is phi(u) / Phi(u): the
    # samples' weights add up to 1 in every row.
    for name in network.TRAINABLE:
        for t in params[name]:
            t.requires_grad_(True)
    draws = torch.randn(1, 3, 8, 32, generator=torch.Generator().manual_seed(2))
    kernels.train_step(params, torch.zeros(1, 8, d), draws, "rectified", bf16=bf16)
    ratio = np.exp(norm.logpdf(u.double().numpy()) - log_ndtr(u.double().numpy()))
    gradient = params["dec_b"][-1].grad.numpy().reshape(-1)[:d]
    assert (np.abs(gradient - ratio) / np.maximum(1.0, ratio)).max() < 1e-6


def test_normal_cdf_pieces_are_their_generators_output():
    # The header is csrc/normal_cdf_table.py's output, and its pieces,
    # evaluated in float32, stay within the script's tolerance of SciPy.
    script = Path(__file__).resolve().parent.parent / "csrc" / "normal_cdf_table.py"
    if not script.exists():
        pytest.skip("no source tree (csrc/) beside the tests")
    spec = importlib.util.spec_from_file_location("normal_cdf_table", script)
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    fitted = table.tables()
    assert Path(table.HEADER).read_text() == table.header_text(fitted)
    for name, error in table.worst_errors(fitted).items():
        assert error < table.TOLERANCE, name


def _scored_in(clf, precision, X):
    """``clf``'s scores of ``X`` with its scorer's products set to ``precision``."""
    twin = copy.deepcopy(clf)
    twin.scorer_.precision = precision
    return twin.decision_function(X)


def _near(a, b):
    """Scores within the bfloat16 tolerance: 1 % of their range, the same order."""
    assert np.abs(a - b).max() < 1e-2 * np.ptp(b)
    assert np.corrcoef(a, b)[0, 1] > 0.999


@needs_units
def test_bf16_fit_scores_its_rows_in_bf16():
    # Every row is checked with every draw (n_samples_check = n_samples_iwae),
    # so the checks' bfloat16 losses are the training scores; they are what
    # decision_function gives, and differ from float32 scoring within the
    # tolerance.
    X = _planted()
    clf = _fit(X, precision="bfloat16", engine="kernel", n_samples_check=10)
    assert clf.scorer_.precision == "bfloat16"
    assert_array_equal(clf.decision_scores_, clf.decision_function(X))
    f32 = _scored_in(clf, "float32", X)
    assert not np.array_equal(clf.decision_scores_, f32)
    _near(clf.decision_scores_, f32)


def test_bf16_scores_in_float32_without_the_units(monkeypatch):
    # PyTorch on the CPU (emulated bfloat16 checks) and a CPU without AMX
    # score a bfloat16 model in float32, within the tolerance.
    X = _planted()
    eager = _fit(X, precision="bfloat16", engine="eager", n_samples_check=10)
    assert eager.scorer_.precision == "bfloat16"
    assert_array_equal(eager.decision_scores_, eager.decision_function(X))
    assert_array_equal(eager.decision_scores_, _scored_in(eager, "float32", X))
    if not kernels.bf16_units():
        return
    clf = _fit(X, precision="bfloat16", engine="kernel")
    monkeypatch.setattr(kernels, "bf16_units", lambda: False)
    fallback = clf.decision_function(X)
    assert_array_equal(fallback, _scored_in(clf, "float32", X))
    _near(fallback, clf.decision_scores_)


@needs_units
def test_auto_is_bfloat16_for_wide_rows_only():
    assert _fit(_planted(), precision="auto").precision_ == "bfloat16"
    narrow = _planted(d=20)
    auto, f32 = _fit(narrow, precision="auto"), _fit(narrow, precision="float32")
    assert auto.precision_ == "float32"
    assert_array_equal(auto.decision_scores_, f32.decision_scores_)


def test_auto_falls_back_to_float32_without_the_units(monkeypatch):
    monkeypatch.setattr(kernels, "bf16_units", lambda: False)
    X = _planted()
    auto = _fit(X, precision="auto")
    assert auto.precision_ == "float32"
    assert_array_equal(auto.decision_scores_, _fit(X, precision="float32").decision_scores_)
    if kernels.AVAILABLE:
        with pytest.warns(RuntimeWarning, match="bfloat16"):
            asked = _fit(X, precision="bfloat16", engine="kernel")
        assert asked.precision_ == "float32"


def test_resolve_precision_rules(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(kernels, "bf16_units", lambda: True)
    wide, narrow = defaults.WIDE_FEATURES + 1, defaults.WIDE_FEATURES
    assert defaults.resolve_precision("auto", "kernel", cpu, wide) == "bfloat16"
    assert defaults.resolve_precision("auto", "kernel", cpu, narrow) == "float32"
    assert defaults.resolve_precision("auto", "eager", cpu, wide) == "float32"
    assert defaults.resolve_precision("bfloat16", "eager", cpu, narrow) == "bfloat16"
    assert defaults.resolve_precision("float32", "kernel", cpu, wide) == "float32"


def test_bad_precision_is_a_clear_error():
    with pytest.raises(ValueError, match="precision"):
        ODIM(precision="float16").fit(np.random.rand(20, 3))


def test_saved_model_keeps_precision(tmp_path):
    clf = _fit(_planted(d=20), precision="float32")
    arrays, fields = clf._get_fitted_state()
    assert fields["fitted"]["precision"] == "float32"
    fields["fitted"]["precision"] = "bfloat16"
    assert ODIM._from_fitted_state(fields, arrays).precision_ == "bfloat16"
    del fields["fitted"]["precision"]  # a file from before the parameter
    assert ODIM._from_fitted_state(fields, arrays).precision_ == "float32"
    path = tmp_path / "model.odim"
    clf.save(str(path))
    import pyod_odim

    assert pyod_odim.load(str(path)).precision_ == "float32"


@needs_units
def test_saved_bf16_model_scores_as_before(tmp_path):
    import pyod_odim

    X = _planted()
    clf = _fit(X, precision="bfloat16")
    path = tmp_path / "model.odim"
    clf.save(str(path))
    loaded = pyod_odim.load(str(path))
    assert loaded.scorer_.precision == "bfloat16"
    assert_array_equal(loaded.decision_function(X), clf.decision_scores_)
    arrays, fields = clf._get_fitted_state()
    assert fields["precision"] == "bfloat16"
    del fields["precision"]  # a file from before scoring followed precision_
    assert ODIM._from_fitted_state(fields, arrays).scorer_.precision == "float32"
    fields["precision"] = "float16"
    with pytest.raises(ValueError, match="precision"):
        ODIM._from_fitted_state(fields, arrays)


@needs_units
def test_bf16_model_exports_full_precision_scores(tmp_path):
    # The exports compute in full precision: float32 scoring's scores, and
    # the bfloat16 model's own within the tolerance.
    X = _planted()
    clf = _fit(X, precision="bfloat16", score_stage="paper")
    module = clf.to_torchscript(tmp_path / "m.pt")
    exported = module(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(exported, _scored_in(clf, "float32", X), rtol=1e-5)
    _near(exported, clf.decision_function(X))


@needs_units
def test_bf16_contributions_add_up_to_the_bf16_scores():
    # The split follows the scores' products: against float32 contributions
    # the sums would be off by the bfloat16 tolerance, not float rounding.
    X = _planted()
    clf = _fit(X, precision="bfloat16", score_stage="paper")
    new = X[:40] * 1.5
    c = clf.feature_contributions(new)
    _, rest = clf.scorer_.contributions(new)
    total = c.sum(axis=1) + clf.scorer_.feature_reference.sum() + rest
    np.testing.assert_allclose(total, clf.decision_function(new), rtol=1e-5, atol=1e-4)
    f32 = _scored_in(clf, "float32", new)
    assert np.abs(total - f32).max() > 1e-3 * np.ptp(f32)
