"""Choosing the torch device and the CPU floating-point mode for a fit."""

import contextlib
import warnings

import torch


def resolve_device(device):
    """Turn the user's ``device`` parameter into a :class:`torch.device`.

    Parameters
    ----------
    device : None, str or torch.device
        ``None`` picks CUDA when available, else the CPU.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        If the string is not a device torch understands, or names CUDA on a
        machine without it.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device={device!r} is not a valid torch device: {exc}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} asks for CUDA, but CUDA is not available")
    return resolved


def scoring_device(device):
    """Device for scoring with a fitted model, falling back to the CPU.

    A model fitted on a GPU machine must still score after it is loaded on a
    CPU-only machine, so a CUDA request there warns and uses the CPU.
    """
    try:
        return resolve_device(device)
    except ValueError:
        warnings.warn(
            f"device={device!r} is not available here; scoring on the CPU",
            RuntimeWarning,
            stacklevel=3,
        )
        return torch.device("cpu")


def _flush_denormal_is_on():
    # PyTorch offers a setter but no getter: probe with a subnormal float32.
    tiny = torch.tensor([1e-40], dtype=torch.float32)
    return bool((tiny * 1.0).item() == 0.0)


@contextlib.contextmanager
def cpu_fast_math(device):
    """Flush subnormal floats to zero on the CPU while the block runs.

    Subnormal activations slow CPU arithmetic sharply late in training; the
    previous global mode is restored on exit.
    """
    if device.type != "cpu":
        yield
        return
    was_on = _flush_denormal_is_on()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(was_on)
