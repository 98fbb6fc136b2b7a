"""ODIM on Dask: score a fitted model over a cluster, fit it on a sample.

Needs the ``dask`` extra (``pip install "pyod-odim[dask]"``: dask with its
array and dataframe parts, and distributed)::

    from pyod_odim import ODIM
    from pyod_odim.dask import fit_on_sample, score

    clf = fit_on_sample(ODIM(max_fit_rows=100_000, random_state=0), X)
    scores, labels = score(clf, X)        # lazy; nothing runs yet
    scores.compute()                      # or labels.to_parquet(...), ...

``X`` is a 2-D dask array (its blocks NumPy arrays or scipy.sparse CSR or
CSC matrices) or a dask DataFrame of numeric columns. Under a
``distributed.Client`` the work runs on its cluster; otherwise on Dask's
default local scheduler.

* :func:`fit_on_sample` draws the same uniform sample of rows as
  ``ODIM(max_fit_rows=...).fit`` does in memory (same ``random_state``,
  same rows), gathers only those rows and fits the model on them.
* :func:`score` maps the model's ``decision_function`` over the row blocks
  or partitions. The model travels as one task of the graph, so each
  worker receives it once, without the training scores (it pickles to a
  few hundred kB), and scores on the CPU whatever device it was fitted on.
  A row's score does not depend on the other rows of its block, so the
  scores equal those of in-memory scoring.

Bad input (a wrong number of columns, NaN or infinite values, non-numeric
columns) raises the same ``ValueError`` or ``TypeError`` as in-memory
scoring when the result is computed, naming the partition, e.g.
``X partition 3 (rows 300000:400000) contains NaN values (first at row
17)``; rows are counted from the partition's first row.
"""

import numpy as np
from sklearn.utils.validation import check_is_fitted

try:
    import dask
    import dask.array as da
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "pyod_odim.dask needs Dask: pip install \"pyod-odim[dask]\""
    ) from exc

from ._threads import resolve_n_jobs
from ._validation import FLOAT_DTYPES, check_samples, seed_from
from .sampling import sample_rows
from .sparse import is_sparse
from .thresholds import fitted_score_threshold

__all__ = ["PartitionScorer", "fit_on_sample", "score"]


class PartitionScorer:
    """The fitted scorer of an ODIM, as workers receive it, scoring one partition.

    Parameters
    ----------
    estimator : pyod_odim.ODIM
        Fitted. It is not modified: workers receive only its
        :class:`~pyod_odim.scorer.FittedScorer` (the state scoring needs,
        without the training scores), so what they receive does not grow
        with the training data.
    device : str, optional (default="cpu")
        Where the workers score. "cpu" works on any worker, also for a
        model fitted on CUDA (its fitted state is NumPy).
    n_jobs : int, optional (default=1)
        Threads per partition. One thread per task leaves the parallelism
        to Dask's workers and threads.

    Attributes
    ----------
    threshold_ : float
        The fitted model's cut in score units, ``score_threshold_``
        (:func:`pyod_odim.thresholds.fitted_score_threshold`): scores above
        it are labelled 1. It equals ``threshold_`` for a numeric
        ``contamination``; for a thresholder it is the cut that gives the
        thresholder's training labels, so every row is labelled on its own.
    n_features_in_ : int
    """

    def __init__(self, estimator, device="cpu", n_jobs=1):
        check_is_fitted(estimator, ["scorer_", "decision_scores_", "threshold_"])
        self.scorer = estimator.scorer_
        self.engine = estimator.engine
        self.working_memory = estimator.working_memory
        self.device = device
        self.n_jobs = resolve_n_jobs(n_jobs)
        self.threshold_ = fitted_score_threshold(estimator)
        self.n_features_in_ = int(estimator.n_features_in_)

    def decision_function(self, block, name="X"):
        """Scores of one block of rows.

        Parameters
        ----------
        block : array-like of shape (n_rows, ``n_features_in_``)
            A NumPy block, a scipy.sparse CSR or CSC block or a pandas
            DataFrame partition; may be empty.
        name : str
            Names the block in error messages.

        Returns
        -------
        scores : ndarray of shape (n_rows,), float64
        """
        X = check_samples(
            block, name=name, n_features=self.n_features_in_, min_samples=0,
            dtype=FLOAT_DTYPES, accept_sparse=True,
        )
        return self.scorer.score(
            X, engine=self.engine, device=self.device, n_jobs=self.n_jobs,
            working_memory=self.working_memory,
        )


