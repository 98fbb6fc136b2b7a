"""Reading numeric tables from files and writing results without leftovers.

Used by the command line. Every problem with a user's file is raised as an
:class:`InputError` whose message is one line that names the file and, where
it can, the column and line.
"""

import contextlib
import csv
import os
import secrets
from typing import NamedTuple, Optional

import numpy as np

INPUT_SUFFIXES = (".csv", ".tsv", ".npy", ".npz", ".parquet")
OUTPUT_SUFFIXES = (".csv", ".npy")


class InputError(ValueError):
    """A file the user named cannot be used; the message says why."""


class Table(NamedTuple):
    """Features, optional ground truth and where they came from.

    ``feature_columns`` holds each feature's 0-based column in the file
    (they differ from the feature index after a label column).
    """

    X: object  # ndarray, or scipy.sparse.csr_matrix for a sparse .npz
    y: Optional[np.ndarray]
    columns: Optional[list]
    label_name: Optional[str]
    feature_columns: Optional[list] = None

    def feature_names(self):
        """A name per feature: the header's, else ``#N`` for the file's column N."""
        if self.columns is not None:
            return list(self.columns)
        index = self.feature_columns or range(self.X.shape[1])
        return [f"#{j}" for j in index]


def suffix_of(path):
    return os.path.splitext(str(path))[1].lower()


def read_table(path, label_column=None):
    """Read a numeric table from CSV/TSV, ``.npy``, ``.npz`` or Parquet.

    Parameters
    ----------
    path : str
        The file. Its extension picks the reader.
    label_column : str or None
        A column holding 0 (inlier) / 1 (outlier) to keep out of the
        features: a header name, or a 0-based (possibly negative) index.
        Not allowed for ``.npz``, whose labels live in the ``y`` array.

    Returns
    -------
    Table
        ``X`` float64 of shape (n, d) without NaN or infinite values (a
        scipy.sparse CSR matrix for a sparse ``.npz``, see
        :func:`_read_sparse_npz`); ``y`` int64 of shape (n,) or None.

    Raises
    ------
    InputError
        For every problem with the file's name, type or content.
    OSError
        When the file cannot be opened (missing, a folder, no permission).
    """
    path = str(path)
    suffix = suffix_of(path)
    if suffix not in INPUT_SUFFIXES:
        raise InputError(
            f"{path}: unknown file type {suffix or '(no extension)'!r}; "
            f"use one of {', '.join(INPUT_SUFFIXES)}"
        )
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a folder, not a file")
    if suffix == ".npz":
        if label_column is not None:
            raise InputError(
                f"{path}: --label-column does not apply to .npz files; "
                "their labels are read from the array 'y'"
            )
        X, y = _read_npz(path)
        if not hasattr(X, "tocsr"):
            X = _check_values(X, path, None)
        return Table(X, y, None, "array 'y'" if y is not None else None)
    if suffix in (".csv", ".tsv"):
        matrix, columns, lines = _read_csv(path, "\t" if suffix == ".tsv" else ",")
    elif suffix == ".npy":
        matrix, columns, lines = _read_npy(path), None, None
    else:
        matrix, columns, lines = _read_parquet(path)
    return _split_label(matrix, columns, lines, label_column, path)


# ----------------------------------------------------------------------
# Readers: each returns the full numeric matrix (label column included).
def _read_csv(path, delimiter):
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, delimiter=delimiter)
            rows, lines = [], []
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue  # blank line
                rows.append(row)
                lines.append(reader.line_num)
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 text file") from None
    except csv.Error as exc:
        raise InputError(f"{path}: not a readable CSV file ({exc})") from None
    if not rows:
        raise InputError(f"{path}: the file is empty")

    columns = None
    if _is_header(rows[0]):
        columns = [name.strip() or f"column {i}" for i, name in enumerate(rows[0])]
        rows, lines = rows[1:], lines[1:]
        if not rows:
            raise InputError(f"{path}: the file has a header but no data rows")
    width = len(columns) if columns is not None else len(rows[0])
    for row, line in zip(rows, lines):
        if len(row) != width:
            raise InputError(
                f"{path}: line {line} has {len(row)} fields, expected {width}"
            )
    try:
        matrix = np.array(rows, dtype=np.float64)
    except ValueError:
        _raise_first_bad_cell(rows, lines, columns, path)
        raise  # unreachable: a cell failed to parse above
    return matrix, columns, lines


