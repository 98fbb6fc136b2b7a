"""Model files without pickle: arrays and JSON metadata in a zip archive.

``ODIM.save(path)`` writes, and :func:`load` reads, a zip archive (stored,
not compressed) of

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
  (:func:`check_parameter_range`), so a file whose parameters were scaled
  on purpose and its checksums recomputed is refused as well.

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
import inspect
import itertools
import json
import math
import os
import platform
import struct
import tempfile
import zipfile
import zlib

import numpy as np

from . import __version__

try:  # the compiled CRC-32 (PCLMULQDQ) is several times faster than zlib's
    from ._crc32 import crc32 as _crc32
except ImportError:  # the optional extension was not built: same value
    _crc32 = zlib.crc32

FORMAT_NAME = "pyod-odim-model"
FORMAT_VERSION = 3
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

_PARAM_KEYS = ("enc_w", "enc_b", "dec_w", "dec_b", "bn_mean", "bn_var")


# ====================================================================== save
def save(estimator, path):
    """Write a fitted ODIM to ``path`` as arrays and JSON (no pickle).

    Parameters
    ----------
    estimator : pyod_odim.ODIM
        Fitted. With a thresholder as ``contamination``, the file keeps its
        cut in score units and the share of rows it labelled (module
        docstring).
    path : str or os.PathLike
        Written atomically (a temporary file beside it, then renamed).

    Raises
    ------
    sklearn.exceptions.NotFittedError
        The estimator is not fitted.
    """
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator, ["scorer_", "decision_scores_", "threshold_"])
    arrays, meta = _to_state(estimator)
    blob, meta["arrays"] = _pack(arrays)
    meta["arrays_bytes"] = len(blob)
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


def _to_state(estimator):
    """The arrays and the JSON-ready metadata of a fitted estimator."""
    import torch

    from .thresholds import fitted_score_threshold

    scorer = estimator.scorer_
    thresholder = None
    contamination = estimator.contamination
    if not _is_number(contamination):
        thresholder = _thresholder_info(contamination, estimator.threshold_)
        contamination = float(np.mean(np.asarray(estimator.labels_) == 1))
    arrays = {
        "scaling/data_min": scorer.scaling.data_min_,
        "scaling/data_max": scorer.scaling.data_max_,
        "score_eps": scorer.score_eps,
        "member_mean": scorer.member_mean,
        "member_std": scorer.member_std,
        "decision_scores": np.asarray(estimator.decision_scores_, dtype=np.float64),
        "labels": np.asarray(estimator.labels_, dtype=np.int64),
        "best_update": np.asarray(estimator.best_update_, dtype=np.int64),
        "best_distance": np.asarray(estimator.best_distance_, dtype=np.float64),
        "feature_reference": scorer.feature_reference,
        "contribution_quantiles": scorer.contribution_quantiles,
    }
    for key in ("update", "distance", "raw_distance"):
        arrays[f"history/{key}"] = np.asarray(estimator.history_[key])
    # One flat array per kind of parameter; the architecture gives each layer's shape.
    for key in _PARAM_KEYS:
        layers = scorer.params[key]
        arrays[f"params/{key}"] = (np.concatenate([np.ravel(a) for a in layers]) if layers
                                   else np.zeros(0, np.float32)).astype(np.float32, copy=False)
    likelihood_scores = getattr(estimator, "likelihood_scores_", None)
    if likelihood_scores is not None and likelihood_scores is not estimator.decision_scores_:
        arrays["likelihood_scores"] = np.asarray(likelihood_scores, dtype=np.float64)
    neighbors = None
    if scorer.neighbors is not None:
        nb = scorer.neighbors
        arrays.update({
            "neighbors/inlier_rows": nb.inlier_rows_,
            "neighbors/outlier_rows": nb.outlier_rows_,
            "neighbors/odim_sorted": nb.odim_sorted_,
            "neighbors/ratio_sorted": nb.ratio_sorted_,
        })
        neighbors = {"weight": nb.weight, "n_neighbors": nb.n_neighbors,
                     "inlier_quantile": nb.inlier_quantile}
    arch = scorer.architecture
    names = getattr(estimator, "feature_names_in_", None)
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "written_by": {
            "pyod_odim": __version__, "torch": torch.__version__,
            "numpy": np.__version__, "python": platform.python_version(),
        },
        "params": _json_params(estimator.get_params()),
        "architecture": {
            "n_features": int(arch.n_features), "hidden_sizes": [int(w) for w in arch.hidden_sizes],
            "latent_dim": int(arch.latent_dim),
        },
        "likelihood": scorer.likelihood,
        "combination": scorer.combination,
        "batch_norm": len(scorer.params["bn_mean"]) > 0,
        # What PyOD's _process_decision_scores derived for predict_proba's "unify".
        "score_moments": [float(estimator._mu), float(estimator._sigma)],
        "neighbors": neighbors,
        "threshold": fitted_score_threshold(estimator),
        "contamination": float(contamination),
        "thresholder": thresholder,
        "n_classes": int(getattr(estimator, "_classes", 2)),
        "feature_names": None if names is None else [str(n) for n in names],
        "fitted": {
            "n_updates": int(estimator.n_updates_),
            "gmm_backend": str(estimator.gmm_backend_),
            "device": str(estimator.device_),
            "compile": str(estimator.compile_),
            "timings": {k: float(v) for k, v in estimator.timings_.items()},
        },
    }
    return arrays, meta


def _is_number(value):
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _info_value(value):
    """A value as JSON for information: numbers and strings as they are, else its repr."""
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if np.isfinite(value) else repr(value)
    if isinstance(value, (tuple, list)) and len(value) <= 64:
        return [_info_value(v) for v in value]
    return repr(value)[:200]


def _thresholder_info(thresholder, pyod_threshold):
    """What a thresholder was, as JSON: recorded for information, never rebuilt."""
    get_params = getattr(thresholder, "get_params", None)
    try:
        params = get_params(deep=False) if callable(get_params) else {}
    except Exception:  # a protocol object without sklearn's get_params
        params = {}
    if not isinstance(params, dict):
        params = {}
    return {
        "class": type(thresholder).__name__,
        "module": type(thresholder).__module__,
        "params": {str(k): _info_value(v) for k, v in params.items()},
        # PyOD's threshold_: on the thresholder's own scale, or the share it labelled.
        "pyod_threshold": _info_value(pyod_threshold),
    }


def _json_params(params):
    """Constructor parameters as JSON values; what cannot be stored becomes None."""
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
    """Read a model written by ``ODIM.save``; no code from the file runs.

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
    estimator : pyod_odim.ODIM
        Fitted: ``decision_function``, ``predict`` and ``predict_proba``
        give the same values as the saved estimator's. A detector saved
        with a thresholder as ``contamination`` comes back with a numeric
        one, and ``predict`` labels rows by the saved cut in score units
        (module docstring).

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
    try:
        return _from_state(meta, arrays, extremes)
    except ModelFileError as exc:
        raise ValueError(f"{path}: {exc}") from None


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


