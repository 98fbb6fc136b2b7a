"""Model files without pickle: arrays and JSON metadata in a zip archive.

This module handles the container only: :func:`save` writes, and
:func:`load` reads, the arrays and JSON fields that ``ODIM._get_fitted_state``
gives and ``ODIM._from_fitted_state`` takes back (``ODIM.save`` and
:func:`pyod_odim.load`). The file is a zip archive (stored, not compressed) of

* ``meta.json``: the format name and version, the package, torch and NumPy
  versions that wrote it, the detector's parameters, the fitted scalars
  (threshold, contamination, architecture, feature names, diagnostics) and
  the name, dtype and shape of every array, and (from format version 3 on)
  ``digest``, the SHA-256 of the rest of the metadata (:func:`meta_digest`);
* ``arrays.bin``: every array's bytes, one after another, each starting at
  a multiple of 64 bytes; ``meta.json`` gives each one's dtype (numeric
  only), shape and offset. Format version 1 stored one ``arrays/<name>.npy``
  file per array instead; such files still load.

Loading runs no code from the file: the JSON is parsed as data, every
array's dtype, shape and place in ``arrays.bin`` are checked against the
blob's size before its bytes are read, and the bytes become arrays with
``numpy.frombuffer`` (no pickle, no object arrays), in the spirit of the
safetensors format. Every inconsistency, from a truncated archive to
tampered shapes or non-finite parameters, raises a ``ValueError`` that
names the file and the problem. A damaged file never scores:

* the zip CRC-32 of the arrays is checked (``load(path, verify=False)``
  skips it), which catches flipped bits in values that are still finite;
  zip itself checks the CRC-32 of ``meta.json``;
* the metadata's ``digest`` is checked, so an edit of ``meta.json``
  repacked with a valid zip CRC is refused too (a file of format version
  3 without one is refused; versions 1 and 2 had none);
* every parameter lies in the range training can produce
  (:mod:`pyod_odim.parameter_bounds`, checked when the detector is
  rebuilt), so a file whose parameters were scaled on purpose and its
  checksums recomputed is refused as well.

A file written by a newer format version is refused with a message naming
both versions; files of this version and older keep loading in later
versions (``tests/data/`` holds fixtures written by format versions 1, 2
and 3).

A file holds numbers, never code, so a detector fitted with a thresholder
object as ``contamination`` (:mod:`pyod_odim.thresholds`) is saved by what
it decided: ``threshold`` is its cut in score units, ``score_threshold_``
(the cut that gives the thresholder's training labels), and
``contamination`` the share of training rows it labelled 1. The
thresholder's class, module and parameters are recorded under
``thresholder`` for information only: loading never imports or builds
anything from them. The loaded detector has that share as a numeric
``contamination`` and the cut as ``threshold_`` (and ``score_threshold_``),
so its ``predict`` labels each row by its score alone, ``score > cut``: the
training rows as the thresholder did, new rows independently of the rows
scored with them (the in-memory detector's ``predict`` asks the
thresholder instead). Its ``predict_confidence`` equals the in-memory
one's wherever the two agree on the label. A share outside (0, 0.5]
(a thresholder may label none, or most, of the rows) scores and predicts
as well, but ``clone`` or a refit of the loaded detector refuses it, as
PyOD refuses such a ``contamination``.
"""

import functools
import hashlib
import json
import math
import os
import platform
import struct
import tempfile
import zipfile
import zlib

import numpy as np

from ._validation import is_count
from ._version import __version__

try:  # the compiled CRC-32 (PCLMULQDQ) is several times faster than zlib's
    from ._crc32 import crc32 as _crc32
except ImportError:  # the optional extension was not built: same value
    _crc32 = zlib.crc32

FORMAT_NAME = "pyod-odim-model"
FORMAT_VERSION = 4
"""int: the format version this code writes; it reads this one and older ones."""
DIGEST_SINCE = 3
"""int: the first format version whose ``meta.json`` carries its ``digest``."""

