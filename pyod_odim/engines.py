"""How the ensemble IWAE runs: fused C++ kernels, eager PyTorch or torch.compile.

An engine does the two pieces of arithmetic of a fit: one optimizer update
of the members still training (:meth:`update`) and the losses of rows under
given parameters (:meth:`score`); :meth:`contributions` splits those losses
by feature, to explain them. The training loop
(:mod:`pyod_odim.training`) and the detector call nothing else, so every
engine shares the same loop, draws and bookkeeping.

* ``"kernel"``: :mod:`pyod_odim.kernels`, fused C++ loops for the CPU (the
  forward and backward pass of an update in one call per member, BN folded
  into the weights for scoring). Measured fastest on the CPU at every size
  (``benchmarks/bench_speed.py``), so ``"auto"`` picks it there.
* ``"eager"`` (alias ``"none"``): PyTorch operations one by one; any device.
* ``"inductor"``: the same PyTorch functions compiled by ``torch.compile``
  (inductor backend). Compilation takes tens of seconds the first time a
  shape is seen (PyTorch caches compiled graphs on disk for later
  processes), so it pays only for long fits; opt in with
  ``engine="inductor"``.

All three agree to float32 rounding (``tests/test_engines.py``).
"""

import warnings
from typing import NamedTuple, Optional

import numpy as np
import torch

from . import chunking, kernels, network

ENGINES = ("auto", "kernel", "inductor", "eager", "none")


class Batch(NamedTuple):
    """One update's rows and noise for every live member.

    Attributes
    ----------
    x : Tensor of shape (M, B, d)
    eps : Tensor of shape (M, K, B, L)
    x_labeled : Tensor of shape (M, B_l, d) or None
        Known outliers (semi-supervised mode).
    eps_labeled : Tensor of shape (M, K, B_l, L) or None
    """

    x: torch.Tensor
    eps: torch.Tensor
    x_labeled: Optional[torch.Tensor] = None
    eps_labeled: Optional[torch.Tensor] = None


def _objective(x: torch.Tensor, eps: torch.Tensor, params: network.Parameters, likelihood: str,
               x_lab: Optional[torch.Tensor], eps_lab: Optional[torch.Tensor],
               cubo_weight: float, cubo_order: float, bf16: bool = False):
    """Sum over members of the mean IWAE loss (+ weighted mean CUBO of known outliers).

    Known outliers go through the network in one pass with the unlabeled
    batch and are normalized by that batch's statistics (which they do not
    change), with gradients through those statistics: both terms then see
    the same network, and neither can move the weights along the directions
    batch normalization makes invisible (shifting or scaling a layer's
    pre-activations). Normalized by the running statistics instead, the
    known outliers' CUBO gradient drove the weights along exactly those
    directions, the running statistics that scoring uses lagged behind the
    drift, and the scores of every row degraded (docs/decisions.md, "Known
    outliers"). ``bf16`` runs the layers' products in bfloat16
    (:func:`pyod_odim.network.log_importance_weights`).
    """
    if x_lab is None:
        log_w = network.log_importance_weights(x, eps, params, True, likelihood, 0, bf16)
        return network.iwae_loss(log_w).mean(dim=1).sum()
    n = x.shape[1]
    log_w = network.log_importance_weights(
        torch.cat([x, x_lab], dim=1), torch.cat([eps, eps_lab], dim=2), params, True,
        likelihood, n, bf16,
    )
    loss = network.iwae_loss(log_w[:, :, :n]).mean(dim=1).sum()
    cubo = network.cubo_loss(log_w[:, :, n:], cubo_order).mean(dim=1).sum()
    return loss + cubo_weight * cubo


def _score_chunk(x: torch.Tensor, eps: torch.Tensor, params: network.Parameters,
                 likelihood: str, bf16: bool = False):
    log_w = network.log_importance_weights(x, eps, params, False, likelihood, 0, bf16)
    return network.iwae_loss(log_w)


def bf16_units(engine_name, device):
    """Whether ``engine_name`` runs bfloat16 products at speed on ``device``.

    Parameters
    ----------
    engine_name : {"kernel", "inductor", "eager"}
    device : torch.device

    Returns
    -------
    bool
        The kernels: the CPU's AMX tiles with AVX512-BF16
        (:func:`pyod_odim.kernels.bf16_units`); PyTorch: a CUDA device with
        bfloat16 support. PyTorch on the CPU has no fast path here (it rounds
        the operands and multiplies in float32).
    """
    if engine_name == "kernel":
        return kernels.bf16_units()
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


