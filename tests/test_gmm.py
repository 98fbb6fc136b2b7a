"""Tests of pyod_odim.gmm: the batched GMM-2 + Wasserstein selector."""

import importlib
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.mixture import GaussianMixture

from pyod_odim import gmm

needs_cpp = pytest.mark.skipif(gmm.BACKEND != "cpp", reason="compiled kernel not built")

FIELDS = ("weights", "means", "variances", "log_likelihood", "n_iter", "converged", "distance")


def normalized(x):
    return (x - x.min()) / (x.max() - x.min())


def sklearn_fit(x, seed=0):
    """sklearn's GMM on the min-max normalized row x, components by mean."""
    xn = normalized(x)[:, None]
    g = GaussianMixture(n_components=2, random_state=seed).fit(xn)
    order = np.argsort(g.means_.ravel())
    return g.weights_[order], g.means_.ravel()[order], g.covariances_.ravel()[order], g.score(xn)


def two_normals(seed, n=3000):
    rng = np.random.default_rng(seed)
    n_low = int(n * rng.uniform(0.2, 0.8))
    low = rng.normal(0.0, rng.uniform(0.5, 2.0), n_low)
    high = rng.normal(rng.uniform(8.0, 15.0), rng.uniform(0.5, 2.0), n - n_low)
    return np.concatenate([low, high])


def loss_like(seed, n=5000, tail=0.03):
    """A skewed bulk (gamma) plus a small, far tail, like per-sample losses."""
    rng = np.random.default_rng(seed)
    n_tail = int(n * tail)
    return np.concatenate([rng.gamma(2.0, 1.0, n - n_tail), rng.uniform(15.0, 30.0, n_tail)])


def assert_close(a, b, rtol=1e-9, atol=1e-12):
    for field in FIELDS:
        np.testing.assert_allclose(
            np.asarray(getattr(a, field), dtype=float),
            np.asarray(getattr(b, field), dtype=float),
            rtol=rtol,
            atol=atol,
            err_msg=field,
        )


# ----------------------------------------------------------------- result


def test_result_fields_shapes_and_dtypes():
    x = np.random.default_rng(0).lognormal(size=(4, 50))
    res = gmm.fit_gmm2(x)
    assert isinstance(res, gmm.GMM2Result)
    assert res._fields == FIELDS
    for field in ("weights", "means", "variances"):
        assert getattr(res, field).shape == (4, 2)
    for field in ("log_likelihood", "n_iter", "converged", "distance"):
        assert getattr(res, field).shape == (4,)
    assert res.converged.dtype == bool
    assert np.issubdtype(res.n_iter.dtype, np.integer)
    np.testing.assert_allclose(res.weights.sum(axis=1), 1.0)
    assert np.all(res.means[:, 0] <= res.means[:, 1])


def test_one_dimensional_input_is_one_row():
    x = np.random.default_rng(1).normal(size=200)
    one = gmm.fit_gmm2(x)
    two = gmm.fit_gmm2(x[None, :])
    assert one.weights.shape == (1, 2)
    assert_close(one, two, rtol=0, atol=0)


def test_distance_kinds_and_shortcut():
    x = two_normals(3)[None, :]
    res = gmm.fit_gmm2(x)
    (m0, m1), (v0, v1) = res.means[0], res.variances[0]
    assert res.distance[0] == pytest.approx((m0 - m1) ** 2 + (np.sqrt(v0) - np.sqrt(v1)) ** 2)
    var = gmm.fit_gmm2(x, distance="variance")
    assert var.distance[0] == pytest.approx((m0 - m1) ** 2 + (v0 - v1) ** 2)
    np.testing.assert_array_equal(gmm.gmm2_distance(x), res.distance)
    np.testing.assert_array_equal(gmm.gmm2_distance(x, "variance"), var.distance)


@pytest.mark.parametrize("backend", ["numpy", pytest.param("cpp", marks=needs_cpp)])
def test_constant_rows_are_a_defined_case(backend):
    x = np.vstack([np.full(10, 3.5), np.arange(10.0)])
    res = gmm.fit_gmm2(x, backend=backend)
    np.testing.assert_array_equal(res.weights[0], [0.5, 0.5])
    np.testing.assert_array_equal(res.means[0], [0.0, 0.0])
    np.testing.assert_array_equal(res.variances[0], [1e-6, 1e-6])
    assert res.distance[0] == 0.0 and res.n_iter[0] == 0 and res.converged[0]
    assert np.isfinite(res.log_likelihood).all()
    assert res.distance[1] > 0