_ZIP_MAGIC = b"PK\x03\x04"
_META = "meta.json"
_BLOB = "arrays.bin"
_DIGEST = "digest"
_ALIGN = 64
_PIECE = 256 << 10  # bytes read and checked at a time: a multiple of _ALIGN that fits in L2
# A zip local file header: signature, then fixed fields up to the name and
# extra-field lengths (APPNOTE.TXT 4.3.7).
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
# What a sane model's metadata stays below; a larger meta.json is refused
# before it is parsed.
_MAX_META_BYTES = 64 << 20

# The kinds of network parameters (format 1 stored each layer of each kind apart).
_PARAMETER_KINDS = ("enc_w", "enc_b", "dec_w", "dec_b", "bn_mean", "bn_var")


# ====================================================================== save
def save(path, arrays, fields):
    """Write a fitted detector's state to ``path`` as arrays and JSON (no pickle).

    Parameters
    ----------
    path : str or os.PathLike
        Written atomically (a temporary file beside it, then renamed).
    arrays : dict of str to ndarray
        Numeric arrays (``ODIM._get_fitted_state``).
    fields : dict
        JSON-ready values, stored in ``meta.json`` beside the format's own
        entries (format name and version, the writing versions, the array
        specs).
    """
    import torch

    blob, specs = _pack(arrays)
    meta = dict(fields, format=FORMAT_NAME, format_version=FORMAT_VERSION, written_by={
        "pyod_odim": __version__, "torch": torch.__version__,
        "numpy": np.__version__, "python": platform.python_version(),
    }, arrays=specs, arrays_bytes=len(blob))
    meta[_DIGEST] = meta_digest(meta)
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".odim-", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
            archive.writestr(_META, json.dumps(meta, indent=1, sort_keys=True))
            archive.writestr(_BLOB, blob)
        # mkstemp makes the file private; give it the permissions open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _pack(arrays):
    """All arrays in one byte string, each at a multiple of ``_ALIGN``, and their specs."""
    parts, specs, offset = [], {}, 0
    for name, a in arrays.items():
        a = np.ascontiguousarray(a)
        if a.dtype.byteorder == ">":  # the file is little-endian throughout
            a = a.astype(a.dtype.newbyteorder("<"))
        pad = -offset % _ALIGN
        parts.append(b"\0" * pad)
        offset += pad
        specs[name] = [a.dtype.str, list(a.shape), offset]
        parts.append(a.tobytes())
        offset += a.nbytes
    return b"".join(parts), specs


def json_params(params):
    """Constructor parameters as JSON values; what a file cannot store becomes None."""
    out = {}
    for name, value in params.items():
        if isinstance(value, (np.integer, np.floating, np.bool_)):
            value = value.item()
        if value is None or isinstance(value, (bool, int, float, str)):
            out[name] = value
        elif isinstance(value, (tuple, list)) and all(isinstance(v, (int, np.integer)) for v in value):
            out[name] = [int(v) for v in value]
        elif name == "device":
            out[name] = str(value)
        else:
            # A RandomState or Generator seeded only the fit; it is not needed to score.
            out[name] = None
    return out


