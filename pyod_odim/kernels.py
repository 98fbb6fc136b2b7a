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
  statistics in place.

Each member runs on one thread from start to end, so results do not depend
on the thread count, and every reduction has a fixed order. The results
agree with the PyTorch functions to float32 rounding (about 1e-6 relative;
``tests/test_kernels.py``). Without the compiled module, :data:`AVAILABLE`
is False and callers use PyTorch.
"""

import numpy as np
import torch

try:
    from . import _iwae as _ext
except ImportError:  # not compiled, or compiled for another Python
    _ext = None

AVAILABLE = _ext is not None
"""bool: whether the compiled kernels can be used."""

ISA = _ext.isa() if AVAILABLE else None
"""str or None: the instruction set the hot loops run with ("avx2+fma" or "generic")."""

# The kernels hold one fixed-size table of hidden layers per member.
MAX_HIDDEN_LAYERS = 16


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


def _shape(params, rectified=False):
    """The layer sizes the kernels need, read off the parameter shapes.

    A Bernoulli decoder is told apart by its output width; the rectified
    Gaussian has the Gaussian's shapes, so it is a flag of its own.
    """
    enc_w, dec_w = params["enc_w"], params["dec_w"]
    n_members, n_features = enc_w[0].shape[:2]
    latent = enc_w[-1].shape[2] // 2
    return dict(
        n_members=int(n_members),
        n_features=int(n_features),
        latent=int(latent),
        enc_hidden=[int(w.shape[2]) for w in enc_w[:-1]],
        dec_hidden=[int(w.shape[2]) for w in dec_w[:-1]],
        bernoulli=int(dec_w[-1].shape[2]) == int(n_features),
        rectified=bool(rectified),
        batch_norm=len(params["bn_mean"]) > 0,
    )


def _view(tensor):
    """A float32, C-contiguous NumPy view of a CPU tensor (no copy)."""
    array = tensor.detach().numpy()
    if array.dtype != np.float32 or not array.flags.c_contiguous:
        raise ValueError("the kernels need float32, C-contiguous CPU tensors")
    return array


def _views(tensors):
    return [_view(t) for t in tensors]


def _parameter_views(params):
    """Keyword arguments of the extension: every parameter list as views."""
    keys = ("enc_w", "enc_b", "dec_w", "dec_b", "bn_mean", "bn_var")
    return {key: _views(params[key]) for key in keys}


def _scoring_arguments(params, X, score_eps, n_threads, rectified):
    """Keyword arguments of the extension's scoring passes (score, contributions)."""
    eps = score_eps.reshape(score_eps.shape[0], score_eps.shape[1], -1)
    return dict(
        **_shape(params, rectified),
        x=_view(X.contiguous()),
        **_parameter_views(params),
        eps=_view(eps.contiguous()),
        n_threads=int(n_threads),
    )


def score_losses(params, X, score_eps, n_threads=1, rectified=False):
    """Negative IWAE bound of every row under every member.

    Parameters
    ----------
    params : dict of str to list of Tensor
        CPU float32 parameters with the members on the first axis.
    X : Tensor of shape (n, d)
        Scaled rows, float32 on the CPU.
    score_eps : Tensor of shape (M, K, 1, L) or (M, K, L)
        Importance draws shared by all rows.
    n_threads : int, optional (default=1)
        OpenMP threads; members and row blocks are spread over them.
    rectified : bool, optional (default=False)
        The decoder is the rectified Gaussian (``likelihood="rectified"``).

    Returns
    -------
    losses : Tensor of shape (M, n), float64
    """
    return torch.from_numpy(
        _ext.score(**_scoring_arguments(params, X, score_eps, n_threads, rectified)))


def score_contributions(params, X, score_eps, n_threads=1, rectified=False):
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
    params : dict of str to list of Tensor
        CPU float32 parameters with the members on the first axis.
    X : Tensor of shape (n, d)
        Scaled rows, float32 on the CPU.
    score_eps : Tensor of shape (M, K, 1, L) or (M, K, L)
        Importance draws shared by all rows.
    n_threads : int, optional (default=1)
    rectified : bool, optional (default=False)
        The decoder is the rectified Gaussian (``likelihood="rectified"``).

    Returns
    -------
    contributions : Tensor of shape (M, n, d), float32
        ``c``; accumulated in float32, so stored as float32 (half the
        memory of float64 at no loss).
    rest : Tensor of shape (M, n), float64
        ``r``, accumulated in double as the losses are.
    """
    c, r = _ext.contributions(
        **_scoring_arguments(params, X, score_eps, n_threads, rectified))
    return torch.from_numpy(c), torch.from_numpy(r)


def train_step(params, x, eps, labeled=None, cubo_weight=1.0, cubo_order=2.0, n_threads=1,
               rectified=False):
    """Forward and backward pass of one update; fills each parameter's ``.grad``.

    The objective of member ``m`` is the mean negative IWAE bound of its
    batch rows plus ``cubo_weight`` times the mean CUBO of its labeled rows,
    exactly as the PyTorch path computes it (:func:`pyod_odim.engines._objective`):
    both batches are normalized by the unlabeled batch's statistics, whose
    forward pass updates the running statistics in place, and both terms'
    gradients flow through those statistics.

    Parameters
    ----------
    params : dict of str to list of Tensor
        CPU float32 parameters; the trained ones get ``.grad`` set (reused
        when already allocated).
    x : Tensor of shape (M, B, d)
    eps : Tensor of shape (M, K, B, L)
    labeled : tuple of (Tensor (M, B_l, d), Tensor (M, K, B_l, L)) or None
        The known outliers' batch and noise.
    cubo_weight, cubo_order : float
    n_threads : int, optional (default=1)
    rectified : bool, optional (default=False)
        The decoder is the rectified Gaussian (``likelihood="rectified"``).

    Returns
    -------
    objectives : ndarray of shape (M,)
        Each member's objective (its loss before the update).
    """
    order = ("enc_w", "enc_b", "dec_w", "dec_b")
    grads = []
    for key in order:
        for t in params[key]:
            if t.grad is None or t.grad.shape != t.shape:
                t.grad = torch.empty_like(t, memory_format=torch.contiguous_format)
            grads.append(_view(t.grad))
    x_lab = eps_lab = None
    if labeled is not None:
        x_lab = _view(labeled[0].contiguous())
        eps_lab = _view(labeled[1].contiguous())
    return _ext.train_step(
        **_shape(params, rectified),
        **_parameter_views(params),
        grads=grads,
        x=_view(x.contiguous()),
        eps=_view(eps.contiguous()),
        x_labeled=x_lab,
        eps_labeled=eps_lab,
        cubo_weight=float(cubo_weight),
        cubo_order=float(cubo_order),
        n_threads=int(n_threads),
    )