def scores_in_bf16(precision, engine_name, device):
    """Whether a model fitted in ``precision`` scores with bfloat16 products here.

    A bfloat16 fit's scores (and feature contributions) run in bfloat16
    where :func:`bf16_units` holds, in float32 elsewhere.

    Parameters
    ----------
    precision : {"float32", "bfloat16"}
    engine_name : {"kernel", "inductor", "eager"}
    device : torch.device

    Returns
    -------
    bool
    """
    return precision == "bfloat16" and bf16_units(engine_name, device)


class TorchEngine:
    """PyTorch operations, eager or compiled; runs on any device.

    Parameters
    ----------
    likelihood : {"gaussian", "bernoulli", "rectified"}
    cubo_weight, cubo_order : float
        The semi-supervised term's weight and order.
    compiled : bool, optional (default=False)
        Compile the objective and the scoring function with
        ``torch.compile``.

    Attributes
    ----------
    precision : {"float32", "bfloat16"}
        The products of the training updates and of their checks (set by
        the caller); the scores follow
        :attr:`pyod_odim.scorer.FittedScorer.precision`.
    """

    precision = "float32"

    def __init__(self, likelihood, cubo_weight=1.0, cubo_order=2.0, compiled=False):
        self.likelihood = network.check_likelihood(likelihood)
        self.cubo_weight = float(cubo_weight)
        self.cubo_order = float(cubo_order)
        self.name = "inductor" if compiled else "eager"
        self._objective = _compiled("objective") if compiled else _objective
        self._score_chunk = _compiled("score") if compiled else _score_chunk

    def update(self, live, batch):
        """One optimizer step of ``live`` (a :class:`pyod_odim.training.LiveMembers`)."""
        loss = self._objective(
            batch.x, batch.eps, network.as_parameters(live.params), self.likelihood,
            batch.x_labeled, batch.eps_labeled, self.cubo_weight, self.cubo_order,
            self.precision == "bfloat16",
        )
        live.zero_grad()
        loss.backward()
        live.apply_gradients()

    def release(self):
        """Nothing to free: PyTorch manages its own memory."""

    def _chunks(self, pass_, params, X, score_eps):
        """``pass_(rows, score_eps, params, likelihood)`` over row chunks, without gradients."""
        p = network.detached(params)
        chunk = chunking.activation_chunk_rows(p, score_eps.shape[1], X.device)
        with torch.no_grad():
            for start in range(0, X.shape[0], chunk):
                yield pass_(X[start:start + chunk], score_eps, p, self.likelihood)

    def score(self, params, X, score_eps, bf16=False):
        """Negative IWAE bound of every row of ``X`` for every member.

        Parameters
        ----------
        params : pyod_odim.network.Parameters or dict of str to list of Tensor
        X : Tensor of shape (n, d), on the parameters' device
        score_eps : Tensor of shape (M, K, 1, L)
            Draws shared by all rows: a row's score does not depend on its
            neighbours.
        bf16 : bool, optional (default=False)
            Products in bfloat16 with float32 accumulation (a bfloat16 fit's
            checks and scores).

        Returns
        -------
        losses : ndarray of shape (M, n), float64
        """
        def chunk(x, eps, p, likelihood):
            return self._score_chunk(x, eps, p, likelihood, bf16)

        out = list(self._chunks(chunk, params, X, score_eps))
        return torch.cat(out, dim=1).double().cpu().numpy()

    def contributions(self, params, X, score_eps, bf16=False):
        """Per-feature shares of every row's loss for every member.

        See :func:`pyod_odim.network.feature_nll`: ``c.sum(-1) + r`` is
        :meth:`score`'s loss (to float32 rounding). Runs eagerly, also in
        a compiled engine.

        Parameters
        ----------
        params : pyod_odim.network.Parameters or dict of str to list of Tensor
        X : Tensor of shape (n, d), on the parameters' device
        score_eps : Tensor of shape (M, K, 1, L)
        bf16 : bool, optional (default=False)
            As for :meth:`score`, whose ``bf16`` losses the shares then add
            up to.

        Returns
        -------
        contributions : ndarray of shape (M, n, d), float64
        rest : ndarray of shape (M, n), float64
        """
        def chunk(x, eps, p, likelihood):
            return network.feature_nll(x, eps, p, likelihood, bf16)

        cs, rs = [], []
        for c, r in self._chunks(chunk, params, X, score_eps):
            cs.append(c.double().cpu().numpy())
            rs.append(r.double().cpu().numpy())
        return np.concatenate(cs, axis=1), np.concatenate(rs, axis=1)


