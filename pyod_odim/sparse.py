"""scipy.sparse input: validation, column statistics and dense row chunks.

ODIM's network takes dense rows, so a sparse matrix (CSR or CSC, e.g.
TF-IDF text) is kept sparse and made dense a chunk or a batch of rows at a
time, never as a whole. Every value that reaches the network is computed
exactly as for the dense copy ``X.toarray()``, so both give the same scores.
"""

import numpy as np

try:
    import scipy.sparse as _sp
except ImportError:  # pragma: no cover - scipy comes with scikit-learn
    _sp = None

SPARSE_FORMATS = ("csr", "csc")
"""tuple of str: the scipy.sparse formats accepted as they are; others are refused."""


def is_sparse(X):
    """Whether ``X`` is a scipy.sparse matrix or array."""
    return _sp is not None and _sp.issparse(X)


def check_sparse(X, *, name="X", n_features=None, min_samples=1):
    """A validated sparse matrix as canonical CSR, float32 or float64.

    Parameters
    ----------
    X : scipy.sparse matrix or array in CSR or CSC format
    name : str
        Used in error messages.
    n_features : int or None
        Expected number of columns (the fitted model's), if known.
    min_samples : int

    Returns
    -------
    X : scipy.sparse.csr_matrix of shape (n_samples, n_features)
        Sorted indices and no duplicate entries; float32 data stays float32,
        every other real dtype (integers, booleans) becomes float64. Shares
        the input's arrays when nothing needs to change.

    Raises
    ------
    TypeError
        Another sparse format (COO, LIL, DOK, BSR, DIA: convert with
        ``X.tocsr()``), or complex or non-numeric values.
    ValueError
        Too few rows, no columns, a feature count other than
        ``n_features``, NaN or infinite stored values, or malformed index
        arrays.
    """
    if X.format not in SPARSE_FORMATS:
        raise TypeError(f"{name} is a sparse matrix in {X.format.upper()} format; pass CSR "
                        f"or CSC (e.g. {name}.tocsr())")
    kind = X.dtype.kind
    if kind == "c":
        raise TypeError(f"{name} must be real, got complex dtype {X.dtype}")
    if kind not in "biuf":
        raise TypeError(f"{name} must be numeric, got dtype {X.dtype}")
    n_rows, n_cols = X.shape
    if n_rows < min_samples:
        raise ValueError(f"{name} has {n_rows} sample(s); at least {min_samples} required")
    if n_cols == 0:
        raise ValueError(f"{name} has 0 features")
    if n_features is not None and n_cols != n_features:
        raise ValueError(f"{name} has {n_cols} features, but the model was fitted with "
                         f"{n_features}")
    try:
        X.check_format(full_check=True)
    except ValueError as exc:
        raise ValueError(f"{name} is a malformed sparse matrix ({exc})") from None
    X = X.tocsr()
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    if not (X.has_canonical_format and X.has_sorted_indices):
        X = X.copy()
        X.sum_duplicates()  # also sorts the indices
    _check_finite_data(X, name)
    return _sp.csr_matrix(X)


def _check_finite_data(X, name):
    """Raise on the first stored NaN or infinite value, naming its row."""
    finite = np.isfinite(X.data)
    if finite.all():
        return
    where = int(np.argmin(finite))
    row = int(np.searchsorted(X.indptr, where, side="right") - 1)
    kind = "NaN" if np.isnan(X.data[where]) else "infinite"
    raise ValueError(f"{name} contains {kind} values (first at row {row})")


def dense(X):
    """``X`` as a dense ndarray: a sparse chunk's ``toarray()``, a dense one as it is."""
    return X.toarray() if is_sparse(X) else X


def sorted_columns(X):
    """Each column of ``X`` sorted, implicit zeros included, one column at a time.

    Parameters
    ----------
    X : ndarray or scipy.sparse matrix of shape (n, d)

    Yields
    ------
    values : ndarray of shape (n,)
        ``np.sort(column)`` in ``X``'s dtype, as for the dense copy.
    """
    if not is_sparse(X):
        for j in range(X.shape[1]):
            yield np.sort(X[:, j])
        return
    X = X.tocsc()
    n = X.shape[0]
    for j in range(X.shape[1]):
        stored = X.data[X.indptr[j]:X.indptr[j + 1]]
        column = np.zeros(n, dtype=X.dtype)
        column[:stored.size] = stored
        yield np.sort(column)


def column_extremes(X):
    """Per-column minimum and maximum, implicit zeros included, as ndarrays of X's dtype."""
    if not is_sparse(X):
        return X.min(axis=0), X.max(axis=0)
    low = X.min(axis=0).toarray().ravel()
    high = X.max(axis=0).toarray().ravel()
    return low.astype(X.dtype, copy=False), high.astype(X.dtype, copy=False)


def count_at_minimum(X):
    """How many values of ``X`` equal their column's minimum, implicit zeros included."""
    if not is_sparse(X):
        return int(np.count_nonzero(X == X.min(axis=0)))
    X = X.tocsc()
    low = column_extremes(X)[0]
    per_column = np.diff(X.indptr)
    count = np.count_nonzero(X.data == np.repeat(low, per_column))
    # The implicit zeros of a column whose minimum is 0.
    implicit = X.shape[0] - per_column
    return int(count + implicit[low == 0].sum())