def _is_count(n):
    return isinstance(n, int) and not isinstance(n, bool) and n >= 0


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
              and isinstance(spec[1], list) and all(_is_count(n) for n in spec[1])
              and (not with_offsets or _is_count(spec[2])))
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
    if not _is_count(size) or info.file_size != size or info.compress_type != zipfile.ZIP_STORED:
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


def _from_state(meta, arrays, extremes=None):
    """Rebuild the estimator, checking every shape and value it relies on.

    ``extremes`` holds ``[min, max]`` of float arrays the read already
    scanned (:func:`_read_checked`), which spares the range checks a pass.
    """
    from .detector import ODIM
    from .network import Architecture, LIKELIHOODS, expected_parameter_shapes
    from .neighbors import NeighborScorer
    from .scaling import FeatureScaling
    from .scorer import COMBINATIONS, FittedScorer

    def need(name):
        if name not in arrays:
            raise ModelFileError(f"array {name!r} is missing")
        return arrays[name]

    def finite(name, a):
        # Format 2 checked every value as it read them.
        if meta["format_version"] == 1 and a.dtype.kind == "f" and not np.isfinite(a).all():
            raise ModelFileError(f"array {name!r} holds non-finite values")
        return a

    arch_meta = _field(meta, "architecture", dict)
    try:
        arch = Architecture(int(arch_meta["n_features"]),
                            tuple(int(w) for w in arch_meta["hidden_sizes"]),
                            int(arch_meta["latent_dim"]))
    except (KeyError, TypeError, ValueError):
        raise ModelFileError("malformed architecture") from None
    if arch.n_features < 1 or arch.latent_dim < 1 or not arch.hidden_sizes or min(arch.hidden_sizes) < 1:
        raise ModelFileError(f"impossible architecture {arch}")
    likelihood = _field(meta, "likelihood", str)
    combination = _field(meta, "combination", str)
    if likelihood not in LIKELIHOODS or combination not in COMBINATIONS:
        raise ModelFileError(f"unknown likelihood {likelihood!r} or combination {combination!r}")
    eps = finite("score_eps", need("score_eps"))
    if eps.ndim != 4 or eps.shape[2] != 1 or eps.shape[3] != arch.latent_dim or eps.dtype != np.float32:
        raise ModelFileError(f"score_eps has shape {eps.shape}, not (M, K, 1, {arch.latent_dim})")
    n_members = eps.shape[0]
    if meta["format_version"] == 1:
        n_layers = _field(meta, "n_layers", dict)
        params = {key: [finite(f"params/{key}/{i}", need(f"params/{key}/{i}"))
                        for i in range(int(n_layers.get(key, 0)))] for key in _PARAM_KEYS}
        batch_norm = len(params["bn_mean"]) > 0
    else:
        batch_norm = meta.get("batch_norm")
        if not isinstance(batch_norm, bool):
            raise ModelFileError(f"{_META}: 'batch_norm' is missing or malformed")
    expected = expected_parameter_shapes(arch, n_members, likelihood == "bernoulli", batch_norm)
    if meta["format_version"] != 1:
        params = {key: _split(f"params/{key}", need(f"params/{key}"), expected[key])
                  for key in _PARAM_KEYS}
    for key, shapes in expected.items():
        got = [a.shape for a in params[key]]
        if got != shapes or any(a.dtype != np.float32 for a in params[key]):
            raise ModelFileError(f"parameters {key!r} have shapes {got}, expected {shapes} "
                                 "(float32) for this architecture")
    if batch_norm and any((a <= 0).any() for a in params["bn_var"]):
        raise ModelFileError("batch normalization variances must be positive")
    data_min = finite("scaling/data_min", need("scaling/data_min"))
    data_max = finite("scaling/data_max", need("scaling/data_max"))
    if data_min.shape != (arch.n_features,) or data_max.shape != (arch.n_features,):
        raise ModelFileError("scaling bounds do not match the number of features")
    if (data_max < data_min).any():
        raise ModelFileError("scaling bounds have a maximum below the minimum")
    moments = [finite(n, need(n)) for n in ("member_mean", "member_std")]
    if any(m.shape != (n_members,) for m in moments) or (moments[1] < 0).any():
        raise ModelFileError("member moments do not match the members")
    check_parameter_range(meta, arch, likelihood, params, eps, moments, extremes)
    reference = finite("feature_reference", need("feature_reference"))
    quantiles = finite("contribution_quantiles", need("contribution_quantiles"))
    if reference.shape != (arch.n_features,) or quantiles.shape != (101, arch.n_features):
        raise ModelFileError("feature_reference or contribution_quantiles do not match the features")
    scores = finite("decision_scores", need("decision_scores"))
    labels = need("labels")
    if scores.ndim != 1 or labels.shape != scores.shape or scores.size == 0:
        raise ModelFileError("training scores and labels do not match")
    threshold = _field(meta, "threshold", (int, float))
    contamination = _field(meta, "contamination", (int, float))
    # A thresholder fit stores the share of rows it labelled: any share.
    thresholder = meta.get("thresholder")
    if thresholder is not None and not isinstance(thresholder, dict):
        raise ModelFileError("malformed thresholder entry")
    if thresholder is None:
        share_ok = 0.0 < contamination <= 0.5
    else:
        share_ok = 0.0 <= contamination <= 1.0
    if not np.isfinite(threshold) or not share_ok:
        raise ModelFileError(f"threshold {threshold!r} or contamination {contamination!r} invalid")

    neighbors = None
    nb_meta = meta.get("neighbors")
    if nb_meta is not None:
        if not isinstance(nb_meta, dict):
            raise ModelFileError("malformed neighbors entry")
        rows = {k: finite(f"neighbors/{k}", need(f"neighbors/{k}"))
                for k in ("inlier_rows", "outlier_rows", "odim_sorted", "ratio_sorted")}
        for k in ("inlier_rows", "outlier_rows"):
            if rows[k].ndim != 2 or rows[k].shape[1] != arch.n_features or rows[k].shape[0] < 1:
                raise ModelFileError(f"neighbors/{k} does not match the features")
        try:
            neighbors = NeighborScorer(float(nb_meta["weight"]), int(nb_meta["n_neighbors"]),
                                       float(nb_meta["inlier_quantile"]))
        except (KeyError, TypeError, ValueError):
            raise ModelFileError("malformed neighbors entry") from None
        neighbors.set_reference(rows["inlier_rows"], rows["outlier_rows"],
                                rows["odim_sorted"], rows["ratio_sorted"])

    scorer = FittedScorer(
        FeatureScaling(data_min, data_max), arch, likelihood, params, eps,
        combination=combination, member_mean=moments[0], member_std=moments[1],
        neighbors=neighbors, threshold=float(threshold), contamination=float(contamination),
        feature_reference=reference, contribution_quantiles=quantiles,
    )
    valid = _constructor_names(ODIM)
    given = _field(meta, "params", dict)
    try:
        estimator = ODIM(**{k: (tuple(v) if isinstance(v, list) else v)
                            for k, v in given.items() if k in valid})
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"malformed parameters ({exc})") from None
    estimator.contamination = float(contamination)
    estimator.scorer_ = scorer
    estimator.n_features_in_ = arch.n_features
    names = meta.get("feature_names")
    if names is not None:
        if not isinstance(names, list) or len(names) != arch.n_features:
            raise ModelFileError("feature_names do not match the number of features")
        estimator.feature_names_in_ = np.array([str(n) for n in names], dtype=object)
    estimator.decision_scores_ = scores
    estimator.labels_ = labels.astype(int, copy=False)
    estimator.threshold_ = float(threshold)
    estimator.score_threshold_ = float(threshold)
    estimator._classes = int(meta.get("n_classes", 2))
    # What PyOD's _process_decision_scores derives for predict_proba's "unify".
    moments = meta.get("score_moments")  # stored from format 2 on
    if (isinstance(moments, list) and len(moments) == 2
            and all(isinstance(v, float) and np.isfinite(v) for v in moments)):
        estimator._mu, estimator._sigma = np.float64(moments[0]), np.float64(moments[1])
    else:
        estimator._mu, estimator._sigma = np.mean(scores), np.std(scores)
    estimator.likelihood_scores_ = arrays.get("likelihood_scores", scores)
    estimator.history_ = {key: arrays.get(f"history/{key}") for key in ("update", "distance", "raw_distance")}
    estimator.best_update_ = arrays.get("best_update")
    estimator.best_distance_ = arrays.get("best_distance")
    fitted = meta.get("fitted", {}) if isinstance(meta.get("fitted"), dict) else {}
    estimator.n_updates_ = int(fitted.get("n_updates", 0))
    estimator.gmm_backend_ = str(fitted.get("gmm_backend", ""))
    estimator.device_ = str(fitted.get("device", "cpu"))
    estimator.compile_ = str(fitted.get("compile", ""))
    estimator.likelihood_ = estimator.scorer_.likelihood
    estimator.timings_ = dict(fitted.get("timings", {}))
    return estimator


