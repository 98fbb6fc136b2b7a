"""Deployable exports of a fitted scorer: TorchScript and ONNX.

Both exports wrap the same :class:`ScorerModule`: raw rows of shape
``(n, n_features)`` (float32 or float64) in, scores of shape ``(n,)`` out,
computed as :class:`~pyod_odim.scorer.FittedScorer` computes them: the
feature scaling in float64 (clipped to the network's box, with the
overshoot cost beyond it), every member's negative IWAE bound under its
fixed importance draws (batch normalization with the running statistics;
in float64 by default, or float32), the members combined in float64, a
score that is not finite (a damaged model's) as ``+inf``. The network's arithmetic is
:func:`pyod_odim.network.log_importance_weights` itself, scripted, so the
exports cannot drift from the package's PyTorch engine.

* :func:`to_torchscript` writes a module for ``torch.jit.load`` (Python, or
  ``torch::jit::load`` in LibTorch C++) that needs neither this package nor
  NumPy; its tensors are buffers, so ``map_location="cuda"`` scores on a
  GPU. It scores large inputs in row chunks (``chunk_rows``).
* :func:`to_onnx` (extra ``onnx``) writes an ONNX graph for ONNX Runtime
  with a dynamic row axis; it scores the rows it is given at once, so feed
  it batches of a size that suits the memory (``M * K * rows * width``
  float32 activations).

The semi-supervised neighbour blend (nearest-neighbour search over the
reference rows) is not part of either export: exporting such a model
raises ``ValueError``. Scores agree with ``decision_function`` to float32
rounding (``tests/test_export.py``; ``benchmarks/bench_export.py`` measures
their speed).
"""

import contextlib
import io
import logging
import os
import warnings
from typing import List

import torch

from . import chunking, network
from .scaling import MAX_EXCESS, MAX_OVERSHOOT_COST, OVERSHOOT_PRECISION


PRECISIONS = {"float64": torch.float64, "float32": torch.float32}


class _Layer(torch.nn.Module):
    """A stacked linear layer of the ensemble: weight (M, in, out), bias (M, 1, out)."""

    def __init__(self, weight, bias, dtype):
        super().__init__()
        self.register_buffer("weight", torch.as_tensor(weight).to(dtype).clone())
        self.register_buffer("bias", torch.as_tensor(bias).to(dtype).clone())


class _Norm(torch.nn.Module):
    """Running statistics of one batch-normalized hidden layer, (M, 1, width) each."""

    def __init__(self, mean, var, dtype):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean).to(dtype).clone())
        self.register_buffer("var", torch.as_tensor(var).to(dtype).clone())


