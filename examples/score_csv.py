"""Score a CSV file with the ``odim`` command line, from Python.

Writes a small CSV with a header and a label column, then runs the
equivalent of::

    odim score data.csv --label-column is_outlier -o scores.csv

through :func:`pyod_odim.cli.main` (the function behind the ``odim`` and
``python -m pyod_odim`` commands) and reads the scores back.

Run it with ``python examples/score_csv.py``.
"""

import csv
import os
import tempfile

from pyod.utils.data import generate_data

from pyod_odim.cli import main

if __name__ == "__main__":
    X, y = generate_data(n_train=300, n_features=4, train_only=True, random_state=3)

    with tempfile.TemporaryDirectory(prefix="odim_example_") as folder:
        data_path = os.path.join(folder, "data.csv")
        with open(data_path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["f1", "f2", "f3", "f4", "is_outlier"])
            for row, label in zip(X, y):
                writer.writerow([f"{v:.6f}" for v in row] + [int(label)])

        scores_path = os.path.join(folder, "scores.csv")
        status = main([
            "score", data_path, "--label-column", "is_outlier", "-o", scores_path,
            # Small settings keep the example fast; drop them for real data.
            "--n-estimators", "3", "--n-samples-iwae", "16", "--seed", "3",
        ])
        if status != 0:
            raise SystemExit(status)

        with open(scores_path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    print(f"{len(rows)} rows scored; first three (score/label): "
          + ", ".join(f"{float(r['score']):.3f}/{r['label']}" for r in rows[:3]))
