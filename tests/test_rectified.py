"""The rectified-Gaussian decoder for sparse non-negative features, and the rule that picks it."""

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.metrics import roc_auc_score

from pyod_odim import ODIM, kernels, network
from pyod_odim.defaults import FLOOR_SHARE, WIDE_FEATURES, likelihood_for_data

FAST = dict(n_estimators=3, n_samples_iwae=16, patience=3, check_every=10, max_updates=300,
            min_updates=50, random_state=0, likelihood="rectified", score_stage="paper")


def test_log_normal_cdf_matches_log_ndtr():
    u = torch.linspace(-40.0, 12.0, 20001, dtype=torch.float64)
    got = network.log_normal_cdf(u)
    want = torch.special.log_ndtr(u)
    assert torch.all(torch.abs(got - want) <= 1e-6 * torch.clamp(torch.abs(want), min=1.0))
    # Far in both tails: finite values and gradients (no underflow to log 0).
    far = torch.tensor([-1e4, -300.0, 50.0, 1e4], requires_grad=True)
    value = network.log_normal_cdf(far)
    value.sum().backward()
    assert torch.isfinite(value).all() and torch.isfinite(far.grad).all()
    assert_allclose(value.detach().numpy(), torch.special.log_ndtr(far.detach().double()).numpy(),
                    rtol=1e-5)


def test_log_normal_cdf_gradient_is_the_mills_ratio():
    u = torch.linspace(-30.0, 8.0, 3001, dtype=torch.float64, requires_grad=True)
    network.log_normal_cdf(u).sum().backward()
    log_pdf = -0.5 * u.detach() ** 2 - 0.5 * np.log(2 * np.pi)
    want = torch.exp(log_pdf - torch.special.log_ndtr(u.detach()))
    assert_allclose(u.grad.numpy(), want.numpy(), rtol=2e-5, atol=1e-12)


@pytest.mark.parametrize("mean, logvar", [(0.3, -2.0), (-0.2, -4.0), (0.0, 0.0), (-1.5, 1.0)])
def test_rectified_likelihood_is_a_distribution(mean, logvar):
    # The point mass at 0 plus the density over (0, inf) integrate to one.
    x = torch.linspace(0.0, 40.0, 400001, dtype=torch.float64)[1:]
    m = torch.tensor(mean, dtype=torch.float64)
    lv = torch.tensor(logvar, dtype=torch.float64)
    density = torch.exp(-network.rectified_nll(x, m, lv))
    mass = torch.exp(-network.rectified_nll(torch.zeros(()), m, lv))
    total = float(mass + torch.trapezoid(density, x))
    assert abs(total - 1.0) < 1e-4


def _sparse_with_outliers(n=600, d=40, n_out=15, seed=0):
    """Post-ReLU-like rows from a low-rank model; outliers fire features the inliers leave at 0."""
    rng = np.random.default_rng(seed)
    loadings = rng.normal(size=(4, d))
    always_off = rng.choice(d, size=12, replace=False)
    loadings[:, always_off] = 0.0
    X = np.maximum(rng.normal(size=(n, 4)) @ loadings + rng.normal(-0.8, 0.3, size=(n, d)), 0.0)
    y = np.zeros(n, dtype=int)
    y[:n_out] = 1
    X[:n_out, always_off] = rng.uniform(0.5, 1.5, size=(n_out, always_off.size))
    return X, y


def test_the_rule_reads_width_and_the_share_of_values_at_their_floor():
    wide, _ = _sparse_with_outliers(n=150, d=WIDE_FEATURES + 1)
    assert np.mean(wide == wide.min(axis=0)) >= FLOOR_SHARE
    assert likelihood_for_data(wide) == "rectified"
    # Invariant under a per-feature affine map (a standardized copy).
    assert likelihood_for_data((wide - wide.mean(0)) / wide.std(0)) == "rectified"
    # Narrow data with ties at the minimum (discrete tabular features) and
    # wide dense data keep the Gaussian decoder.
    assert likelihood_for_data(wide[:, :WIDE_FEATURES]) == "gaussian"
    dense = np.random.default_rng(0).normal(size=(150, WIDE_FEATURES + 1))
    assert likelihood_for_data(dense) == "gaussian"
    quick = dict(n_samples_iwae=8, max_updates=20, min_updates=0, random_state=0)
    clf = ODIM(**quick).fit(wide)
    assert clf.likelihood_ == "rectified" and clf.get_params()["likelihood"] == "auto"
    assert ODIM(**quick).fit(dense).likelihood_ == "gaussian"


