"""The engines (C++ kernels, eager and compiled PyTorch) give the same fits."""

import pickle

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from pyod.utils.data import generate_data

from pyod_odim import ODIM, kernels
from pyod_odim import training as training_module

needs_kernels = pytest.mark.skipif(not kernels.AVAILABLE, reason="C++ kernels not built")

# One check after a fixed number of updates: no early-stopping decision can
# flip on rounding, so the paths must agree to rounding.
FIXED = dict(n_estimators=2, n_samples_iwae=8, n_samples_train=4, patience=3,
             max_updates=40, check_every=20, min_updates=0, random_state=0)


@pytest.fixture(scope="module")
def X():
    return generate_data(n_train=300, n_features=5, train_only=True, random_state=0)[0]


@pytest.fixture(scope="module")
def X_sparse():
    """Non-negative rows, about 60 % exact zeros, for the rectified decoder."""
    rng = np.random.default_rng(0)
    return np.maximum(rng.normal(-0.3, 1.0, size=(300, 12)), 0.0)


@needs_kernels
@pytest.mark.parametrize("batch_norm", [True, False])
@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli", "rectified"])
def test_kernel_and_eager_fits_agree(X, X_sparse, batch_norm, likelihood):
    params = dict(FIXED, batch_norm=batch_norm, likelihood=likelihood)
    if likelihood == "rectified":
        X = X_sparse
    eager = ODIM(engine="eager", **params).fit(X)
    kernel = ODIM(engine="kernel", **params).fit(X)
    assert (eager.engine_, kernel.engine_) == ("eager", "kernel")
    assert_allclose(kernel.decision_scores_, eager.decision_scores_, rtol=1e-4)
    assert_array_equal(kernel.best_update_, eager.best_update_)


@needs_kernels
def test_engines_score_a_fitted_model_alike(X):
    clf = ODIM(engine="kernel", **dict(FIXED, max_updates=200, patience=2)).fit(X)
    kernel_scores = clf.decision_function(X)
    eager = pickle.loads(pickle.dumps(clf))
    eager.set_params(engine="eager")
    assert_allclose(eager.decision_function(X), kernel_scores, rtol=1e-5)


@pytest.mark.parametrize("likelihood", ["gaussian", "rectified"])
def test_compiled_and_eager_fits_agree(X, X_sparse, likelihood):
    # torch.compile's first call compiles for tens of seconds; one small fit.
    params = dict(FIXED, likelihood=likelihood)
    if likelihood == "rectified":
        X = X_sparse
    eager = ODIM(engine="eager", **params).fit(X)
    compiled = ODIM(engine="inductor", **params).fit(X)
    assert compiled.engine_ == "inductor"
    assert_allclose(compiled.decision_scores_, eager.decision_scores_, rtol=1e-4)
    assert_allclose(compiled.decision_function(X), compiled.decision_scores_, rtol=1e-6)


@pytest.mark.parametrize("mode", ["auto", "eager"])
def test_every_auto_choice_is_deterministic(X, mode):
    # "auto" runs the kernels where they are built, eager PyTorch elsewhere.
    first = ODIM(engine=mode, **dict(FIXED, max_updates=120, patience=2)).fit(X)
    second = ODIM(engine=mode, **dict(FIXED, max_updates=120, patience=2)).fit(X)
    assert_array_equal(first.decision_scores_, second.decision_scores_)
    assert_array_equal(first.decision_function(X[:7]), first.decision_function(X[:7]))


def test_auto_picks_the_kernels_on_the_cpu(X):
    clf = ODIM(**FIXED).fit(X)
    assert clf.engine_ == ("kernel" if kernels.AVAILABLE else "eager")


def test_kernel_request_without_kernels_warns(X, monkeypatch):
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    with pytest.warns(RuntimeWarning, match="C\\+\\+ kernel cannot be used"):
        clf = ODIM(engine="kernel", **FIXED).fit(X)
    assert clf.engine_ == "eager"


def test_n_jobs_bounds_torch_threads_and_restores_them(X, monkeypatch):
    before = torch.get_num_threads()
    seen = []
    real = training_module.train_ensemble

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(training_module, "train_ensemble", spy)
    target = 3 if before != 3 else 2
    ODIM(n_jobs=target, **FIXED).fit(X)
    assert seen == [target]
    assert torch.get_num_threads() == before


def test_n_jobs_restores_threads_when_fit_raises(X, monkeypatch):
    before = torch.get_num_threads()

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(training_module, "train_ensemble", broken)
    with pytest.raises(RuntimeError, match="boom"):
        ODIM(n_jobs=before + 1, **FIXED).fit(X)
    assert torch.get_num_threads() == before


def test_scores_do_not_depend_on_n_jobs(X):
    one = ODIM(n_jobs=1, **FIXED).fit(X)
    two = ODIM(n_jobs=2, **FIXED).fit(X)
    assert_array_equal(one.decision_scores_, two.decision_scores_)
    two.set_params(n_jobs=-1)
    assert_array_equal(two.decision_function(X), one.decision_function(X))


@pytest.mark.parametrize("n_jobs, error", [(0, ValueError), (1.5, TypeError), ("2", TypeError)])
def test_bad_n_jobs(X, n_jobs, error):
    with pytest.raises(error, match="n_jobs"):
        ODIM(n_jobs=n_jobs, **FIXED).fit(X)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
@pytest.mark.parametrize("mode", ["eager", "inductor"])
def test_cuda_fit_agrees_with_cpu_scoring(X, mode):
    gpu = ODIM(device="cuda", engine=mode, **FIXED).fit(X)
    assert gpu.device_.startswith("cuda")
    cpu = pickle.loads(pickle.dumps(gpu))
    cpu.set_params(device="cpu", engine="auto")
    assert_allclose(cpu.decision_function(X), gpu.decision_scores_, rtol=1e-4)
    assert np.isfinite(gpu.decision_function(X)).all()
