"""scipy.sparse input: the same scores as the dense copy, made dense a chunk at a time."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from pyod_odim import ODIM, cli, load
from pyod_odim.sparse import check_sparse, count_at_minimum
from pyod_odim.scaling import fenced_bounds
from pyod_odim.training_rows import SparseTrainingRows

# Tiny fits: a few members and updates are enough to compare two inputs.
FAST = dict(n_estimators=2, n_samples_iwae=8, max_updates=40, min_updates=0, patience=2,
            check_every=5, random_state=0, n_jobs=1)


def _sparse(n=160, d=24, density=0.15, seed=0, dtype=np.float64, shift=False):
    """A random sparse matrix; ``shift`` gives some features negative values."""
    X = sp.random(n, d, density=density, format="csr", dtype=np.float64, random_state=seed)
    if shift:
        X.data -= 0.4  # stored values below the implicit zeros: a nonzero minimum
    return X.astype(dtype)


def _same_fit(X, **params):
    """Fit on sparse ``X`` and on its dense copy; assert identical outputs."""
    sparse = ODIM(**dict(FAST, **params)).fit(X)
    dense = ODIM(**dict(FAST, **params)).fit(X.toarray())
    np.testing.assert_array_equal(sparse.decision_scores_, dense.decision_scores_)
    np.testing.assert_array_equal(sparse.decision_function(X[:40]),
                                  dense.decision_function(X[:40].toarray()))
    np.testing.assert_array_equal(sparse.feature_contributions(X[:10]),
                                  dense.feature_contributions(X[:10].toarray()))
    return sparse, dense


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sparse_equals_dense(fmt, dtype):
    X = _sparse(dtype=dtype, shift=dtype == np.float64).asformat(fmt)
    sparse, dense = _same_fit(X)
    np.testing.assert_array_equal(sparse.predict(X), dense.predict(X.toarray()))
    np.testing.assert_array_equal(sparse.predict_proba(X), dense.predict_proba(X.toarray()))
    np.testing.assert_array_equal(sparse.scorer_.scaling.data_min_,
                                  dense.scorer_.scaling.data_min_)


def test_wide_sparse_picks_the_rectified_decoder_as_dense_does():
    # Above 256 features, mostly zeros: the floor rule, counted without densifying.
    X = _sparse(n=90, d=300, density=0.05, dtype=np.float32)
    assert count_at_minimum(X) == np.count_nonzero(X.toarray() == X.toarray().min(axis=0))
    sparse, _ = _same_fit(X, n_estimators=1, max_updates=20)
    assert sparse.likelihood_ == "rectified"


def test_fenced_bounds_match_the_dense_copy():
    X = _sparse(n=300, shift=True)
    X.data[5] = 1e9  # a detached extreme value
    for got, want in zip(fenced_bounds(X), fenced_bounds(X.toarray())):
        np.testing.assert_array_equal(got, want)


def test_detached_extreme_value_trains_and_scores_as_dense():
    X = _sparse()
    X.data[7] = 1e12
    _same_fit(X)


@pytest.mark.parametrize("params", [dict(max_fit_rows=100), dict(engine="eager"),
                                    dict(combination="standardized"), dict(selection_size=50)])
def test_sparse_options_equal_dense(params):
    _same_fit(_sparse(), **params)


def test_semi_supervised_sparse_fit_runs_and_matches_dense():
    X = _sparse()
    y = np.zeros(X.shape[0], dtype=int)
    y[:6] = 1
    params = dict(FAST, use_labels=True)
    sparse = ODIM(**params).fit(X, y)
    dense = ODIM(**params).fit(X.toarray(), y)
    np.testing.assert_allclose(sparse.decision_scores_, dense.decision_scores_, rtol=0,
                               atol=1e-12)
    assert sparse.label_neighbors_ is not None


def test_tiny_working_memory_gives_the_same_scores(monkeypatch):
    X = _sparse(n=200)
    wide = ODIM(**FAST).fit(X)
    densified = []
    real = SparseTrainingRows._dense

    def recording(self, rows, clamp):
        out = real(self, rows, clamp)
        if isinstance(rows, slice):  # the checks' and the final pass's chunks
            densified.append(out.shape[0])
        return out

    monkeypatch.setattr(SparseTrainingRows, "_dense", recording)
    tiny = ODIM(**dict(FAST, working_memory=0.001)).fit(X)
    np.testing.assert_array_equal(tiny.decision_scores_, wide.decision_scores_)
    np.testing.assert_array_equal(tiny.decision_function(X), wide.decision_function(X))
    # The checks and the final pass densified a chunk at a time, never every row.
    assert densified and max(densified) < X.shape[0]


def test_model_fitted_on_sparse_saves_and_loads(tmp_path):
    X = _sparse()
    clf = ODIM(**FAST).fit(X)
    clf.save(tmp_path / "model.odim")
    loaded = load(tmp_path / "model.odim")
    np.testing.assert_array_equal(loaded.decision_function(X), clf.decision_function(X))
    assert isinstance(loaded.scorer_.scaling.data_min_, np.ndarray)


def test_integer_sparse_is_converted():
    X = sp.random(80, 10, density=0.3, format="csr", random_state=0)
    X.data = np.ceil(X.data * 5)
    counts = X.astype(np.int64)
    checked = check_sparse(counts)
    assert checked.dtype == np.float64
    np.testing.assert_array_equal(checked.toarray(), counts.toarray())


@pytest.mark.parametrize("bad, error, match", [
    (lambda X: X.astype(np.complex128), TypeError, "complex"),
    (lambda X: _with_value(X, np.nan), ValueError, "NaN values \\(first at row"),
    (lambda X: _with_value(X, np.inf), ValueError, "infinite values"),
    (lambda X: X.tocoo(), TypeError, "COO format; pass CSR or CSC"),
    (lambda X: X.tolil(), TypeError, "LIL format"),
    (lambda X: X[:0], ValueError, "0 sample"),
    (lambda X: sp.csr_matrix((5, 0)), ValueError, "0 features"),
])
def test_bad_sparse_input_is_named(bad, error, match):
    with pytest.raises(error, match=match):
        ODIM(**FAST).fit(bad(_sparse(n=40)))


def _with_value(X, value):
    X = X.copy()
    X.data[3] = value
    return X


def test_wrong_number_of_features_when_scoring():
    clf = ODIM(**FAST).fit(_sparse())
    with pytest.raises(ValueError, match="has 30 features, but the model was fitted with 24"):
        clf.decision_function(_sparse(d=30))
    with pytest.raises(ValueError, match="NaN"):
        clf.feature_contributions(_with_value(_sparse(), np.nan))


def test_malformed_index_arrays_are_refused():
    X = _sparse(n=40)
    X.indices[0] = 999  # beyond the last column
    with pytest.raises(ValueError, match="malformed sparse matrix"):
        ODIM(**FAST).fit(X)


# ------------------------------------------------------------------ the CLI
CLI_FAST = ["--n-estimators", "2", "--n-samples-iwae", "8", "--patience", "2",
            "--check-every", "5", "--threads", "1"]


def test_cli_scores_a_sparse_npz_as_its_dense_copy(tmp_path, capsys):
    X = _sparse(n=120)
    sp.save_npz(tmp_path / "sparse.npz", X)
    np.savez(tmp_path / "dense.npz", X=X.toarray())
    for name in ("sparse", "dense"):
        assert cli.main(["score", str(tmp_path / f"{name}.npz"), "-o",
                         str(tmp_path / f"{name}.csv"), "--explain", "2", *CLI_FAST]) == 0
    capsys.readouterr()
    assert (tmp_path / "sparse.csv").read_text() == (tmp_path / "dense.csv").read_text()


@pytest.mark.parametrize("edit, match", [
    (dict(format=np.array(b"coo")), "'COO' format; save it as CSR"),
    (dict(format=np.array(b"random")), "'RANDOM' format"),
    (dict(shape=np.array([120, 1 << 40])), "too large"),
    (dict(indices=np.array([5.0])), "'indices' is not a 1-D integer array"),
    (dict(indptr=np.arange(3)), "do not match the shape"),
    (dict(data=np.array(["a"] * 10)), "'data' is not a 1-D numeric array"),
])
def test_cli_refuses_bad_sparse_npz(tmp_path, capsys, edit, match):
    X = _sparse(n=120, density=0.01)
    arrays = dict(format=np.array(b"csr"), shape=np.array(X.shape), data=X.data,
                  indices=X.indices, indptr=X.indptr)
    arrays.update(edit)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    assert cli.main(["score", str(path), *CLI_FAST]) == 1
    assert match in capsys.readouterr().err


def test_cli_npz_with_a_pickled_object_is_refused_without_running_it(tmp_path, capsys):
    path = tmp_path / "pickled.npz"
    np.savez(path, format=np.array(b"csr"), shape=np.array([2, 2]),
             data=np.array([object()], dtype=object), indices=np.array([0]),
             indptr=np.array([0, 1, 1]))
    assert cli.main(["score", str(path), *CLI_FAST]) == 1
    assert "error" in capsys.readouterr().err


def test_dense_tensor_still_trains_directly():
    # EnsembleFit keeps accepting a plain tensor of rows (tests and studies use it).
    from pyod_odim.training_rows import DenseTrainingRows

    rows = DenseTrainingRows(torch.rand(10, 3))
    assert not rows.detached and rows.take(torch.tensor([[1, 2]])).shape == (1, 2, 3)
