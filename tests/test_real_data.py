"""Accuracy on real ODDS/ADBench data from ../shared/datasets (skipped when absent)."""

import os
import sys

import pytest
from sklearn.metrics import roc_auc_score

from pyod_odim import ODIM

DATASETS = os.environ.get(
    "ODIM_DATASETS", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "datasets")
)

pytestmark = pytest.mark.skipif(
    not os.path.isfile(os.path.join(DATASETS, "load.py")),
    reason="shared datasets not present (as in a user's clone)",
)


def load(name):
    if DATASETS not in sys.path:
        sys.path.insert(0, DATASETS)
    from load import load as _load

    return _load(name)


@pytest.mark.parametrize("name, floor", [("breastw", 0.97), ("cardio", 0.88)])
def test_training_auc_on_real_data(name, floor):
    # Floors sit below the measured 3-seed means (docs/results.md) to allow seed noise.
    X, y = load(name)
    clf = ODIM(n_estimators=5, random_state=0).fit(X)
    assert roc_auc_score(y, clf.decision_scores_) > floor
