"""Fitting on a sample and scoring in chunks under a memory budget."""

import tracemalloc

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from pyod_odim import ODIM
from pyod_odim._validation import FLOAT_DTYPES, check_samples
from pyod_odim.chunking import MIN_CHUNK_ROWS, MemberMoments
from pyod_odim.scorer import FittedScorer
from pyod_odim.sampling import sample_rows

FAST = dict(n_estimators=2, n_samples_iwae=8, patience=2, max_updates=60, random_state=0)
N = 1200


@pytest.fixture(scope="module")
def X(pyod_rows):
    return pyod_rows(N, seed=7)


@pytest.fixture(scope="module")
def capped(X):
    return ODIM(**dict(FAST, max_fit_rows=300)).fit(X)


# ---------------------------------------------------------------- sampling
def test_sample_rows_is_a_sorted_uniform_draw():
    rows = sample_rows(10_000, 2_500, seed=3)
    assert rows.shape == (2_500,) and rows.dtype == np.int64
    assert (np.diff(rows) > 0).all() and rows[0] >= 0 and rows[-1] < 10_000
    assert_array_equal(rows, sample_rows(10_000, 2_500, seed=3))
    assert not np.array_equal(rows, sample_rows(10_000, 2_500, seed=4))
    # Every tenth of the rows gets about a tenth of the sample.
    counts = np.bincount(rows // 1_000, minlength=10)
    assert counts.min() > 180 and counts.max() < 320


def test_sample_rows_across_blocks():
    # More rows than one block of the two-stage draw.
    rows = sample_rows(3_000_000, 300_000, seed=0)
    assert rows.size == 300_000 and np.unique(rows).size == 300_000
    counts = np.bincount(rows // 1_000_000)
    assert counts.min() > 95_000 and counts.max() < 105_000


@pytest.mark.parametrize("cap", [None, 100, 1000])
def test_sample_rows_without_cap(cap):
    assert sample_rows(100, cap, seed=0) is None


# ------------------------------------------------------------ max_fit_rows
def test_capped_fit_scores_every_row(X, capped):
    assert capped.decision_scores_.shape == (N,)
    assert capped.labels_.shape == (N,)
    assert_allclose(capped.decision_function(X), capped.decision_scores_, rtol=1e-6)


def test_capped_fit_is_a_fit_on_the_sample(X, capped):
    rows = sample_rows(N, 300, seed=0)
    on_sample = ODIM(**FAST).fit(X[rows])
    for key, arrays in capped.scorer_.params.items():
        for a, b in zip(arrays, on_sample.scorer_.params[key]):
            assert_array_equal(a, b)
    assert_array_equal(capped.scorer_.scaling.data_min_, X[rows].min(axis=0))
    assert_allclose(capped.decision_scores_, on_sample.decision_function(X), rtol=1e-6)
    # The members' moments are over the fitting rows.
    assert_allclose(capped.scorer_.member_mean, on_sample.scorer_.member_mean, rtol=1e-9)
    assert_allclose(capped.scorer_.member_std, on_sample.scorer_.member_std, rtol=1e-9)


def test_capped_fit_is_deterministic(X, capped):
    again = ODIM(**dict(FAST, max_fit_rows=300)).fit(X)
    assert_array_equal(again.decision_scores_, capped.decision_scores_)
    other = ODIM(**dict(FAST, max_fit_rows=300, random_state=1)).fit(X)
    assert not np.allclose(other.decision_scores_, capped.decision_scores_)


@pytest.mark.parametrize("cap", [N, 10 * N])
def test_cap_of_at_least_n_is_no_cap(X, cap):
    plain = ODIM(**FAST).fit(X)
    big = ODIM(**dict(FAST, max_fit_rows=cap)).fit(X)
    assert_array_equal(big.decision_scores_, plain.decision_scores_)
    assert_array_equal(big.scorer_.member_std, plain.scorer_.member_std)


def test_capped_semi_supervised_fit(X):
    y = np.zeros(N, dtype=int)
    y[:40] = 1
    clf = ODIM(**dict(FAST, max_fit_rows=400, use_labels=True)).fit(X, y)
    assert clf.decision_scores_.shape == (N,)
    assert np.isfinite(clf.decision_scores_).all()


# -------------------------------------------------------- working_memory
def _count_chunks(monkeypatch):
    """Record the rows of every chunk the fitted scorer scores."""
    calls = []
    original = FittedScorer.member_losses

    def counting(self, *args, **kwargs):
        for chunk in original(self, *args, **kwargs):
            calls.append(chunk[0].stop - chunk[0].start)
            yield chunk

    monkeypatch.setattr(FittedScorer, "member_losses", counting)
    return calls


@pytest.mark.parametrize(
    "params",
    [
        dict(),
        dict(combination="standardized"),
        dict(max_fit_rows=300),
        dict(max_fit_rows=300, combination="standardized"),
        dict(engine="eager"),
    ],
    ids=["mean", "standardized", "capped", "capped-standardized", "eager"],
)
def test_chunked_scoring_matches_one_chunk(X, params, monkeypatch):
    # A selection subset smaller than X: the fit ends with a scoring pass.
    params = dict(FAST, selection_size=256, **params)
    one = ODIM(**params).fit(X)
    calls = _count_chunks(monkeypatch)
    # 0.001 MiB is below one row block: every chunk has the minimum rows.
    tiny = ODIM(**dict(params, working_memory=0.001)).fit(X)
    assert len(calls) >= N // MIN_CHUNK_ROWS and max(calls) <= MIN_CHUNK_ROWS
    assert_allclose(tiny.decision_scores_, one.decision_scores_, rtol=1e-6)
    assert_allclose(tiny.scorer_.member_mean, one.scorer_.member_mean, rtol=1e-9)
    assert_allclose(tiny.scorer_.member_std, one.scorer_.member_std, rtol=1e-9)
    del calls[:]
    scores = tiny.decision_function(X)
    assert len(calls) == -(-N // MIN_CHUNK_ROWS)
    assert_allclose(scores, one.decision_function(X), rtol=1e-6)


def test_checks_on_all_rows_keep_their_losses(X, monkeypatch):
    # selection_size >= n: the checks' losses are the training scores.
    calls = _count_chunks(monkeypatch)
    clf = ODIM(**dict(FAST, working_memory=0.001)).fit(X)
    assert calls == []
    assert_allclose(clf.decision_function(X), clf.decision_scores_, rtol=1e-6)


def test_member_moments_merge_chunks():
    losses = np.random.default_rng(0).gamma(2.0, 3.0, size=(3, 1000)) + 50.0
    moments = MemberMoments()
    for start in range(0, 1000, 137):
        moments.add(losses[:, start:start + 137])
    moments.add(losses[:, :0])
    assert moments.count == 1000
    assert_allclose(moments.mean, losses.mean(axis=1), rtol=1e-13)
    assert_allclose(moments.std, losses.std(axis=1), rtol=1e-12)


# ------------------------------------------------------------ float32 input
def test_float32_input_is_not_copied():
    X32 = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    assert check_samples(X32, dtype=FLOAT_DTYPES) is X32
    F = np.asfortranarray(X32)
    assert check_samples(F, dtype=FLOAT_DTYPES) is F
    assert check_samples(X32.astype(int), dtype=FLOAT_DTYPES).dtype == np.float64


def test_float32_scoring_holds_no_float64_copy():
    big = np.random.default_rng(0).normal(size=(40_000, 50)).astype(np.float32)
    clf = ODIM(**dict(FAST, working_memory=1)).fit(big[:500])
    tracemalloc.start()
    try:
        scores = clf.decision_function(big)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert np.isfinite(scores).all()
    # A float64 copy of the input alone would take 2 * big.nbytes; the
    # scores themselves take 320 kB.
    assert peak < big.nbytes // 4, (peak, big.nbytes)


def test_float32_and_float64_inputs_score_alike(X):
    clf = ODIM(**FAST).fit(X)
    assert_allclose(
        clf.decision_function(X.astype(np.float32)), clf.decision_function(X), rtol=1e-4,
        atol=1e-4,  # the neighbour stage's scores are of order 1, some near 0
    )
    fitted32 = ODIM(**FAST).fit(X.astype(np.float32))
    assert fitted32.decision_scores_.dtype == np.float64
    assert np.corrcoef(fitted32.decision_scores_, clf.decision_scores_)[0, 1] > 0.99


def test_training_tensor_filled_in_chunks(X):
    # The fit scales its rows chunk by chunk into one float32 tensor: the
    # same values as scaling them all at once.
    one = ODIM(**FAST).fit(X)
    tiny = ODIM(**dict(FAST, working_memory=0.001)).fit(X)
    assert_array_equal(tiny.scorer_.params["enc_w"][0], one.scorer_.params["enc_w"][0])
    assert_allclose(tiny.decision_scores_, one.decision_scores_, rtol=1e-6)


@pytest.mark.parametrize("score_stage", ["paper", "neighbors"])
def test_fit_holds_no_copy_of_the_input(score_stage):
    big = np.random.default_rng(1).normal(size=(20_000, 50))  # float64, 8 MB
    params = dict(FAST, working_memory=1, selection_size=512, score_stage=score_stage)
    ODIM(**params).fit(big[:300])  # first fit's imports are not the fit's memory
    tracemalloc.start()
    try:
        clf = ODIM(**params).fit(big)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert np.isfinite(clf.decision_scores_).all()
    # NumPy temporaries only (torch's own allocations are not traced): a
    # scaled float64 copy of the input alone would be big.nbytes. The
    # neighbour stage keeps its reference rows (a subset of at most
    # neighbor_stage.MAX_REFERENCE rows): float32, and the search's float64
    # copy with its float64 source while it is built, 20 bytes a value.
    stage = clf.scorer_.stage
    reference_size = 0 if stage is None else stage.reference_.size
    if stage is not None:
        assert stage.reference_.shape[0] <= 0.85 * big.shape[0]
    assert peak < big.nbytes // 4 + 20 * reference_size, (peak, big.nbytes, reference_size)


@pytest.mark.parametrize("layout", ["fortran", "strided"])
def test_memory_layout_does_not_change_scores(X, layout):
    # Float input is used without a contiguous copy: every layout must
    # still give the scores of a C-ordered array.
    if layout == "fortran":
        other = np.asfortranarray(X)
    else:
        other = np.repeat(X, 2, axis=1)[:, ::2]
    assert not other.flags.c_contiguous
    plain = ODIM(**dict(FAST, selection_size=256, working_memory=0.01)).fit(X)
    clf = ODIM(**dict(FAST, selection_size=256, working_memory=0.01)).fit(other)
    assert_array_equal(clf.decision_scores_, plain.decision_scores_)
    assert_array_equal(clf.decision_function(other), plain.decision_function(X))


# ---------------------------------------------------------------- chunk sizes
def test_one_rule_sizes_every_chunk():
    import torch

    from pyod_odim import chunking, network

    assert chunking.rows_within(1000, 30, 5) == 33
    assert chunking.rows_within(10, 30, 5) == 5
    assert chunking.rows_within(10**9, 1, 5, 100) == 100
    assert chunking.rows_per_chunk(1, 1 << 10) == 1 << 10
    params = network.init_parameters(network.Architecture(40, (128, 64), 32), 3,
                                     torch.Generator(), "cpu")
    # The widest layer has 128 outputs (the Gaussian output layer only 80);
    # 3 members, 50 draws per row.
    rows = chunking.activation_chunk_rows(params, 50, "cpu")
    assert rows == chunking.ACTIVATION_ELEMENTS["cpu"] // (3 * 50 * 128)
    assert chunking.activation_chunk_rows(network.as_parameters(params), 50, "cuda") > rows
    assert chunking.activation_chunk_rows(params, 10**6, "cpu") == chunking.MIN_ACTIVATION_ROWS