class KernelEngine:
    """The fused C++ kernels of :mod:`pyod_odim.kernels` (CPU only).

    Parameters
    ----------
    likelihood : {"gaussian", "bernoulli", "rectified"}
    cubo_weight, cubo_order : float
    n_threads : int
        OpenMP threads of each kernel call.

    Attributes
    ----------
    precision : {"float32", "bfloat16"}
        The products of the training updates and of their checks (set by
        the caller; bfloat16 needs :func:`pyod_odim.kernels.bf16_units`);
        the scores follow :attr:`pyod_odim.scorer.FittedScorer.precision`.
    """

    name = "kernel"
    precision = "float32"

    def __init__(self, likelihood, cubo_weight=1.0, cubo_order=2.0, n_threads=1):
        self.likelihood = network.check_likelihood(likelihood)
        self.cubo_weight = float(cubo_weight)
        self.cubo_order = float(cubo_order)
        self.n_threads = int(n_threads)

    def update(self, live, batch):
        labeled = None
        if batch.x_labeled is not None:
            labeled = (batch.x_labeled, batch.eps_labeled)
        kernels.train_step(
            live.params, batch.x, batch.eps, self.likelihood, labeled, self.cubo_weight,
            self.cubo_order, self.n_threads, bf16=self.precision == "bfloat16",
        )
        live.apply_gradients()

    def release(self):
        """Free the scratch the updates kept between them (:func:`kernels.release_scratch`)."""
        kernels.release_scratch()

    def score(self, params, X, score_eps, bf16=False):
        """As :meth:`TorchEngine.score`, by the fused kernel pass."""
        return kernels.score_losses(params, X, score_eps, self.likelihood, self.n_threads,
                                    bf16).numpy()

    def contributions(self, params, X, score_eps, bf16=False):
        """As :meth:`TorchEngine.contributions`, by the fused kernel pass."""
        c, r = kernels.score_contributions(params, X, score_eps, self.likelihood, self.n_threads,
                                           bf16)
        return c.numpy().astype(np.float64), r.numpy()


_COMPILED = {}


def _compiled(which):
    """One compiled function per process, so later fits reuse its graphs."""
    if which not in _COMPILED:
        fn = _objective if which == "objective" else _score_chunk
        _COMPILED[which] = torch.compile(fn, dynamic=True)
    return _COMPILED[which]


def make_engine(mode, device, arch, likelihood, cubo_weight=1.0, cubo_order=2.0, n_threads=1):
    """The engine a fit or a scoring call uses.

    Parameters
    ----------
    mode : {"auto", "kernel", "inductor", "eager", "none"}
        ``"auto"``: the C++ kernels on the CPU when they are built and
        support the network, else eager PyTorch. ``"kernel"`` falls back to
        eager PyTorch (with a warning) where the kernels cannot run.
    device : torch.device
    arch : pyod_odim.network.Architecture
    likelihood : {"gaussian", "bernoulli", "rectified"}
    cubo_weight, cubo_order : float
    n_threads : int

    Returns
    -------
    engine : KernelEngine or TorchEngine
    """
    if mode not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {mode!r}")
    kernel_ok = kernels.supports(arch, device)
    if mode in ("auto", "kernel") and kernel_ok:
        return KernelEngine(likelihood, cubo_weight, cubo_order, n_threads)
    if mode == "kernel":
        reason = "it is not built" if not kernels.AVAILABLE else f"it does not run on {device}"
        warnings.warn(
            f"engine='kernel': the C++ kernel cannot be used ({reason}); running eager PyTorch",
            RuntimeWarning,
            stacklevel=3,
        )
    return TorchEngine(likelihood, cubo_weight, cubo_order, compiled=mode == "inductor")
