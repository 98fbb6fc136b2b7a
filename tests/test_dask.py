"""Scoring on Dask: a 2-worker LocalCluster gives the in-process scores.

Skipped without the ``dask`` extra. The cluster (2 worker processes, one
thread each, loopback only, no dashboard) is started once for the module
and closed by it.
"""

import copy
import logging
import pickle
import warnings

import numpy as np
import pytest
from numpy.testing import assert_array_equal

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

from pyod_odim import ODIM  # noqa: E402
from pyod_odim.dask import PartitionScorer, fit_on_sample, score  # noqa: E402

FAST = dict(n_estimators=2, n_samples_iwae=8, patience=2, max_updates=60, random_state=0)
N, CAP, CHUNK = 2000, 500, 300


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None, silence_logs=logging.CRITICAL,
    )
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@pytest.fixture(scope="module")
def X(pyod_rows):
    return pyod_rows(N, seed=1)


@pytest.fixture(scope="module")
def clf(X):
    return ODIM(**dict(FAST, max_fit_rows=CAP)).fit(X)


@pytest.fixture(scope="module")
def frame(X):
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    return dd.from_pandas(pd.DataFrame(X, columns=list("abcde")), npartitions=7)


def test_workers_run_this_package(client):
    import pyod_odim

    files = client.run(lambda: __import__("pyod_odim").__file__)
    assert set(files.values()) == {pyod_odim.__file__}


def test_cluster_array_scores_equal_in_process(client, clf, X):
    scores, labels = score(clf, da.from_array(X, chunks=(CHUNK, 5)))
    assert scores.chunks == ((CHUNK,) * 6 + (200,),)
    scores, labels = client.compute([scores, labels], sync=True)
    assert_array_equal(scores, clf.decision_function(X))
    assert_array_equal(labels, clf.predict(X))
    assert labels.dtype == np.int64


def test_cluster_dataframe_scores_equal_in_process(client, clf, X, frame):
    scores, labels = score(clf, frame)
    assert scores.npartitions == frame.npartitions
    scores, labels = client.compute([scores, labels], sync=True)
    assert scores.name == "score" and labels.name == "label"
    assert_array_equal(scores.index, np.arange(N))
    assert_array_equal(scores.to_numpy(), clf.decision_function(X))
    assert_array_equal(labels.to_numpy(), clf.predict(X))


def test_columns_in_several_blocks(client, clf, X):
    scores, _ = score(clf, da.from_array(X, chunks=(CHUNK, 2)))
    assert_array_equal(client.compute(scores, sync=True), clf.decision_function(X))


def _count_loads():
    import pyod_odim.dask as module

    module._loads = 0

    def counting_setstate(self, state):
        module._loads += 1
        self.__dict__.update(state)

    module.PartitionScorer.__setstate__ = counting_setstate


def _loads():
    import pyod_odim.dask as module

    return module._loads


def test_model_reaches_each_worker_once(client, clf, X):
    client.run(_count_loads)
    scores, _ = score(clf, da.from_array(X, chunks=(100, 5)))  # 20 blocks
    client.compute(scores, sync=True)
    loads = client.run(_loads)
    assert all(n <= 1 for n in loads.values()), loads
    assert sum(loads.values()) >= 1


def test_shipped_model_is_small_and_original_untouched(clf, X):
    bigger = ODIM(**FAST).fit(np.tile(X, (5, 1)))
    # No per-row state travels: the sizes do not grow with the training rows,
    # beyond the neighbour stage's reference rows (a subset capped at
    # neighbor_stage.MAX_REFERENCE rows).
    def shipped(m):
        stage = m.scorer_.stage
        return len(pickle.dumps(PartitionScorer(m))) - (0 if stage is None else
                                                        stage.reference_.nbytes)

    sizes = [shipped(m) for m in (clf, bigger)]
    assert max(sizes) < 100_000 and abs(sizes[0] - sizes[1]) < 5_000, sizes
    assert len(pickle.dumps(bigger)) > sizes[1] + 5 * N * 8
    assert clf.decision_scores_.shape == (N,)


