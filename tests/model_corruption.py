"""Random damage to a model file, and what loading the damaged copy gives.

Shared by ``tests/test_model_integrity.py`` (a few dozen corruptions) and
``benchmarks/bench_export.py --corruptions N`` (the issue's 400). Four kinds
of damage, in turn:

* ``flip``: 1 to 4 bytes anywhere in the file XORed with a random non-zero byte;
* ``truncate``: the file cut at a random length;
* ``insert``: 1 to 16 random bytes inserted at a random place;
* ``meta``: one random edit of a value of ``meta.json`` (a number changed, a
  string, a flag, a list entry or a key dropped), the archive repacked, so
  every zip CRC is valid.
"""

import io
import json
import zipfile

import numpy as np

KINDS = ("flip", "truncate", "insert", "meta")
OUTCOMES = ("refused", "identical", "other scores", "NaN", "crashed")


def corrupt(raw, kind, rng):
    """A damaged copy of the bytes ``raw`` of a model file."""
    data = bytearray(raw)
    if kind == "flip":
        for at in rng.randint(0, len(data), size=rng.randint(1, 5)):
            data[at] ^= int(rng.randint(1, 256))
    elif kind == "truncate":
        del data[rng.randint(0, len(data)):]
    elif kind == "insert":
        at = rng.randint(0, len(data) + 1)
        data[at:at] = rng.randint(0, 256, size=rng.randint(1, 17)).astype(np.uint8).tobytes()
    elif kind == "meta":
        return _edit_meta(bytes(raw), rng)
    else:
        raise ValueError(f"unknown corruption {kind!r}")
    return bytes(data)


def _leaves(node, path=()):
    """Paths to every value of a JSON tree (containers included)."""
    yield path
    children = node.items() if isinstance(node, dict) else (
        enumerate(node) if isinstance(node, list) else ())
    for key, child in children:
        yield from _leaves(child, path + (key,))


def _edit_meta(raw, rng):
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        meta = json.loads(archive.read("meta.json"))
        entries = [(info, archive.read(info.filename)) for info in archive.infolist()]
    paths = [p for p in _leaves(meta) if p]
    path = paths[rng.randint(len(paths))]
    parent = meta
    for key in path[:-1]:
        parent = parent[key]
    key, value = path[-1], parent[path[-1]]
    if isinstance(value, bool) or value is None:
        parent[key] = not value
    elif isinstance(value, (int, float)):
        parent[key] = [value + 1, value - 1, value * 2, -value, 0, value * 1e6][rng.randint(6)]
    elif isinstance(value, str):
        parent[key] = value[:-1] if value and rng.rand() < 0.5 else value + "x"
    elif isinstance(parent, list):
        del parent[key]
    else:
        parent.pop(key)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for info, body in entries:
            if info.filename == "meta.json":
                body = json.dumps(meta, indent=1, sort_keys=True).encode()
            archive.writestr(info.filename, body)
    return out.getvalue()


def outcome(path, reference, X, load):
    """What loading ``path`` with ``load`` gives, against the model ``reference`` on rows ``X``.

    Returns
    -------
    str
        One of :data:`OUTCOMES`: ``"refused"`` (a ValueError), ``"identical"``
        (decision_function, predict and predict_proba equal the reference's),
        ``"NaN"`` (a NaN score or probability), ``"other scores"``, or
        ``"crashed"`` (any other exception).
    """
    try:
        model = load(path)
    except ValueError:
        return "refused"
    except Exception:  # noqa: BLE001 - counted, never expected
        return "crashed"
    try:
        got = [model.decision_function(X), model.predict(X), model.predict_proba(X)]
    except ValueError:
        return "refused"
    except Exception:  # noqa: BLE001
        return "crashed"
    if any(np.isnan(a).any() for a in got):
        return "NaN"
    want = [reference.decision_function(X), reference.predict(X), reference.predict_proba(X)]
    if all(np.array_equal(a, b) for a, b in zip(got, want)):
        return "identical"
    return "other scores"


def corruption_counts(model_path, reference, X, n, seed, load, folder):
    """Load ``n`` damaged copies of ``model_path`` (the kinds in turn); count the outcomes.

    Parameters
    ----------
    model_path : str or os.PathLike
        A model file written by ``reference.save``.
    reference : pyod_odim.ODIM
    X : ndarray
        Rows to score.
    n, seed : int
    load : callable
        ``pyod_odim.load`` with the options under test.
    folder : pathlib.Path
        Where the damaged copies are written.

    Returns
    -------
    counts : dict of str to int
        Over :data:`OUTCOMES`.
    by_kind : dict of str to dict of str to int
    """
    raw = open(model_path, "rb").read()
    rng = np.random.RandomState(seed)
    counts = dict.fromkeys(OUTCOMES, 0)
    by_kind = {kind: dict.fromkeys(OUTCOMES, 0) for kind in KINDS}
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        bad = folder / f"damaged{i}.odim"
        bad.write_bytes(corrupt(raw, kind, rng))
        result = outcome(bad, reference, X, load)
        counts[result] += 1
        by_kind[kind][result] += 1
        bad.unlink()
    return counts, by_kind
