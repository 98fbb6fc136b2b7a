"""The defaults by width: cheaper members, samples, patience and checks, and a
later warm-up, above 256 features."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from pyod_odim import ODIM
from pyod_odim.defaults import (NARROW_DEFAULTS, WIDE_DEFAULTS, WIDE_FEATURES,
                                defaults_for_width, training_config)

from fit_helpers import record_configs

QUICK = dict(max_updates=10, min_updates=0, patience=1, check_every=5, n_samples_iwae=8,
             random_state=0)


def test_the_rule_switches_above_wide_features():
    assert defaults_for_width(WIDE_FEATURES) == NARROW_DEFAULTS
    assert defaults_for_width(WIDE_FEATURES + 1) == WIDE_DEFAULTS
    assert defaults_for_width(9) == NARROW_DEFAULTS
    # Tabular data keeps the paper's members and patience.
    assert (NARROW_DEFAULTS.n_estimators, NARROW_DEFAULTS.patience) == (10, 10)
    assert NARROW_DEFAULTS.n_samples_train == 10
    assert NARROW_DEFAULTS.selection_size == 8192
    assert NARROW_DEFAULTS.min_updates == 100
    # Everything that costs time shrinks on wide data but the warm-up.
    for field in set(WIDE_DEFAULTS._fields) - {"min_updates", "min_epochs"}:
        assert getattr(WIDE_DEFAULTS, field) <= getattr(NARROW_DEFAULTS, field)
    assert WIDE_DEFAULTS.min_updates > NARROW_DEFAULTS.min_updates


def _settled(clf, n_features, n_rows=40):
    X = np.random.RandomState(0).rand(n_rows, n_features)
    return training_config(clf.get_params(), X, n_rows, 1)[1]


@pytest.mark.parametrize("n_features", [WIDE_FEATURES, WIDE_FEATURES + 1])
def test_auto_parameters_resolve_by_width(n_features):
    config = _settled(ODIM(), n_features)
    width = defaults_for_width(n_features)
    assert config.n_members == width.n_estimators
    assert config.n_samples_train == width.n_samples_train
    assert config.patience == width.patience
    assert config.selection_size == width.selection_size
    assert config.min_updates == width.min_updates
    # Explicit values win, and None keeps meaning "every row".
    config = _settled(ODIM(patience=7, selection_size=None, min_updates=0), n_features)
    assert (config.patience, config.selection_size, config.min_updates) == (7, None, 0)


@pytest.mark.parametrize("n_features, members", [(WIDE_FEATURES, 10), (WIDE_FEATURES + 1, 5)])
def test_default_fit_uses_the_rule(n_features, members):
    X = np.random.RandomState(0).rand(80, n_features)
    clf = ODIM(**QUICK).fit(X)
    assert clf.scorer_.n_members == members
    assert len(clf.best_update_) == members
    # get_params keeps what the user gave: the rule is applied at fit time.
    assert clf.get_params()["n_estimators"] is None
    assert clf.get_params()["n_samples_train"] == "auto"
    assert clf.get_params()["selection_size"] == "auto"
    assert ODIM().get_params()["min_updates"] == "auto"


def test_explicit_values_override_the_rule():
    X = np.random.RandomState(0).rand(80, WIDE_FEATURES + 44)
    clf = ODIM(n_estimators=3, n_samples_train=2, **QUICK).fit(X)
    assert clf.scorer_.n_members == 3
    with pytest.raises((TypeError, ValueError), match="n_samples_train"):
        ODIM(n_samples_train="many").fit(X)
    for name in ("patience", "selection_size", "min_updates", "lr"):
        with pytest.raises((TypeError, ValueError), match=name):
            ODIM(**{name: "many"}).fit(X)


def test_wide_fit_ranks_planted_outliers_first():
    # d = 600: inliers near a 3-dimensional subspace, outliers off it.
    rng = np.random.RandomState(0)
    basis = rng.randn(3, 600)
    X = rng.randn(300, 3) @ basis + 0.05 * rng.randn(300, 600)
    X[:12] = 3.0 * rng.randn(12, 600)
    y = np.zeros(300, dtype=int)
    y[:12] = 1
    clf = ODIM(max_updates=120, n_samples_iwae=20, random_state=0).fit(X)
    assert clf.scorer_.n_members == 5
    assert roc_auc_score(y, clf.decision_scores_) > 0.99
    top = np.argsort(-clf.decision_scores_)[:12]
    assert set(top) == set(range(12))


@pytest.mark.parametrize("likelihood, lr", [("gaussian", 1e-3), ("rectified", 2e-3)])
def test_auto_learning_rate_follows_the_likelihood(monkeypatch, likelihood, lr):
    from pyod_odim import defaults

    assert defaults.LEARNING_RATES[likelihood] == lr
    configs = record_configs(monkeypatch)
    rng = np.random.RandomState(0)
    # Sparse non-negative rows: "auto" takes the rectified decoder on them.
    X = np.maximum(rng.randn(80, WIDE_FEATURES + 4), 0.0)
    clf = ODIM(likelihood=likelihood, **QUICK).fit(X)
    ODIM(lr=5e-4, likelihood=likelihood, **QUICK).fit(X)
    assert [config.lr for config in configs] == [lr, 5e-4]
    assert ODIM(**QUICK).fit(X).likelihood_ == "rectified"
    assert configs[-1].lr == defaults.LEARNING_RATES["rectified"]
    assert np.isfinite(clf.decision_scores_).all()
