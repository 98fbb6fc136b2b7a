"""The range of values a fitted model's arrays can hold, checked when a model file loads.

Training moves each parameter from its initial range by a bounded step per
update (Adam), so a model file's parameters, batch-normalization
statistics and fixed draws lie in ranges that its learning rate and number
of updates set. A value outside them cannot come from training: the file
was damaged or edited, and :func:`check_parameter_range` refuses it, also
where the file's checksums were recomputed.
"""

import math

import numpy as np

from ._validation import is_count, is_number
from .defaults import LEARNING_RATES, NARROW_DEFAULTS, WIDE_DEFAULTS
from .scorer import PARAMETER_KINDS

ADAM_STEP = (1 - 0.9) / math.sqrt((1 - 0.999) * (1 - 0.9 ** 2 / 0.999))
"""float: the most one Adam update moves a parameter, in units of the learning rate.

With PyTorch's default betas (0.9, 0.999), the bias-corrected first moment
over the square root of the second is at most
``(1 - b1) / sqrt((1 - b2) * (1 - b1 ** 2 / b2))`` = 7.27 (Cauchy-Schwarz
over the gradients' exponential weights), whatever the gradients.
"""
MAX_PARAMETER = 1e4
"""float: the largest weight or bias a model file may hold, whatever its metadata claims.

Training moves a weight from its initial range by at most
``ADAM_STEP * lr`` per update; reaching 1e4 takes ``lr * n_updates`` over
1,300, a fit that has long diverged. It bounds a file whose metadata
claims a learning rate or a number of updates large enough to allow any
value (docs/deploy.md, "Integrity checks", has the margins of real fits).
"""
MAX_DRAW = 10.0
"""float: the largest magnitude of a fixed standard normal draw (``score_eps``).

A standard normal exceeds it with probability 1.5e-23 per draw.
"""
_MAX_STAT_ROWS = 1 << 31  # rows of one batch's normalization statistics, whatever the metadata says
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_parameter_range(meta, scorer, extremes=None):
    """Refuse values that training cannot produce (:func:`parameter_bounds`), naming the array.

    Parameters
    ----------
    meta : dict
        The file's metadata (``params``, ``fitted``).
    scorer : pyod_odim.scorer.FittedScorer
        Rebuilt from the file, its shapes checked
        (:meth:`~pyod_odim.scorer.FittedScorer.from_arrays`).
    extremes : dict of str to list of float, optional
        ``[min, max]`` of arrays already scanned, by file name
        (``"params/enc_w"``: every layer's weights): where they lie within
        every layer's range, the layers are not scanned again.

    Raises
    ------
    ValueError
        A value beyond its bound, naming the array and the layer
        (:func:`pyod_odim.load` adds the file's name).
    """
    params = scorer.params
    arrays = {f"params/{key}": params[key] for key in PARAMETER_KINDS}
    arrays.update({"score_eps": [scorer.score_eps], "member_mean": [scorer.member_mean],
                   "member_std": [scorer.member_std]})
    bounds = parameter_bounds(meta, scorer.architecture, scorer.likelihood, params)
    for name, intervals in bounds.items():
        _check_layers(name, arrays[name], intervals, {} if extremes is None else extremes)


