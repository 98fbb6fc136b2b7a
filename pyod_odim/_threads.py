"""``n_jobs`` the PyOD way: how many CPU threads a fit or a scoring call uses."""

import contextlib
import numbers

import torch
from joblib import effective_n_jobs


def resolve_n_jobs(n_jobs):
    """Threads for ``n_jobs`` as scikit-learn counts them.

    Parameters
    ----------
    n_jobs : int or None
        ``None`` and 1 mean one thread, -1 every CPU this process may use,
        ``-2`` all but one, and so on. 0 is not allowed.

    Returns
    -------
    int
        At least 1.
    """
    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral)):
        raise TypeError(f"n_jobs must be an int or None, got {type(n_jobs).__name__}")
    if n_jobs == 0:
        raise ValueError("n_jobs == 0 has no meaning; use 1 for one thread or -1 for all CPUs")
    return max(1, int(effective_n_jobs(n_jobs)))


@contextlib.contextmanager
def torch_threads(n_threads):
    """Run the block with PyTorch's intra-op pool at ``n_threads``.

    The caller's setting comes back on exit, also when the block raises.
    PyTorch's threads spin while they wait, so a pool wider than a fit
    needs slows every other process on the machine.
    """
    before = torch.get_num_threads()
    if n_threads != before:
        torch.set_num_threads(n_threads)
    try:
        yield n_threads
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
