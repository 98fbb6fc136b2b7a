"""The rows a capped fit trains on: a uniform sample drawn from a seed.

The draw depends only on the number of rows, the cap and the seed, so an
in-memory fit (``ODIM(max_fit_rows=...)``) and a fit on a Dask collection
(:func:`pyod_odim.dask.fit_on_sample`) with the same ``random_state`` train
on the same rows.
"""

import numpy as np

# A stream of its own: the sample does not shift the draws of the training
# generator, which is seeded with the same seed.
_SAMPLE_STREAM = 0x0D1A

# Rows per block of the two-stage draw: memory stays O(block + sample)
# however many rows there are.
_BLOCK_ROWS = 1 << 20

# NumPy's multivariate hypergeometric draw needs fewer rows than this.
_HYPERGEOMETRIC_MAX = 10**9


def sample_rows(n_rows, max_rows, seed):
    """Sorted indices of a uniform random sample without replacement.

    Parameters
    ----------
    n_rows : int
        Rows to draw from.
    max_rows : int or None
        Sample size; ``None`` or at least ``n_rows`` means no cap.
    seed : int
        Non-negative seed (:func:`pyod_odim._validation.seed_from`).

    Returns
    -------
    rows : ndarray of shape (max_rows,), int64, or None
        ``None`` when no cap applies (every row is used).

    Notes
    -----
    Up to :data:`_HYPERGEOMETRIC_MAX` rows, the sample is split over blocks
    of rows by a multivariate hypergeometric draw, then drawn without
    replacement inside each block: every subset of ``max_rows`` rows is
    equally likely, as with one draw over all rows, and no index array of
    all ``n_rows`` rows is built. Beyond that (NumPy's limit for the split),
    NumPy draws the sample directly, with Floyd's algorithm in O(max_rows)
    memory while ``max_rows <= n_rows / 50``.
    """
    if max_rows is None or n_rows <= max_rows:
        return None
    rng = np.random.default_rng([int(seed), _SAMPLE_STREAM])
    if n_rows >= _HYPERGEOMETRIC_MAX:
        return np.sort(rng.choice(n_rows, max_rows, replace=False)).astype(np.int64)
    starts = np.arange(0, n_rows, _BLOCK_ROWS, dtype=np.int64)
    sizes = np.minimum(_BLOCK_ROWS, n_rows - starts)
    if sizes.size == 1:
        counts = np.array([max_rows])
    else:
        counts = rng.multivariate_hypergeometric(sizes, max_rows, method="marginals")
    parts = [
        start + np.sort(rng.choice(size, count, replace=False))
        for start, size, count in zip(starts, sizes, counts)
        if count
    ]
    return np.concatenate(parts).astype(np.int64, copy=False)


def fitting_rows(X, labeled, max_rows, seed):
    """The rows a fit trains on, and their known-outlier flags.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features)
    labeled : ndarray of bool, shape (n_rows,), or None
    max_rows : int or None
    seed : int

    Returns
    -------
    rows : ndarray of int or None
        :func:`sample_rows`: None when the fit trains on every row.
    X_fit : ndarray of shape (n_fit, n_features)
        ``X``, or its sampled rows.
    labeled_fit : ndarray of bool, shape (n_fit,), or None
    """
    rows = sample_rows(X.shape[0], max_rows, seed)
    if rows is None:
        return None, X, labeled
    return rows, X[rows], None if labeled is None else labeled[rows]

REFERENCE_ROWS = 512
"""int: fitting rows whose feature contributions set the explanation reference."""

_REFERENCE_STREAM = 0x0E7A


def reference_rows(n_rows, seed, max_rows=REFERENCE_ROWS):
    """Sorted indices of the fitting rows that calibrate feature contributions.

    A uniform sample of at most ``max_rows`` rows from a stream of its own
    (drawing it shifts no other draw of the fit); all rows when there are
    fewer. 512 rows put the median each feature costs a typical row within
    a few percent, for about a fifth of a second of scoring at 21 features
    and a second or two at 512 (``benchmarks/bench_explain.py``).

    Returns
    -------
    rows : ndarray of shape (min(n_rows, max_rows),), int64
    """
    if n_rows <= max_rows:
        return np.arange(n_rows, dtype=np.int64)
    rng = np.random.default_rng([int(seed), _REFERENCE_STREAM])
    return np.sort(rng.choice(n_rows, max_rows, replace=False)).astype(np.int64)