@pytest.mark.parametrize("backend", ["numpy", pytest.param("cpp", marks=needs_cpp)])
def test_tiny_rows(backend):
    res = gmm.fit_gmm2(np.array([[7.0], [7.0]]), backend=backend)  # n == 1
    assert np.all(res.distance == 0) and res.converged.all()
    res = gmm.fit_gmm2(np.array([[1.0, 2.0]]), backend=backend)
    np.testing.assert_allclose(res.means[0], [0.0, 1.0], atol=1e-12)
    assert res.distance[0] == pytest.approx(1.0)
    res = gmm.fit_gmm2(np.array([[1.0, 2.0, 5.0]]), backend=backend)
    assert all(np.isfinite(getattr(res, f)).all() for f in FIELDS)


def test_max_iter_one_never_converges():
    res = gmm.fit_gmm2(two_normals(0)[None, :], max_iter=1)
    assert res.n_iter[0] == 1 and not res.converged[0]


def test_mirrored_losses_give_the_same_distance():
    for seed in range(3):
        x = loss_like(seed, n=2000)
        a, b = gmm.fit_gmm2(x), gmm.fit_gmm2(-x)
        assert a.distance[0] == pytest.approx(b.distance[0], rel=1e-6)
        np.testing.assert_allclose(a.weights[0], b.weights[0][::-1], atol=1e-6)


# ----------------------------------------------------------------- sklearn


@pytest.mark.parametrize("seed", range(5))
def test_matches_sklearn_on_separated_mixtures(seed):
    x = two_normals(seed)
    weights, means, variances, _ = sklearn_fit(x)
    res = gmm.fit_gmm2(x)
    np.testing.assert_allclose(res.weights[0], weights, atol=1e-3)
    np.testing.assert_allclose(res.means[0], means, atol=1e-3)
    np.testing.assert_allclose(res.variances[0], variances, atol=1e-3)


@pytest.mark.parametrize("seed", range(5))
def test_likelihood_not_worse_than_sklearn_on_loss_like_rows(seed):
    x = loss_like(seed)
    _, _, _, sk_ll = sklearn_fit(x, seed)
    res = gmm.fit_gmm2(x)
    assert res.log_likelihood[0] >= sk_ll - 1e-4


def test_log_likelihood_is_the_score_of_the_returned_fit():
    x = loss_like(7)
    res = gmm.fit_gmm2(x)
    g = GaussianMixture(n_components=2, covariance_type="full")
    g.weights_ = res.weights[0]
    g.means_ = res.means[0][:, None]
    g.covariances_ = res.variances[0][:, None, None]
    g.precisions_cholesky_ = 1.0 / np.sqrt(g.covariances_)
    assert res.log_likelihood[0] == pytest.approx(g.score(normalized(x)[:, None]), abs=1e-12)


# ----------------------------------------------------------------- backends


def random_rows(shape, seed):
    rng = np.random.default_rng(seed)
    return rng.lognormal(0.0, 1.0, size=shape)


def special_rows():
    rng = np.random.default_rng(11)
    yield np.array([[4.0]])
    yield np.array([[1.0, 2.0]])
    yield np.array([[3.0, 1.0, 2.0]])
    yield np.full((2, 30), -1.25)
    yield np.concatenate([rng.random(200), [1e6]])[None, :]  # one extreme value
    yield rng.random((3, 500)) * 1e6 + 1e6
    yield np.array([[-1.5e308, 0.0, 1.5e308, 2.0]])  # max - min overflows
    yield np.vstack([np.full(40, 2.0), rng.random(40), np.r_[np.zeros(39), 1.0]])


@needs_cpp
@pytest.mark.parametrize(
    "shape", [(1, 1), (1, 2), (1, 3), (5, 1), (3, 2), (4, 3), (1, 500), (7, 64), (2, 9001), (1, 10000)]
)
@pytest.mark.parametrize("distance", gmm.DISTANCES)
def test_cpp_and_numpy_agree_on_random_rows(shape, distance):
    x = random_rows(shape, seed=sum(shape))
    cpp = gmm.fit_gmm2(x, distance=distance, backend="cpp")
    ref = gmm.fit_gmm2(x, distance=distance, backend="numpy")
    assert_close(cpp, ref)