# ------------------------------------------------------------ value ranges
ADAM_STEP = (1 - 0.9) / math.sqrt((1 - 0.999) * (1 - 0.9 ** 2 / 0.999))
"""float: the most one Adam update moves a parameter, in units of the learning rate.

With PyTorch's default betas (0.9, 0.999), the bias-corrected first moment
over the square root of the second is at most
``(1 - b1) / sqrt((1 - b2) * (1 - b1 ** 2 / b2))`` = 7.27 (Cauchy-Schwarz
over the gradients' exponential weights), whatever the gradients.
"""
MAX_PARAMETER = 1e4
"""float: the largest weight or bias a model file may hold, whatever its metadata claims.

Training moves a weight from its initial range by at most
``ADAM_STEP * lr`` per update; reaching 1e4 takes ``lr * n_updates`` over
1,300, a fit that has long diverged. It bounds a file whose metadata
claims a learning rate or a number of updates large enough to allow any
value (docs/deploy.md, "Integrity checks", has the margins of real fits).
"""
MAX_DRAW = 10.0
"""float: the largest magnitude of a fixed standard normal draw (``score_eps``).

A standard normal exceeds it with probability 1.5e-23 per draw.
"""
_MAX_STAT_ROWS = 1 << 31  # rows of one batch's normalization statistics, whatever the metadata says
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_parameter_range(meta, arch, likelihood, params, score_eps, member_moments,
                          extremes=None):
    """Refuse values that training cannot produce (:func:`parameter_bounds`), naming the array.

    Parameters
    ----------
    meta : dict
        The file's metadata (``params``, ``fitted``).
    arch : pyod_odim.network.Architecture
    likelihood : str
    params : dict of str to list of ndarray
        Shapes already checked against ``arch``.
    score_eps : ndarray of shape (M, K, 1, L)
    member_moments : sequence of two ndarray of shape (M,)
        ``member_mean`` and ``member_std``.
    extremes : dict of str to list of float, optional
        ``[min, max]`` of arrays already scanned, by file name
        (``"params/enc_w"``: every layer's weights): where they lie within
        every layer's range, the layers are not scanned again.

    Raises
    ------
    ModelFileError
        A value beyond its bound (re-raised by :func:`load` as ValueError
        naming the file).
    """
    arrays = {f"params/{key}": params[key] for key in _PARAM_KEYS}
    arrays.update({"score_eps": [score_eps], "member_mean": [member_moments[0]],
                   "member_std": [member_moments[1]]})
    for name, intervals in parameter_bounds(meta, arch, likelihood, params).items():
        _check_layers(name, arrays[name], intervals, {} if extremes is None else extremes)


