"""Which state a member keeps (``checkpoint``) and the wide-data warm-up in passes."""

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from pyod_odim import ODIM
from pyod_odim.defaults import (CHECKPOINT_FOR_LIKELIHOOD, NARROW_DEFAULTS, WIDE_DEFAULTS,
                                WIDE_FEATURES, warm_up_updates)

from fit_helpers import record_configs, scripted_fit

QUICK = dict(max_updates=60, min_updates=0, patience=2, check_every=10, n_samples_iwae=8,
             random_state=0)


def _kept(script, keep_last):
    """A scripted fit whose check ``c`` has losses all equal to ``c``."""
    losses = [np.full((2, 60), float(c)) for c in range(len(script))]
    return scripted_fit(script, patience=3, losses=losses, keep_last=keep_last)


def test_last_keeps_the_state_a_member_stops_in():
    # Member 0 peaks at check 2 (update 6) and stops 3 checks later (update
    # 12); member 1 still rises at the end (update 16).
    script = list(zip([0.1, 0.5, 0.9, 0.4, 0.3, 0.2, 0.2, 0.2],
                      [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]))
    best = _kept(script, keep_last=False)
    last = _kept(script, keep_last=True)
    assert_array_equal(best.best_update, [6, 16])
    assert_array_equal(last.best_update, [12, 16])
    assert_array_equal(last.best_losses[:, 0], [5.0, 7.0])
    assert_array_equal(best.best_losses[:, 0], [2.0, 7.0])
    # The criterion reported stays the best check's: it decided the stop.
    assert_array_equal(last.best_distance, best.best_distance)


def test_a_non_finite_stopping_state_keeps_the_best_check():
    script = [(0.9, 0.1), (0.1, 0.2), (0.1, 0.3), (np.nan, 0.4), (0.1, 0.5)]
    fit = _kept(script, keep_last=True)
    assert fit.best_update[0] == 2


@pytest.mark.parametrize("checkpoint", ["best", "last"])
def test_fits_report_the_kept_update(checkpoint):
    rng = np.random.RandomState(0)
    X = rng.randn(200, 6)
    clf = ODIM(checkpoint=checkpoint, **dict(QUICK, max_updates=400)).fit(X)
    distance, updates = clf.history_["distance"], clf.history_["update"]
    for m, kept in enumerate(clf.best_update_):
        seen = np.isfinite(distance[:, m])
        if checkpoint == "best":
            assert kept == updates[seen][np.argmax(distance[seen, m])]
        else:
            assert kept == updates[seen].max()  # the check it stopped at
    again = ODIM(checkpoint=checkpoint, **dict(QUICK, max_updates=400)).fit(X)
    assert_array_equal(clf.decision_scores_, again.decision_scores_)


@pytest.mark.parametrize("likelihood", ["gaussian", "rectified"])
def test_auto_checkpoint_follows_the_likelihood(monkeypatch, likelihood):
    configs = record_configs(monkeypatch)
    X = np.maximum(np.random.RandomState(0).randn(80, 12), 0.0)
    ODIM(likelihood=likelihood, **QUICK).fit(X)
    ODIM(likelihood=likelihood, checkpoint="best", **QUICK).fit(X)
    ODIM(likelihood=likelihood, checkpoint="last", **QUICK).fit(X)
    seen = [config.keep_last for config in configs]
    assert seen == [CHECKPOINT_FOR_LIKELIHOOD[likelihood] == "last", False, True]
    assert CHECKPOINT_FOR_LIKELIHOOD == {"gaussian": "best", "rectified": "last",
                                         "bernoulli": "best"}


def test_bad_checkpoint_names_the_choices():
    with pytest.raises(ValueError, match="checkpoint"):
        ODIM(checkpoint="final").fit(np.random.RandomState(0).rand(30, 3))


def test_wide_warm_up_lasts_at_least_five_passes_over_large_data():
    # Tabular data keeps its fixed warm-up however many rows it has.
    assert warm_up_updates(NARROW_DEFAULTS, 300_000, 128) == NARROW_DEFAULTS.min_updates
    assert warm_up_updates(WIDE_DEFAULTS, 480, 128) == WIDE_DEFAULTS.min_updates
    assert warm_up_updates(WIDE_DEFAULTS, 5263, 128) == int(np.ceil(5 * 5263 / 128))
    assert warm_up_updates(WIDE_DEFAULTS, 50, 128) == WIDE_DEFAULTS.min_updates


def test_auto_warm_up_resolves_in_fit_and_explicit_values_win(monkeypatch):
    configs = record_configs(monkeypatch)
    X = np.random.RandomState(0).rand(1000, WIDE_FEATURES + 1)
    quick = dict(QUICK, max_updates=10, patience=1)
    quick.pop("min_updates")
    ODIM(batch_size=16, **quick).fit(X)
    ODIM(batch_size=16, min_updates=20, **quick).fit(X)
    # Labeled outliers leave the IWAE term, so they are not counted.
    y = np.zeros(1000, dtype=int)
    y[:200] = 1
    ODIM(batch_size=16, use_labels=True, **quick).fit(X, y)
    seen = [config.min_updates for config in configs]
    assert seen == [int(np.ceil(5 * 1000 / 16)), 20, int(np.ceil(5 * 800 / 16))]
