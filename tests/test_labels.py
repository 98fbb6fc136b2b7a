"""Semi-supervised ODIM: known outliers through a CUBO term."""

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from pyod.utils.data import generate_data
from scipy.stats import rankdata

from pyod_odim import ODIM
from pyod_odim.labels import check_labels, labeled_rank

FAST = dict(n_estimators=2, n_samples_iwae=8, patience=4, max_updates=300, random_state=0)


@pytest.fixture(scope="module")
def data():
    X, y = generate_data(
        n_train=400, n_features=5, contamination=0.1, train_only=True, random_state=7
    )
    known = np.zeros_like(y)
    outliers = np.flatnonzero(y == 1)
    known[outliers[::2]] = 1  # half of the outliers are known
    return X, y, known


def test_labels_ignored_unless_opted_in(data):
    X, y, known = data
    plain = ODIM(**FAST).fit(X).decision_scores_
    with_y = ODIM(**FAST).fit(X, known).decision_scores_
    assert_array_equal(plain, with_y)


def test_known_outliers_rise(data):
    X, y, known = data
    plain = ODIM(**FAST).fit(X)
    semi = ODIM(use_labels=True, **FAST).fit(X, known)
    assert semi.decision_scores_.shape == (X.shape[0],)
    mask = known == 1
    rank_plain = rankdata(plain.decision_scores_)[mask].mean()
    rank_semi = rankdata(semi.decision_scores_)[mask].mean()
    assert rank_semi > rank_plain
    # Known outliers end up above the median row.
    assert rank_semi > 0.5 * len(X)


def test_semi_supervised_is_deterministic(data):
    X, _, known = data
    a = ODIM(use_labels=True, **FAST).fit(X, known).decision_scores_
    b = ODIM(use_labels=True, **FAST).fit(X, known).decision_scores_
    assert_array_equal(a, b)


def test_selection_criteria(data):
    X, _, known = data
    rank = ODIM(use_labels=True, **FAST).fit(X, known)
    gmm = ODIM(use_labels=True, label_selection="gmm", **FAST).fit(X, known)
    assert np.isfinite(rank.decision_scores_).all()
    # The label-aware criterion is the default and picks its own checkpoints.
    assert not np.array_equal(rank.best_distance_, gmm.best_distance_)
    assert (rank.best_distance_ <= 1.0 + 1e-3 * 2).all()
    # With subset selection, the criterion sees the subset's labels only.
    sub = ODIM(use_labels=True, label_selection="rank", selection_size=100, **FAST)
    assert np.isfinite(sub.fit(X, known).decision_scores_).all()


def test_no_known_outlier_is_unsupervised(data):
    X, _, _ = data
    zeros = np.zeros(X.shape[0], dtype=int)
    assert_array_equal(
        ODIM(use_labels=True, **FAST).fit(X, zeros).decision_scores_,
        ODIM(**FAST).fit(X).decision_scores_,
    )


@pytest.mark.parametrize(
    "y, match",
    [
        (None, "needs y"),
        (np.zeros(5), "shape"),
        (np.array([0, 1, 2, 0]), "only 0"),
        (np.array([0, 1, np.nan, 0]), "NaN"),
        (np.ones(4), "every row"),
        (np.array(["a", "b", "c", "d"]), "numbers"),
    ],
)
def test_bad_labels(y, match):
    with pytest.raises(ValueError, match=match):
        check_labels(y, 4)


def test_bad_labels_through_fit(data):
    X = data[0]
    with pytest.raises(ValueError, match="shape"):
        ODIM(use_labels=True, **FAST).fit(X, np.zeros(3))


def test_labeled_rank():
    losses = np.array([[0.1, 0.2, 0.9, 0.8], [0.9, 0.8, 0.1, 0.2]])
    mask = np.array([False, False, True, True])
    # Ranks 1..4: the known rows hold ranks 4, 3 in row 0 and 1, 2 in row 1.
    assert_array_equal(labeled_rank(losses, mask), [(3.5 - 1) / 3, (1.5 - 1) / 3])