@pytest.mark.parametrize("engine", ["auto", "eager"])
def test_planted_sparse_outliers_rank_first(engine):
    X, y = _sparse_with_outliers()
    clf = ODIM(engine=engine, **FAST).fit(X)
    assert clf.likelihood_ == "rectified"
    assert roc_auc_score(y, clf.decision_scores_) > 0.99
    top = np.argsort(-clf.decision_scores_)[: int(y.sum())]
    assert y[top].mean() >= 0.9


def test_a_held_out_inlier_just_outside_the_range_stays_below_the_outliers():
    X, y = _sparse_with_outliers(seed=1)
    clf = ODIM(**FAST).fit(X[y == 0][:400])
    inliers = X[y == 0][400:].copy()
    # Each held-out inlier nudged 10 % of the feature's span past its
    # training maximum on its largest feature.
    span = X[y == 0][:400].max(axis=0)
    j = np.argmax(inliers / np.maximum(span, 1e-12), axis=1)
    inliers[np.arange(len(inliers)), j] = 1.1 * span[j]
    outlier_scores = clf.decision_function(X[y == 1])
    assert np.median(clf.decision_function(inliers)) < outlier_scores.min()
    # A value below the training minimum is seen as the floor (the network
    # gets the same input) and pays the overshoot cost of its distance.
    held_out = X[y == 0][400:]
    below = np.where(held_out == 0, -0.01 * span, held_out)
    extra = clf.decision_function(below) - clf.decision_function(held_out)
    cost = [clf.scorer_.scale_with_cost(rows)[1] for rows in (below, held_out)]
    assert np.all(extra > 0)
    assert_allclose(extra, (cost[0] - cost[1]) / clf.scorer_.cost_unit, rtol=1e-6)


def test_same_seed_same_scores_and_repeatable_scoring():
    X, _ = _sparse_with_outliers()
    a = ODIM(**FAST).fit(X)
    b = ODIM(**FAST).fit(X)
    assert_array_equal(a.decision_scores_, b.decision_scores_)
    assert_array_equal(a.decision_function(X[:50]), a.decision_function(X[:50]))


@pytest.mark.skipif(not kernels.AVAILABLE, reason="C++ kernels not built")
def test_engines_score_one_fitted_model_alike():
    X, _ = _sparse_with_outliers()
    clf = ODIM(**FAST).fit(X)
    params, eps = clf.scorer_.torch_params(torch.device("cpu"))
    rows = torch.as_tensor(clf.scorer_.scale(X), dtype=torch.float32)
    fast = clf.scorer_.scoring_engine("kernel").score(params, rows, eps)
    eager = clf.scorer_.scoring_engine("eager").score(params, rows, eps)
    # 1e-4 relative; losses near 0 (a few rows) compare absolutely.
    assert_allclose(fast, eager, rtol=1e-4, atol=1e-4)


def test_bad_likelihood_names_the_choices():
    with pytest.raises(ValueError, match="likelihood"):
        ODIM(likelihood="poisson").fit(np.random.default_rng(0).random((50, 3)))


def test_float32_rows_reach_the_floor_exactly():
    # Standardized sparse features in float32: the floor is a negative value
    # whose float32 scaling would leave rounding residue without the snap.
    X, _ = _sparse_with_outliers()
    Z = ((X - X.mean(0)) / X.std(0) * 3.7 + 1.3).astype(np.float32)
    clf = ODIM(**dict(FAST, max_updates=60, min_updates=0)).fit(Z)
    scaled = clf.scorer_.scale(Z)
    assert np.array_equal(scaled == 0.0, Z == Z.min(axis=0))
    assert_allclose(clf.decision_function(Z), clf.decision_function(Z.astype(np.float64)),
                    rtol=1e-5)


def test_the_written_out_polynomial_is_the_documented_one():
    # log_normal_cdf spells Horner's rule out for TorchScript; it must stay
    # the polynomial of network._ERFC_POLY (which the C++ kernels copy).
    u = np.linspace(-30.0, -0.01, 500)
    t = -u / np.sqrt(2.0)
    s = 1.0 / (1.0 + 0.5 * t)
    poly = np.polynomial.polynomial.polyval(s, network._ERFC_POLY)
    want = np.log(s) - t * t + poly - np.log(2.0)
    got = network.log_normal_cdf(torch.as_tensor(u, dtype=torch.float64)).numpy()
    assert_allclose(got, want, rtol=1e-12, atol=1e-12)