# ====================================================================== load
def load(path, verify=True):
    """Read the fields and arrays of a model file; no code from the file runs.

    :func:`pyod_odim.load` rebuilds the detector from them
    (``ODIM._from_fitted_state``, which checks them against each other and
    their values against the range training can produce).

    Parameters
    ----------
    path : str or os.PathLike
    verify : bool, default=True
        Check the CRC-32 checksum of the arrays (module docstring); False
        skips that one pass over the file's bytes (format version 1 files
        are always checked). The metadata's digest, every shape and every
        value's range are checked either way.

    Returns
    -------
    fields : dict
        ``meta.json``, parsed.
    arrays : dict of str to ndarray
        Every array, finite where scoring needs it; format version 1
        parameters already in the current layout (one flat array per kind).
    extremes : dict of str to list of float
        ``[min, max]`` of the float arrays the read scanned, by name (the
        range checks need no second pass over them).

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        Not a pyod-odim model file, a newer format version, or a truncated,
        corrupted or inconsistent file; the message names the problem.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such model file")
    with open(path, "rb") as f:
        head = f.read(4)
    if head != _ZIP_MAGIC:
        raise ValueError(f"{path}: not a pyod-odim model file (it does not start with the "
                         "zip signature a model file has)")
    try:
        with open(path, "rb") as f, zipfile.ZipFile(f) as archive:
            meta = _read_meta(archive)
            if meta["format_version"] == 1:
                arrays = {name: _read_npy(archive, name, spec)
                          for name, spec in _array_specs(meta, with_offsets=False).items()}
                extremes = {}
            else:
                # Finiteness checked, and each float array's extremes found, on the way.
                arrays, extremes = _read_blob(f, archive, meta, verify)
    except ModelFileError as exc:
        raise ValueError(f"{path}: {exc}") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, KeyError) as exc:
        raise ValueError(f"{path}: truncated or corrupted model file ({type(exc).__name__}: "
                         f"{exc})") from None
    if meta["format_version"] == 1:
        try:
            arrays = _format1_as_current(meta, arrays)
        except ModelFileError as exc:
            raise ValueError(f"{path}: {exc}") from None
    return meta, arrays, extremes


class ModelFileError(Exception):
    """An inconsistency found while reading a model file (re-raised as ValueError)."""


def _read_meta(archive):
    try:
        info = archive.getinfo(_META)
    except KeyError:
        raise ModelFileError(f"not a pyod-odim model file (no {_META})") from None
    if info.file_size > _MAX_META_BYTES:
        raise ModelFileError(f"{_META} is {info.file_size} bytes, more than a model holds")
    try:
        meta = json.loads(archive.read(_META).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{_META} is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise ModelFileError(f"not a pyod-odim model file ({_META} does not name the format "
                             f"{FORMAT_NAME!r})")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(f"format_version {version!r} is not a positive integer")
    if version > FORMAT_VERSION:
        written = meta.get("written_by", {})
        by = written.get("pyod_odim", "?") if isinstance(written, dict) else "?"
        raise ModelFileError(
            f"written in model format version {version} (by pyod-odim {by}), but this "
            f"pyod-odim {__version__} reads format versions up to {FORMAT_VERSION}; "
            "upgrade pyod-odim to load it"
        )
    _check_digest(meta)
    return meta


def meta_digest(meta):
    """The digest of a model file's metadata: SHA-256 of its canonical JSON.

    The canonical JSON is ``meta`` without its ``digest`` entry, keys
    sorted, no whitespace, ASCII only; parsing the file's ``meta.json`` and
    writing it again that way gives the same text, so the digest does not
    depend on how the file was indented.

    Parameters
    ----------
    meta : dict
        The metadata as :func:`json.loads` gives it.

    Returns
    -------
    str
        ``"sha256:"`` and 64 hexadecimal digits.
    """
    body = {key: value for key, value in meta.items() if key != _DIGEST}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "sha256:" + hashlib.sha256(text.encode("ascii")).hexdigest()


def _check_digest(meta):
    """Refuse metadata whose digest is missing (format version 3 on) or wrong."""
    stored = meta.get(_DIGEST)
    if stored is None:
        if meta["format_version"] >= DIGEST_SINCE:
            raise ModelFileError(f"{_META} has no {_DIGEST!r}, which format version "
                                 f"{meta['format_version']} files carry: it was edited")
        return
    # A digest is checked whatever the version, so editing the version cannot skip it.
    if stored != meta_digest(meta):
        raise ModelFileError(f"{_META} does not match its {_DIGEST!r}: the metadata was "
                             "edited or corrupted")


@functools.lru_cache(maxsize=None)
def _dtype(text):
    return np.dtype(text)


def _array_specs(meta, with_offsets=True):
    """``{name: (dtype, shape[, offset])}`` from the metadata, every field checked."""
    specs = meta.get("arrays")
    if not isinstance(specs, dict):
        raise ModelFileError(f"{_META} lists no arrays")
    length = 3 if with_offsets else 2
    out = {}
    for name, spec in specs.items():
        ok = (isinstance(spec, list) and len(spec) == length and isinstance(spec[0], str)
              and isinstance(spec[1], list) and all(is_count(n) for n in spec[1])
              and (not with_offsets or is_count(spec[2])))
        if not ok:
            raise ModelFileError(f"array {name!r}: malformed entry in {_META}")
        try:
            dtype = _dtype(spec[0])
        except TypeError:
            raise ModelFileError(f"array {name!r}: unknown dtype {spec[0]!r}") from None
        if dtype.kind not in "biuf" or dtype.byteorder == ">":
            raise ModelFileError(f"array {name!r}: dtype {dtype} is not a little-endian number")
        out[name] = (dtype, tuple(spec[1])) + tuple(spec[2:])
    return out


def _read_blob(f, archive, meta, verify):
    """Format 2 on: every array as a view of one buffer read straight from the file.

    Returns
    -------
    arrays : dict of str to ndarray
    extremes : dict of str to list of float
        ``[min, max]`` of every float array that must be finite.
    """
    specs = _array_specs(meta)
    size = meta.get("arrays_bytes")
    try:
        info = archive.getinfo(_BLOB)
    except KeyError:
        raise ModelFileError(f"{_BLOB} is missing") from None
    if not is_count(size) or info.file_size != size or info.compress_type != zipfile.ZIP_STORED:
        raise ModelFileError(f"{_BLOB} holds {info.file_size} bytes (compression "
                             f"{info.compress_type}), but {_META} says {size!r} stored bytes")
    # Read the stored bytes past the local header ourselves: zipfile would
    # copy them in small pieces and compute the CRC on the way.
    f.seek(info.header_offset)
    header = f.read(_LOCAL_HEADER.size)
    if len(header) != _LOCAL_HEADER.size or header[:4] != _ZIP_MAGIC:
        raise ModelFileError(f"{_BLOB}: bad zip local header")
    name_length, extra_length = _LOCAL_HEADER.unpack(header)[-2:]
    f.seek(info.header_offset + _LOCAL_HEADER.size + name_length + extra_length)
    spans = []
    for name, (dtype, shape, offset) in specs.items():
        end = offset + math.prod(shape) * dtype.itemsize
        if end > size or offset % dtype.itemsize:
            raise ModelFileError(f"array {name!r}: {dtype}{list(shape)} at byte {offset} does "
                                 f"not fit in the {size} bytes of {_BLOB}")
        spans.append((offset, end, name))
    spans.sort()
    for (_, end, first), (start, _, second) in zip(spans, spans[1:]):
        if start < end:
            raise ModelFileError(f"arrays {first!r} and {second!r} overlap in {_BLOB}")
    blob, extremes = _read_checked(f, size, [(a, b, specs[n][0], n) for a, b, n in spans
                                             if specs[n][0].kind == "f" and _must_be_finite(n)],
                                   info.CRC if verify else None)
    return {name: blob[start:end].view(specs[name][0]).reshape(specs[name][1])
            for start, end, name in spans}, extremes


def _must_be_finite(name):
    """Whether an array's values must all be finite (diagnostics may hold NaN)."""
    return not (name.startswith("history/") or name == "best_distance")


