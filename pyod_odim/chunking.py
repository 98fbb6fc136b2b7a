"""Rows in chunks that fit a memory budget, and moments merged over chunks.

One rule, :func:`rows_within`, sizes every chunk of rows: a budget divided
by the cost of one row, bounded below (and above). It is applied at two
levels:

* :func:`rows_per_chunk`: the rows the detector and the scorer hand to an
  engine at once, so that their temporaries (the scaled copy of a row, one
  loss per member, :func:`scoring_row_bytes`) stay under the detector's
  ``working_memory``;
* :func:`activation_chunk_rows`: the rows one PyTorch pass scores at once
  (the engines and the TorchScript export), so that the widest activation
  ``(M, K, rows, width)`` stays near the caches on a CPU.

The C++ kernels cut each engine call further into blocks of 8 to 64 rows
sized for the caches (``score_tiling`` in ``csrc/iwae.cpp``). A row's score
does not depend on the other rows scored with it, so no chunking changes a
score.
"""

import numpy as np

from .network import as_parameters

MIB = 1 << 20

# The C++ kernels score 8 to 64 rows per block: fewer rows per chunk would
# only add Python overhead.
MIN_CHUNK_ROWS = 64

# Elements of the widest (M, K, rows, width) activation per PyTorch chunk:
# small enough to stay near the CPU caches, large enough for a GPU.
ACTIVATION_ELEMENTS = {"cpu": 1_000_000, "cuda": 256_000_000}

# Fewest and most rows per PyTorch chunk.
MIN_ACTIVATION_ROWS = 16
MAX_ACTIVATION_ROWS = 1 << 20


def rows_within(budget, row_cost, minimum, maximum=None):
    """Rows whose cost fits ``budget``, clipped to ``[minimum, maximum]``.

    Parameters
    ----------
    budget : int
        Bytes or elements available.
    row_cost : int
        What one row costs, in the budget's unit.
    minimum : int
    maximum : int or None, optional (default=None)

    Returns
    -------
    int
    """
    rows = max(minimum, int(budget) // max(1, int(row_cost)))
    return rows if maximum is None else min(rows, maximum)


def scoring_row_bytes(n_features, n_members, input_itemsize, sparse=False):
    """Bytes of temporaries per scored row, an upper estimate.

    Parameters
    ----------
    n_features : int
    n_members : int
    input_itemsize : int
        Bytes per value of the input (8 for float64, 4 for float32).
    sparse : bool, optional (default=False)
        The input is a sparse matrix: its rows are first made dense, one
        more copy of the row in the input dtype.

    Returns
    -------
    int
        The scaled copy of the row and its clipped copy (input dtype), the
        float64 overshoot of its values beyond the scaling bounds, its
        float32 tensor; per member, the engines' float64 loss and their
        working copies (the kernels' block buffer, PyTorch's float32
        pieces); the combined score, and slack for the standardized
        combination.
    """
    copies = 3 if sparse else 2
    return int(n_features * (copies * input_itemsize + 12) + n_members * 32 + 16)


def rows_per_chunk(working_memory, row_bytes):
    """Rows whose temporaries fit in ``working_memory`` MiB.

    Parameters
    ----------
    working_memory : float
        Budget in MiB.
    row_bytes : int
        From :func:`scoring_row_bytes`.

    Returns
    -------
    int
        At least :data:`MIN_CHUNK_ROWS`.
    """
    return rows_within(working_memory * MIB, row_bytes, MIN_CHUNK_ROWS)


def activation_chunk_rows(params, n_samples, device_type="cpu"):
    """Rows per PyTorch pass under the device's activation budget.

    Parameters
    ----------
    params : pyod_odim.network.Parameters or dict of str to list of arrays
        Only the shapes are read.
    n_samples : int
        Importance draws ``K`` per row.
    device_type : str or torch.device, optional (default="cpu")
        The budget of "cuda" is larger than that of any other device.

    Returns
    -------
    int
        Between :data:`MIN_ACTIVATION_ROWS` and :data:`MAX_ACTIVATION_ROWS`.
    """
    device_type = getattr(device_type, "type", device_type)
    p = as_parameters(params)
    n_members = p.enc_w[0].shape[0]
    widest = max(w.shape[-1] for w in list(p.enc_w) + list(p.dec_w))
    budget = ACTIVATION_ELEMENTS["cuda" if device_type == "cuda" else "cpu"]
    return rows_within(budget, n_members * n_samples * widest, MIN_ACTIVATION_ROWS,
                       MAX_ACTIVATION_ROWS)


def chunk_slices(n_rows, chunk_rows):
    """Consecutive slices of at most ``chunk_rows`` rows covering ``n_rows``."""
    for start in range(0, n_rows, chunk_rows):
        yield slice(start, min(start + chunk_rows, n_rows))


class MemberMoments:
    """Each member's mean and standard deviation of losses seen chunk by chunk.

    Chunks merge with the pairwise update of Chan, Golub and LeVeque, so the
    result matches ``losses.mean(axis=1)`` and ``losses.std(axis=1)`` of all
    chunks side by side to float64 rounding (exactly, for one chunk).

    Attributes
    ----------
    count : int
        Rows seen.
    mean : ndarray of shape (n_members,) or None
    """

    def __init__(self):
        self.count = 0
        self.mean = None
        self._m2 = None

    def add(self, losses):
        """Merge a chunk of losses, an array of shape (n_members, n_rows)."""
        rows = losses.shape[1]
        if rows == 0:
            return
        mean = losses.mean(axis=1)
        m2 = ((losses - mean[:, None]) ** 2).sum(axis=1)
        if self.count == 0:
            self.count, self.mean, self._m2 = rows, mean, m2
            return
        total = self.count + rows
        delta = mean - self.mean
        self.mean = self.mean + delta * (rows / total)
        self._m2 = self._m2 + m2 + delta**2 * (self.count * rows / total)
        self.count = total

    @property
    def std(self):
        """ndarray of shape (n_members,): population standard deviations."""
        return np.sqrt(self._m2 / self.count)
