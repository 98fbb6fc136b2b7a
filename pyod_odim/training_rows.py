"""The training rows: the scaled fitting rows that a fit draws its batches from.

A fit reads its rows in four ways: the minibatches of every update
(:meth:`TrainingRows.take`), the selection subset of the checks
(:meth:`TrainingRows.subset`, scored by :meth:`TrainingRows.losses`), the
final scoring pass (:meth:`TrainingRows.scoring_chunk`) and the overshoot
costs of values beyond the scaling bounds (:attr:`TrainingRows.costs`).

* :class:`DenseTrainingRows` (dense input) holds the scaled rows as one
  float32 tensor on the training device.
* :class:`SparseTrainingRows` (scipy.sparse input) holds the scaled stored
  values as a float32 CSR matrix and the scaled value of an implicit zero of
  each feature; rows become dense a batch or a chunk at a time.

Both give the network the same float32 values for the same rows, so a
sparse matrix and its dense copy train and score alike.
"""

import numpy as np
import torch

from .chunking import chunk_slices, rows_per_chunk, scoring_row_bytes
from .sparse import is_sparse


def _outside_unit(values):
    """Whether any value lies outside [0, 1]."""
    return bool(((values < 0.0) | (values > 1.0)).any())


class DenseTrainingRows:
    """The scaled fitting rows as one float32 tensor (dense input).

    Parameters
    ----------
    scaled : Tensor of shape (n, d), float32
        The rows scaled and clipped to the network's box (what scoring sees).
    costs : ndarray of shape (n,) or None
        Their overshoot costs; None for rows already in [0, 1] (no cost).
    detached : bool or None
        Whether training sees the values clamped to [0, 1] (the scaling
        fence detached some values, or some lie outside [0, 1]); None
        decides it from ``costs`` and ``scaled``.

    Attributes
    ----------
    n_rows, n_features : int
    device : torch.device
    """

    def __init__(self, scaled, costs=None, detached=None):
        self.scaled = scaled
        self.costs = np.zeros(scaled.shape[0]) if costs is None else costs
        if detached is None:
            detached = bool(self.costs.any()) or bool(
                ((scaled < 0.0) | (scaled > 1.0)).any().item())
        self.detached = detached
        # Training and the checks see values detached by the fence at the
        # bounds (the scoring box would let them dominate every loss).
        self.values = scaled.clamp(0.0, 1.0) if detached else scaled
        self.n_rows, self.n_features = (int(n) for n in scaled.shape)
        self.device = scaled.device

    def take(self, index):
        """The training values of rows ``index`` (any shape): Tensor of shape ``index.shape + (d,)``."""
        return self.values[index]

    def subset(self, index):
        """The rows ``index`` (a 1-D Tensor) as training rows of their own."""
        values = self.values[index]
        return DenseTrainingRows(values, self.costs[index.cpu().numpy()], detached=False)

    def losses(self, engine, params, score_eps, bf16=False):
        """The engine's member losses (M, n) of every row's training values.

        ``bf16`` runs the products in bfloat16 (the checks of a bfloat16 fit).
        """
        return engine.score(params, self.values, score_eps, bf16)

    def scoring_chunk(self, rows):
        """The scoring values (Tensor) and overshoot costs (ndarray) of the row slice ``rows``."""
        return self.scaled[rows], self.costs[rows]