@needs_cpp
@pytest.mark.parametrize("reg_covar", [1e-6, 0.0])
def test_cpp_and_numpy_agree_on_special_rows(reg_covar):
    for x in special_rows():
        assert_close(
            gmm.fit_gmm2(x, reg_covar=reg_covar, backend="cpp"),
            gmm.fit_gmm2(x, reg_covar=reg_covar, backend="numpy"),
        )


@pytest.mark.parametrize("backend", ["numpy", pytest.param("cpp", marks=needs_cpp)])
def test_float32_matches_float64_cast(backend):
    x = random_rows((3, 777), seed=5).astype(np.float32)
    a = gmm.fit_gmm2(x, backend=backend)
    b = gmm.fit_gmm2(x.astype(np.float64), backend=backend)
    assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("backend", ["numpy", pytest.param("cpp", marks=needs_cpp)])
def test_other_layouts_and_dtypes(backend):
    x = random_rows((6, 300), seed=9)
    ref = gmm.fit_gmm2(x, backend=backend)
    assert_close(gmm.fit_gmm2(np.asfortranarray(x), backend=backend), ref, rtol=0, atol=0)
    assert_close(gmm.fit_gmm2(x.astype(">f8"), backend=backend), ref, rtol=0, atol=0)
    strided = np.repeat(x, 2, axis=1)[:, ::2]
    assert_close(gmm.fit_gmm2(strided, backend=backend), ref, rtol=0, atol=0)
    ints = gmm.fit_gmm2(np.arange(40).reshape(2, 20) % 7, backend=backend)
    assert np.isfinite(ints.distance).all()


@needs_cpp
@pytest.mark.parametrize("shape", [(6, 8000), (3, 20000), (17, 2500)])
def test_cpp_is_bitwise_independent_of_thread_count(shape):
    from pyod_odim import _gmm

    x = random_rows(shape, seed=3)
    runs = [_gmm.fit(x, 1e-3, 100, 1e-6, "sigma", n_threads=k) for k in (1, 2, 3, 8)]
    for run in runs[1:]:
        for key, value in runs[0].items():
            np.testing.assert_array_equal(run[key], value, err_msg=key)


@needs_cpp
def test_cpp_kernel_rejects_what_it_cannot_take():
    from pyod_odim import _gmm

    with pytest.raises(TypeError):  # no silent copy of a non-contiguous array
        _gmm.fit(np.ones((3, 4))[:, ::2], 1e-3, 100, 1e-6, "sigma")
    with pytest.raises(ValueError, match="2-D"):
        _gmm.fit(np.ones(4), 1e-3, 100, 1e-6, "sigma")
    with pytest.raises(ValueError, match="empty"):
        _gmm.fit(np.ones((0, 4)), 1e-3, 100, 1e-6, "sigma")
    with pytest.raises(ValueError, match="distance"):
        _gmm.fit(np.ones((1, 4)), 1e-3, 100, 1e-6, "l2")


def test_explicit_cpp_backend_without_extension(monkeypatch):
    monkeypatch.setattr(gmm, "_ext", None)
    with pytest.raises(ValueError, match="not built"):
        gmm.fit_gmm2(np.arange(5.0), backend="cpp")
    with pytest.raises(ValueError, match="backend"):
        gmm.fit_gmm2(np.arange(5.0), backend="cuda")


def test_missing_extension_warns_once_and_falls_back(monkeypatch):
    import pyod_odim

    saved = dict(vars(gmm))  # restored whole, so other tests see the same objects
    monkeypatch.setitem(sys.modules, "pyod_odim._gmm", None)  # import fails
    monkeypatch.delattr(pyod_odim, "_gmm", raising=False)
    try:
        with pytest.warns(RuntimeWarning, match="NumPy fallback") as record:
            importlib.reload(gmm)
        assert len([w for w in record if issubclass(w.category, RuntimeWarning)]) == 1
        assert gmm.BACKEND == "numpy"
        assert np.isfinite(gmm.gmm2_distance(np.arange(6.0))).all()
    finally:
        monkeypatch.undo()
        vars(gmm).clear()
        vars(gmm).update(saved)


# ----------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "bad, kind, row",
    [
        (np.array([[1.0, 2.0], [np.nan, 1.0]]), "NaN", 1),
        (np.array([1.0, np.inf, 2.0]), "inf", 0),
        (np.array([[1.0, 2.0], [3.0, 4.0], [1.0, -np.inf]]), "inf", 2),
    ],
)
def test_non_finite_values_are_rejected(bad, kind, row):
    with pytest.raises(ValueError, match=rf"{kind} .*first in row {row}"):
        gmm.fit_gmm2(bad)


