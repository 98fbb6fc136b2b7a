"""The small demo dataset bundled with the package."""

import io
from importlib import resources

import numpy as np

DEMO_FILE = "cardio.npz"


def load_demo():
    """Load the bundled Cardiotocography outlier-detection set.

    1831 fetal cardiotocograms with 21 standardised features; the 176
    "pathologic" ones are the outliers (9.6 %). The file is ADBench's
    ``6_cardio.npz`` (from ODDS, built on the UCI Cardiotocography data);
    see ``pyod_odim/data/README.md`` for provenance, terms and what to cite.

    Returns
    -------
    X : numpy array of shape (1831, 21), float64
        The features.

    y : numpy array of shape (1831,), int64
        Ground truth: 1 for an outlier, 0 for an inlier. ODIM never needs it;
        it is there to evaluate the scores.

    Examples
    --------
    >>> from pyod_odim.datasets import load_demo
    >>> X, y = load_demo()
    >>> X.shape, int(y.sum())
    ((1831, 21), 176)
    """
    # Read through importlib.resources so this also works from a zipped or
    # installed wheel, where the file may have no path of its own.
    raw = resources.files("pyod_odim").joinpath("data").joinpath(DEMO_FILE).read_bytes()
    with np.load(io.BytesIO(raw), allow_pickle=False) as data:
        X = np.asarray(data["X"], dtype=np.float64)
        y = np.asarray(data["y"]).astype(np.int64).ravel()
    return X, y