def score(estimator, X, *, device="cpu", n_jobs=1):
    """Lazy scores and labels of a dask collection under a fitted ODIM.

    Parameters
    ----------
    estimator : pyod_odim.ODIM
        Fitted (in memory, with :func:`fit_on_sample`, or loaded from disk).
    X : dask.array.Array of shape (n_samples, n_features) or dask.dataframe.DataFrame
        Rows to score; a DataFrame's columns must all be features (select
        them first, e.g. ``ddf[feature_columns]``).
    device : str, optional (default="cpu")
        Where the workers score; see :class:`PartitionScorer`.
    n_jobs : int, optional (default=1)
        Threads per partition.

    Returns
    -------
    scores : dask.array.Array of shape (n_samples,) or dask.dataframe.Series
        Anomaly scores, float64, higher is more abnormal: row by row what
        ``estimator.decision_function`` returns. A Series (named "score")
        keeps the DataFrame's index and divisions; an array has ``X``'s row
        chunks.
    labels : dask.array.Array of shape (n_samples,) or dask.dataframe.Series
        1 where the score exceeds ``estimator.score_threshold_``, else 0
        (int64); a Series is named "label". For a numeric ``contamination``
        these are ``estimator.predict``'s labels; for a thresholder they are
        row-local, where PyOD's ``predict`` asks the thresholder
        (:mod:`pyod_odim.thresholds`).

    Raises
    ------
    TypeError
        ``X`` is not a dask array or DataFrame.
    ValueError
        ``X`` is an array that is not 2-D. Problems with the values raise
        when the result is computed (see the module docstring).
    """
    scorer = PartitionScorer(estimator, device=device, n_jobs=n_jobs)
    # One task holds the model: each worker fetches it once, not per block.
    shipped = dask.delayed(scorer, pure=True)
    if isinstance(X, da.Array):
        _check_2d(X)
        if X.numblocks[1] > 1:
            X = X.rechunk({1: -1})  # a block must hold whole rows
        scores = da.map_blocks(
            _score_block, X, shipped, drop_axis=1, dtype=np.float64,
            meta=np.empty((0,), dtype=np.float64),
        )
        labels = (scores > scorer.threshold_).astype(np.int64)
        return scores, labels
    if _is_dataframe(X):
        import pandas as pd

        scores = X.map_partitions(
            _score_partition, shipped, meta=pd.Series([], dtype="float64", name="score")
        )
        labels = (scores > scorer.threshold_).astype("int64").rename("label")
        return scores, labels
    raise TypeError(
        f"X must be a dask array or a dask DataFrame, got {type(X).__name__}; "
        "score NumPy arrays and pandas DataFrames with estimator.decision_function"
    )


