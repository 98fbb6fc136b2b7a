"""Eager or TorchScript-compiled versions of the IWAE's core function.

``torch.jit`` is deprecated in recent PyTorch releases and warns on use; the
warning is kept from users here, and any failure to script falls back to the
eager function, which computes the same values.
"""

import warnings

import torch

from .network import log_importance_weights

COMPILE_MODES = ("auto", "torchscript", "none")

_SCRIPTED = {}


def _script_log_weights():
    if "fn" not in _SCRIPTED:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _SCRIPTED["fn"] = torch.jit.script(log_importance_weights)
    return _SCRIPTED["fn"]


def get_log_weights_fn(mode, device):
    """Return the function computing log importance weights.

    Parameters
    ----------
    mode : {"auto", "torchscript", "none"}
        ``"auto"`` runs eagerly: on the CPU a whole TorchScript fit measured
        slower than eager (its profiling executor re-specializes for every
        new input shape, which costs more than its fusion saves at these
        sizes; ``benchmarks/bench_speed.py`` prints the ratio), and the
        scripted graph's first calls round differently from its optimized
        later calls, so repeated fits in one process would differ in the
        last bits. No GPU was available to measure CUDA, so CUDA follows
        the CPU's choice.
    device : torch.device
        Kept so that a per-device choice needs no API change.

    Returns
    -------
    fn : callable
        Same signature as :func:`pyod_odim.network.log_importance_weights`.
    used : str
        ``"torchscript"`` or ``"eager"``.
    """
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile must be one of {COMPILE_MODES}, got {mode!r}")
    if mode in ("none", "auto"):
        return log_importance_weights, "eager"
    try:
        fn = _script_log_weights()
    except Exception as exc:  # TorchScript missing or unable to compile
        if mode == "torchscript":
            warnings.warn(
                f"TorchScript compilation failed ({exc}); running eagerly",
                RuntimeWarning,
                stacklevel=2,
            )
        return log_importance_weights, "eager"
    return _quiet(fn), "torchscript"


def _quiet(fn):
    """Call a scripted function with torch.jit's deprecation warnings muted."""

    def call(*args):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            return fn(*args)

    return call
