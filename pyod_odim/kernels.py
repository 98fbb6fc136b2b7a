"""Fused CPU kernels of the ensemble IWAE (the compiled ``pyod_odim._iwae``).

Three entry points mirror :mod:`pyod_odim.network` on the CPU:

* :func:`score_losses`: the negative IWAE bound of every row under every
  member (batch normalization in evaluation mode), the work of every check
  and of ``decision_function``;
* :func:`score_contributions`: the same pass with each loss split into
  per-feature shares and a latent rest
  (:func:`pyod_odim.network.feature_nll`);
* :func:`train_step`: one update's forward and backward pass, writing the
  gradients into the parameters' ``.grad`` and updating the running
  statistics in place; with ``bf16=True`` its products run in bfloat16 on
  the CPU's AMX tiles (:func:`bf16_units`).

Each takes the ensemble's parameters whole (a
:class:`pyod_odim.network.Parameters`, or the parameter dict) and the
likelihood by name; the extension reads the layer widths off the
parameters' shapes and checks them, and every array's dtype, in one place,
then hands the kernels a C++ struct of pointers with the GIL released.

Each member runs on one thread from start to end, so results do not depend
on the thread count, and every reduction has a fixed order. The results
agree with the PyTorch functions to float32 rounding (about 1e-6 relative;
``tests/test_kernels.py``). Without the compiled module, :data:`AVAILABLE`
is False and callers use PyTorch.
"""

import torch

from . import network

try:
    from . import _iwae as _ext
except ImportError:  # not compiled, or compiled for another Python
    _ext = None

AVAILABLE = _ext is not None
"""bool: whether the compiled kernels can be used."""

ISA = _ext.isa() if AVAILABLE else None
"""str or None: the hot loops' build: "avx512+amx", "avx2+fma" or "generic".

"avx512+amx" computes exactly what "avx2+fma" computes in float32 (the
likelihood's elementwise steps and the products in 16-float packs),
faster; bfloat16 products need it (:func:`bf16_units`)."""

_BF16_UNITS = AVAILABLE and _ext.bf16_available()


def bf16_units():
    """Whether training updates can run their products in bfloat16 here.

    True when the extension was built with its AVX-512/AMX path and this
    CPU has AMX tiles with bfloat16 and AVX512-BF16, the operating system
    enabled their state and (on Linux) granted the tile data permission;
    found once at import by ``cpuid`` and ``xgetbv``, never by compiler
    flags. Tests replace this function to simulate a CPU without the units.

    Returns
    -------
    bool
    """
    return _BF16_UNITS

# The kernels hold one fixed-size table of hidden layers per member.
MAX_HIDDEN_LAYERS = 16


def release_scratch():
    """Free the scratch :func:`train_step` keeps in the calling thread.

    Each thread's updates reuse one block of scratch, so that a wide
    network's update does not map hundreds of MB of fresh pages every time;
    the training loop calls this when its updates are done.
    """
    if AVAILABLE:
        _ext.release_scratch()


def product_seconds(run):
    """Call ``run()`` and return the seconds its bfloat16 tile products took.

    A clock in the extension adds up the time of every product on the AMX
    tiles while ``run`` runs (in any thread), the rounding and packing of
    their operands included and nothing else: with ``run`` a
    ``bf16=True`` :func:`train_step`, the update's own products as they
    run in it, for benchmarks. Above 6,144 features, where the output
    layer forms its outputs a block at a time between likelihood steps,
    the running clock times each block's products alone, so they no
    longer overlap the likelihood and an update takes longer than without
    it. float32 products are not counted.

    Parameters
    ----------
    run : callable
        Called once, with no arguments.

    Returns
    -------
    seconds : float
    """
    _ext.start_product_clock()
    try:
        run()
    finally:
        seconds = _ext.stop_product_clock()
    return seconds


def bf16_matmul(a, b):
    """``a @ b`` with the training updates' bfloat16 products (AMX tiles).

    The operands are rounded to bfloat16 (to nearest even) and packed, and
    the tiles accumulate in float32: the same code as every product of a
    ``bf16=True`` :func:`train_step`, for tests and benchmarks. Needs
    :func:`bf16_units`.

    Parameters
    ----------
    a : ndarray of shape (M, K), float32, C-contiguous
    b : ndarray of shape (K, N), float32, C-contiguous

    Returns
    -------
    c : ndarray of shape (M, N), float32
    """
    return _ext.bf16_matmul(a, b)


def supports(arch, device):
    """Whether the kernels can run this network on this device.

    Parameters
    ----------
    arch : pyod_odim.network.Architecture
    device : torch.device

    Returns
    -------
    bool
        True on the CPU, with the extension built, for at most
        :data:`MAX_HIDDEN_LAYERS` hidden layers on each side.
    """
    return (
        AVAILABLE
        and device.type == "cpu"
        and len(arch.hidden_sizes) <= MAX_HIDDEN_LAYERS
    )


def _view(tensor):
    """A NumPy view of a CPU tensor (no copy); the extension checks dtype and layout."""
    return tensor.detach().numpy()


def _arguments(params, likelihood, n_threads):
    """The arguments every entry point of the extension takes first.

    ``params`` goes over whole, as six lists of arrays: the extension reads
    the layer widths off their shapes and checks them, and the dtypes, in
    one place (``read_ensemble`` in ``csrc/bindings_iwae.cpp``).
    """
    p = network.as_parameters(params)
    return dict(
        params=[[_view(t) for t in tensors] for tensors in p],
        likelihood=getattr(_ext.Likelihood, network.check_likelihood(likelihood)),
        n_threads=int(n_threads),
    )


