"""The fused C++ kernels against the PyTorch network they replace."""

import time

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal

from pyod_odim import engines, kernels, network
from random_network import random_parameters

pytestmark = pytest.mark.skipif(not kernels.AVAILABLE, reason="C++ kernels not built")

# (features, likelihood, batch_norm, K): narrow and wide networks, every
# likelihood, widths that are and are not multiples of the pack width.
CASES = [
    (9, "gaussian", True, 50),
    (21, "gaussian", False, 7),
    (5, "bernoulli", True, 3),
    (37, "gaussian", True, 5),
    (130, "gaussian", True, 10),
    (3, "gaussian", False, 1),
    (9, "rectified", True, 50),
    (37, "rectified", False, 5),
    (130, "rectified", True, 10),
]


def _network(d, likelihood, batch_norm, members=3, seed=1):
    hidden, latent = network.default_architecture(d)
    params, generator = random_parameters(network.Architecture(d, hidden, latent),
                                          likelihood, batch_norm, members, seed)
    return params, latent, generator


def _rows(shape, likelihood, generator):
    x = torch.rand(shape, generator=generator)
    if likelihood == "bernoulli":
        return (x > 0.5).float()
    if likelihood == "rectified":
        # About half exact zeros, as pooled post-ReLU features have.
        return torch.clamp(2.0 * x - 1.0, min=0.0)
    return x


def _torch_losses(params, X, eps, likelihood):
    log_w = network.log_importance_weights(X, eps, network.as_parameters(params), False,
                                           likelihood)
    return network.iwae_loss(log_w).double().numpy()


@pytest.mark.parametrize("d, likelihood, batch_norm, k", CASES)
def test_scores_match_pytorch(d, likelihood, batch_norm, k):
    params, latent, gen = _network(d, likelihood, batch_norm)
    X = _rows((53, d), likelihood, gen)
    eps = torch.randn((3, k, 1, latent), generator=gen)
    expected = _torch_losses(params, X, eps, likelihood)
    got = kernels.score_losses(params, X, eps, likelihood).numpy()
    assert got.shape == (3, 53) and got.dtype == np.float64
    assert_allclose(got, expected, rtol=2e-5, atol=1e-5)


def _torch_gradients(params, batch, labeled, likelihood, weight, order):
    p = {k: [t.clone().requires_grad_(k in network.TRAINABLE) for t in v]
         for k, v in params.items()}
    x_lab, eps_lab = labeled if labeled is not None else (None, None)

    def objective(q, m):
        return engines._objective(
            batch[0][m], batch[1][m], network.as_parameters(q), likelihood,
            None if x_lab is None else x_lab[m], None if eps_lab is None else eps_lab[m],
            weight, order,
        )

    everyone = slice(None)
    objective(p, everyone).backward()
    # Each member's own objective, on copies of the running statistics.
    per_member = []
    with torch.no_grad():
        for m in range(batch[0].shape[0]):
            q = {k: [t.detach()[m:m + 1].clone() for t in v] for k, v in params.items()}
            per_member.append(float(objective(q, slice(m, m + 1))))
    return p, np.array(per_member)


@pytest.mark.parametrize("with_labels", [False, True])
@pytest.mark.parametrize("d, likelihood, batch_norm, k", CASES)
def test_training_step_matches_autograd(d, likelihood, batch_norm, k, with_labels):
    params, latent, gen = _network(d, likelihood, batch_norm)
    batch = (_rows((3, 17, d), likelihood, gen), torch.randn((3, k, 17, latent), generator=gen))
    labeled = None
    if with_labels:
        labeled = (_rows((3, 4, d), likelihood, gen), torch.randn((3, k, 4, latent), generator=gen))
    reference, expected = _torch_gradients(params, batch, labeled, likelihood, 0.7, 2.0)

    mine = {k: [t.clone() for t in v] for k, v in params.items()}
    objectives = kernels.train_step(mine, batch[0], batch[1], likelihood, labeled, 0.7, 2.0)
    assert_allclose(objectives, expected, rtol=1e-5, atol=1e-5)
    # Batch normalization's running statistics move exactly as PyTorch's.
    for got, want in zip(mine["bn_mean"] + mine["bn_var"],
                         reference["bn_mean"] + reference["bn_var"]):
        assert_allclose(got.numpy(), want.detach().numpy(), rtol=1e-5, atol=1e-6)
    grads = [t.grad for key in network.TRAINABLE for t in mine[key]]
    want = [t.grad for key in network.TRAINABLE for t in reference[key]]
    scale = max(float(w.abs().max()) for w in want)
    for g, w in zip(grads, want):
        # Biases in front of a batch normalization have a true gradient of
        # zero (only rounding noise on both sides), hence the absolute part.
        assert_allclose(g.numpy(), w.numpy(), rtol=1e-3, atol=1e-5 * scale)


