"""Turning user input into clean float arrays, or a clear error."""

import numbers

import numpy as np

from .sparse import check_sparse, is_sparse

def is_count(n):
    """Whether ``n`` is a non-negative Python int (a bool is not), as JSON metadata gives counts."""
    return isinstance(n, int) and not isinstance(n, bool) and n >= 0


def is_number(value):
    """Whether ``value`` is a real number (Python or NumPy), not a bool."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


FLOAT_DTYPES = (np.float64, np.float32)
"""Input dtypes used as they are; anything else becomes float64."""

# Values per block of the finiteness check: its boolean temporary stays
# small however large X is.
_FINITE_BLOCK_VALUES = 1 << 18


def check_samples(X, *, name="X", n_features=None, min_samples=1, dtype=np.float64,
                  accept_sparse=False):
    """Validate a 2-D numeric sample matrix.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        A NumPy array, a nested sequence or a pandas DataFrame; with
        ``accept_sparse``, also a scipy.sparse CSR or CSC matrix.
    name : str
        Used in error messages.
    n_features : int or None
        Expected number of columns (the fitted model's), if known.
    min_samples : int
    dtype : numpy dtype or tuple of dtypes, optional (default=np.float64)
        A dtype: the result has it and is C-contiguous (a copy when
        needed). A tuple (e.g. :data:`FLOAT_DTYPES`): an input already of
        one of them is returned as it is, without a copy, whatever its
        memory layout; any other input becomes the first of them.
    accept_sparse : bool, optional (default=False)
        Accept scipy.sparse input (:func:`pyod_odim.sparse.check_sparse`).

    Returns
    -------
    X : ndarray or scipy.sparse.csr_matrix of shape (n_samples, n_features)
        A sparse input gives a canonical CSR matrix.

    Raises
    ------
    TypeError
        Non-numeric data (strings, objects that are not numbers, complex),
        naming the offending DataFrame columns.
    ValueError
        Wrong number of dimensions, too few rows, no columns, NaN or
        infinite values, or a feature count other than ``n_features``.
    """
    if is_sparse(X) and accept_sparse:
        X = check_sparse(X, name=name, n_features=n_features, min_samples=min_samples)
        return X if isinstance(dtype, tuple) or X.dtype == dtype else X.astype(dtype)
    if hasattr(X, "toarray") or hasattr(X, "tocsr"):
        raise TypeError(f"{name} is a sparse matrix; pass a dense array")
    if hasattr(X, "dtypes") and hasattr(X, "columns"):
        X = _frame_to_array(X, name)
    arr = np.asarray(X)
    if arr.dtype.kind in "USV" or arr.dtype.kind == "c":
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    if arr.dtype.kind == "O":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be numeric; it holds non-numeric values") from None
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_features), got {arr.ndim}-D with "
            f"shape {arr.shape}; reshape 1-D data with X.reshape(-1, 1)"
        )
    if arr.shape[0] < min_samples:
        raise ValueError(
            f"{name} has {arr.shape[0]} sample(s); at least {min_samples} required"
        )
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has 0 features")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(
            f"{name} has {arr.shape[1]} features, but the model was fitted with "
            f"{n_features}"
        )
    if isinstance(dtype, tuple):
        if arr.dtype not in dtype:
            arr = arr.astype(dtype[0])
    else:
        arr = np.ascontiguousarray(arr, dtype=dtype)
    _check_finite(arr, name)
    return arr


def _frame_to_array(frame, name):
    """A DataFrame's values, with non-numeric columns named in the error.

    Nullable columns (pandas ``Int64``, ``Float64``, ...) give NaN for their
    missing values, which the finiteness check then reports.
    """
    bad = []
    for col, dtype in frame.dtypes.items():
        if dtype == np.dtype(object) and _converts_to_float(frame[col]):
            continue  # Python numbers in an object column, as NumPy accepts them
        if getattr(dtype, "kind", "O") not in "biuf":
            bad.append(col)  # text, categories, dates, ...
    if bad:
        shown = ", ".join(f"{col!r} ({frame.dtypes[col]})" for col in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise TypeError(f"{name} must be numeric; non-numeric column(s): {shown}{more}")
    if all(isinstance(dtype, np.dtype) and dtype.kind != "O" for dtype in frame.dtypes):
        return frame.to_numpy()
    return frame.to_numpy(dtype=np.float64, na_value=np.nan)


def _converts_to_float(column):
    try:
        column.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        return False
    return True


def _check_finite(arr, name):
    """Raise on the first NaN or infinite value, block by block."""
    if arr.dtype.kind not in "fc":
        return  # integers and booleans are always finite
    block_rows = max(1, _FINITE_BLOCK_VALUES // arr.shape[1])
    for start in range(0, arr.shape[0], block_rows):
        block = arr[start:start + block_rows]
        finite = np.isfinite(block)
        if finite.all():
            continue
        bad_nan = np.isnan(block)
        kind = "NaN" if bad_nan.any() else "infinite"
        row = start + int(np.argwhere(bad_nan if bad_nan.any() else ~finite)[0, 0])
        raise ValueError(f"{name} contains {kind} values (first at row {row})")


def check_int(value, name, minimum):
    """An integer parameter that must be at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_float(value, name, low=None, high=None, low_open=True):
    """A real parameter inside ``(low, high]`` (or ``[low, high]``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and (value <= low if low_open else value < low):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    return value


def check_choice(value, name, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def seed_from(random_state):
    """An integer seed from ``random_state`` without touching global RNGs.

    ``None`` draws fresh OS entropy; an int is used as is; a NumPy
    ``RandomState`` or ``Generator`` supplies one draw.
    """
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0] >> 1)
    if isinstance(random_state, (np.random.RandomState, np.random.Generator)):
        draw = random_state.randint if hasattr(random_state, "randint") else random_state.integers
        return int(draw(0, 2**62))
    if isinstance(random_state, bool) or not isinstance(random_state, numbers.Integral):
        raise TypeError(
            f"random_state must be None, an int or a NumPy random generator, got "
            f"{type(random_state).__name__}"
        )
    if random_state < 0:
        raise ValueError(f"random_state must be non-negative, got {random_state}")
    return int(random_state)


def stored_field(fields, name, kinds):
    """``fields[name]`` when it is one of ``kinds`` (never a bool), else a ValueError naming it."""
    value = fields.get(name)
    if not isinstance(value, kinds) or isinstance(value, bool):
        raise ValueError(f"{name!r} is missing or malformed")
    return value


def stored_feature_names(fields, n_features):
    """The stored ``feature_names`` as an object array, None if absent; ValueError if malformed."""
    names = fields.get("feature_names")
    if names is None:
        return None
    if not isinstance(names, list) or len(names) != n_features:
        raise ValueError("feature_names do not match the number of features")
    return np.array([str(n) for n in names], dtype=object)


def stored_array(arrays, name):
    """``arrays[name]``, or a ValueError saying that it is missing."""
    if name not in arrays:
        raise ValueError(f"array {name!r} is missing")
    return arrays[name]


def column_names(X):
    """A DataFrame's column names as strings (scikit-learn's ``feature_names_in_``), else None."""
    columns = getattr(X, "columns", None)
    if columns is None or not hasattr(X, "dtypes"):
        return None
    return np.asarray([str(c) for c in columns], dtype=object)
