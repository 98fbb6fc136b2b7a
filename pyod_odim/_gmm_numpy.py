"""NumPy fallback of the compiled GMM-2 kernel (``csrc/gmm2.cpp``).

Same algorithm, same formulas, same update order and stopping rule as the
C++ kernel, vectorized over rows; only the order of floating-point sums
differs, so float64 results agree to about 1e-12 relative. Inputs are
validated by :mod:`pyod_odim.gmm`; nothing here checks them again.
"""

import numpy as np

# Constants shared with csrc/gmm2.cpp: change them together.
LLOYD_MAX_ITER = 100
COUNT_GUARD = 10.0 * np.finfo(np.float64).eps  # scikit-learn's 10 * eps
MIN_VARIANCE = 1e-30  # keeps 1 / variance finite when reg_covar == 0
LOG_2PI = float(np.log(2.0 * np.pi))

# Rows are fitted in groups of at most this many values, which bounds the
# size of the (rows, n) temporaries of one EM pass.
_GROUP_VALUES = 1 << 20


def pair_distance(mu0, var0, mu1, var1, distance):
    """Distance between N(mu0, var0) and N(mu1, var1), broadcasting.

    ``"sigma"``: (mu0 - mu1)^2 + (sd0 - sd1)^2, the squared 2-Wasserstein
    distance; ``"variance"``: (mu0 - mu1)^2 + (var0 - var1)^2.
    """
    dm = np.subtract(mu0, mu1)
    if distance == "sigma":
        ds = np.sqrt(var0) - np.sqrt(var1)
    else:
        ds = np.subtract(var0, var1)
    return dm * dm + ds * ds


def normalize_rows(losses):
    """Min-max normalize every row to [0, 1] in float64.

    Parameters
    ----------
    losses : ndarray of shape (M, n), float32 or float64
        Finite values.

    Returns
    -------
    x : ndarray of shape (M, n), float64
        ``(v - min) / (max - min)`` per row; 0 for a constant row. Where
        ``max - min`` overflows, values and bounds are halved first (exact).
    varying : ndarray of shape (M,), bool
        False for constant rows.
    """
    raw = losses.astype(np.float64, copy=False)
    lo = raw.min(axis=1)
    hi = raw.max(axis=1)
    varying = hi > lo
    with np.errstate(over="ignore"):
        span = hi - lo
    huge = ~np.isfinite(span)
    scale = np.where(huge, 0.5, 1.0)
    span = np.where(huge, 0.5 * hi - 0.5 * lo, span)
    span = np.where(varying, span, 1.0)
    shift = scale * lo
    x = (scale[:, None] * raw - shift[:, None]) / span[:, None]
    return x, varying


# --------------------------------------------------------------------- 2-means


def _split_at(x, t):
    """Count and sums of the values at or below ``t`` (M,) and above it."""
    low = x <= t[:, None]
    count = low.sum(axis=1)
    sum_low = np.where(low, x, 0.0).sum(axis=1)
    sum_high = np.where(low, 0.0, x).sum(axis=1)
    return count, sum_low, sum_high


def _two_means(x):
    """1-D 2-means (Lloyd) per row, started at the split at the row mean.

    Parameters
    ----------
    x : ndarray of shape (M, n)
        Normalized rows, each with at least two distinct values.

    Returns
    -------
    threshold : ndarray of shape (M,)
        Points ``<= threshold`` form the low cluster.
    centers : ndarray of shape (M, 2)
        Means of the low and high clusters.
    """
    n = x.shape[1]
    t = x.sum(axis=1) / n
    count, s_low, s_high = _split_at(x, t)
    # A normalized row always splits at 0.5; used should rounding put the
    # mean on an edge.
    edge = (count == 0) | (count == n)
    if edge.any():
        t[edge] = 0.5
        count[edge], s_low[edge], s_high[edge] = _split_at(x[edge], t[edge])
    active = np.arange(x.shape[0])
    for _ in range(LLOYD_MAX_ITER):
        if active.size == 0:
            break
        t_new = 0.5 * (s_low[active] / count[active] + s_high[active] / (n - count[active]))
        c, lo_sum, hi_sum = _split_at(x[active], t_new)
        # Nested partitions: an unchanged count means an unchanged partition.
        stop = (c == 0) | (c == n) | (c == count[active])
        move = ~stop
        rows = active[move]
        t[rows], count[rows] = t_new[move], c[move]
        s_low[rows], s_high[rows] = lo_sum[move], hi_sum[move]
        active = rows
    centers = np.stack([s_low / count, s_high / (n - count)], axis=1)
    return t, centers


def _hard_moments(x, t, centers):
    """Moments of the hard 2-means labels about the centers, each (M, 2)."""
    low = x <= t[:, None]
    d = x - np.where(low, centers[:, :1], centers[:, 1:])
    sq = d * d
    n_low = low.sum(axis=1).astype(np.float64)
    counts = np.stack([n_low, x.shape[1] - n_low], axis=1)
    a = np.stack([np.where(low, d, 0.0).sum(axis=1), np.where(low, 0.0, d).sum(axis=1)], axis=1)
    b = np.stack([np.where(low, sq, 0.0).sum(axis=1), np.where(low, 0.0, sq).sum(axis=1)], axis=1)
    return counts, a, b


# --------------------------------------------------------------------- EM


def _estimate(counts, a, b, shift, reg_covar):
    """M-step from moments about ``shift``, all (M, 2).

    Returns the effective counts (unnormalized weights), means and
    regularized variances, computed as scikit-learn does.
    """
    nk = counts + COUNT_GUARD
    mu = (shift * counts + a) / nk
    delta = mu - shift
    # sum r (x - mu)^2 = b - 2 delta a + delta^2 n, with x - mu = d - delta
    sq = b - 2.0 * delta * a + delta * delta * counts
    var = np.maximum(sq / nk, 0.0) + reg_covar
    return nk, mu, np.maximum(var, MIN_VARIANCE)