def test_results_do_not_depend_on_threads():
    params, latent, gen = _network(21, "gaussian", True, members=5)
    X = torch.rand((301, 21), generator=gen)
    eps = torch.randn((5, 50, 1, latent), generator=gen)
    one = kernels.score_losses(params, X, eps, "gaussian", n_threads=1).numpy()
    assert_array_equal(kernels.score_losses(params, X, eps, "gaussian", n_threads=3).numpy(), one)
    # A row's score does not depend on the rows scored with it.
    assert_array_equal(kernels.score_losses(params, X[7:11], eps, "gaussian").numpy(), one[:, 7:11])

    batch = (torch.rand((5, 64, 21), generator=gen), torch.randn((5, 4, 64, latent), generator=gen))
    runs = []
    for threads in (1, 2, 4):
        p = {k: [t.clone() for t in v] for k, v in params.items()}
        kernels.train_step(p, *batch, "gaussian", n_threads=threads)
        runs.append([t.grad.numpy().copy() for t in network.flat_parameters(p)])
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            assert_array_equal(a, b)


@pytest.mark.parametrize("bf16", [False, True])
@pytest.mark.parametrize("with_labels", [False, True])
def test_training_step_does_not_read_stale_memory(bf16, with_labels):
    # The kernels' scratch and gradient blocks are not zeroed: each update
    # writes them before reading them. Another update of different shapes in
    # between leaves other values in the memory that a second run reuses.
    if bf16 and not kernels.bf16_units():
        pytest.skip("no AMX with AVX512-BF16")
    params, latent, gen = _network(37, "rectified", True)
    batch = (_rows((3, 17, 37), "rectified", gen), torch.randn((3, 5, 17, latent), generator=gen))
    labeled = None
    if with_labels:
        labeled = (_rows((3, 4, 37), "rectified", gen),
                   torch.randn((3, 5, 4, latent), generator=gen))
    other, other_latent, other_gen = _network(130, "gaussian", True, seed=4)
    other_batch = (torch.rand((3, 70, 130), generator=other_gen),
                   torch.randn((3, 6, 70, other_latent), generator=other_gen))

    def update():
        p = {k: [t.clone() for t in v] for k, v in params.items()}
        objectives = kernels.train_step(p, *batch, "rectified", labeled, bf16=bf16)
        return objectives, [t.grad.numpy().copy() for t in network.flat_parameters(p)]

    first = update()
    kernels.train_step({k: [t.clone() for t in v] for k, v in other.items()}, *other_batch,
                       "gaussian", bf16=bf16)
    again = update()
    # Updates keep their scratch between calls; freed, it comes back fresh.
    kernels.release_scratch()
    third = update()
    for run in (again, third):
        assert_array_equal(first[0], run[0])
        for a, b in zip(first[1], run[1]):
            assert_array_equal(a, b)


@pytest.mark.skipif(not kernels.bf16_units(), reason="no AMX with AVX512-BF16")
def test_product_clock_times_only_the_bfloat16_products():
    # The benchmarks' product clock: a share of a bfloat16 update, nothing
    # for float32 products or outside the call, and no bit changed.
    params, latent, gen = _network(300, "rectified", True)
    batch = (_rows((3, 40, 300), "rectified", gen), torch.randn((3, 5, 40, latent), generator=gen))

    def update(bf16):
        p = {k: [t.clone() for t in v] for k, v in params.items()}
        objectives = kernels.train_step(p, *batch, "rectified", bf16=bf16)
        return [objectives] + [t.grad.numpy().copy() for t in network.flat_parameters(p)]

    plain = update(True)
    timed = []
    started = time.perf_counter()
    seconds = kernels.product_seconds(lambda: timed.extend(update(True)))
    wall = time.perf_counter() - started
    assert 0.0 < seconds < wall
    for a, b in zip(plain, timed):
        assert_array_equal(a, b)
    assert kernels.product_seconds(lambda: update(False)) == 0.0
    update(True)  # with the clock stopped
    assert kernels.product_seconds(lambda: None) == 0.0