class SparseTrainingRows:
    """The scaled fitting rows of a sparse matrix, made dense a batch at a time.

    Parameters
    ----------
    values : scipy.sparse.csr_matrix of shape (n, d), float32
        The stored values scaled and clipped to the network's box.
    background : ndarray of shape (d,), float32
        The scaled and clipped value of each feature's implicit zeros.
    costs : ndarray of shape (n,)
        Each row's overshoot cost.
    detached : bool
        Whether training sees the values clamped to [0, 1].
    device : torch.device
    chunk_rows : int
        Rows made dense at once by :meth:`losses`.
    """

    def __init__(self, values, background, costs, detached, device, chunk_rows):
        self.matrix, self.background, self.costs = values, background, costs
        self.detached, self.device, self.chunk_rows = detached, device, chunk_rows
        self.n_rows, self.n_features = (int(n) for n in values.shape)

    @classmethod
    def from_matrix(cls, X, scorer, device, chunk_rows):
        """Scale a validated CSR matrix for ``scorer`` (a fitted scaling, box and floor)."""
        box, floor, scaling = scorer.box, scorer.floor, scorer.scaling
        costs = np.empty(X.shape[0])
        for rows in chunk_slices(X.shape[0], chunk_rows):
            costs[rows] = scorer.scale_with_cost(X[rows].toarray())[1]
        stored = scaling.transform_values(X.data, X.indices, box, floor).astype(np.float32)
        zeros = np.zeros(X.shape[1], dtype=X.dtype)
        background = scaling.transform_values(zeros, np.arange(X.shape[1]), box, floor)
        background = background.astype(np.float32)
        # An implicit zero exists in the features stored in fewer than every row.
        has_zeros = np.bincount(X.indices, minlength=X.shape[1]) < X.shape[0]
        detached = (bool(costs.any()) or _outside_unit(stored)
                    or _outside_unit(background[has_zeros]))
        values = type(X)((stored, X.indices, X.indptr), shape=X.shape)
        return cls(values, background, costs, detached, device, chunk_rows)

    def _dense(self, rows, clamp):
        """Rows ``rows`` (index array or slice) as a dense float32 tensor on the device."""
        part = self.matrix[rows]
        out = np.empty(part.shape, dtype=np.float32)
        out[:] = self.background
        starts = np.repeat(np.arange(part.shape[0]), np.diff(part.indptr))
        out[starts, part.indices] = part.data
        if clamp:
            np.clip(out, 0.0, 1.0, out=out)
        return torch.from_numpy(out).to(self.device)

    def take(self, index):
        """As :meth:`DenseTrainingRows.take`: only these rows are made dense."""
        flat = index.reshape(-1).cpu().numpy()
        return self._dense(flat, self.detached).reshape(tuple(index.shape) + (-1,))

    def subset(self, index):
        """As :meth:`DenseTrainingRows.subset`."""
        index = index.cpu().numpy()
        return SparseTrainingRows(self.matrix[index], self.background, self.costs[index],
                                  self.detached, self.device, self.chunk_rows)

    def losses(self, engine, params, score_eps, bf16=False):
        """As :meth:`DenseTrainingRows.losses`, ``chunk_rows`` rows at a time."""
        parts = [engine.score(params, self._dense(rows, self.detached), score_eps, bf16)
                 for rows in chunk_slices(self.n_rows, self.chunk_rows)]
        return np.concatenate(parts, axis=1)

    def scoring_chunk(self, rows):
        """As :meth:`DenseTrainingRows.scoring_chunk`."""
        return self._dense(rows, False), self.costs[rows]


def training_rows(X, scorer, device, n_members, working_memory):
    """The fitting rows ``X`` scaled for ``scorer``, chunk by chunk under ``working_memory``.

    Parameters
    ----------
    X : ndarray or scipy.sparse.csr_matrix of shape (n, d)
        Validated fitting rows.
    scorer : pyod_odim.scorer.FittedScorer
        Its scaling, box and floor are used.
    device : torch.device
    n_members : int
        Members the chunks are sized for.
    working_memory : float
        MiB of temporaries.

    Returns
    -------
    DenseTrainingRows or SparseTrainingRows
    """
    sparse = is_sparse(X)
    row_bytes = scoring_row_bytes(X.shape[1], n_members, X.dtype.itemsize, sparse=sparse)
    chunk = rows_per_chunk(working_memory, row_bytes)
    if sparse:
        return SparseTrainingRows.from_matrix(X, scorer, device, chunk)
    # Filled chunk by chunk, so a float64 input never has a float64 scaled
    # copy of all its rows beside it.
    out = torch.empty(X.shape, dtype=torch.float32, device=device)
    costs = np.empty(X.shape[0])
    for rows in chunk_slices(X.shape[0], chunk):
        x, costs[rows] = scorer.scale_with_cost(X[rows])
        out[rows] = torch.as_tensor(x, dtype=torch.float32, device=device)
    return DenseTrainingRows(out, costs)
