"""Two-component Gaussian mixture per row and the distance between its parts.

ODIM's checkpoint selector: for per-sample losses shaped (M, n) (M ensemble
members, n samples), every row is

1. min-max normalized to [0, 1] (float64 arithmetic);
2. initialized by 1-D 2-means: Lloyd's iteration started from the split at
   the row mean, run until the partition stops changing (at most 100
   steps); its hard labels give the first M-step, as scikit-learn's
   ``init_params="kmeans"`` does, but deterministically;
3. fitted by EM exactly as ``sklearn.mixture.GaussianMixture(n_components=2)``
   (``reg_covar`` added to each variance, 10 * eps added to each component's
   count, stop when the mean log-likelihood changes by less than ``tol``);
4. summarized by the distance between the two fitted normals.

All outputs are in the normalized [0, 1] scale. Component 0 is always the
one with the smaller mean. A constant row (including n == 1) gets two
identical components at 0 with variance ``reg_covar``, distance 0,
``n_iter`` 0 and ``converged`` True.

The work is done by the compiled extension ``pyod_odim._gmm`` (C++17, GIL
released, OpenMP across rows when available; results do not depend on the
thread count). Without it a NumPy implementation of the same algorithm is
used; only the order of floating-point sums differs, so float64 results of
both agree to about 1e-12 relative (for ``reg_covar > 0``; with
``reg_covar == 0`` a collapsed component can make the fit ill-conditioned).
"""

import numbers
import warnings
from typing import NamedTuple

import numpy as np

from . import _gmm_numpy

try:
    from . import _gmm as _ext
except ImportError as _exc:  # not compiled, or compiled for another Python
    _ext = None
    warnings.warn(
        "pyod_odim.gmm: the compiled kernel pyod_odim._gmm is unavailable "
        f"({_exc}); using the NumPy fallback (same results, slower). "
        "Reinstall pyod-odim with a C++17 compiler to get the fast path.",
        RuntimeWarning,
        stacklevel=2,
    )

BACKEND = "cpp" if _ext is not None else "numpy"
"""str: backend used by default, ``"cpp"`` or ``"numpy"``."""

DISTANCES = ("sigma", "variance")
BACKENDS = ("cpp", "numpy")

_INT32_MAX = 2**31 - 1

__all__ = [
    "BACKEND",
    "DISTANCES",
    "GMM2Result",
    "fit_gmm2",
    "gmm2_distance",
    "normal_pair_distance",
]


class GMM2Result(NamedTuple):
    """Per-row fit of a two-component 1-D Gaussian mixture.

    All values are in the min-max normalized scale of each row; component 0
    has the smaller mean.

    Attributes
    ----------
    weights : ndarray of shape (M, 2)
        Mixing weights, summing to 1 per row.
    means : ndarray of shape (M, 2)
        Component means, ``means[:, 0] <= means[:, 1]``.
    variances : ndarray of shape (M, 2)
        Component variances, ``reg_covar`` included.
    log_likelihood : ndarray of shape (M,)
        Mean per-sample log-likelihood of the returned parameters (what
        ``GaussianMixture.score`` reports on the normalized row).
    n_iter : ndarray of shape (M,), int32
        EM iterations run; 0 for constant rows.
    converged : ndarray of shape (M,), bool
        Whether EM met ``tol`` within ``max_iter`` iterations.
    distance : ndarray of shape (M,)
        Distance between the two components (see :func:`normal_pair_distance`).
    """

    weights: np.ndarray
    means: np.ndarray
    variances: np.ndarray
    log_likelihood: np.ndarray
    n_iter: np.ndarray
    converged: np.ndarray
    distance: np.ndarray


def fit_gmm2(
    losses, *, distance="sigma", tol=1e-3, max_iter=100, reg_covar=1e-6, backend=None,
    n_threads=0,
):
    """Fit a two-component 1-D Gaussian mixture to every row of ``losses``.

    Parameters
    ----------
    losses : array-like of shape (M, n) or (n,)
        Finite real numbers (integer or floating dtypes; bool, complex,
        object and string dtypes raise TypeError). float32 and float64 are
        used as they are (no copy when C-contiguous); other real dtypes are
        cast to float64. A 1-D array is one row: the result has M = 1.
    distance : {"sigma", "variance"}, default="sigma"
        ``"sigma"``: (mu0 - mu1)^2 + (sd0 - sd1)^2, the squared
        2-Wasserstein distance between the normals (ODIM paper);
        ``"variance"``: (mu0 - mu1)^2 + (var0 - var1)^2 (authors' code).
    tol : float, default=1e-3
        EM stops when the mean log-likelihood changes by less than this.
    max_iter : int, default=100
        Maximum number of EM iterations.
    reg_covar : float, default=1e-6
        Non-negative value added to each variance.
    backend : {None, "cpp", "numpy"}, default=None
        None uses :data:`BACKEND`; "cpp" raises ValueError when the
        extension is unavailable.
    n_threads : int, default=0
        OpenMP threads of the compiled backend across rows; 0 uses OpenMP's
        default. Small inputs run on one thread whatever is asked, and the
        results never depend on it.

    Returns
    -------
    GMM2Result
        weights, means, variances of shape (M, 2); log_likelihood, n_iter,
        converged, distance of shape (M,).

    Raises
    ------
    TypeError
        If the dtype of ``losses`` is not a real number type.
    ValueError
        If ``losses`` is not 1-D or 2-D, is empty, holds NaN or inf, or an
        option is out of range.
    """
    x = _as_loss_matrix(losses)
    _check_options(distance, tol, max_iter, reg_covar)
    options = dict(
        tol=float(tol),
        max_iter=min(int(max_iter), _INT32_MAX),
        reg_covar=float(reg_covar),
        distance=distance,
    )
    if _resolve_backend(backend) == "cpp":
        fields = _ext.fit(x, **options, n_threads=max(0, int(n_threads)))
    else:
        fields = _gmm_numpy.fit_rows(x, **options)
    return GMM2Result(**fields)


