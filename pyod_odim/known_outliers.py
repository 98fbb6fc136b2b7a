"""Known outliers for semi-supervised ODIM: validation and selection."""

import numpy as np
from scipy.stats import rankdata

from .gmm import fit_gmm2

LABEL_SELECTIONS = ("rank", "gmm")

# Weight of the GMM distance when it only breaks ties between equal ranks.
_TIE_BREAK = 1e-3


def check_labels(y, n_samples):
    """Validate ``y`` for ``use_labels=True``.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        1 for a known outlier, 0 for an unlabeled row.
    n_samples : int

    Returns
    -------
    labeled : ndarray of bool, shape (n_samples,)

    Raises
    ------
    ValueError
        ``y`` missing, of the wrong length, holding NaN or values other than
        0 and 1, or marking every row as an outlier.
    """
    if y is None:
        raise ValueError("use_labels=True needs y: 1 for known outliers, 0 otherwise")
    arr = np.asarray(y)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"y must hold the numbers 0 and 1, got dtype {arr.dtype}")
    arr = arr.reshape(-1) if arr.ndim == 2 and 1 in arr.shape else arr
    if arr.ndim != 1 or arr.shape[0] != n_samples:
        raise ValueError(f"y has shape {np.shape(y)}; expected ({n_samples},) to match X")
    if arr.dtype.kind == "f" and np.isnan(arr).any():
        raise ValueError("y contains NaN; use 0 for unlabeled rows")
    values = np.unique(arr)
    if not np.isin(values, (0, 1)).all():
        raise ValueError(f"y must hold only 0 (unlabeled) and 1 (known outlier), got {values}")
    labeled = arr == 1
    if labeled.all():
        raise ValueError("y marks every row as an outlier; at least one must be unlabeled")
    return labeled


def labeled_rank(losses, labeled):
    """Mean normalized rank of the known outliers among each member's losses.

    Parameters
    ----------
    losses : ndarray of shape (M, m)
    labeled : ndarray of bool, shape (m,)

    Returns
    -------
    rank : ndarray of shape (M,)
        1 when every known outlier has a larger loss than every other row,
        about 0.5 when they are placed at random.
    """
    ranks = rankdata(losses, axis=1)
    return (ranks[:, labeled].mean(axis=1) - 1.0) / max(losses.shape[1] - 1, 1)


def label_aware_criterion(labeled, distance, n_threads=0):
    """Selection criterion that prefers checkpoints ranking known outliers high.

    Parameters
    ----------
    labeled : ndarray of bool, shape (n_samples,)
    distance : {"sigma", "variance"}
    n_threads : int, optional (default=0)
        Threads of the GMM-2 fits (0: OpenMP's default).

    Returns
    -------
    criterion : callable
        ``criterion(losses, rows) -> (M,)`` where ``rows`` indexes the
        selection set into the training rows (``None`` for all rows).
    """

    def criterion(losses, rows):
        mask = labeled if rows is None else labeled[rows]
        gap = fit_gmm2(losses, distance=distance, n_threads=n_threads).distance
        if not mask.any():
            return gap
        return labeled_rank(losses, mask) + _TIE_BREAK * gap

    return criterion
