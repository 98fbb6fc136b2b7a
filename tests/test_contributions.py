"""Per-feature contributions of a row's score: the fused kernel pass against
PyTorch's ``network.feature_nll``, the identity that splits the loss, and a
planted outlying feature that the contributions point to."""

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal

from pyod_odim import ODIM, chunking, engines, kernels, network
from random_network import random_parameters

needs_kernels = pytest.mark.skipif(not kernels.AVAILABLE, reason="C++ kernels not built")

# (features, hidden, latent, likelihood, batch_norm, members, K). d = 130 at
# K = 50 and d = 9 at K = 200 make the kernel decode the draws in several
# tiles, which exercises the rescaling of its running sums.
CASES = [
    (9, (32, 16), 8, "gaussian", True, 3, 50),
    (21, (32,), 4, "gaussian", False, 2, 7),
    (5, (16, 8), 2, "bernoulli", True, 3, 3),
    (12, (16,), 4, "bernoulli", False, 1, 11),
    (37, (32, 16), 8, "gaussian", True, 4, 1),
    (130, (128, 64), 32, "gaussian", True, 2, 50),
    (9, (32, 16), 8, "bernoulli", False, 2, 200),
    (21, (32, 16), 8, "rectified", True, 3, 50),
    (130, (128, 64), 32, "rectified", False, 2, 60),
]


def _network(d, hidden, latent, likelihood, batch_norm, members, seed=3):
    return random_parameters(network.Architecture(d, hidden, latent), likelihood,
                             batch_norm, members, seed)


def _inputs(d, latent, likelihood, members, k, generator, n=53):
    x = torch.rand((n, d), generator=generator)
    if likelihood == "bernoulli":
        x = (x > 0.5).float()
    elif likelihood == "rectified":
        x = torch.clamp(2.0 * x - 1.0, min=0.0)
    eps = torch.randn((members, k, 1, latent), generator=generator)
    return x, eps


def _case(case):
    d, hidden, latent, likelihood, batch_norm, members, k = case
    params, gen = _network(d, hidden, latent, likelihood, batch_norm, members)
    x, eps = _inputs(d, latent, likelihood, members, k, gen)
    return params, x, eps, likelihood


def _engines(likelihood):
    out = [engines.TorchEngine(likelihood)]
    if kernels.AVAILABLE:
        out.append(engines.KernelEngine(likelihood))
    return out


def _assert_loss_split(c, r, losses):
    """c.sum(-1) + r equals the loss up to float32 rounding of the terms."""
    magnitude = np.abs(c).sum(-1) + np.abs(r) + np.abs(losses)
    gap = np.abs(c.sum(-1) + r - losses)
    assert np.all(gap <= 1e-5 * magnitude + 1e-5), gap.max()


@needs_kernels
@pytest.mark.parametrize("case", CASES)
def test_kernel_matches_pytorch(case):
    params, x, eps, likelihood = _case(case)
    members, n, d = eps.shape[0], x.shape[0], x.shape[1]
    c_ref, r_ref = engines.TorchEngine(likelihood).contributions(params, x, eps)
    c, r = kernels.score_contributions(params, x, eps, likelihood)
    assert c.shape == (members, n, d) and c.dtype == torch.float32
    assert r.shape == (members, n) and r.dtype == torch.float64
    c_eng, r_eng = engines.KernelEngine(likelihood).contributions(params, x, eps)
    assert c_eng.dtype == np.float64 and r_eng.dtype == np.float64
    assert_array_equal(c_eng, c.numpy())
    assert_array_equal(r_eng, r.numpy())
    # 1e-4 relative, with an absolute floor at that fraction of the
    # largest value for entries that nearly cancel.
    assert_allclose(c_eng, c_ref, rtol=1e-4, atol=1e-4 * np.abs(c_ref).max())
    assert_allclose(r_eng, r_ref, rtol=1e-4, atol=1e-4 * np.abs(r_ref).max())


@pytest.mark.parametrize("case", CASES[:4] + CASES[5:6] + CASES[7:])
def test_contributions_add_up_to_the_score(case):
    params, x, eps, likelihood = _case(case)
    for engine in _engines(likelihood):
        c, r = engine.contributions(params, x, eps)
        assert c.shape == (eps.shape[0],) + tuple(x.shape)
        _assert_loss_split(c, r, engine.score(params, x, eps))


def test_formula_by_hand():
    """c and r from single draws, weighted by hand, in double precision.

    With one draw, w~ = 1 and H = log K = 0, so feature_nll returns that
    draw's per-feature NLL and r = log q(z|x) - log p(z); the K draws'
    values, weighted by softmax(log w), must give the K-draw result.
    """
    params, x, eps, likelihood = _case(CASES[1])
    p = network.Parameters(*([t.double() for t in v] for v in network.as_parameters(params)))
    x, eps = x.double(), eps.double()
    n_samples = eps.shape[1]
    c, r = network.feature_nll(x, eps, p, likelihood)
    log_w = network.log_importance_weights(x, eps, p, False, likelihood)
    assert_allclose((c.sum(-1) + r).numpy(), network.iwae_loss(log_w).numpy(),
                    rtol=1e-12, atol=1e-10)
    single = [network.feature_nll(x, eps[:, k:k + 1], p, likelihood)
              for k in range(n_samples)]
    nll = torch.stack([s[0] for s in single], dim=1)            # (M, K, B, d)
    latent_ratio = -torch.stack([s[1] for s in single], dim=1)  # (M, K, B)
    assert_allclose((latent_ratio - nll.sum(-1)).numpy(), log_w.numpy(), rtol=1e-12, atol=1e-10)
    w = torch.softmax(log_w, dim=1)
    entropy = -(w * torch.log(w)).sum(1)
    assert_allclose(c.numpy(), (w.unsqueeze(-1) * nll).sum(1).numpy(), rtol=1e-12, atol=1e-12)
    expected_r = -(w * latent_ratio).sum(1) - entropy + np.log(n_samples)
    assert_allclose(r.numpy(), expected_r.numpy(), rtol=1e-12, atol=1e-10)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_feature_nll_compiles_with_torchscript():
    params, x, eps, likelihood = _case(CASES[2])
    p = network.as_parameters(params)
    scripted = torch.jit.script(network.feature_nll)
    c, r = scripted(x, eps, p, likelihood)
    c_ref, r_ref = network.feature_nll(x, eps, p, likelihood)
    assert_allclose(c.numpy(), c_ref.numpy(), rtol=1e-6, atol=1e-6)
    assert_allclose(r.numpy(), r_ref.numpy(), rtol=1e-6, atol=1e-6)