def test_model_marked_cuda_scores_on_cpu_workers(client, clf, X):
    # As if fitted on a GPU machine: the workers score on their CPUs.
    gpu_fitted = copy.deepcopy(clf)
    gpu_fitted.set_params(device="cuda")
    gpu_fitted.device_ = "cuda:0"
    scores, _ = score(gpu_fitted, da.from_array(X, chunks=(CHUNK, 5)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = client.compute(scores, sync=True)
    assert_array_equal(result, clf.decision_function(X))


def test_fit_on_sample_equals_capped_fit(client, clf, X, frame):
    for data in (da.from_array(X, chunks=(CHUNK, 5)), frame):
        fitted = fit_on_sample(ODIM(**dict(FAST, max_fit_rows=CAP)), data)
        assert fitted.decision_scores_.shape == (CAP,)
        for key, arrays in clf.scorer_.params.items():
            for a, b in zip(arrays, fitted.scorer_.params[key]):
                assert_array_equal(a, b)
        scores, _ = score(fitted, data)
        scores = np.asarray(client.compute(scores, sync=True))
        assert_array_equal(scores, clf.decision_scores_)


def test_fit_on_sample_larger_cap_uses_every_row(client, X):
    plain = ODIM(**FAST).fit(X)
    fitted = fit_on_sample(ODIM(**dict(FAST, max_fit_rows=10 * N)), da.from_array(X, chunks=CHUNK))
    assert_array_equal(fitted.decision_scores_, plain.decision_scores_)


def test_unknown_chunk_sizes(client, clf, X):
    dX = da.from_array(X, chunks=(CHUNK, 5))
    kept = dX[dX[:, 0] > -1e9]  # every row, lengths unknown until computed
    assert np.isnan(kept.shape[0])
    scores, _ = score(clf, kept)
    assert_array_equal(client.compute(scores, sync=True), clf.decision_function(X))
    fitted = fit_on_sample(ODIM(**dict(FAST, max_fit_rows=CAP)), kept)
    assert_array_equal(fitted.scorer_.params["enc_w"][0], clf.scorer_.params["enc_w"][0])


def test_empty_partitions(client, clf, X, frame):
    subset = frame[frame["a"] > np.quantile(X[:, 0], 0.9)]  # most partitions empty or small
    scores, _ = score(clf, subset)
    scores = client.compute(scores, sync=True)
    assert_array_equal(scores.to_numpy(), clf.decision_function(X[X[:, 0] > np.quantile(X[:, 0], 0.9)]))


# ---------------------------------------------------------------- bad input
def test_nan_in_a_partition_named_when_computed(client, clf, X):
    bad = X.copy()
    bad[1234, 2] = np.nan
    scores, _ = score(clf, da.from_array(bad, chunks=(CHUNK, 5)))  # lazy: no error yet
    with pytest.raises(ValueError, match=r"X partition 4 \(rows 1200:1500\) contains NaN "
                                         r"values \(first at row 34\)"):
        client.compute(scores, sync=True)


def test_wrong_column_count_named_when_computed(client, clf, X, frame):
    scores, labels = score(clf, da.from_array(X[:, :4], chunks=(CHUNK, 4)))
    with pytest.raises(ValueError, match=r"X partition \d+ \(rows \d+:\d+\) has 4 features, "
                                         "but the model was fitted with 5"):
        client.compute(labels, sync=True)
    scores, _ = score(clf, frame[["a", "b", "c"]])
    with pytest.raises(ValueError, match=r"X partition \d has 3 features"):
        client.compute(scores, sync=True)


def test_non_numeric_column_named_when_computed(client, clf, X, frame):
    text = frame.assign(c=frame["c"].astype(str) + "x")
    scores, _ = score(clf, text)
    with pytest.raises(TypeError, match=r"X partition \d must be numeric; non-numeric "
                                        r"column\(s\): 'c'"):
        client.compute(scores, sync=True)
    strings = da.from_array(X.astype(str), chunks=(CHUNK, 5))
    with pytest.raises(TypeError, match=r"X partition \d+ \(rows \d+:\d+\) must be numeric"):
        client.compute(score(clf, strings)[0], sync=True)


def test_bad_collections_and_estimators(clf, X):
    with pytest.raises(TypeError, match="dask array or a dask DataFrame"):
        score(clf, X)
    with pytest.raises(ValueError, match="2-D"):
        score(clf, da.from_array(X[:, 0]))
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        score(ODIM(), da.from_array(X))
    with pytest.raises(ValueError, match="max_fit_rows"):
        fit_on_sample(ODIM(**FAST), da.from_array(X))
    with pytest.raises(TypeError, match="dask array or a dask DataFrame"):
        fit_on_sample(ODIM(**dict(FAST, max_fit_rows=10)), X)


def test_fit_on_sample_names_a_bad_partition(X):
    bad = X.copy()
    bad[:, 3] = np.nan  # every row: the sample cannot miss it
    with pytest.raises(ValueError, match=r"X partition \d \(rows \d+:\d+\) contains NaN"):
        fit_on_sample(ODIM(**dict(FAST, max_fit_rows=CAP)), da.from_array(bad, chunks=(CHUNK, 5)))
