"""Semi-supervised ODIM: known outliers through a CUBO term."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from pyod.utils.data import generate_data
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score, roc_auc_score

from pyod_odim import ODIM
from pyod_odim.datasets import load_demo
from pyod_odim.known_outliers import check_labels, labeled_rank
from pyod_odim.neighbors import NeighborScorer

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


# ---------------------------------------------------------------- guards
# The bundled cardio set with 30 % of its outliers known (drawn per seed);
# three members, every other parameter at its default (batch normalization
# included). Measured when this guard was written (AUC / AP on the
# unlabeled rows, seeds 0, 1): unsupervised 0.887 / 0.471 and
# 0.937 / 0.535; the likelihood alone (neighbor_weight=0) 0.991 / 0.875
# and 0.987 / 0.905; the defaults 0.996 / 0.961 and 0.992 / 0.928. With the
# known outliers normalized by the running statistics (the bug this guards
# against) the likelihood alone reached AP 0.682 and 0.666 only.
GUARD_SEEDS = (0, 1)
SMALL = dict(n_estimators=3)


@pytest.fixture(scope="module")
def cardio_guard():
    X, y = load_demo()
    runs = []
    for seed in GUARD_SEEDS:
        rng = np.random.default_rng(seed)
        outliers = np.flatnonzero(y == 1)
        known = np.zeros_like(y)
        known[rng.choice(outliers, len(outliers) * 3 // 10, replace=False)] = 1
        unsupervised = ODIM(random_state=seed, **SMALL).fit(X).decision_scores_
        runs.append((seed, known, unsupervised))
    return X, y, runs


def _unlabeled_metrics(y, known, scores):
    unl = known == 0
    return roc_auc_score(y[unl], scores[unl]), average_precision_score(y[unl], scores[unl])


@pytest.mark.parametrize("extra", [dict(neighbor_weight=0.0), dict()],
                         ids=["likelihood-only", "defaults"])
def test_labels_help_on_unlabeled_rows(cardio_guard, extra):
    # Labels must improve the ranking of the outliers nobody labeled, for
    # every seed: AUC by at least 0.02 and AP by at least 0.2.
    X, y, runs = cardio_guard
    for seed, known, unsupervised in runs:
        clf = ODIM(random_state=seed, use_labels=True, **SMALL, **extra).fit(X, known)
        auc_u, ap_u = _unlabeled_metrics(y, known, unsupervised)
        auc_l, ap_l = _unlabeled_metrics(y, known, clf.decision_scores_)
        assert clf.batch_norm
        assert auc_l > auc_u + 0.02, (seed, auc_u, auc_l)
        assert ap_l > ap_u + 0.2, (seed, ap_u, ap_l)


# --------------------------------------------------- neighbour blending
def test_neighbor_scores_reproduce_and_blend(data):
    X, y, known = data
    clf = ODIM(use_labels=True, **FAST).fit(X, known)
    plain = ODIM(use_labels=True, neighbor_weight=0.0, **FAST).fit(X, known)
    assert clf.label_neighbors_ is not None and plain.label_neighbors_ is None
    scores = clf.decision_scores_
    assert ((scores >= 0) & (scores <= 1)).all()
    # Scoring the training rows reproduces the training scores.
    assert_array_equal(clf.decision_function(X), scores)
    # The likelihood part is the plain fit's scores (same training).
    assert_array_equal(clf.best_update_, plain.best_update_)
    neighbors = clf.label_neighbors_
    likelihood = plain.decision_scores_
    expected = neighbors.score(clf.scorer_.scale(X), likelihood)
    assert_array_equal(scores, expected)
    # Only the ODIM part: the ranks of the likelihood scores.
    only_odim = NeighborScorer(0.0, 5, 0.7).fit(clf.scorer_.scale(X), likelihood, known == 1)
    assert_array_equal(np.argsort(only_odim, kind="stable"),
                       np.argsort(rankdata(likelihood), kind="stable"))


def test_neighbor_ratio():
    # One known outlier at 10; the unlabeled rows at 0, 0.5, 1 and 9 (1-D).
    X = np.array([[0.0], [1.0], [10.0], [9.0], [0.5]])
    odim = np.array([0.1, 0.2, 5.0, 3.0, 0.15])
    labeled = np.array([False, False, True, False, False])
    scorer = NeighborScorer(1.0, 1, 0.5)
    scorer.fit(X, odim, labeled)
    # Reference inliers: the unlabeled rows with ODIM scores up to their
    # median (0.175), i.e. the rows at 0 and 0.5.
    assert scorer.n_inliers_ == 2 and scorer.n_outliers_ == 1
    ratio = scorer.ratio(np.array([[9.0], [0.0], [5.5]]))
    assert_allclose(ratio, [8.5 / 9.5, 0.0, 5.0 / 9.5])


@pytest.mark.parametrize(
    "params, error",
    [
        (dict(neighbor_weight=1.5), ValueError),
        (dict(neighbor_weight=-0.1), ValueError),
        (dict(neighbor_weight="high"), TypeError),
        (dict(n_neighbors=0), ValueError),
        (dict(n_neighbors=2.5), TypeError),
        (dict(inlier_quantile=0.0), ValueError),
        (dict(inlier_quantile=1.2), ValueError),
    ],
)
def test_bad_neighbor_parameters(data, params, error):
    X, _, known = data
    with pytest.raises(error):
        ODIM(use_labels=True, **FAST, **params).fit(X, known)


def test_neighbor_blend_with_fit_sample_and_small_chunks(data):
    # Fitted on a sample: the blend's reference rows come from the sample,
    # every row is still scored, and scoring in small chunks changes nothing.
    X, y, known = data
    clf = ODIM(use_labels=True, max_fit_rows=300, **FAST).fit(X, known)
    assert clf.decision_scores_.shape == (X.shape[0],)
    assert clf.likelihood_scores_.shape == (X.shape[0],)
    assert_array_equal(clf.decision_function(X), clf.decision_scores_)
    clf.set_params(working_memory=0.01)
    assert_allclose(clf.decision_function(X), clf.decision_scores_, rtol=1e-6)
    assert roc_auc_score(y[known == 0], clf.decision_scores_[known == 0]) > 0.8