def _is_header(row):
    """A first row with any non-empty, non-numeric cell is a header."""
    for cell in row:
        text = cell.strip()
        if not text:
            continue
        try:
            float(text)
        except ValueError:
            return True
    return False


def _raise_first_bad_cell(rows, lines, columns, path):
    for row, line in zip(rows, lines):
        for j, cell in enumerate(row):
            try:
                float(cell)
            except ValueError:
                name = _column_name(columns, j)
                if not cell.strip():
                    raise InputError(
                        f"{path}: missing value (empty cell) in column {name} at line "
                        f"{line}; impute or drop such rows first"
                    ) from None
                raise InputError(
                    f"{path}: column {name} is not numeric (line {line}: {cell.strip()!r}); "
                    "only numeric columns can be scored, drop or encode it first"
                ) from None


def _check_magic(path, magics, kind):
    """Catch empty and foreign files before NumPy gives a confusing error."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    if not head:
        raise InputError(f"{path}: the file is empty")
    if not head.startswith(magics):
        raise InputError(f"{path}: not a {kind} file")


def _read_npy(path):
    _check_magic(path, (b"\x93NUMPY",), ".npy")
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise InputError(
                f"{path}: holds Python objects; save a numeric array instead"
            ) from None
        raise InputError(f"{path}: not a valid .npy file ({exc})") from None
    if not isinstance(arr, np.ndarray):
        raise InputError(f"{path}: not a .npy array file")
    return _as_matrix(arr, path, "the array")


def _read_npz(path):
    _check_magic(path, (b"PK\x03\x04", b"PK\x05\x06"), ".npz (zip)")
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"{path}: not a valid .npz file ({exc})") from None
    if not hasattr(archive, "files"):
        raise InputError(f"{path}: not an .npz archive (it holds a single array)")
    with archive:
        sparse = "X" not in archive.files and "format" in archive.files
        if "X" not in archive.files and not sparse:
            found = ", ".join(archive.files) or "nothing"
            raise InputError(f"{path}: no array named 'X' (found: {found})")
        try:
            X = (_read_sparse_npz(archive, path) if sparse
                 else _as_matrix(archive["X"], path, "array 'X'"))
            y = archive["y"] if "y" in archive.files else None
        except ValueError as exc:
            if isinstance(exc, InputError):
                raise
            raise InputError(f"{path}: cannot read its arrays ({exc})") from None
    if y is not None:
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.ravel()
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise InputError(
                f"{path}: array 'y' has shape {y.shape}, expected ({X.shape[0]},)"
            )
        y = _check_labels(y, path, "array 'y'")
    return X, y


SPARSE_NPZ_FORMATS = ("csr", "csc")
"""tuple of str: the formats of ``scipy.sparse.save_npz`` files that are read."""

MAX_SPARSE_FEATURES = 1 << 24
"""int: the most columns a sparse file may declare.

