"""The neighbour stage after ODIM's score (score_stage, pyod_odim.neighbor_stage)."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from pyod_odim import ODIM, load
from pyod_odim.neighbor_stage import CleanedNeighborStage

FAST = dict(n_estimators=3, n_samples_iwae=16, patience=2, check_every=5, max_updates=80,
            min_updates=0, random_state=0)


def local_and_global(seed=0, n=500, n_out=15):
    """Inliers on a ring (4 features), local outliers in its hole, global ones in a far clump.

    Returns the rows and each row's kind: 0 inlier, 1 local, 2 global.
    """
    rng = np.random.default_rng(seed)
    angle = rng.uniform(0, 2 * np.pi, n)
    ring = np.c_[np.cos(angle), np.sin(angle)] + rng.normal(0, 0.05, (n, 2))
    inliers = np.c_[ring, rng.normal(0, 0.05, (n, 2))]
    radius, turn = 0.3 * np.sqrt(rng.uniform(0, 1, n_out)), rng.uniform(0, 2 * np.pi, n_out)
    local = np.c_[radius * np.cos(turn), radius * np.sin(turn), rng.normal(0, 0.05, (n_out, 2))]
    far = np.array([2.5, 2.5, 0.0, 0.0]) + rng.normal(0, 0.02, (n_out, 4))
    kind = np.r_[np.zeros(n), np.ones(n_out), np.full(n_out, 2)].astype(int)
    return np.r_[inliers, local, far], kind


def kind_aucs(scores, kind):
    """(AUC of the local outliers against the inliers, AUC of the global ones)."""
    return tuple(roc_auc_score(kind[kind != other] > 0, scores[kind != other])
                 for other in (2, 1))


@pytest.fixture(scope="module")
def data():
    return local_and_global()


@pytest.fixture(scope="module")
def fitted(data):
    return ODIM(**FAST).fit(data[0])


def test_auto_finds_local_and_global_outliers(data, fitted):
    from pyod.models.knn import KNN

    X, kind = data
    paper = ODIM(**dict(FAST, score_stage="paper")).fit(X)
    scaled = (X - X.min(axis=0)) / (X.max(axis=0) - X.min(axis=0))
    knn = KNN().fit(scaled)
    paper_local, paper_global = kind_aucs(paper.decision_scores_, kind)
    knn_local, knn_global = kind_aucs(knn.decision_scores_, kind)
    local, far = kind_aucs(fitted.decision_scores_, kind)
    assert paper_local < 0.5 and paper_global > 0.95  # the likelihood misses the hole
    assert knn_local > 0.9 and knn_global < 0.5  # the plain neighbour distance misses the clump
    assert local > 0.8 and far > 0.95  # the stage finds both
    assert np.array_equal(paper.likelihood_scores_, paper.decision_scores_)
    assert fitted.scorer_.stage is not None and paper.scorer_.stage is None


def test_the_default_is_auto():
    # The default runs the stage on narrow data: FAST leaves score_stage alone.
    assert ODIM().score_stage == "auto" and "score_stage" not in FAST


def test_auto_leaves_wide_data_to_the_likelihood():
    X = np.random.default_rng(0).random((80, 257))
    clf = ODIM(**dict(FAST, n_estimators=2, max_updates=10)).fit(X)
    assert clf.scorer_.stage is None
    assert np.array_equal(clf.decision_scores_, clf.likelihood_scores_)


def test_deterministic_and_chunked_scoring_equal(data, fitted):
    X = data[0]
    again = ODIM(**dict(FAST, working_memory=0.01)).fit(X)  # many small chunks
    assert np.array_equal(again.decision_scores_, fitted.decision_scores_)
    assert np.array_equal(fitted.decision_function(X), fitted.decision_scores_)
    assert np.array_equal(again.decision_function(X), fitted.decision_scores_)


def test_save_load_bit_identical_with_bounded_reference(data, fitted, tmp_path):
    X = data[0]
    fitted.save(tmp_path / "m.odim")
    loaded = load(tmp_path / "m.odim")
    assert np.array_equal(loaded.decision_function(X), fitted.decision_function(X))
    assert np.array_equal(loaded.decision_scores_, fitted.decision_scores_)
    stage = loaded.scorer_.stage
    assert stage.reference_.dtype == np.float32
    assert stage.reference_.shape[0] <= stage.max_reference
    assert np.array_equal(stage.reference_, fitted.scorer_.stage.reference_)
    # A pickle carries the rows, not the search; the rebuilt search scores alike.
    unpickled = pickle.loads(pickle.dumps(fitted))
    assert "search_" not in fitted.scorer_.stage.__getstate__()
    assert np.array_equal(unpickled.decision_function(X), fitted.decision_function(X))


def test_reference_rows_are_capped():
    rng = np.random.default_rng(1)
    X, scores = rng.random((300, 3)), rng.random(300)
    stage = CleanedNeighborStage(0.1, max_reference=50)
    train = stage.fit(X, scores, seed=0)
    assert stage.reference_.shape == (50, 3)
    kept = stage.reference_.astype(np.float64)
    trusted = X[scores <= np.quantile(scores, 0.9)]
    assert all(np.isclose(trusted, row, atol=1e-6).all(axis=1).any() for row in kept)
    assert np.allclose(stage.score(X, scores), train)


def test_export_matches_decision_function(data, fitted, tmp_path):
    X = data[0]
    expected = fitted.decision_function(X)
    module = fitted.to_torchscript(tmp_path / "m.pt", chunk_rows=64)
    got = module(torch.as_tensor(X)).numpy()
    assert np.abs(got - expected).max() <= 1e-5 * max(np.abs(expected).max(), 1.0)


def test_contributions_sum_to_the_stage_score(data, fitted):
    X = data[0]
    c, rest = fitted.scorer_.contributions(X)
    assert np.array_equal(c, fitted.feature_contributions(X))
    scores = fitted.decision_scores_
    assert np.abs(c.sum(axis=1) + rest - scores).max() <= 1e-5 * max(np.abs(scores).max(), 1.0)
    # Rows the distance scores are explained by their gaps to a reference row.
    stage = fitted.scorer_.stage
    distance = stage.distance(fitted.scorer_.scaling.transform(X))
    z_odim, z_dist = stage.z_parts(fitted.likelihood_scores_, distance)
    by_distance = z_dist > z_odim + 1e-3
    assert by_distance.any() and (c[by_distance] >= 0).all()
    quantiles = fitted.scorer_.contribution_quantiles
    assert quantiles.shape == (101, X.shape[1]) and np.all(np.diff(quantiles, axis=0) >= 0)


def test_auto_leaves_known_outliers_to_their_neighbour_blend(data):
    X, kind = data
    y = (kind == 1).astype(int)
    y[np.flatnonzero(y)[5:]] = 0
    auto = ODIM(**dict(FAST, use_labels=True)).fit(X, y)
    paper = ODIM(**dict(FAST, use_labels=True, score_stage="paper")).fit(X, y)
    assert auto.scorer_.stage is None and auto.scorer_.neighbors is not None
    assert np.array_equal(auto.decision_scores_, paper.decision_scores_)
    # use_labels without a labeled row is an unsupervised fit: the stage runs.
    unlabeled = ODIM(**dict(FAST, use_labels=True)).fit(X, np.zeros(len(X), int))
    assert unlabeled.scorer_.stage is not None


def test_semi_supervised_and_capped_fits_run_the_stage(data):
    X, kind = data
    y = (kind == 1).astype(int)
    y[np.flatnonzero(y)[5:]] = 0  # five known local outliers
    semi = ODIM(**dict(FAST, use_labels=True, score_stage="neighbors")).fit(X, y)
    assert semi.scorer_.stage is not None and semi.scorer_.neighbors is not None
    reference = semi.scorer_.stage.reference_.astype(np.float64)
    labeled = semi.scorer_.scaling.transform(X[y == 1])
    assert not any(np.isclose(reference, row, atol=1e-6).all(axis=1).any() for row in labeled)
    assert np.array_equal(semi.decision_function(X), semi.decision_scores_)
    capped = ODIM(**dict(FAST, max_fit_rows=200)).fit(X)
    assert capped.scorer_.stage.reference_.shape[0] <= 200
    assert np.array_equal(capped.decision_function(X), capped.decision_scores_)


def test_bad_score_stage():
    with pytest.raises(ValueError, match="score_stage"):
        ODIM(score_stage="knn").fit(np.random.default_rng(0).random((20, 3)))


def test_sparse_input_scores_as_dense_with_the_stage(data):
    from scipy import sparse

    X = data[0]
    dense_fit = ODIM(**FAST).fit(X)
    sparse_fit = ODIM(**FAST).fit(sparse.csr_matrix(X))
    assert sparse_fit.scorer_.stage is not None
    assert np.array_equal(sparse_fit.decision_scores_, dense_fit.decision_scores_)
    assert np.array_equal(sparse_fit.decision_function(sparse.csc_matrix(X[:50])),
                          dense_fit.decision_function(X[:50]))


def broken_dependences(d=30, n=1000, n_planted=30, seed=1):
    """Rows of a factor model (groups of 5 features share a factor, communality 0.85);
    in ``n_planted`` rows, whose group mean lies 1 to 2.5 from 0, one feature is set
    to minus the mean of the rest of its group.

    Returns the rows, the planted rows and their planted feature.
    """
    rng = np.random.default_rng(seed)
    loading = np.zeros((d, d // 5))
    loading[np.arange(d), np.arange(d) // 5] = np.sqrt(0.85)
    X = rng.normal(size=(n, d // 5)) @ loading.T + rng.normal(0, np.sqrt(0.15), (n, d))
    rows = rng.choice(n, n_planted, replace=False)
    features = rng.integers(0, d, n_planted)
    for i, j in zip(rows, features):
        others = (np.arange(d) // 5 == j // 5) & (np.arange(d) != j)
        while not 1.0 <= abs(X[i, others].mean()) <= 2.5:  # a row whose group is clearly off 0
            X[i] = loading @ rng.normal(size=d // 5) + rng.normal(0, np.sqrt(0.15), d)
        X[i, j] = -X[i, others].mean()
    return X, rows, features


def test_stage_contributions_blame_a_broken_dependence():
    # The planted value lies within the feature's range, but far from what the
    # row's nearest trusted rows hold there: the stage's split finds it.
    from pyod.models.ecod import ECOD

    X, rows, features = broken_dependences()
    clf = ODIM(**FAST).fit(X)
    top1 = np.mean(clf.feature_contributions(X[rows]).argmax(axis=1) == features)
    ecod_top1 = np.mean(ECOD().fit(X).O[rows].argmax(axis=1) == features)
    assert top1 >= 0.75 and top1 > ecod_top1 + 0.3
