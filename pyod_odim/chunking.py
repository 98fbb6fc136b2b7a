"""Rows in chunks that fit a memory budget, and moments merged over chunks.

Scoring a row needs its scaled copy and one loss per member, so scoring n
rows at once holds O(n) temporaries. :func:`rows_per_chunk` sizes chunks so
that these stay under the detector's ``working_memory``; a row's score does
not depend on the other rows scored with it, so chunking changes no score.
"""

import numpy as np

MIB = 1 << 20

# The C++ kernels score 8 to 64 rows per block: fewer rows per chunk would
# only add Python overhead.
MIN_CHUNK_ROWS = 64


def scoring_row_bytes(n_features, n_members, input_itemsize):
    """Bytes of temporaries per scored row, an upper estimate.

    Parameters
    ----------
    n_features : int
    n_members : int
    input_itemsize : int
        Bytes per value of the input (8 for float64, 4 for float32).

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
    return int(n_features * (2 * input_itemsize + 12) + n_members * 32 + 16)


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
    return max(MIN_CHUNK_ROWS, int(working_memory * MIB) // max(1, int(row_bytes)))


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
