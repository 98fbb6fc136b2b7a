"""The committed model-file fixture: how it was made, and the rows it scores.

``tests/data/model_v1.odim`` was written by ``python tests/model_fixture.py``
with pyod-odim 0.1.0 (model format version 1); ``tests/data/model_v1_scores.npz``
holds the rows below and the scores, labels and probabilities that model
gave them then. Every later version must load the file and give the same
values (``tests/test_model_file.py``). Never regenerate it to make that test
pass: a new format version gets a new fixture beside this one.
"""

import os

import numpy as np

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
MODEL = os.path.join(HERE, "model_v1.odim")
EXPECTED = os.path.join(HERE, "model_v1_scores.npz")


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

    X, query = fixture_rows()
    clf = ODIM(n_estimators=2, n_samples_iwae=8, patience=2, check_every=5, max_updates=60,
               min_updates=0, hidden_sizes=(8,), latent_dim=2, random_state=0).fit(X)
    os.makedirs(HERE, exist_ok=True)
    clf.save(MODEL)
    np.savez(EXPECTED, query=query, scores=clf.decision_function(query),
             labels=clf.predict(query), proba=clf.predict_proba(query))


if __name__ == "__main__":
    main()