def parameter_bounds(meta, arch, likelihood, params):
    """The range of every array that training can produce, layer by layer.

    For a file fitted with learning rate ``lr`` over ``n`` updates (from
    its metadata, each claim capped so that a tampered one cannot lift the
    bounds far):

    * a weight or bias of a layer with ``fan_in`` inputs starts within
      ``1 / sqrt(fan_in)`` (:func:`pyod_odim.network.init_parameters`) and
      moves at most ``ADAM_STEP * lr`` per update: its bound is
      ``1 / sqrt(fan_in) + n * ADAM_STEP * lr``, and at most
      :data:`MAX_PARAMETER`;
    * batch normalization's running mean of a layer is an average of its
      batches' means: within ``fan_in * a * w + w``, where ``w`` is the
      layer's bound and ``a`` bounds its inputs in training (1 for the
      scaled rows; ``sqrt(rows)`` after a normalized layer over ``rows``
      rows, the largest standardized value of that many; ``|mu| + e * 10``
      for the latent draws); its running variance lies in
      ``[0, max(1, 2 * (fan_in * a * w + w) ** 2)]``;
    * the fixed draws ``score_eps`` within :data:`MAX_DRAW`;
    * the member loss moments within float32's range (they summarize
      float32 losses), the deviations non-negative.

    The scaling bounds may be any finite, ordered values (any finite data
    gives them); they are checked with the shapes.

    Parameters
    ----------
    meta : dict
    arch : pyod_odim.network.Architecture
    likelihood : str
    params : dict of str to list of ndarray
        Shapes already checked against ``arch``.

    Returns
    -------
    bounds : dict of str to list of tuple of float
        ``(low, high)`` of each layer, by array name (``"params/enc_w"``,
        ..., ``"score_eps"``, ``"member_mean"``, ``"member_std"``).
    """
    lr, n_updates, (enc_rows, dec_rows) = _training_extent(meta, likelihood)
    out, weights = {}, {}
    for key in ("enc", "dec"):
        # The initial bound in float32 may round up by an ulp: a relative 1e-6 covers it.
        weights[key] = [min((1.0 + 1e-6) / math.sqrt(w.shape[1]) + n_updates * ADAM_STEP * lr,
                            MAX_PARAMETER) for w in params[key + "_w"]]
        out[f"params/{key}_w"] = out[f"params/{key}_b"] = [(-b, b) for b in weights[key]]
    out["score_eps"] = [(-MAX_DRAW, MAX_DRAW)]
    out["member_mean"] = [(-_FLOAT32_MAX, _FLOAT32_MAX)]
    out["member_std"] = [(0.0, _FLOAT32_MAX)]
    reach = []
    if params["bn_mean"]:
        # Each normalized layer: its fan-in, weight bound and inputs' bound in training.
        n_enc = len(params["enc_w"]) - 1  # hidden encoder layers; the head is not normalized
        layers = [(params["enc_w"][i].shape[1], weights["enc"][i],
                   1.0 if i == 0 else math.sqrt(enc_rows)) for i in range(n_enc)]
        head_in, head_w = params["enc_w"][-1].shape[1], weights["enc"][-1]
        mu = head_in * math.sqrt(enc_rows) * head_w + head_w
        layers += [(params["dec_w"][i].shape[1], weights["dec"][i],
                    mu + math.e * MAX_DRAW if i == 0 else math.sqrt(dec_rows))
                   for i in range(len(params["dec_w"]) - 1)]
        reach = [fan_in * inputs * w + w for fan_in, w, inputs in layers]
    out["params/bn_mean"] = [(-r, r) for r in reach]
    out["params/bn_var"] = [(0.0, max(1.0, 2.0 * r * r)) for r in reach]
    return out


