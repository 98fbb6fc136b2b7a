"""Quick start: fit ODIM on synthetic data and use the PyOD API.

Mirrors PyOD's own examples (``examples/*_example.py``): fit on training
data, read ``decision_scores_``/``labels_``, then score unseen data with
``decision_function``, ``predict`` and ``predict_proba``.

Run it with ``python examples/quick_start.py``.
"""

from pyod.utils.data import evaluate_print, generate_data

from pyod_odim import ODIM

if __name__ == "__main__":
    contamination = 0.1  # share of outliers
    X_train, X_test, y_train, y_test = generate_data(
        n_train=500, n_test=200, n_features=5, contamination=contamination,
        random_state=42,
    )

    # Small settings keep the example fast; the defaults (10 members, 50
    # importance samples) are the paper's.
    clf = ODIM(contamination=contamination, n_estimators=3, n_samples_iwae=16,
               random_state=42)
    clf.fit(X_train)  # unsupervised: y_train is not used

    # Training data: raw scores (higher = more abnormal) and 0/1 labels.
    y_train_scores = clf.decision_scores_
    y_train_pred = clf.labels_

    # Unseen data.
    y_test_scores = clf.decision_function(X_test)
    y_test_pred = clf.predict(X_test)
    y_test_proba = clf.predict_proba(X_test)  # (n, 2): P(inlier), P(outlier)

    print(f"fitted in {clf.n_updates_} updates on {clf.device_}; "
          f"checkpoints kept at updates {clf.best_update_.tolist()}")
    print(f"threshold {clf.threshold_:.3f}: {y_train_pred.sum()} of {len(y_train_pred)} "
          "training rows flagged")
    print(f"first test rows: scores {y_test_scores[:3].round(3)}, labels {y_test_pred[:3]}, "
          f"P(outlier) {y_test_proba[:3, 1].round(3)}")

    print("\nOn training data:")
    evaluate_print("ODIM", y_train, y_train_scores)
    print("On test data:")
    evaluate_print("ODIM", y_test, y_test_scores)
