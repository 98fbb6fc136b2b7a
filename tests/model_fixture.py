"""The committed model-file fixtures: how they were made, and the rows they score.

``tests/data/model_v<N>.odim`` was written by ``python tests/model_fixture.py``
with the pyod-odim of the day, in model format version ``N``;
``tests/data/model_v<N>_scores.npz`` holds the rows below and the scores,
labels and probabilities that model gave them then. Version 1 was written
by pyod-odim 0.1.0 at commit 645127e (one ``.npy`` per array), version 2
by the one that packs all arrays into ``arrays.bin``, version 3 by the one
that adds the metadata's digest. Every later version
must load every fixture and give the same values
(``tests/test_model_file.py``). Never regenerate a fixture to make that
test pass: a new format version gets a new fixture beside the others,
and this script refuses to overwrite one.
"""

import os

import numpy as np

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
VERSIONS = (1, 2, 3)


def model_path(version):
    return os.path.join(HERE, f"model_v{version}.odim")


def expected_path(version):
    return os.path.join(HERE, f"model_v{version}_scores.npz")


# The first fixture, under its original names.
MODEL = model_path(1)
EXPECTED = expected_path(1)


def fixture_rows():
    """The training and query rows of the fixture (fixed, no RNG of any library)."""
    i = np.arange(300, dtype=np.float64)
    X = np.column_stack([np.sin(0.37 * i), np.cos(0.11 * i), (i % 17) / 17.0,
                         np.sin(0.05 * i) * np.cos(0.23 * i)])
    X[::25] += 3.0  # a few planted outliers
    query = X[::7] + 0.01
    return X, query


def main():
    from pyod_odim import ODIM
    from pyod_odim.model_file import FORMAT_VERSION

    model, expected = model_path(FORMAT_VERSION), expected_path(FORMAT_VERSION)
    if os.path.exists(model) or os.path.exists(expected):
        raise SystemExit(f"{model} exists: a committed fixture is never regenerated")
    X, query = fixture_rows()
    clf = ODIM(n_estimators=2, n_samples_iwae=8, patience=2, check_every=5, max_updates=60,
               min_updates=0, hidden_sizes=(8,), latent_dim=2, random_state=0).fit(X)
    os.makedirs(HERE, exist_ok=True)
    clf.save(model)
    np.savez(expected, query=query, scores=clf.decision_function(query),
             labels=clf.predict(query), proba=clf.predict_proba(query))


if __name__ == "__main__":
    main()