def _check_layers(name, layers, intervals, extremes):
    """Raise unless each layer's values lie in its ``(low, high)`` interval (NaN never does)."""
    known = extremes.get(name)
    if known is not None and all(low <= known[0] and known[1] <= high for low, high in intervals):
        return
    for i, (values, (low, high)) in enumerate(zip(layers, intervals)):
        if values.size == 0:
            continue
        lowest, highest = float(values.min()), float(values.max())
        if not (lowest >= low and highest <= high):
            where = f"array {name!r}" + (f" (layer {i})" if len(layers) > 1 else "")
            raise ModelFileError(
                f"{where} holds values in [{lowest:.4g}, {highest:.4g}], outside the "
                f"[{low:.4g}, {high:.4g}] that training can produce: the file was damaged "
                "or edited"
            )


def _training_extent(meta, likelihood):
    """The learning rate, the number of updates and the normalization rows a file claims.

    Returns
    -------
    lr : float
        ``lr`` of the parameters, or the rate ``"auto"`` takes for the likelihood.
    n_updates : int
        Updates done (``fitted.n_updates``; ``max_updates`` if missing).
    stat_rows : tuple of int
        Rows of one batch's statistics in the encoder (``batch_size``) and
        the decoder (times the training draws), each at most 2**31.
    """
    from .detector import LEARNING_RATES, NARROW_DEFAULTS, WIDE_DEFAULTS

    given = meta.get("params") if isinstance(meta.get("params"), dict) else {}
    fitted = meta.get("fitted") if isinstance(meta.get("fitted"), dict) else {}
    lr = given.get("lr")
    lr = float(lr) if _is_number(lr) and 0 < lr < math.inf else LEARNING_RATES[likelihood]
    n_updates = fitted.get("n_updates", given.get("max_updates"))
    if not _is_count(n_updates):
        raise ModelFileError(f"{_META}: the number of updates is missing or malformed")

    def count(name, default):
        value = given.get(name)
        return value if _is_count(value) and value > 0 else default

    batch = min(count("batch_size", _MAX_STAT_ROWS), _MAX_STAT_ROWS)
    # n_samples_train="auto" (or None) takes a width default or n_samples_iwae.
    draws = max(count("n_samples_iwae", 1), count("n_samples_train", 1),
                NARROW_DEFAULTS.n_samples_train, WIDE_DEFAULTS.n_samples_train)
    return lr, n_updates, (batch, min(batch * draws, _MAX_STAT_ROWS))


@functools.lru_cache(maxsize=None)
def _constructor_names(cls):
    """The constructor's parameter names, read once (``get_params`` inspects each time)."""
    return frozenset(p for p in inspect.signature(cls.__init__).parameters if p != "self")


def _split(name, flat, shapes):
    """Per-layer views of one flat parameter array (format 2), its size checked."""
    sizes = [math.prod(shape) for shape in shapes]
    if flat.ndim != 1 or flat.size != sum(sizes) or flat.dtype != np.float32:
        raise ModelFileError(f"array {name!r} holds {flat.dtype}{list(flat.shape)}, but this "
                             f"architecture needs float32[{sum(sizes)}]")
    bounds = list(itertools.accumulate(sizes, initial=0))
    return [flat[a:b].reshape(shape) for a, b, shape in zip(bounds[:-1], bounds[1:], shapes)]


def _field(meta, name, kinds):
    value = meta.get(name)
    if not isinstance(value, kinds) or isinstance(value, bool):
        raise ModelFileError(f"{_META}: {name!r} is missing or malformed")
    return value

