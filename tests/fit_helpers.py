"""Helpers shared by the tests: scripted checks, recorded configs, quick fits."""

import numpy as np
import torch

from pyod_odim import network
from pyod_odim.engines import make_engine
from pyod_odim.training import EnsembleFit, TrainingConfig


# A fit of a few seconds' worth of nothing: two members, a few updates.
QUICK_FIT = dict(n_estimators=2, n_samples_iwae=8, patience=2, check_every=5, max_updates=60,
                 min_updates=0, random_state=0)


def planted_rows(seed, n, d, n_outliers, shift):
    """Training rows (n, d) whose first ``n_outliers`` are shifted by ``shift``, and 50 new rows."""
    rng = np.random.RandomState(seed)
    X = rng.randn(n, d)
    X[:n_outliers] += shift
    return X, rng.randn(50, d)


def scripted_fit(script, smoothing=1, patience=4, min_updates=0, losses=None, keep_last=False):
    """Run the keep-or-stop step of a 2-member fit on a scripted criterion.

    ``script[c]`` holds both members' raw criterion at check ``c`` (every
    2 updates); no training happens, only the selection rule runs.
    ``losses[c]``, when given, are the members' (2, 60) losses at check ``c``.
    Returns the :class:`EnsembleFit` after the last check.
    """
    X = torch.rand((60, 3), generator=torch.Generator().manual_seed(0))
    arch = network.Architecture(3, (8, 4), 2)
    config = TrainingConfig(
        n_members=2, n_samples=4, batch_size=32, lr=1e-3, check_every=2,
        patience=patience, max_updates=2 * len(script), selection_size=None,
        distance="sigma", likelihood="gaussian", min_updates=min_updates, smoothing=smoothing,
        keep_last=keep_last,
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
    return fit


def record_configs(monkeypatch):
    """List that receives the ``TrainingConfig`` of every later ``ODIM.fit``."""
    import pyod_odim.training as training

    seen = []
    real = training.train_ensemble

    def recording(X, arch, config, *args, **kwargs):
        seen.append(config)
        return real(X, arch, config, *args, **kwargs)

    monkeypatch.setattr(training, "train_ensemble", recording)
    return seen