@pytest.mark.skipif(not kernels.bf16_units(), reason="no AMX with AVX512-BF16")
@pytest.mark.parametrize("m, k, n", [(64, 128, 1024), (37, 45, 70), (1, 1, 1), (300, 17, 33)])
def test_bf16_matmul_against_float32(m, k, n):
    gen = torch.Generator().manual_seed(m + k + n)
    a = torch.randn((m, k), generator=gen)
    b = torch.randn((k, n), generator=gen)
    got = kernels.bf16_matmul(a.numpy(), b.numpy())
    # The same rounded operands multiplied in float32: only the order of the
    # float32 sums differs.
    rounded = (a.bfloat16().float() @ b.bfloat16().float()).numpy()
    scale = float(np.abs(a.numpy()).max() * np.abs(b.numpy()).max() * k)
    assert_allclose(got, rounded, rtol=0, atol=1e-6 * scale)
    # Against float32 operands, bfloat16's 8-bit significands show.
    exact = (a @ b).numpy()
    assert np.abs(got - exact).max() <= 2 ** -7 * scale
    if k > 1:
        assert not np.array_equal(got, exact)


def test_bad_shapes_raise_value_error():
    params, latent, gen = _network(9, "gaussian", True)
    eps = torch.randn((3, 5, 1, latent), generator=gen)
    with pytest.raises(ValueError, match="n_features"):
        kernels.score_losses(params, torch.rand((4, 8)), eps, "gaussian")
    with pytest.raises(ValueError, match="eps"):
        kernels.score_losses(params, torch.rand((4, 9)), torch.randn((2, 5, 1, latent)),
                             "gaussian")
    with pytest.raises(ValueError, match="noise"):
        kernels.train_step(params, torch.rand((3, 8, 9)), torch.randn((3, 5, 7, latent)),
                           "gaussian")
    with pytest.raises(ValueError, match="float32"):
        kernels.score_losses(params, torch.rand((4, 9), dtype=torch.float64), eps, "gaussian")
    # The likelihood is told, not guessed: a Gaussian decoder is no Bernoulli one.
    with pytest.raises(ValueError, match="likelihood"):
        kernels.score_losses(params, torch.rand((4, 9)), eps, "bernoulli")
    with pytest.raises(ValueError, match="likelihood"):
        kernels.score_losses(params, torch.rand((4, 9)), eps, "poisson")
    # Parameters whose shapes do not chain, or of the wrong dtype.
    bad = dict(params, dec_w=params["dec_w"][:-1] + [params["dec_w"][-1][:, 1:].contiguous()])
    with pytest.raises(ValueError, match="decoder weight"):
        kernels.score_losses(bad, torch.rand((4, 9)), eps, "gaussian")
    bad = dict(params, bn_var=[t.double() for t in params["bn_var"]])
    with pytest.raises(ValueError, match="bn_var.*float32"):
        kernels.score_losses(bad, torch.rand((4, 9)), eps, "gaussian")


def test_supports():
    arch = network.Architecture(4, (8, 4), 2)
    assert kernels.supports(arch, torch.device("cpu"))
    assert not kernels.supports(arch, torch.device("cuda"))
    deep = network.Architecture(4, (8,) * (kernels.MAX_HIDDEN_LAYERS + 1), 2)
    assert not kernels.supports(deep, torch.device("cpu"))


@pytest.mark.skipif(kernels.ISA == "generic", reason="only one build of the hot loops here")
@pytest.mark.parametrize("likelihood", ["gaussian", "rectified"])
def test_instruction_set_builds_agree(likelihood):
    from pyod_odim import _iwae

    params, latent, gen = _network(21, likelihood, True)
    X = _rows((40, 21), likelihood, gen)
    eps = torch.randn((3, 50, 1, latent), generator=gen)
    batch = (_rows((3, 32, 21), likelihood, gen),
             torch.randn((3, 5, 32, latent), generator=gen))
    runs = []
    for allowed in (True, False):
        _iwae.allow_avx2(allowed)
        try:
            p = {k: [t.clone() for t in v] for k, v in params.items()}
            kernels.train_step(p, *batch, likelihood)
            runs.append((kernels.score_losses(params, X, eps, likelihood).numpy(),
                         [t.grad.numpy().copy() for t in network.flat_parameters(p)]))
        finally:
            _iwae.allow_avx2(True)
    assert_allclose(runs[0][0], runs[1][0], rtol=1e-5)
    scale = max(np.abs(g).max() for g in runs[1][1])
    for fast, generic in zip(runs[0][1], runs[1][1]):
        assert_allclose(fast, generic, rtol=1e-3, atol=1e-5 * scale)


