"""The ensemble IWAE as one batched network.

All ``M`` members share one set of stacked tensors: a linear layer of the
ensemble is a weight of shape ``(M, in, out)`` and a bias of shape
``(M, 1, out)``, applied with one batched matmul. The ``K`` importance samples
are an extra batch dimension, so one call evaluates ``M * K * rows`` decoder
passes.

The math lives in plain functions of tensors: they run eagerly, under
``torch.compile`` (``engine="inductor"``), and are TorchScript-compatible
because the TorchScript export (``pyod_odim.export``) scripts them.
"""

import math
from typing import List, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F

# Log-variances are clamped to [-6, 2] and hidden layers use LeakyReLU(0.01),
# as in the ODIM authors' code; the literals live in log_importance_weights
# because the TorchScript export scripts that function on its own.
LIKELIHOODS = ("gaussian", "bernoulli", "rectified")
"""tuple of str: decoder distributions of one feature given the latent code.

* ``"gaussian"``: a normal with a sigmoid mean in (0, 1) and a clamped
  log-variance, the ODIM authors' decoder;
* ``"bernoulli"``: for binary features;
* ``"rectified"``: the rectified Gaussian ``max(0, N(m, s^2))`` for
  non-negative features with many exact zeros (post-ReLU embeddings,
  counts): a value of 0 (the training minimum after scaling) has
  probability ``Phi(-m / s)``, a positive value the normal density; the
  mean ``m`` is unconstrained, so the decoder can put most of a feature's
  mass at 0 and still give its positive values a wide spread.
"""


def check_likelihood(likelihood):
    """Return ``likelihood`` if it is one of :data:`LIKELIHOODS`, else raise ``ValueError``."""
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
    return likelihood


# log erfc(t) = log(s) - t^2 + P(s) with s = 1 / (1 + t / 2), t >= 0: P is a
# degree-9 polynomial least-squares fitted here to erfcx on t in [0, 1e5]
# (largest error 3e-7 in float32); the C++ kernels use the same numbers.
_ERFC_POLY = (-1.26551216, 1.00001893, 0.374145953, 0.0966521443, -0.186851998,
              0.282624876, -1.1437981, 1.49840947, -0.827915045, 0.172226011)


class Architecture(NamedTuple):
    """Layer widths of the encoder; the decoder mirrors them."""

    n_features: int
    hidden_sizes: Tuple[int, ...]
    latent_dim: int


def default_architecture(n_features):
    """Choose widths from the input dimension.

    Up to 500 features these are the ODIM authors' widths. Above 500 the
    authors use (512, 256) with a latent size of 128; here the (128, 64)
    network of the middle range is kept: on the two embedding sets of the
    benchmarks it fits several times faster, one set scoring slightly
    higher and the other slightly lower than with the wider network
    (measured by ``python benchmarks/bench_speed.py --sections wide``;
    docs/results.md has the default network's fits on the embedding sets).

    Parameters
    ----------
    n_features : int
        Number of input features ``d``.

    Returns
    -------
    hidden_sizes : tuple of int
        ``(32, 16)`` for ``d <= 100``, else ``(128, 64)``.
    latent_dim : int
        8 for ``d <= 100`` (4 when ``d <= 7``, 2 when ``d <= 3``), else 32.
    """
    if n_features > 100:
        return (128, 64), 32
    if n_features <= 3:
        latent = 2
    elif n_features <= 7:
        latent = 4
    else:
        latent = 8
    return (32, 16), latent


def _layer_shapes(arch, likelihood):
    """(in, out) of every linear layer: encoder, encoder head, decoder."""
    enc = (arch.n_features,) + arch.hidden_sizes
    encoder = list(zip(enc[:-1], enc[1:]))
    # One head emits both the latent mean and log-variance.
    head = [(arch.hidden_sizes[-1], 2 * arch.latent_dim)]
    # A Bernoulli decoder emits one logit per feature, the others a mean and
    # a log-variance.
    n_out = arch.n_features if check_likelihood(likelihood) == "bernoulli" else 2 * arch.n_features
    dec = (arch.latent_dim,) + tuple(reversed(arch.hidden_sizes)) + (n_out,)
    decoder = list(zip(dec[:-1], dec[1:]))
    return encoder + head, decoder


TRAINABLE = ("dec_b", "dec_w", "enc_b", "enc_w")