class ScorerModule(torch.nn.Module):
    """A fitted scorer as a ``torch.nn.Module``: raw rows to scores.

    Parameters
    ----------
    scorer : pyod_odim.scorer.FittedScorer
        Without a neighbour blend.
    chunk_rows : int, optional (default=0)
        Rows per chunk of ``forward``; 0 scores all rows at once (the ONNX
        export, whose graph cannot hold a Python loop over chunks).
    precision : {"float64", "float32"}, optional (default="float64")
        The network's arithmetic. The fitted float32 parameters are exact in
        float64, so "float64" computes the scores the kernels round: it
        agrees with ``decision_function`` to a few 1e-6 relative on every
        shared set, "float32" (about twice as fast) to about 1e-5
        (``benchmarks/bench_export.py``).
    """

    def __init__(self, scorer, chunk_rows=0, precision="float64"):
        super().__init__()
        check_exportable(scorer)
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {tuple(PRECISIONS)}, got {precision!r}")
        dtype = PRECISIONS[precision]
        p = scorer.params
        self.encoder = torch.nn.ModuleList(
            [_Layer(w, b, dtype) for w, b in zip(p["enc_w"], p["enc_b"])])
        self.decoder = torch.nn.ModuleList(
            [_Layer(w, b, dtype) for w, b in zip(p["dec_w"], p["dec_b"])])
        self.norms = torch.nn.ModuleList(
            [_Norm(m, v, dtype) for m, v in zip(p["bn_mean"], p["bn_var"])])
        self.register_buffer("eps", torch.as_tensor(scorer.score_eps).to(dtype).clone())
        f64 = torch.float64
        self.register_buffer("scale", torch.as_tensor(scorer.scaling.scale_, dtype=f64).clone())
        self.register_buffer("offset", torch.as_tensor(scorer.scaling.offset_, dtype=f64).clone())
        standardized = scorer.combination == "standardized"
        mean = scorer.member_mean if standardized else [0.0] * scorer.n_members
        std = scorer.member_std if standardized else [1.0] * scorer.n_members
        std = torch.as_tensor(std, dtype=f64)
        self.register_buffer("member_mean", torch.as_tensor(mean, dtype=f64).reshape(-1, 1).clone())
        self.register_buffer("member_std", torch.where(std > 0, std, torch.ones_like(std)).reshape(-1, 1))
        self.cost_unit = float(scorer.cost_unit)
        # float64 buffers, not Python floats: the ONNX exporter would store
        # those as float32 constants, and 1e40 does not fit in float32.
        self.register_buffer("max_excess", torch.tensor(MAX_EXCESS, dtype=f64))
        self.register_buffer("half_precision", torch.tensor(0.5 * OVERSHOOT_PRECISION, dtype=f64))
        self.register_buffer("max_cost", torch.tensor(MAX_OVERSHOOT_COST, dtype=f64))
        self.box_low, self.box_high = (float(b) for b in scorer.box)
        self.likelihood = str(scorer.likelihood)
        self.chunk_rows = int(chunk_rows)

    def _losses(self, x: torch.Tensor) -> torch.Tensor:
        """Member losses (M, n), float64, of scaled float32 rows (n, d)."""
        enc_w: List[torch.Tensor] = []
        enc_b: List[torch.Tensor] = []
        dec_w: List[torch.Tensor] = []
        dec_b: List[torch.Tensor] = []
        bn_mean: List[torch.Tensor] = []
        bn_var: List[torch.Tensor] = []
        for layer in self.encoder:
            enc_w.append(layer.weight)
            enc_b.append(layer.bias)
        for layer in self.decoder:
            dec_w.append(layer.weight)
            dec_b.append(layer.bias)
        for norm in self.norms:
            bn_mean.append(norm.mean)
            bn_var.append(norm.var)
        params = network.Parameters(enc_w, enc_b, dec_w, dec_b, bn_mean, bn_var)
        log_w = network.log_importance_weights(x, self.eps, params, False, self.likelihood)
        return network.iwae_loss(log_w).to(torch.float64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores (n,), float64, of raw rows ``x`` (n, n_features)."""
        scaled = x.to(torch.float64) * self.scale + self.offset
        clipped = torch.clamp(scaled, self.box_low, self.box_high)
        # The overshoot cost of pyod_odim.scaling, in float64.
        excess = torch.minimum(torch.abs(scaled - clipped), self.max_excess)
        cost = torch.minimum((self.half_precision * excess * excess).sum(dim=1), self.max_cost)
        inputs = clipped.to(self.eps.dtype)
        n = inputs.shape[0]
        if self.chunk_rows <= 0 or n <= self.chunk_rows:
            losses = self._losses(inputs)
        else:
            pieces: List[torch.Tensor] = []
            for start in range(0, n, self.chunk_rows):
                pieces.append(self._losses(inputs[start:start + self.chunk_rows]))
            losses = torch.cat(pieces, dim=1)
        combined = ((losses - self.member_mean) / self.member_std).mean(dim=0)
        scores = combined + cost / self.cost_unit
        # As FittedScorer.combine: a row whose score is not finite (a damaged
        # model's NaN or infinite loss) scores +inf, an outlier, never NaN.
        return torch.where(torch.isfinite(scores), scores, torch.full_like(scores, float("inf")))


def check_exportable(scorer):
    """Raise ``ValueError`` when a scorer cannot be exported (the neighbour blend)."""
    if scorer.neighbors is not None:
        raise ValueError(
            "this model blends ODIM's scores with the known outliers' neighbour ratio "
            "(use_labels=True, neighbor_weight > 0), a nearest-neighbour search over the "
            "reference rows that the TorchScript and ONNX exports do not contain; refit "
            "with neighbor_weight=0 to export ODIM's likelihood scores"
        )


def _chunk_rows(scorer):
    """Rows per chunk of the TorchScript module, as the PyTorch engine chunks on the CPU."""
    return chunking.activation_chunk_rows(scorer.params, scorer.score_eps.shape[1], "cpu")


def _fitted_scorer(estimator):
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator, ["scorer_"])
    return estimator.scorer_


def to_torchscript(estimator, path, chunk_rows=None, precision="float64"):
    """Write a fitted ODIM's scorer as a TorchScript module.

    Parameters
    ----------
    estimator : pyod_odim.ODIM
        Fitted, without a neighbour blend.
    path : str or os.PathLike
    chunk_rows : int or None, optional (default=None)
        Rows per chunk of the module's forward pass; ``None`` sizes chunks
        so that the widest activation holds about a million values, as the
        PyTorch engine does on the CPU. Scores do not depend on it.
    precision : {"float64", "float32"}, optional (default="float64")
        The network's arithmetic (:class:`ScorerModule`).

    Returns
    -------
    module : torch.jit.ScriptModule
        The module written.
    """
    scorer = _fitted_scorer(estimator)
    chunk = _chunk_rows(scorer) if chunk_rows is None else int(chunk_rows)
    if chunk < 1:
        raise ValueError(f"chunk_rows must be a positive number of rows, got {chunk_rows!r}")
    module = torch.jit.script(ScorerModule(scorer, chunk, precision).eval())
    module.save(os.fspath(path))
    return module


def to_onnx(estimator, path, opset_version=18, precision="float64"):
    """Write a fitted ODIM's scorer as an ONNX graph (needs the ``onnx`` extra).

    The graph's input ``x`` is float64 of shape (rows, n_features) with a
    dynamic row axis; its output ``scores`` is float64 of shape (rows,).
    It is made by PyTorch's ``torch.export``-based ONNX exporter (which
    needs onnx and onnxscript).

    Parameters
    ----------
    estimator : pyod_odim.ODIM
        Fitted, without a neighbour blend.
    path : str or os.PathLike
    opset_version : int, optional (default=18)
    precision : {"float64", "float32"}, optional (default="float64")
        The network's arithmetic (:class:`ScorerModule`).
    """
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise ImportError('to_onnx needs onnx and onnxscript: pip install "pyod-odim[onnx]"') from exc
    scorer = _fitted_scorer(estimator)
    module = ScorerModule(scorer, chunk_rows=0, precision=precision).eval()
    example = torch.zeros((2, scorer.n_features), dtype=torch.float64)
    with _quiet_exporter():
        torch.onnx.export(
            module, (example,), os.fspath(path), input_names=["x"], output_names=["scores"],
            dynamic_shapes={"x": {0: torch.export.Dim("rows")}}, opset_version=opset_version,
            dynamo=True, verbose=False, external_data=False,  # one file, weights inside
        )


@contextlib.contextmanager
def _quiet_exporter():
    """Silence the exporter's progress lines and its own internal deprecation notes."""
    loggers = [logging.getLogger(name) for name in ("onnxscript", "torch.onnx", "torch.export")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