def parameter_bounds(meta, arch, likelihood, params):
    """The range of every array that training can produce, layer by layer.

    For a file fitted with learning rate ``lr`` over ``n`` updates (from
    its metadata, each claim capped so that a tampered one cannot lift the
    bounds far):

    * a weight or bias of a layer with ``fan_in`` inputs starts within
      ``1 / sqrt(fan_in)`` (:func:`pyod_odim.network.init_parameters`) and
      moves at most ``ADAM_STEP * lr`` per update: its bound is
      ``1 / sqrt(fan_in) + n * ADAM_STEP * lr``, and at most
      :data:`MAX_PARAMETER`;
    * batch normalization's running mean of a layer is an average of its
      batches' means: within ``fan_in * a * w + w``, where ``w`` is the
      layer's bound and ``a`` bounds its inputs in training (1 for the
      scaled rows; ``sqrt(rows)`` after a normalized layer over ``rows``
      rows, the largest standardized value of that many; ``|mu| + e * 10``
      for the latent draws); its running variance lies in
      ``[0, max(1, 2 * (fan_in * a * w + w) ** 2)]``;
    * the fixed draws ``score_eps`` within :data:`MAX_DRAW`;
    * the member loss moments within float32's range (they summarize
      float32 losses), the deviations non-negative.

    The scaling bounds may be any finite, ordered values (any finite data
    gives them); they are checked with the shapes.

    Parameters
    ----------
    meta : dict
    arch : pyod_odim.network.Architecture
    likelihood : str
    params : dict of str to list of ndarray
        Shapes already checked against ``arch``.

    Returns
    -------
    bounds : dict of str to list of tuple of float
        ``(low, high)`` of each layer, by array name (``"params/enc_w"``,
        ..., ``"score_eps"``, ``"member_mean"``, ``"member_std"``).
    """
    lr, n_updates, (enc_rows, dec_rows) = _training_extent(meta, likelihood)
    out, weights = {}, {}
    for key in ("enc", "dec"):
        # The initial bound in float32 may round up by an ulp: a relative 1e-6 covers it.
        weights[key] = [min((1.0 + 1e-6) / math.sqrt(w.shape[1]) + n_updates * ADAM_STEP * lr,
                            MAX_PARAMETER) for w in params[key + "_w"]]
        out[f"params/{key}_w"] = out[f"params/{key}_b"] = [(-b, b) for b in weights[key]]
    out["score_eps"] = [(-MAX_DRAW, MAX_DRAW)]
    out["member_mean"] = [(-_FLOAT32_MAX, _FLOAT32_MAX)]
    out["member_std"] = [(0.0, _FLOAT32_MAX)]
    reach = []
    if params["bn_mean"]:
        # Each normalized layer: its fan-in, weight bound and inputs' bound in training.
        n_enc = len(params["enc_w"]) - 1  # hidden encoder layers; the head is not normalized
        layers = [(params["enc_w"][i].shape[1], weights["enc"][i],
                   1.0 if i == 0 else math.sqrt(enc_rows)) for i in range(n_enc)]
        head_in, head_w = params["enc_w"][-1].shape[1], weights["enc"][-1]
        mu = head_in * math.sqrt(enc_rows) * head_w + head_w
        layers += [(params["dec_w"][i].shape[1], weights["dec"][i],
                    mu + math.e * MAX_DRAW if i == 0 else math.sqrt(dec_rows))
                   for i in range(len(params["dec_w"]) - 1)]
        reach = [fan_in * inputs * w + w for fan_in, w, inputs in layers]
    out["params/bn_mean"] = [(-r, r) for r in reach]
    out["params/bn_var"] = [(0.0, max(1.0, 2.0 * r * r)) for r in reach]
    return out


def _check_layers(name, layers, intervals, extremes):
    """Raise unless each layer's values lie in its ``(low, high)`` interval (NaN never does)."""
    known = extremes.get(name)
    if known is not None and all(low <= known[0] and known[1] <= high for low, high in intervals):
        return
    for i, (values, (low, high)) in enumerate(zip(layers, intervals)):
        if values.size == 0:
            continue
        lowest, highest = float(values.min()), float(values.max())
        if not (lowest >= low and highest <= high):
            where = f"array {name!r}" + (f" (layer {i})" if len(layers) > 1 else "")
            raise ValueError(
                f"{where} holds values in [{lowest:.4g}, {highest:.4g}], outside the "
                f"[{low:.4g}, {high:.4g}] that training can produce: the file was damaged "
                "or edited"
            )


def _training_extent(meta, likelihood):
    """The learning rate, the number of updates and the normalization rows a file claims.

    Returns
    -------
    lr : float
        ``lr`` of the parameters, or the rate ``"auto"`` takes for the likelihood.
    n_updates : int
        Updates done (``fitted.n_updates``; ``max_updates`` if missing).
    stat_rows : tuple of int
        Rows of one batch's statistics in the encoder (``batch_size``) and
        the decoder (times the training draws), each at most 2**31.
    """
    given = meta.get("params") if isinstance(meta.get("params"), dict) else {}
    fitted = meta.get("fitted") if isinstance(meta.get("fitted"), dict) else {}
    lr = given.get("lr")
    lr = float(lr) if is_number(lr) and 0 < lr < math.inf else LEARNING_RATES[likelihood]
    n_updates = fitted.get("n_updates", given.get("max_updates"))
    if not is_count(n_updates):
        raise ValueError("the number of updates is missing or malformed")

    def count(name, default):
        value = given.get(name)
        return value if is_count(value) and value > 0 else default

    batch = min(count("batch_size", _MAX_STAT_ROWS), _MAX_STAT_ROWS)
    # n_samples_train="auto" (or None) takes a width default or n_samples_iwae.
    draws = max(count("n_samples_iwae", 1), count("n_samples_train", 1),
                NARROW_DEFAULTS.n_samples_train, WIDE_DEFAULTS.n_samples_train)
    return lr, n_updates, (batch, min(batch * draws, _MAX_STAT_ROWS))