class Parameters(NamedTuple):
    """The stacked parameters of an ensemble, passed whole to every function of the network.

    Each field is a list with one tensor per layer, the members on the
    first axis. A parameter dict (``params``, the form the training loop,
    the scorer and the model file keep) maps the same names to the same
    lists; :func:`as_parameters` reads one as the other. The network's
    functions, the engines and :mod:`pyod_odim.kernels` take this tuple
    (TorchScript and ``torch.compile`` accept a typed ``NamedTuple``).

    Attributes
    ----------
    enc_w, enc_b : list of Tensor
        Encoder layers, the last one the head: weights ``(M, in, out)``,
        biases ``(M, 1, out)``.
    dec_w, dec_b : list of Tensor
        Decoder layers, the last one the output layer.
    bn_mean, bn_var : list of Tensor
        Running statistics ``(M, 1, width)`` of each hidden layer's batch
        normalization (encoder first), or empty lists for none.
    """

    enc_w: List[torch.Tensor]
    enc_b: List[torch.Tensor]
    dec_w: List[torch.Tensor]
    dec_b: List[torch.Tensor]
    bn_mean: List[torch.Tensor]
    bn_var: List[torch.Tensor]


def as_parameters(params):
    """The :class:`Parameters` of a parameter dict (or ``params`` itself if it is one)."""
    if isinstance(params, Parameters):
        return params
    return Parameters(*(params[name] for name in Parameters._fields))


def detached(params):
    """:class:`Parameters` of ``params``' tensors without their autograd history."""
    return Parameters(*([t.detach() for t in v] for v in as_parameters(params)))


def expected_parameter_shapes(arch, n_members, likelihood="gaussian", batch_norm=False):
    """Shapes of every parameter tensor of an ensemble, as :func:`init_parameters` makes them.

    Parameters
    ----------
    arch : Architecture
    n_members : int
    likelihood : {"gaussian", "bernoulli", "rectified"}
    batch_norm : bool

    Returns
    -------
    shapes : dict of str to list of tuple
        ``enc_w``, ``enc_b``, ``dec_w``, ``dec_b``, ``bn_mean``, ``bn_var``.
    """
    encoder, decoder = _layer_shapes(arch, likelihood)
    shapes = {}
    for prefix, layers in (("enc", encoder), ("dec", decoder)):
        shapes[prefix + "_w"] = [(n_members, i, o) for i, o in layers]
        shapes[prefix + "_b"] = [(n_members, 1, o) for _, o in layers]
    hidden = [o for _, o in encoder[:-1] + decoder[:-1]] if batch_norm else []
    shapes["bn_mean"] = [(n_members, 1, w) for w in hidden]
    shapes["bn_var"] = list(shapes["bn_mean"])
    return shapes


def init_parameters(arch, n_members, generator, device, likelihood="gaussian", batch_norm=False):
    """Draw independent initial weights for every member.

    Weights and biases follow ``torch.nn.Linear``'s default, uniform on
    ``[-1/sqrt(in), 1/sqrt(in)]``; each member gets its own draw.

    Parameters
    ----------
    arch : Architecture
    n_members : int
        Ensemble size ``M``.
    generator : torch.Generator
        Source of all randomness; the global RNG is never used.
    device : torch.device
    likelihood : {"gaussian", "bernoulli", "rectified"}
        The decoder distribution (:data:`LIKELIHOODS`): a Bernoulli decoder
        emits one value per feature, the others two.
    batch_norm : bool
        Add running statistics for batch normalization (no affine part) of
        every hidden layer, as the ODIM authors' networks have.

    Returns
    -------
    params : dict of str to list of torch.Tensor
        ``enc_w``/``enc_b`` (encoder layers, the last one is the head),
        ``dec_w``/``dec_b`` (decoder layers) with shapes ``(M, in, out)`` and
        ``(M, 1, out)``; ``bn_mean``/``bn_var`` ``(M, 1, width)`` per hidden
        layer (empty lists without batch normalization), which are state,
        not trained parameters.
    """
    encoder, decoder = _layer_shapes(arch, likelihood)

    def uniform(shape, fan_in):
        bound = 1.0 / math.sqrt(fan_in)
        t = torch.rand(shape, generator=generator, device=generator.device)
        return ((2.0 * t - 1.0) * bound).to(device)

    params = {"enc_w": [], "enc_b": [], "dec_w": [], "dec_b": []}
    for prefix, layers in (("enc", encoder), ("dec", decoder)):
        for fan_in, fan_out in layers:
            params[prefix + "_w"].append(uniform((n_members, fan_in, fan_out), fan_in))
            params[prefix + "_b"].append(uniform((n_members, 1, fan_out), fan_in))
    hidden = [out for _, out in encoder[:-1] + decoder[:-1]] if batch_norm else []
    params["bn_mean"] = [torch.zeros((n_members, 1, w), device=device) for w in hidden]
    params["bn_var"] = [torch.ones((n_members, 1, w), device=device) for w in hidden]
    return params


