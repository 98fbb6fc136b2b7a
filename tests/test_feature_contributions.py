"""ODIM.feature_contributions: an exact split of the likelihood score over features."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from pyod_odim import ODIM, kernels

# The likelihood's split; the neighbour stage's is tested in test_neighbor_stage.py.
FAST = dict(n_estimators=3, n_samples_iwae=16, patience=3, check_every=5, max_updates=120,
            min_updates=0, random_state=0, score_stage="paper")
ENGINES = ["eager"] + (["kernel"] if kernels.AVAILABLE else [])


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    cov = 0.8 * np.ones((6, 6)) + 0.2 * np.eye(6)
    X = rng.multivariate_normal(np.zeros(6), cov, size=500)
    return X


@pytest.mark.parametrize("combination", ["mean", "standardized"])
@pytest.mark.parametrize("engine", ENGINES)
def test_row_sums_recover_the_score(data, engine, combination):
    clf = ODIM(**dict(FAST, engine=engine, combination=combination)).fit(data)
    new = data[:50] * 3.0  # some beyond the bounds: overshoot costs too
    c = clf.feature_contributions(new)
    assert c.shape == new.shape
    _, rest = clf.scorer_.contributions(new, engine=engine)
    total = c.sum(axis=1) + clf.scorer_.feature_reference.sum() + rest
    assert_allclose(total, clf.decision_function(new), rtol=1e-5, atol=1e-4)


def test_engines_agree_chunks_do_not_matter_and_calls_repeat(data):
    if not kernels.AVAILABLE:
        pytest.skip("the C++ kernels are not built")
    clf = ODIM(**FAST).fit(data)
    kernel = clf.feature_contributions(data)
    assert_array_equal(kernel, clf.feature_contributions(data))
    eager = ODIM(**dict(clf.get_params(), engine="eager"))
    eager.scorer_, eager.decision_scores_, eager.n_features_in_ = clf.scorer_, clf.decision_scores_, 6
    scale = np.abs(kernel).max()
    assert np.abs(eager.feature_contributions(data) - kernel).max() <= 1e-4 * scale
    tiny = ODIM(**dict(clf.get_params(), working_memory=0.001))
    tiny.scorer_, tiny.decision_scores_, tiny.n_features_in_ = clf.scorer_, clf.decision_scores_, 6
    assert_array_equal(tiny.feature_contributions(data), kernel)


def test_training_rows_are_centred_on_the_reference(data):
    clf = ODIM(**FAST).fit(data)
    c = clf.feature_contributions(data)
    # The reference is the median over a sample of fitting rows.
    assert np.abs(np.median(c, axis=0)).max() < 0.25 * np.abs(c).max()


@pytest.mark.parametrize("shift", ["marginal", "beyond_bounds"])
def test_planted_feature_is_blamed(data, shift):
    clf = ODIM(**FAST).fit(data)
    rows = np.repeat(np.median(data, axis=0, keepdims=True), 6, axis=0)
    for j in range(6):
        rows[j, j] += 4.0 if shift == "marginal" else 50.0
    c = clf.feature_contributions(rows)
    assert_array_equal(np.argmax(c, axis=1), np.arange(6))


def test_semi_supervised_explains_the_likelihood_part(data):
    y = np.zeros(len(data), dtype=int)
    y[:10] = 1
    X = data.copy()
    X[:10, 2] += 5.0
    clf = ODIM(**dict(FAST, use_labels=True)).fit(X, y)
    c = clf.feature_contributions(X)
    _, rest = clf.scorer_.contributions(X)
    total = c.sum(axis=1) + clf.scorer_.feature_reference.sum() + rest
    assert_allclose(total, clf.likelihood_scores_, rtol=1e-5, atol=1e-4)
    assert not np.allclose(total, clf.decision_scores_)


def test_bernoulli_contributions(data):
    X = (data > 0).astype(float)
    clf = ODIM(**dict(FAST, likelihood="bernoulli")).fit(X)
    c = clf.feature_contributions(X)
    _, rest = clf.scorer_.contributions(X)
    total = c.sum(axis=1) + clf.scorer_.feature_reference.sum() + rest
    assert_allclose(total, clf.decision_scores_, rtol=1e-5, atol=1e-4)
