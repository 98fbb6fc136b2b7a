"""Checkpoint selection on scripted criteria, where the right answer is known."""

import numpy as np
import pytest
import torch
from numpy.testing import assert_array_equal
from pyod.utils.data import generate_data

from pyod_odim import ODIM, network
from pyod_odim.gmm import gmm2_distance
from pyod_odim.engines import make_engine
from pyod_odim.training import EnsembleFit, TrainingConfig


def scripted_fit(script, smoothing, patience=4, min_updates=0, losses=None):
    """Run the keep-or-stop step of a 2-member fit on a scripted criterion.

    ``script[c]`` holds both members' raw criterion at check ``c`` (every
    2 updates); no training happens, only the selection rule runs.
    ``losses[c]``, when given, are the members' (2, 60) losses at check ``c``.
    """
    X = torch.rand((60, 3), generator=torch.Generator().manual_seed(0))
    arch = network.Architecture(3, (8, 4), 2)
    config = TrainingConfig(
        n_members=2, n_samples=4, batch_size=32, lr=1e-3, check_every=2,
        patience=patience, max_updates=2 * len(script), selection_size=None,
        distance="sigma", bernoulli=False, min_updates=min_updates, smoothing=smoothing,
    )
    engine = make_engine("eager", torch.device("cpu"), arch, "gaussian")
    fit = EnsembleFit(X, arch, config, torch.Generator().manual_seed(1), engine)
    for c, values in enumerate(script):
        if fit.finished():
            break
        fit.n_updates += config.check_every
        ids = fit.live.ids
        checked = np.zeros((2, 60)) if losses is None else losses[c]
        fit.keep_or_stop(checked[ids], np.asarray(values, dtype=float)[ids])
    return fit.result()


def test_one_lucky_reading_does_not_win_when_smoothed():
    # Member 0: a lone spike at check 2, then a sustained plateau from check 4.
    # Member 1: one clean peak, three checks long.
    member0 = [0.1, 0.1, 0.9, 0.1, 0.6, 0.6, 0.6, 0.6, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
    member1 = [0.1, 0.2, 0.3, 0.8, 0.8, 0.8, 0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]
    script = list(zip(member0, member1))
    single = scripted_fit(script, smoothing=1)
    smoothed = scripted_fit(script, smoothing=3)
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
    fit = scripted_fit(script, smoothing=3, patience=3, min_updates=4)
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
    fit = scripted_fit(script, smoothing=3, patience=4, losses=losses)
    assert fit.best_update[0] == 2 * (7 + 1)     # the window of checks 5-7
    assert_array_equal(fit.train_losses[0], losses[7][0])
    assert set(np.argsort(fit.train_losses[0])[-6:]) == set(outliers)
    # The unimodal member's best smoothed distance stays far below.
    assert fit.best_distance[1] < 0.5 * fit.best_distance[0]