def flat_parameters(params):
    """Weights and biases of ``params`` (no normalization state), in a fixed order."""
    return [t for key in TRAINABLE for t in params[key]]


def optimized_parameters(params):
    """The tensors the optimizer updates, in the order of :func:`flat_parameters`.

    A bias followed by batch normalization is left out: in training mode the
    normalization subtracts it again, so its gradient is zero up to
    rounding, and Adam (which divides by the gradient's own scale) would
    turn that rounding noise into a random walk of size ``lr`` per update.
    The running mean absorbs the fixed bias at scoring time.
    """
    normalized = len(params["bn_mean"]) > 0
    n_enc, n_dec = len(params["enc_b"]) - 1, len(params["dec_b"]) - 1
    kept = []
    for key in TRAINABLE:
        for i, t in enumerate(params[key]):
            hidden = i < (n_enc if key.startswith("enc") else n_dec)
            if normalized and key.endswith("_b") and hidden:
                continue
            kept.append(t)
    return kept


def _batch_norm(
    h: torch.Tensor, running_mean: torch.Tensor, running_var: torch.Tensor, training: bool,
    stats: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Normalize each member's rows (axis -2); update running stats in training.

    In training, the statistics are those of ``stats`` (rows of ``h``;
    default all of ``h``), and gradients flow through them.
    """
    if training:
        if stats is None:
            stats = h
        mean = stats.mean(dim=-2, keepdim=True)
        var = stats.var(dim=-2, unbiased=False, keepdim=True)
        n = stats.shape[-2]
        running_mean.mul_(0.9).add_(0.1 * mean.detach())
        running_var.mul_(0.9).add_((0.1 * n / max(n - 1, 1)) * var.detach())
    else:
        mean = running_mean
        var = running_var
    return (h - mean) * torch.rsqrt(var + 1e-5)


def log_normal_cdf(u: torch.Tensor) -> torch.Tensor:
    """``log Phi(u)``, the log of the standard normal CDF, for any finite ``u``.

    Built from elementary operations (so the TorchScript and ONNX exports
    carry it): ``log Phi(-|u|) = log(erfc(|u| / sqrt 2) / 2)`` through the
    polynomial form of ``log erfc`` (no underflow however negative ``u``
    is), and ``log Phi(u) = log1p(-Phi(-u))`` for ``u >= 0``. Within 1e-6 of
    ``torch.special.log_ndtr`` (``tests/test_rectified.py``).

    Parameters
    ----------
    u : Tensor

    Returns
    -------
    Tensor of u's shape
    """
    t = torch.abs(u) * 0.7071067811865476
    s = 1.0 / (1.0 + 0.5 * t)
    # Horner's rule over _ERFC_POLY, written out (TorchScript scripts this).
    p = 0.172226011 * s - 0.827915045
    p = p * s + 1.49840947
    p = p * s - 1.1437981
    p = p * s + 0.282624876
    p = p * s - 0.186851998
    p = p * s + 0.0966521443
    p = p * s + 0.374145953
    p = p * s + 1.00001893
    p = p * s - 1.26551216
    log_lower = torch.log(s) - t * t + p - 0.6931471805599453
    return torch.where(u < 0, log_lower, torch.log1p(-torch.exp(log_lower)))


def rectified_nll(x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of each value under the rectified Gaussian.

    ``-log Phi(-mean / sd)`` where ``x <= 0`` (the point mass at 0), else
    the normal's ``((x - mean)^2 / sd^2 + logvar + log 2 pi) / 2``.

    Parameters
    ----------
    x : Tensor
        Scaled values (broadcast against ``mean``).
    mean, logvar : Tensor
        The decoder's mean and clamped log-variance.

    Returns
    -------
    Tensor of mean's shape
    """
    inv_sd = torch.exp(-0.5 * logvar)
    diff = (x - mean) * inv_sd
    density = 0.5 * (diff * diff + logvar + 1.8378770664093453)
    return torch.where(x <= 0.0, -log_normal_cdf(-mean * inv_sd), density)


class _Bf16Product(torch.autograd.Function):
    """``a @ w`` with both operands rounded to bfloat16 and float32 results.

    Forward and both gradients round their two operands to bfloat16 and
    accumulate in float32, as the kernels' bfloat16 updates do
    (``csrc/iwae_amx.inc``). On CUDA the products run in bfloat16 (tensor
    cores accumulate in float32; the result is rounded to bfloat16 before it
    returns to float32); elsewhere the rounded operands are multiplied in
    float32, which is exact for the products of two bfloat16 values.
    """

    @staticmethod
    def forward(ctx, a, w):
        ctx.save_for_backward(a, w)
        return _bf16_matmul(a, w)

    @staticmethod
    def backward(ctx, grad):
        a, w = ctx.saved_tensors
        grad_a = _bf16_matmul(grad, w.transpose(-1, -2))
        grad_w = _bf16_matmul(a.transpose(-1, -2), grad)
        if grad_a.shape != a.shape:  # a broadcast over the members
            grad_a = grad_a.sum(0)
        return grad_a, grad_w


def _bf16_matmul(a, b):
    if a.is_cuda:
        return torch.matmul(a.to(torch.bfloat16), b.to(torch.bfloat16)).float()
    return torch.matmul(a.to(torch.bfloat16).float(), b.to(torch.bfloat16).float())


@torch.jit.unused  # never in the exports, which score in full precision
def _bf16_product(a: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ w + b`` with the product in bfloat16 (:class:`_Bf16Product`)."""
    return _Bf16Product.apply(a, w) + b


def _decoder_outputs(
    x: torch.Tensor,
    eps: torch.Tensor,
    params: Parameters,
    bn_training: bool,
    likelihood: str,
    n_stat_rows: int,
    bf16: bool = False,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The pass shared by the bound and its per-feature split.

    Returns
    -------
    xb : Tensor broadcastable to (M, K, B, d)
        The rows.
    first, second : Tensor of shape (M, K, B, d)
        The decoder's logits twice (Bernoulli), or its means (through a
        sigmoid for "gaussian", unconstrained for "rectified") and clamped
        log-variances.
    log_prior_ratio : Tensor of shape (M, K, B)
        ``log p(z_k) - log q(z_k | x)``.
    """
    enc_w, enc_b, dec_w, dec_b = params.enc_w, params.enc_b, params.dec_w, params.dec_b
    bn_mean, bn_var = params.bn_mean, params.bn_var
    n_members = enc_w[0].shape[0]
    n_samples = eps.shape[1]
    use_bn = len(bn_mean) > 0
    h = x
    n_enc = len(enc_w)
    for i in range(n_enc):
        h = _bf16_product(h, enc_w[i], enc_b[i]) if bf16 else torch.matmul(h, enc_w[i]) + enc_b[i]
        if i < n_enc - 1:
            if use_bn:
                h_stats: Optional[torch.Tensor] = None
                if n_stat_rows > 0:
                    h_stats = h[:, :n_stat_rows]
                h = _batch_norm(h, bn_mean[i], bn_var[i], bn_training, h_stats)
            h = F.leaky_relu(h, 0.01)
    # split (not slicing): its backward concatenates instead of zero-filling.
    latent = h.shape[-1] // 2
    mu, logvar = torch.split(h, latent, dim=-1)
    logvar = F.hardtanh(logvar, -6.0, 2.0)
    n_rows = mu.shape[1]
    # z = mu + sigma * eps, with K as a new axis: (M, K, B, L)
    z = mu.unsqueeze(1) + torch.exp(0.5 * logvar).unsqueeze(1) * eps
    # log p(z) - log q(z|x); the log(2 pi) terms cancel.
    log_prior_ratio = 0.5 * (
        (eps * eps).sum(-1) - (z * z).sum(-1) + logvar.sum(-1).unsqueeze(1)
    )

    g = z.reshape(n_members, n_samples * n_rows, latent)
    n_dec = len(dec_w)
    for i in range(n_dec - 1):
        g = _bf16_product(g, dec_w[i], dec_b[i]) if bf16 else torch.baddbmm(dec_b[i], g, dec_w[i])
        if use_bn:
            j = n_enc - 1 + i
            g_stats: Optional[torch.Tensor] = None
            if n_stat_rows > 0:
                g_stats = g.view(n_members, n_samples, n_rows, -1)[:, :, :n_stat_rows]
                g_stats = g_stats.reshape(n_members, n_samples * n_stat_rows, -1)
            g = _batch_norm(g, bn_mean[j], bn_var[j], bn_training, g_stats)
        g = F.leaky_relu(g, 0.01)
    xb = x.unsqueeze(1) if x.dim() == 3 else x
    shape = [n_members, n_samples, n_rows, -1]
    if likelihood == "bernoulli":
        logits = (_bf16_product(g, dec_w[-1], dec_b[-1]) if bf16
                  else torch.baddbmm(dec_b[-1], g, dec_w[-1])).view(shape)
        return xb, logits, logits, log_prior_ratio
    # The last layer emits a mean (through a sigmoid for the Gaussian) and a
    # clamped log-variance per feature. Two products keep each output
    # contiguous, which the elementwise kernels below need at full speed.
    d = dec_w[-1].shape[-1] // 2
    w_mean, w_logvar = torch.split(dec_w[-1], d, dim=-1)
    b_mean, b_logvar = torch.split(dec_b[-1], d, dim=-1)
    if bf16:
        mean = _bf16_product(g, w_mean, b_mean)
        logvar_out = _bf16_product(g, w_logvar, b_logvar)
    else:
        mean = torch.baddbmm(b_mean, g, w_mean)
        logvar_out = torch.baddbmm(b_logvar, g, w_logvar)
    if likelihood == "gaussian":
        mean = torch.sigmoid(mean)
    mean = mean.view(shape)
    dlv = F.hardtanh(logvar_out, -6.0, 2.0).view(shape)
    return xb, mean, dlv, log_prior_ratio


def log_importance_weights(
    x: torch.Tensor,
    eps: torch.Tensor,
    params: Parameters,
    bn_training: bool,
    likelihood: str,
    n_stat_rows: int = 0,
    bf16: bool = False,
) -> torch.Tensor:
    """Log importance weights ``log p(x, z_k) - log q(z_k | x)``.

    Parameters
    ----------
    x : Tensor of shape (M, B, d) or (B, d)
        Rows for every member, or the same rows for all members.
    eps : Tensor of shape (M, K, B, L) or (M, K, 1, L)
        Standard normal draws; the second form shares one set of ``K`` draws
        across all rows (used for deterministic scoring).
    params : Parameters
        Stacked weights, biases and running statistics.
    bn_training : bool
        Normalize with this batch's statistics (and update the running
        ones) rather than with the running statistics.
    likelihood : {"gaussian", "bernoulli", "rectified"}
        The decoder distribution (:data:`LIKELIHOODS`): Bernoulli's last
        layer emits ``d`` logits, the others ``2 d`` values, means and
        log-variances.
    n_stat_rows : int, optional (default=0)
        With ``bn_training``, take the statistics from the first
        ``n_stat_rows`` rows only (in the decoder, those rows of every
        importance sample) and normalize all rows with them; 0 uses all
        rows. Semi-supervised training appends the known outliers to the
        unlabeled batch this way: they are normalized as the inliers are,
        without moving the statistics.
    bf16 : bool, optional (default=False)
        Run every layer's product in bfloat16 with float32 accumulation
        (``precision="bfloat16"`` training); everything else stays float32.

    Returns
    -------
    log_w : Tensor of shape (M, K, B)
    """
    xb, first, second, log_prior_ratio = _decoder_outputs(
        x, eps, params, bn_training, likelihood, n_stat_rows, bf16
    )
    if likelihood == "bernoulli":
        log_px = (xb * first - F.softplus(first)).sum(-1)
    elif likelihood == "rectified":
        log_px = -rectified_nll(xb, first, second).sum(-1)
    else:
        diff = xb - first
        d = first.shape[-1]
        log_px = -0.5 * ((diff * diff * torch.exp(-second) + second).sum(-1)
                         + d * 1.8378770664093453)
    return log_px + log_prior_ratio


def feature_nll(
    x: torch.Tensor,
    eps: torch.Tensor,
    params: Parameters,
    likelihood: str,
    bf16: bool = False,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-feature shares of each row's negative IWAE bound.

    With the log weights ``log w_k = log p(x | z_k) + log p(z_k) - log q(z_k | x)``
    of :func:`log_importance_weights` (batch normalization in evaluation
    mode) and the normalized weights ``w~_k = softmax_k(log w_k)``, feature
    ``j`` gets its expected negative log-likelihood under them,

        c_j(x) = sum_k w~_k * (-log p(x_j | z_k)),

    where ``-log p(x_j | z) = ((x_j - mean_j)^2 exp(-logvar_j) + logvar_j
    + log(2 pi)) / 2`` for the Gaussian decoder (sigmoid mean, log-variance
    clamped to [-6, 2]), :func:`rectified_nll` for the rectified one and
    ``softplus(logit_j) - x_j logit_j`` for the Bernoulli one. The rest of
    the loss is the latent part

        r(x) = sum_k w~_k * (log q(z_k | x) - log p(z_k)) - H(w~) + log K,

    with ``H(w~) = -sum_k w~_k log w~_k``, and exactly

        loss(x) = log K - logsumexp_k log w_k = sum_j c_j(x) + r(x),

    because ``log w~_k = log w_k - logsumexp_l log w_l`` for every ``k``, so
    ``logsumexp_l log w_l = sum_k w~_k (log w_k - log w~_k)
    = sum_k w~_k log w_k + H(w~)``, and ``log w_k`` splits into the
    features' log-likelihoods and the latent log ratio.

    Parameters
    ----------
    x : Tensor of shape (B, d) or (M, B, d)
    eps : Tensor of shape (M, K, 1, L) or (M, K, B, L)
        The draws that score the rows (see :func:`log_importance_weights`).
    params : Parameters
        As for :func:`log_importance_weights`; the running statistics are
        used and left unchanged.
    likelihood : {"gaussian", "bernoulli", "rectified"}
    bf16 : bool, optional (default=False)
        Products in bfloat16, as for :func:`log_importance_weights`.

    Returns
    -------
    c : Tensor of shape (M, B, d)
        Per-feature expected negative log-likelihoods.
    r : Tensor of shape (M, B)
        The latent part, so that ``c.sum(-1) + r`` is the loss of
        :func:`iwae_loss`.
    """
    n_samples = eps.shape[1]
    xb, first, second, log_prior_ratio = _decoder_outputs(x, eps, params, False, likelihood, 0,
                                                          bf16)
    if likelihood == "bernoulli":
        nll = F.softplus(first) - xb * first
    elif likelihood == "rectified":
        nll = rectified_nll(xb, first, second)
    else:
        diff = xb - first
        nll = 0.5 * (diff * diff * torch.exp(-second) + second + 1.8378770664093453)
    # nll: (M, K, B, d); the weights normalize over the K draws.
    log_w = log_prior_ratio - nll.sum(-1)
    log_norm = torch.log_softmax(log_w, dim=1)
    weights = torch.exp(log_norm)
    c = (weights.unsqueeze(-1) * nll).sum(1)
    entropy = -(weights * log_norm).sum(1)
    r = -(weights * log_prior_ratio).sum(1) - entropy + math.log(n_samples)
    return c, r


def iwae_loss(log_w: torch.Tensor) -> torch.Tensor:
    """Negative IWAE bound per row from log weights ``(M, K, B)`` -> ``(M, B)``."""
    return math.log(log_w.shape[1]) - torch.logsumexp(log_w, dim=1)


def cubo_loss(log_w: torch.Tensor, order: float) -> torch.Tensor:
    """Chi upper bound ``CUBO_u`` per row from log weights ``(M, K, B)``.

    ``CUBO_u(x) = (1/u) log mean_k w_k^u``, estimated in log space.
    """
    n_samples = log_w.shape[1]
    return (torch.logsumexp(order * log_w, dim=1) - math.log(n_samples)) / order


def params_to_numpy(params):
    """Copy a parameter dict to CPU NumPy arrays (pickle-friendly, device-free)."""
    return {k: [t.detach().cpu().numpy().copy() for t in v] for k, v in params.items()}


def params_from_numpy(state, device):
    """Inverse of :func:`params_to_numpy`."""
    return {
        k: [torch.as_tensor(a, device=device) for a in v] for k, v in state.items()
    }


def select_members(params, index):
    """Parameters of a subset of members (``index`` into the first axis)."""
    return {k: [t[index] for t in v] for k, v in params.items()}