def _read_checked(f, size, float_spans, crc):
    """Read ``size`` bytes, checking the CRC and the floats one cache-sized piece at a time.

    Checking each piece right after it is read finds it still in cache:
    checking a large model's parameters after the whole read goes to
    memory again and costs about as much as the read itself. Each float
    span's minimum and maximum are gathered on the way: they are finite
    exactly when every value is (NaN propagates through both), and they
    are what the range checks need (:func:`check_parameter_range`).

    Returns
    -------
    blob : ndarray of uint8
    extremes : dict of str to list of float
        ``[min, max]`` of each span.
    """
    blob = np.empty(size, np.uint8)  # not zero-filled: every byte is read over
    view = memoryview(blob)
    running, first = 0, 0
    extremes = {}
    for lo in range(0, size, _PIECE):
        hi = min(lo + _PIECE, size)
        if f.readinto(view[lo:hi]) != hi - lo:
            raise ModelFileError(f"{_BLOB} is cut short")
        if crc is not None:
            running = _crc32(view[lo:hi], running)
        while first < len(float_spans) and float_spans[first][1] <= lo:
            first += 1  # spans wholly before this piece were checked
        for start, end, dtype, name in float_spans[first:]:
            if start >= hi:
                break
            a, b = max(start, lo), min(end, hi)
            if a == b:
                continue
            # Pieces are multiples of 64 bytes, so each part starts at a whole value.
            part = blob[a:b].view(dtype)
            low, high = float(part.min()), float(part.max())
            if not (math.isfinite(low) and math.isfinite(high)):
                raise ModelFileError(f"array {name!r} holds non-finite values")
            seen = extremes.setdefault(name, [low, high])
            seen[0], seen[1] = min(seen[0], low), max(seen[1], high)
    if crc is not None and running != crc:
        raise ModelFileError(f"{_BLOB} fails its CRC-32 check: the file is corrupted")
    return blob, extremes