A file's shape is not bounded by its size; at this width one member's first
layer alone holds 2**31 float32 weights (8 GiB) with 128 hidden units.
"""


def _read_sparse_npz(archive, path):
    """The CSR matrix of a ``scipy.sparse.save_npz`` archive (CSR or CSC), checked.

    ``scipy.sparse.load_npz`` never unpickles, but it calls whichever
    ``scipy.sparse`` class the file's "format" names; here the format must
    be CSR or CSC and the matrix is built from plain arrays only: "data"
    (real numbers), "indices", "indptr" (integers) and "shape", checked for
    consistency (index ranges, ordering) before use.
    """
    import scipy.sparse as sp

    from .sparse import check_sparse

    try:
        fmt = archive["format"]
        fmt = fmt.item().decode("ascii") if fmt.dtype.kind == "S" else str(fmt.item())
    except (ValueError, UnicodeDecodeError, AttributeError):
        raise InputError(f"{path}: malformed sparse 'format' entry") from None
    if fmt not in SPARSE_NPZ_FORMATS:
        raise InputError(f"{path}: a sparse matrix in {fmt.upper()!r} format; save it as CSR, "
                         "e.g. scipy.sparse.save_npz(path, X.tocsr())")
    missing = [k for k in ("data", "indices", "indptr", "shape") if k not in archive.files]
    if missing:
        raise InputError(f"{path}: sparse archive without {', '.join(missing)}")
    data, indices, indptr, shape = (archive[k] for k in ("data", "indices", "indptr", "shape"))
    if shape.shape != (2,) or shape.dtype.kind not in "iu" or (shape < 0).any():
        raise InputError(f"{path}: malformed sparse 'shape' {shape.tolist()}")
    if shape[0] == 0 or shape[1] == 0:
        raise InputError(f"{path}: the sparse matrix is empty (shape {tuple(shape.tolist())})")
    if shape[1] > MAX_SPARSE_FEATURES or shape[0] > np.iinfo(np.int64).max // 2:
        raise InputError(f"{path}: sparse shape {tuple(shape.tolist())} is too large")
    for name, arr, kinds in (("data", data, "biuf"), ("indices", indices, "iu"),
                             ("indptr", indptr, "iu")):
        if arr.ndim != 1 or arr.dtype.kind not in kinds:
            raise InputError(f"{path}: sparse '{name}' is not a 1-D "
                             f"{'numeric' if kinds == 'biuf' else 'integer'} array "
                             f"(dtype {arr.dtype}, shape {arr.shape})")
    major = shape[0] if fmt == "csr" else shape[1]
    if indptr.size != major + 1 or indices.size != data.size:
        raise InputError(f"{path}: sparse arrays do not match the shape {tuple(shape.tolist())}")
    cls = sp.csr_matrix if fmt == "csr" else sp.csc_matrix
    try:
        matrix = cls((data, indices, indptr), shape=tuple(int(n) for n in shape))
        return check_sparse(matrix, name=f"{path}: the sparse matrix")
    except (TypeError, ValueError) as exc:
        raise InputError(str(exc) if str(exc).startswith(path)
                         else f"{path}: malformed sparse matrix ({exc})") from None


def _read_parquet(path):
    try:
        import pyarrow.parquet as pq
        import pyarrow.types as pat
    except ImportError:
        raise InputError(
            f"{path}: reading Parquet needs pyarrow (pip install pyarrow)"
        ) from None
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises its own error types
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
    if table.num_rows == 0 or table.num_columns == 0:
        raise InputError(f"{path}: the file is empty")
    columns, arrays = [], []
    for name, column in zip(table.column_names, table.columns):
        kind = column.type
        if not (pat.is_integer(kind) or pat.is_floating(kind) or pat.is_boolean(kind)):
            raise InputError(
                f"{path}: column {name!r} is not numeric (type {kind}); "
                "only numeric columns can be scored, drop or encode it first"
            )
        if column.null_count:
            raise InputError(
                f"{path}: missing value (null) in column {name!r}; "
                "impute or drop such rows first"
            )
        columns.append(str(name))
        arrays.append(column.to_numpy().astype(np.float64))
    return np.column_stack(arrays), columns, None


def _as_matrix(arr, path, what):
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{path}: {what} is not numeric (dtype {arr.dtype})")
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)  # one feature
    if arr.ndim != 2:
        raise InputError(f"{path}: {what} must be 2-D (rows, features), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"{path}: {what} is empty (shape {arr.shape})")
    return arr.astype(np.float64)


# ----------------------------------------------------------------------
def _split_label(matrix, columns, lines, label_column, path):
    label_name = None
    y = None
    feature_columns = list(range(matrix.shape[1]))
    if label_column is not None:
        j = _resolve_column(label_column, columns, matrix.shape[1], path)
        label_name = _column_name(columns, j)
        y = _check_labels(matrix[:, j], path, f"label column {label_name}", lines)
        matrix = np.delete(matrix, j, axis=1)
        del feature_columns[j]
        if columns is not None:
            columns = columns[:j] + columns[j + 1:]
        if matrix.shape[1] == 0:
            raise InputError(f"{path}: no feature columns left besides the label column")
    return Table(_check_values(matrix, path, columns, lines), y, columns, label_name,
                 feature_columns)


def _resolve_column(spec, columns, width, path):
    spec = str(spec)
    if columns is not None and spec in columns:
        return columns.index(spec)
    try:
        j = int(spec)
    except ValueError:
        known = f" (columns: {', '.join(columns)})" if columns is not None else ""
        raise InputError(f"{path}: no column named {spec!r}{known}") from None
    if not -width <= j < width:
        raise InputError(f"{path}: column index {j} is out of range for {width} columns")
    return j % width


def _check_values(X, path, columns, lines=None):
    bad = ~np.isfinite(X)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        kind = "missing value (NaN)" if np.isnan(X[i, j]) else "infinite value"
        raise InputError(
            f"{path}: {kind} in column {_column_name(columns, j)} at {_where(i, lines)}; "
            "impute or drop such rows first"
        )
    return X


def _check_labels(values, path, what, lines=None):
    values = np.asarray(values)
    if values.dtype.kind == "f":
        bad = ~np.isfinite(values)
        if bad.any():
            raise InputError(
                f"{path}: {what} has a missing value at {_where(np.argmax(bad), lines)}"
            )
    if values.dtype.kind not in "biuf" or not np.isin(values, (0, 1)).all():
        raise InputError(f"{path}: {what} must hold only 0 (inlier) and 1 (outlier)")
    return values.astype(np.int64)


def _column_name(columns, j):
    return repr(columns[j]) if columns is not None else f"#{j}"


def _where(i, lines):
    return f"line {lines[i]}" if lines is not None else f"row {i}"


# ----------------------------------------------------------------------
def check_output_path(path, suffixes=OUTPUT_SUFFIXES, what="output"):
    """Fail early (before a long fit) on an output path that cannot work."""
    suffix = suffix_of(path)
    if suffixes is not None and suffix not in suffixes:
        raise InputError(
            f"{path}: unknown {what} type {suffix or '(no extension)'!r}; "
            f"use one of {', '.join(suffixes)}"
        )
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InputError(f"{path}: folder {folder} does not exist")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a folder")
    if not os.access(folder, os.W_OK):
        raise InputError(f"{path}: cannot write to folder {folder}")


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; move it there on success.

    The temporary file sits in the same folder so that :func:`os.replace`
    is a rename. On any error it is removed, so ``path`` is either the
    complete new file or untouched.
    """
    path = os.path.abspath(path)
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
    # Created with open() rather than mkstemp so it gets the umask's
    # permissions, like any file the user writes.
    try:
        with open(tmp, "xb"):
            pass
    except OSError as exc:  # name the file the user asked for, not ours
        raise OSError(exc.errno, exc.strerror, path) from None
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_scores(path, scores, labels, explanation=None):
    """Write per-row ``score,label`` as CSV (with header) or ``.npy`` (n, 2).

    Parameters
    ----------
    path : str
    scores, labels : array-like of shape (n,)
    explanation : tuple or None, optional (default=None)
        ``(names, values, contributions)``, each of shape (n, k): per row,
        the names of its k features with the largest contributions (largest
        first), their values and their contributions. Written as the CSV
        columns ``top1_feature, top1_value, top1_contribution, top2_...``
        after ``score,label``; a ``.npy`` file cannot hold the names, so it
        is refused there.
    """
    if explanation is not None:
        if suffix_of(path) == ".npy":
            raise InputError(f"{path}: feature names cannot be written to .npy; use .csv")
        _write_explained_csv(path, scores, labels, *explanation)
        return
    table = np.column_stack([np.asarray(scores, dtype=np.float64),
                             np.asarray(labels, dtype=np.float64)])
    with atomic_path(path) as tmp:
        if suffix_of(path) == ".npy":
            with open(tmp, "wb") as handle:
                np.save(handle, table)
        else:
            with open(tmp, "w", newline="") as handle:
                np.savetxt(handle, table, fmt=("%.10g", "%d"), delimiter=",",
                           header="score,label", comments="")


def _write_explained_csv(path, scores, labels, names, values, contributions):
    k = np.shape(names)[1]
    header = ["score", "label"]
    for r in range(1, k + 1):
        header += [f"top{r}_feature", f"top{r}_value", f"top{r}_contribution"]
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)  # quotes names that hold commas
            writer.writerow(header)
            for i, (score, label) in enumerate(zip(scores, labels)):
                row = [f"{score:.10g}", str(int(label))]
                for r in range(k):
                    row += [names[i][r], f"{values[i][r]:.10g}", f"{contributions[i][r]:.10g}"]
                writer.writerow(row)