def fit_on_sample(estimator, X):
    """Fit an ODIM on a uniform sample of a dask collection's rows.

    The sample is the one ``estimator.fit`` would draw in memory with
    ``max_fit_rows`` (the same rows for the same ``random_state`` and number
    of rows), so the model equals the in-memory capped fit. Only the sampled
    rows are gathered; each partition is read once (twice when its length is
    not known beforehand, as for most DataFrames) and the rest is discarded
    on the workers.

    Parameters
    ----------
    estimator : pyod_odim.ODIM
        Unfitted or fitted; refitted in place. Its ``max_fit_rows`` is the
        sample size: the gathered rows must fit in memory.
    X : dask.array.Array of shape (n_samples, n_features) or dask.dataframe.DataFrame

    Returns
    -------
    estimator : pyod_odim.ODIM
        Fitted on the sample. Its ``decision_scores_``, ``labels_`` and
        ``threshold_`` are those of the sampled rows: the threshold is the
        ``contamination`` quantile of the sample's scores, an estimate of
        that of all rows. Score all rows with :func:`score`.

    Raises
    ------
    ValueError
        ``max_fit_rows`` is None, ``use_labels`` is True, or a sampled
        partition holds bad values (named as in :func:`score`).
    TypeError
        ``X`` is not a dask array or DataFrame, or holds non-numeric data.

    Notes
    -----
    Only the sampled rows are validated here; bad values elsewhere surface
    when those rows are scored.
    """
    if estimator.max_fit_rows is None:
        raise ValueError(
            "fit_on_sample needs max_fit_rows: it gathers that many rows into memory"
        )
    if estimator.use_labels:
        raise ValueError("fit_on_sample fits unsupervised ODIM only (use_labels=False)")
    parts, lengths = _partitions(X)
    n_rows = int(sum(lengths))
    rows = sample_rows(n_rows, estimator.max_fit_rows, seed_from(estimator.random_state))
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    taken = []
    for i, part in enumerate(parts):
        if rows is None:
            local = np.arange(lengths[i])
        else:
            lo, hi = np.searchsorted(rows, starts[i:i + 2])
            local = rows[lo:hi] - starts[i]
        if local.size:
            taken.append(dask.delayed(_take_rows)(part, local, _partition_name(i, starts)))
    blocks = dask.compute(*taken)
    if blocks and is_sparse(blocks[0]):
        import scipy.sparse as sp

        return estimator.fit(sp.vstack(blocks, format="csr"))
    return estimator.fit(np.concatenate(blocks) if blocks else np.empty((0, 0)))


# ------------------------------------------------------------------ helpers
def _score_block(block, scorer, block_info=None):
    i = block_info[0]["chunk-location"][0]
    start, stop = block_info[0]["array-location"][0]
    return scorer.decision_function(block, name=_partition_name(i, None, start, stop))


def _score_partition(part, scorer, partition_info=None):
    import pandas as pd

    number = partition_info["number"] if partition_info else "?"
    scores = scorer.decision_function(part, name=f"X partition {number}")
    return pd.Series(scores, index=part.index, name="score")


def _take_rows(part, local, name):
    """The rows ``local`` of one partition, validated, as an ndarray."""
    if hasattr(part, "iloc"):
        part = part.iloc[local]
    elif is_sparse(part):
        part = part.tocsr()[local]
    else:
        part = np.asarray(part)[local]
    return check_samples(part, name=name, min_samples=0, dtype=FLOAT_DTYPES,
                         accept_sparse=True)


def _partition_name(i, starts, start=None, stop=None):
    if starts is not None:
        start, stop = starts[i], starts[i + 1]
    if start is None or not (np.isfinite(start) and np.isfinite(stop)):
        return f"X partition {i}"
    return f"X partition {i} (rows {int(start)}:{int(stop)})"


def _check_2d(X):
    if X.ndim != 2:
        raise ValueError(
            f"X must be 2-D (n_samples, n_features), got {X.ndim}-D with shape {X.shape}"
        )


def _is_dataframe(X):
    try:
        import dask.dataframe as dd
    except ImportError:  # dask without its dataframe part
        return False
    return isinstance(X, dd.DataFrame)


def _partitions(X):
    """Delayed row partitions of ``X`` and their lengths (computed if unknown)."""
    if isinstance(X, da.Array):
        _check_2d(X)
        if X.numblocks[1] > 1:
            X = X.rechunk({1: -1})
        parts = list(X.to_delayed()[:, 0])
        lengths = X.chunks[0]
    elif _is_dataframe(X):
        parts = list(X.to_delayed())
        lengths = (np.nan,)
    else:
        raise TypeError(
            f"X must be a dask array or a dask DataFrame, got {type(X).__name__}; "
            "fit NumPy arrays and pandas DataFrames with estimator.fit"
        )
    if not np.isfinite(lengths).all():
        lengths = dask.compute(*[dask.delayed(len)(p) for p in parts])
    return parts, [int(n) for n in lengths]