@needs_kernels
def test_kernel_is_deterministic_across_calls_threads_and_builds():
    params, x, eps, likelihood = _case(CASES[5])
    c1, r1 = kernels.score_contributions(params, x, eps, likelihood, n_threads=1)
    c2, r2 = kernels.score_contributions(params, x, eps, likelihood, n_threads=1)
    c3, r3 = kernels.score_contributions(params, x, eps, likelihood, n_threads=2)
    assert_array_equal(c1.numpy(), c2.numpy())
    assert_array_equal(r1.numpy(), r2.numpy())
    assert_array_equal(c1.numpy(), c3.numpy())
    assert_array_equal(r1.numpy(), r3.numpy())
    try:
        kernels._ext.allow_avx2(False)
        c4, r4 = kernels.score_contributions(params, x, eps, likelihood)
    finally:
        kernels._ext.allow_avx2(True)
    assert_allclose(c4.numpy(), c1.numpy(), rtol=1e-5, atol=1e-5)
    assert_allclose(r4.numpy(), r1.numpy(), rtol=1e-5, atol=1e-5)


def test_pytorch_is_deterministic():
    params, x, eps, likelihood = _case(CASES[0])
    engine = engines.TorchEngine(likelihood)
    c1, r1 = engine.contributions(params, x, eps)
    c2, r2 = engine.contributions(params, x, eps)
    assert_array_equal(c1, c2)
    assert_array_equal(r1, r2)


@pytest.mark.parametrize("case", [CASES[0], CASES[2], CASES[5]])
def test_a_row_does_not_depend_on_the_other_rows(case):
    params, x, eps, likelihood = _case(case)
    order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))
    picks = [0, 7, 52]
    for engine in _engines(likelihood):
        c, r = engine.contributions(params, x, eps)
        c_perm, r_perm = engine.contributions(params, x[order], eps)
        c_few, r_few = engine.contributions(params, x[picks], eps)
        if engine.name == "kernel":  # fixed arithmetic per row: bit for bit
            assert_array_equal(c_perm, c[:, order.numpy()])
            assert_array_equal(r_perm, r[:, order.numpy()])
            assert_array_equal(c_few, c[:, picks])
            assert_array_equal(r_few, r[:, picks])
        else:
            assert_allclose(c_perm, c[:, order.numpy()], rtol=1e-5, atol=1e-6)
            assert_allclose(r_perm, r[:, order.numpy()], rtol=1e-5, atol=1e-5)
            assert_allclose(c_few, c[:, picks], rtol=1e-5, atol=1e-6)
            assert_allclose(r_few, r[:, picks], rtol=1e-5, atol=1e-5)


def test_pytorch_chunks_agree_with_one_pass(monkeypatch):
    params, x, eps, likelihood = _case(CASES[0])
    engine = engines.TorchEngine(likelihood)
    c, r = engine.contributions(params, x, eps)
    monkeypatch.setattr(chunking, "activation_chunk_rows", lambda *args: 10)
    c_chunked, r_chunked = engine.contributions(params, x, eps)
    assert_allclose(c_chunked, c, rtol=1e-5, atol=1e-6)
    assert_allclose(r_chunked, r, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def fitted():
    """A tiny ODIM on correlated Gaussian data, its parameters and draws."""
    rng = np.random.default_rng(0)
    d = 6
    a = rng.normal(size=(d, d))
    cov = a @ a.T / d + 0.5 * np.eye(d)
    X = rng.multivariate_normal(np.zeros(d), cov, size=400)
    clf = ODIM(n_estimators=2, patience=2, check_every=5, max_updates=100, min_updates=0,
               random_state=0).fit(X)
    params = network.params_from_numpy(clf.scorer_.params, torch.device("cpu"))
    eps = torch.as_tensor(clf.scorer_.score_eps)
    return clf, X, params, eps


def _scaled(clf, X):
    return torch.as_tensor(clf.scorer_.scaling.transform(X), dtype=torch.float32)


def test_planted_feature_has_the_largest_contribution(fitted):
    clf, X, params, eps = fitted
    sd = X.std(axis=0)
    for engine in _engines(clf.likelihood_):
        c_train, r_train = engine.contributions(params, _scaled(clf, X), eps)
        _assert_loss_split(c_train, r_train, engine.score(params, _scaled(clf, X), eps))
        # Mean over members, as the score combines them, against what each
        # feature costs a typical training row.
        baseline = np.median(c_train.mean(axis=0), axis=0)
        for j in range(X.shape[1]):
            rows = X[:10].copy()
            rows[:, j] += 6.0 * sd[j]
            c, _ = engine.contributions(params, _scaled(clf, rows), eps)
            excess = c.mean(axis=0) - baseline
            assert_array_equal(excess.argmax(axis=1), j)