@pytest.mark.parametrize("bad", [np.float64(1.0), np.ones((2, 2, 2))])
def test_wrong_ndim_is_rejected(bad):
    with pytest.raises(ValueError, match="1-D .* or 2-D"):
        gmm.fit_gmm2(bad)


@pytest.mark.parametrize("bad", [np.array([]), np.ones((0, 5)), np.ones((3, 0))])
def test_empty_input_is_rejected(bad):
    with pytest.raises(ValueError, match="empty"):
        gmm.fit_gmm2(bad)


@pytest.mark.parametrize(
    "bad, dtype",
    [
        (np.array(["a", "b"]), "<U1"),
        (np.array([1.0, "x"], dtype=object), "object"),
        (np.array([1 + 2j, 3j]), "complex128"),
        (np.array([True, False]), "bool"),
    ],
)
def test_non_numeric_dtypes_are_rejected(bad, dtype):
    with pytest.raises(TypeError, match=f"dtype {dtype}"):
        gmm.fit_gmm2(bad)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"distance": "l2"}, "distance"),
        ({"tol": 0.0}, "tol"),
        ({"tol": float("nan")}, "tol"),
        ({"max_iter": 0}, "max_iter"),
        ({"max_iter": 2.5}, "max_iter"),
        ({"reg_covar": -1e-9}, "reg_covar"),
        ({"reg_covar": float("inf")}, "reg_covar"),
    ],
)
def test_bad_options_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gmm.fit_gmm2(np.arange(10.0), **kwargs)


# ----------------------------------------------------------------- properties

finite = st.floats(-1e6, 1e6, allow_nan=False)
variances = st.floats(0.0, 1e6, allow_nan=False)
distances = st.sampled_from(gmm.DISTANCES)


@given(finite, variances, finite, variances, distances)
def test_pair_distance_is_symmetric_and_non_negative(mu1, var1, mu2, var2, distance):
    d = gmm.normal_pair_distance(mu1, var1, mu2, var2, distance)
    assert d >= 0
    assert d == gmm.normal_pair_distance(mu2, var2, mu1, var1, distance)


@given(finite, variances, distances)
def test_pair_distance_is_zero_for_identical_normals(mu, var, distance):
    assert gmm.normal_pair_distance(mu, var, mu, var, distance) == 0.0


def test_pair_distance_values_and_checks():
    assert gmm.normal_pair_distance(0.0, 4.0, 3.0, 1.0) == pytest.approx(9.0 + 1.0)
    assert gmm.normal_pair_distance(0.0, 4.0, 3.0, 1.0, "variance") == pytest.approx(9.0 + 9.0)
    np.testing.assert_allclose(gmm.normal_pair_distance([0.0, 1.0], 1.0, 0.0, 1.0), [0.0, 1.0])
    with pytest.raises(ValueError, match="variances"):
        gmm.normal_pair_distance(0.0, -1.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="distance"):
        gmm.normal_pair_distance(0.0, 1.0, 0.0, 1.0, "l1")


any_finite = st.floats(allow_nan=False, allow_infinity=False)
loss_arrays = hnp.arrays(
    dtype=st.sampled_from([np.float64, np.float32]),
    shape=hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=12),
    elements=st.floats(allow_nan=False, allow_infinity=False, width=32),
)


@settings(max_examples=60, deadline=None)
@given(loss_arrays, st.sampled_from([1e-6, 0.0]), distances)
def test_fit_never_returns_nan(x, reg_covar, distance):
    for backend in ("numpy", gmm.BACKEND):
        res = gmm.fit_gmm2(x, reg_covar=reg_covar, distance=distance, backend=backend)
        for field in FIELDS:
            assert np.isfinite(np.asarray(getattr(res, field), dtype=float)).all(), field
        assert np.all(res.distance >= 0)
        assert np.all(res.means[:, 0] <= res.means[:, 1])
        expected = gmm.normal_pair_distance(
            res.means[:, 0], res.variances[:, 0], res.means[:, 1], res.variances[:, 1], distance
        )
        np.testing.assert_array_equal(res.distance, expected)


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, max_side=8), elements=any_finite))
def test_fit_handles_the_whole_float64_range(x):
    res = gmm.fit_gmm2(x)
    assert np.isfinite(res.distance).all() and np.isfinite(res.log_likelihood).all()