def _em_pass(x, w, mu, var):
    """E-step of (w, mu, var), each (M, 2), over x (M, n).

    Returns
    -------
    ll : ndarray of shape (M,)
        Sum of the per-point log-likelihoods.
    counts, a, b : ndarrays of shape (M, 2)
        Responsibility-weighted moments of ``x - mu``: sum r, sum r d,
        sum r d^2, i.e. what the next M-step needs.
    """
    half_prec = 0.5 / var
    log_norm = np.log(w) - 0.5 * (LOG_2PI + np.log(var))
    d0 = x - mu[:, :1]
    d1 = x - mu[:, 1:]
    sq0 = d0 * d0
    sq1 = d1 * d1
    l0 = log_norm[:, :1] - half_prec[:, :1] * sq0
    l1 = log_norm[:, 1:] - half_prec[:, 1:] * sq1
    gap = l0 - l1
    # log(p0 + p1) = max(l0, l1) + log1p(t); responsibilities 1/(1+t), t/(1+t)
    t = np.exp(-np.abs(gap))
    big = 1.0 / (1.0 + t)
    small = t * big
    first = gap >= 0.0
    r0 = np.where(first, big, small)
    r1 = np.where(first, small, big)
    ll = (np.where(first, l0, l1) + np.log1p(t)).sum(axis=1)
    counts = np.stack([r0.sum(axis=1), r1.sum(axis=1)], axis=1)
    a = np.stack([(r0 * d0).sum(axis=1), (r1 * d1).sum(axis=1)], axis=1)
    b = np.stack([(r0 * sq0).sum(axis=1), (r1 * sq1).sum(axis=1)], axis=1)
    return ll, counts, a, b


def _fit_varying(x, tol, max_iter, reg_covar):
    """EM for normalized rows x (M, n) that each hold two distinct values.

    Returns a dict of weights, means, variances (M, 2), log_likelihood,
    n_iter, converged (M,); components not yet ordered.
    """
    m, n = x.shape
    t, centers = _two_means(x)
    nk, mu, var = _estimate(*_hard_moments(x, t, centers), centers, reg_covar)
    w = nk / n  # scikit-learn divides the initial counts by n
    prev = np.full(m, -np.inf)
    n_iter = np.zeros(m, dtype=np.int32)
    converged = np.zeros(m, dtype=bool)
    active = np.arange(m)
    for it in range(1, max_iter + 1):
        if active.size == 0:
            break
        xa = x if active.size == m else x[active]
        ll, counts, a, b = _em_pass(xa, w[active], mu[active], var[active])
        nk, mu[active], var[active] = _estimate(counts, a, b, mu[active], reg_covar)
        w[active] = nk / (nk[:, :1] + nk[:, 1:])
        n_iter[active] = it
        ll = ll / n
        done = np.abs(ll - prev[active]) < tol
        converged[active[done]] = True
        prev[active] = ll
        active = active[~done]
    # The log-likelihood of the returned parameters (scikit-learn's score()).
    log_likelihood = _em_pass(x, w, mu, var)[0] / n
    return {
        "weights": w,
        "means": mu,
        "variances": var,
        "log_likelihood": log_likelihood,
        "n_iter": n_iter,
        "converged": converged,
    }


def _constant_fit(m, reg_covar):
    """Result of m constant rows: two identical components at 0."""
    var = max(reg_covar, MIN_VARIANCE)
    return {
        "weights": np.full((m, 2), 0.5),
        "means": np.zeros((m, 2)),
        "variances": np.full((m, 2), var),
        "log_likelihood": np.full(m, -0.5 * (LOG_2PI + np.log(var))),
        "n_iter": np.zeros(m, dtype=np.int32),
        "converged": np.ones(m, dtype=bool),
    }


def _order_components(res):
    """Swap components in place so that component 0 has the smaller mean."""
    swap = res["means"][:, 0] > res["means"][:, 1]
    for key in ("weights", "means", "variances"):
        res[key][swap] = res[key][swap][:, ::-1]


def _fit_group(losses, tol, max_iter, reg_covar):
    """Fit the rows of losses (M, n); returns the result dict."""
    x, varying = normalize_rows(losses)
    res = _constant_fit(x.shape[0], reg_covar)
    if varying.any():
        fitted = _fit_varying(x[varying], tol, max_iter, reg_covar)
        for key, value in fitted.items():
            res[key][varying] = value
    _order_components(res)
    return res


def fit_rows(losses, *, tol, max_iter, reg_covar, distance):
    """Fit a 2-component 1-D Gaussian mixture to every row.

    Parameters
    ----------
    losses : ndarray of shape (M, n), float32 or float64
        Finite values, M >= 1, n >= 1.
    tol, max_iter, reg_covar, distance
        As in :func:`pyod_odim.gmm.fit_gmm2` (already validated).

    Returns
    -------
    dict
        weights, means, variances (M, 2); log_likelihood, n_iter (int32),
        converged (bool), distance (M,). Component 0 has the smaller mean.
    """
    m, n = losses.shape
    rows_per_group = max(1, _GROUP_VALUES // n)
    groups = [
        _fit_group(losses[i : i + rows_per_group], tol, max_iter, reg_covar)
        for i in range(0, m, rows_per_group)
    ]
    res = {key: np.concatenate([g[key] for g in groups]) for key in groups[0]}
    means, variances = res["means"], res["variances"]
    res["distance"] = pair_distance(
        means[:, 0], variances[:, 0], means[:, 1], variances[:, 1], distance
    )
    return res
