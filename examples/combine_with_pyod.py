"""ODIM beside PyOD's IForest, and the two combined.

Scores of different detectors live on different scales, so they are
standardized (with the training scores' mean and deviation) before PyOD's
combination functions average them or take their maximum.

Run it with ``python examples/combine_with_pyod.py``.
"""

import numpy as np
from pyod.models.combination import average, maximization
from pyod.models.iforest import IForest
from pyod.utils.data import evaluate_print, generate_data
from pyod.utils.utility import standardizer

from pyod_odim import ODIM

if __name__ == "__main__":
    X_train, X_test, y_train, y_test = generate_data(
        n_train=500, n_test=200, n_features=5, contamination=0.1, random_state=7,
    )

    detectors = {
        "ODIM": ODIM(n_estimators=3, n_samples_iwae=16, random_state=7),
        "IForest": IForest(random_state=7),
    }
    train_scores = np.zeros((X_train.shape[0], len(detectors)))
    test_scores = np.zeros((X_test.shape[0], len(detectors)))
    for j, (name, clf) in enumerate(detectors.items()):
        clf.fit(X_train)
        train_scores[:, j] = clf.decision_scores_
        test_scores[:, j] = clf.decision_function(X_test)
        evaluate_print(name, y_test, test_scores[:, j])

    # Standardize both matrices with the training scores' statistics.
    train_norm, test_norm = standardizer(train_scores, test_scores)

    evaluate_print("Average", y_test, average(test_norm))
    evaluate_print("Maximization", y_test, maximization(test_norm))
    print(f"(training scores were combined the same way: average of "
          f"{average(train_norm).shape[0]} rows)")
