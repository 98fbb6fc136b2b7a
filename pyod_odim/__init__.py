"""pyod-odim: the ODIM outlier detector for PyOD.

>>> from pyod_odim import ODIM
>>> clf = ODIM().fit(X)            # doctest: +SKIP
>>> clf.decision_scores_           # doctest: +SKIP
"""

__version__ = "0.1.0"
__all__ = ["ODIM", "__version__"]


def __getattr__(name):
    # Imported on first use: the command line's error paths and
    # ``pyod_odim.gmm`` then start without loading torch and PyOD.
    if name == "ODIM":
        from .detector import ODIM

        return ODIM
    raise AttributeError(f"module 'pyod_odim' has no attribute {name!r}")
