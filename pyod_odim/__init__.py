"""pyod-odim: the ODIM outlier detector for PyOD.

>>> from pyod_odim import ODIM
>>> clf = ODIM().fit(X)            # doctest: +SKIP
>>> clf.decision_scores_           # doctest: +SKIP
>>> clf.save("model.odim")         # doctest: +SKIP
>>> pyod_odim.load("model.odim")   # doctest: +SKIP
"""

from ._version import __version__

__all__ = ["ODIM", "load", "__version__"]


def __getattr__(name):
    # Imported on first use: the command line's error paths and
    # ``pyod_odim.gmm`` then start without loading torch and PyOD.
    if name == "ODIM":
        from .detector import ODIM

        return ODIM
    if name == "load":
        from .detector import load

        return load
    raise AttributeError(f"module 'pyod_odim' has no attribute {name!r}")