def _draws(score_eps):
    """Shared scoring draws (M, K, 1, L) or (M, K, L) as (M, K, L)."""
    return _view(score_eps.reshape(score_eps.shape[0], score_eps.shape[1], -1).contiguous())


def score_losses(params, X, score_eps, likelihood, n_threads=1, bf16=False):
    """Negative IWAE bound of every row under every member.

    Parameters
    ----------
    params : pyod_odim.network.Parameters or dict of str to list of Tensor
        CPU float32 parameters with the members on the first axis.
    X : Tensor of shape (n, d)
        Scaled rows, float32 on the CPU.
    score_eps : Tensor of shape (M, K, 1, L) or (M, K, L)
        Importance draws shared by all rows.
    likelihood : {"gaussian", "bernoulli", "rectified"}
        The decoder distribution.
    n_threads : int, optional (default=1)
        OpenMP threads; members and row blocks are spread over them.
    bf16 : bool, optional (default=False)
        Run every layer's products in bfloat16 with float32 accumulation on
        the AMX tiles (the weights, batch normalization folded in, rounded
        once per call); needs :func:`bf16_units`. A
        ``precision="bfloat16"`` fit's checks and scores run this way.

    Returns
    -------
    losses : Tensor of shape (M, n), float64
    """
    return torch.from_numpy(_ext.score(
        **_arguments(params, likelihood, n_threads), x=_view(X.contiguous()),
        eps=_draws(score_eps), bf16_products=bool(bf16)))


def score_contributions(params, X, score_eps, likelihood, n_threads=1, bf16=False):
    """Per-feature shares of every row's negative IWAE bound under every member.

    The kernel twin of :func:`pyod_odim.network.feature_nll`: with the
    normalized importance weights ``w~_k = softmax_k(log w_k)`` of the draws
    that score the row,

        c_j = sum_k w~_k * (-log p(x_j | z_k)),
        r = sum_k w~_k * (log q(z_k | x) - log p(z_k)) - H(w~) + log K,

    ``H(w~) = -sum_k w~_k log w~_k``, and ``c.sum(-1) + r`` equals
    :func:`score_losses` to float32 rounding. One fused pass: the weighted
    sums over the draws run inside the decoder's loop over them, so this
    costs little more than scoring.

    Parameters
    ----------
    params, X, score_eps, likelihood, n_threads, bf16
        As for :func:`score_losses`; with ``bf16`` the shares add up to
        :func:`score_losses`'s ``bf16`` losses.

    Returns
    -------
    contributions : Tensor of shape (M, n, d), float32
        ``c``; accumulated in float32, so stored as float32 (half the
        memory of float64 at no loss).
    rest : Tensor of shape (M, n), float64
        ``r``, accumulated in double as the losses are.
    """
    c, r = _ext.contributions(
        **_arguments(params, likelihood, n_threads), x=_view(X.contiguous()),
        eps=_draws(score_eps), bf16_products=bool(bf16))
    return torch.from_numpy(c), torch.from_numpy(r)


def train_step(params, x, eps, likelihood, labeled=None, cubo_weight=1.0, cubo_order=2.0,
               n_threads=1, bf16=False):
    """Forward and backward pass of one update; fills each parameter's ``.grad``.

    The objective of member ``m`` is the mean negative IWAE bound of its
    batch rows plus ``cubo_weight`` times the mean CUBO of its labeled rows,
    exactly as the PyTorch path computes it (:func:`pyod_odim.engines._objective`):
    both batches are normalized by the unlabeled batch's statistics, whose
    forward pass updates the running statistics in place, and both terms'
    gradients flow through those statistics.

    Parameters
    ----------
    params : pyod_odim.network.Parameters or dict of str to list of Tensor
        CPU float32 parameters; the trained ones get ``.grad`` set (reused
        when already allocated).
    x : Tensor of shape (M, B, d)
    eps : Tensor of shape (M, K, B, L)
    likelihood : {"gaussian", "bernoulli", "rectified"}
    labeled : tuple of (Tensor (M, B_l, d), Tensor (M, K, B_l, L)) or None
        The known outliers' batch and noise.
    cubo_weight, cubo_order : float
    n_threads : int, optional (default=1)
    bf16 : bool, optional (default=False)
        Run every layer's products (forward, weight gradient and input
        gradient) in bfloat16 with float32 accumulation on the AMX tiles;
        needs :func:`bf16_units`. Everything else (the likelihood, the
        log-sum-exp, batch normalization, the gradients' storage) stays
        float32.

    Returns
    -------
    objectives : ndarray of shape (M,)
        Each member's objective (its loss before the update).
    """
    p = network.as_parameters(params)
    grads = []
    for tensors in (p.enc_w, p.enc_b, p.dec_w, p.dec_b):
        for t in tensors:
            if t.grad is None or t.grad.shape != t.shape:
                t.grad = torch.empty_like(t, memory_format=torch.contiguous_format)
            grads.append(_view(t.grad))
    x_lab = eps_lab = None
    if labeled is not None:
        x_lab = _view(labeled[0].contiguous())
        eps_lab = _view(labeled[1].contiguous())
    return _ext.train_step(
        **_arguments(p, likelihood, n_threads),
        grads=grads,
        x=_view(x.contiguous()),
        eps=_view(eps.contiguous()),
        x_labeled=x_lab,
        eps_labeled=eps_lab,
        cubo_weight=float(cubo_weight),
        cubo_order=float(cubo_order),
        bf16_products=bool(bf16),
    )