@pytest.mark.skipif(kernels.ISA != "avx512+amx", reason="no AVX-512 build on this CPU")
@pytest.mark.parametrize("likelihood", network.LIKELIHOODS)
@pytest.mark.parametrize("d", [21, 130, 515])
def test_avx512_build_gives_the_avx2_bits(likelihood, d):
    # Widths below, at and beyond the 16-float packs, with a ragged end.
    from pyod_odim import _iwae

    params, latent, gen = _network(d, likelihood, True)
    X = _rows((40, d), likelihood, gen)
    eps = torch.randn((3, 20, 1, latent), generator=gen)
    batch = (_rows((3, 32, d), likelihood, gen), torch.randn((3, 5, 32, latent), generator=gen))
    labeled = (_rows((3, 6, d), likelihood, gen), torch.randn((3, 5, 6, latent), generator=gen))
    runs = []
    for allowed in (True, False):
        _iwae.allow_avx512(allowed)
        try:
            p = {k: [t.clone() for t in v] for k, v in params.items()}
            objectives = kernels.train_step(p, *batch, likelihood, labeled)
            c, r = kernels.score_contributions(params, X, eps, likelihood)
            runs.append([kernels.score_losses(params, X, eps, likelihood).numpy(), c.numpy(),
                         r.numpy(), objectives] + [t.grad.numpy().copy()
                                                   for t in network.flat_parameters(p)])
        finally:
            _iwae.allow_avx512(True)
    for fast, reference in zip(*runs):
        assert_array_equal(fast, reference)


@pytest.mark.parametrize("engine", ["kernel", "autograd"])
def test_labeled_term_respects_batch_norm_invariances(engine):
    # A hidden layer followed by batch normalization gives the same network
    # when its pre-activations are shifted or scaled (its weights and bias
    # together), so the objective, CUBO term of known outliers included, has
    # no gradient along those directions. Known outliers normalized by the
    # running statistics broke this: their gradient pushed the weights along
    # exactly these directions, which the running statistics used for
    # scoring then chased.
    params, latent, gen = _network(21, "gaussian", True)
    batch = (torch.rand((3, 32, 21), generator=gen), torch.randn((3, 5, 32, latent), generator=gen))
    labeled = (torch.rand((3, 8, 21), generator=gen) * 2.0,
               torch.randn((3, 5, 8, latent), generator=gen))
    if engine == "kernel":
        p = {k: [t.clone() for t in v] for k, v in params.items()}
        kernels.train_step(p, batch[0], batch[1], "gaussian", labeled, 1.0, 2.0)
    else:
        p, _ = _torch_gradients(params, batch, labeled, "gaussian", 1.0, 2.0)
    hidden = [("enc", i) for i in range(len(p["enc_w"]) - 1)]
    hidden += [("dec", j) for j in range(len(p["dec_w"]) - 1)]
    for side, i in hidden:
        w, b = p[side + "_w"][i], p[side + "_b"][i]
        gw, gb = w.grad, b.grad[:, 0, :]
        scale = float(gw.abs().max())
        assert scale > 0
        # Shift: d objective / d bias is zero.
        assert float(gb.abs().max()) < 1e-4 * scale * w.shape[1]
        # Scale: <(W, b), (dW, db)> is zero for every output column.
        radial = (w.detach() * gw).sum(dim=1) + b.detach()[:, 0, :] * gb
        norms = w.detach().norm(dim=1) * gw.norm(dim=1)
        assert float((radial.abs() / norms).max()) < 1e-3


def _huge_pages_on_request():
    """Whether this Linux kernel gives transparent huge pages to a block that asks."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return "[never]" not in f.read()
    except OSError:
        return False


@pytest.mark.skipif(not _huge_pages_on_request(),
                    reason="needs Linux with transparent huge pages on request")
@pytest.mark.parametrize("bf16", [False, True])
def test_wide_scoring_call_packs_into_huge_pages(bf16):
    """A scoring call's packed copy of a wide ensemble comes in 2 MB pages.

    At 8,192 features the packed weights of 5 members take about 60 MB: in
    4 KB pages a call faulted each one in (about 15,000 faults; 74,000 at
    26,147 features, half the call's time on a few rows).
    """
    import resource

    if bf16 and not kernels.bf16_units():
        pytest.skip("needs AMX and AVX512-BF16")
    d = 8192
    params, latent, generator = _network(d, "rectified", True, members=5)
    X = _rows((4, d), "rectified", generator)
    eps = torch.randn((5, 5, latent), generator=generator)
    first = kernels.score_losses(params, X, eps, "rectified", bf16=bf16)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    again = kernels.score_losses(params, X, eps, "rectified", bf16=bf16)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    packed_bytes = sum(t.numel() * 4 for t in params["enc_w"] + params["dec_w"])
    assert faults < packed_bytes / 4096 / 4
    assert_array_equal(first.numpy(), again.numpy())