def gmm2_distance(losses, distance="sigma", *, tol=1e-3, max_iter=100, reg_covar=1e-6, backend=None):
    """Distance between the two fitted components of every row.

    Shortcut for ``fit_gmm2(losses, ...).distance``; see :func:`fit_gmm2`.

    Returns
    -------
    distance : ndarray of shape (M,)
    """
    return fit_gmm2(
        losses, distance=distance, tol=tol, max_iter=max_iter, reg_covar=reg_covar, backend=backend
    ).distance


def normal_pair_distance(mu1, var1, mu2, var2, distance="sigma"):
    """Distance between the normals N(mu1, var1) and N(mu2, var2).

    Parameters
    ----------
    mu1, var1, mu2, var2 : float or array-like
        Means and variances (variances >= 0); arrays broadcast.
    distance : {"sigma", "variance"}, default="sigma"
        ``"sigma"``: (mu1 - mu2)^2 + (sqrt(var1) - sqrt(var2))^2, the
        squared 2-Wasserstein distance; ``"variance"``:
        (mu1 - mu2)^2 + (var1 - var2)^2.

    Returns
    -------
    float or ndarray
        Non-negative, symmetric in the two normals, 0 for identical ones.
    """
    _check_distance(distance)
    var1 = np.asarray(var1, dtype=np.float64)
    var2 = np.asarray(var2, dtype=np.float64)
    if np.any(var1 < 0) or np.any(var2 < 0):
        raise ValueError("variances must be >= 0")
    out = _gmm_numpy.pair_distance(
        np.asarray(mu1, dtype=np.float64), var1, np.asarray(mu2, dtype=np.float64), var2, distance
    )
    return out[()] if out.ndim == 0 else out


# --------------------------------------------------------------------- checks


def _as_loss_matrix(losses):
    """Validate losses and return a C-contiguous (M, n) float32/float64 array."""
    x = np.asarray(losses)
    if x.dtype.kind not in "iuf":
        raise TypeError(
            f"losses must hold real numbers (integer or floating dtype), got dtype {x.dtype}"
        )
    if x.ndim not in (1, 2):
        raise ValueError(f"losses must be 1-D (n,) or 2-D (M, n), got {x.ndim}-D shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"losses must not be empty, got shape {x.shape}")
    target = np.float32 if x.dtype == np.float32 else np.float64
    x = np.ascontiguousarray(x.reshape(1, -1) if x.ndim == 1 else x, dtype=target)
    _check_finite(x)
    return x


def _check_finite(x):
    """Raise ValueError naming the first row that holds NaN or inf."""
    if np.isfinite(x).all():
        return
    for kind, bad in (("NaN", np.isnan(x)), ("inf", np.isinf(x))):
        rows = np.flatnonzero(bad.any(axis=1))
        if rows.size:
            raise ValueError(
                f"losses contain {kind} in {rows.size} row(s), first in row {rows[0]}; "
                "all values must be finite"
            )


def _check_distance(distance):
    if not isinstance(distance, str) or distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")


def _check_options(distance, tol, max_iter, reg_covar):
    """Raise ValueError for an unknown distance or an out-of-range option."""
    _check_distance(distance)
    if not isinstance(tol, numbers.Real) or not tol > 0:
        raise ValueError(f"tol must be a number > 0, got {tol!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral) or max_iter < 1:
        raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}")
    if not isinstance(reg_covar, numbers.Real) or not (0 <= reg_covar < np.inf):
        raise ValueError(f"reg_covar must be a finite number >= 0, got {reg_covar!r}")


def _resolve_backend(backend):
    """Return "cpp" or "numpy" for the backend argument of fit_gmm2."""
    if backend is None:
        return BACKEND
    if backend not in BACKENDS:
        raise ValueError(f"backend must be None, 'cpp' or 'numpy', got {backend!r}")
    if backend == "cpp" and _ext is None:
        raise ValueError("backend='cpp' requested but the extension pyod_odim._gmm is not built")
    return backend
