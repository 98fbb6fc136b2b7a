"""Checkpoint selection on scripted criteria, where the right answer is known."""

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from pyod.utils.data import generate_data

from pyod_odim import ODIM
from pyod_odim.gmm import gmm2_distance

from fit_helpers import scripted_fit


def test_one_lucky_reading_does_not_win_when_smoothed():
    # Member 0: a lone spike at check 2, then a sustained plateau from check 4.
    # Member 1: one clean peak, three checks long.
    member0 = [0.1, 0.1, 0.9, 0.1, 0.6, 0.6, 0.6, 0.6, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
    member1 = [0.1, 0.2, 0.3, 0.8, 0.8, 0.8, 0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]
    script = list(zip(member0, member1))
    single = scripted_fit(script, smoothing=1).result()
    smoothed = scripted_fit(script, smoothing=3).result()
    # Check c is update 2 (c + 1).
    assert single.best_update[0] == 6          # the spike wins a single-check rule
    assert smoothed.best_update[0] == 14       # the first full window on the plateau
    assert single.best_update[1] == 8          # first check of the peak
    assert smoothed.best_update[1] == 12       # its last check: all three inside
    # The smoothed criterion is what is kept; the raw one is recorded beside it.
    assert smoothed.best_distance[1] == pytest.approx(0.8)
    assert smoothed.check_raw[2, 0] == pytest.approx(0.9)
    assert smoothed.check_distances[2, 0] == pytest.approx((0.1 + 0.1 + 0.9) / 3)


def test_degenerate_member_keeps_its_first_checkpoint_and_stops():
    # Member 1's losses never separate (a constant criterion): it keeps the
    # first check after the warm-up and stops `patience` checks later.
    script = [(0.1 * c, 0.0) for c in range(12)]
    fit = scripted_fit(script, smoothing=3, patience=3, min_updates=4).result()
    assert fit.best_update[1] == 4
    last_seen = fit.check_updates[np.isfinite(fit.check_distances[:, 1])].max()
    assert last_seen == 4 + 2 * 3
    assert fit.best_update[0] == fit.check_updates[-1]  # still rising at the end


def test_smoothing_is_deterministic_and_validated():
    X = generate_data(n_train=200, n_features=4, train_only=True, random_state=3)[0]
    params = dict(n_estimators=2, n_samples_iwae=8, max_updates=150, patience=3,
                  smoothing=3, random_state=0)
    first, second = ODIM(**params).fit(X), ODIM(**params).fit(X)
    assert_array_equal(first.decision_scores_, second.decision_scores_)
    assert_array_equal(first.best_update_, second.best_update_)
    assert first.history_["raw_distance"].shape == first.history_["distance"].shape
    with pytest.raises(ValueError, match="smoothing"):
        ODIM(smoothing=0).fit(X)
    with pytest.raises(TypeError, match="smoothing"):
        ODIM(smoothing=2.5).fit(X)


def test_bimodal_check_wins_on_gmm_distances():
    # Synthetic losses of 54 inliers and 6 outliers over 12 checks: member 0
    # separates the outliers clearly at checks 5-7 only (memorization, then
    # they are learnt too); member 1's losses never separate. The GMM-2
    # distances of those losses must choose member 0's bimodal checks, and
    # the kept losses must be those of the chosen check.
    rng = np.random.default_rng(0)
    outliers = np.arange(54, 60)
    losses = []
    for c in range(12):
        member = rng.normal(10.0, 1.0, size=(2, 60))
        if 5 <= c <= 7:
            member[0, outliers] += 8.0 + (c == 6)
        losses.append(member)
    script = [gmm2_distance(member) for member in losses]
    assert np.argmax([d[0] for d in script]) in (5, 6, 7)
    fit = scripted_fit(script, smoothing=3, patience=4, losses=losses).result()
    assert fit.best_update[0] == 2 * (7 + 1)     # the window of checks 5-7
    assert_array_equal(fit.train_losses[0], losses[7][0])
    assert set(np.argsort(fit.train_losses[0])[-6:]) == set(outliers)
    # The unimodal member's best smoothed distance stays far below.
    assert fit.best_distance[1] < 0.5 * fit.best_distance[0]