def _read_npy(archive, name, spec):
    """Format 1: one ``.npy`` entry, its header checked against the metadata."""
    dtype, shape = spec
    with archive.open(f"arrays/{name}.npy") as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                header = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                header = np.lib.format.read_array_header_2_0(f)
            else:
                raise ModelFileError(f"array {name!r}: unsupported .npy version {version}")
        except ValueError as exc:
            raise ModelFileError(f"array {name!r}: bad .npy header ({exc})") from None
        file_shape, fortran, file_dtype = header
        if tuple(file_shape) != shape or file_dtype != dtype or fortran:
            raise ModelFileError(
                f"array {name!r}: holds {file_dtype}{list(file_shape)}, but {_META} says "
                f"{dtype}{list(shape)}"
            )
        n_bytes = math.prod(shape) * dtype.itemsize
        data = f.read(n_bytes + 1)
    if len(data) != n_bytes:
        raise ModelFileError(f"array {name!r}: {len(data)} bytes of data, expected {n_bytes}")
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


def _format1_as_current(meta, arrays):
    """Format 1 arrays, checked for finiteness, with one flat array per kind of parameter.

    Format 1 stored every layer as its own ``params/<kind>/<i>`` array and
    no ``batch_norm`` entry; format 2 checks finiteness as it reads.
    """
    for name, a in arrays.items():
        if a.dtype.kind == "f" and _must_be_finite(name) and not np.isfinite(a).all():
            raise ModelFileError(f"array {name!r} holds non-finite values")
    n_layers = meta.get("n_layers")
    if not isinstance(n_layers, dict):
        raise ModelFileError(f"{_META}: 'n_layers' is missing or malformed")
    arrays = dict(arrays)
    for kind in _PARAMETER_KINDS:
        layers = [arrays.pop(f"params/{kind}/{i}", None) for i in range(int(n_layers.get(kind, 0)))]
        if any(a is None or a.dtype != np.float32 for a in layers):
            raise ModelFileError(f"parameters {kind!r} are missing or not float32")
        arrays[f"params/{kind}"] = (np.concatenate([a.ravel() for a in layers]) if layers
                                    else np.zeros(0, np.float32))
    meta["batch_norm"] = int(n_layers.get("bn_mean", 0)) > 0
    return arrays
