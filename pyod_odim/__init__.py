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
    raise AttributeError(f"module 'pyod_odim' has no attribute {name!r}")


def load(path, verify=True):
    """Read a detector saved by :meth:`pyod_odim.ODIM.save`; no code from the file runs.

    Parameters
    ----------
    path : str or os.PathLike
    verify : bool, default=True
        Check the CRC-32 checksum of the arrays; False skips that one pass
        over the file's bytes. The metadata's digest, the shapes and the
        range of every value are checked either way
        (:mod:`pyod_odim.model_file`).

    Returns
    -------
    estimator : pyod_odim.ODIM
        Fitted, with the saved detector's ``decision_function``, ``predict``
        and ``predict_proba``; a thresholder ``contamination`` comes back as
        the share of rows it labelled, and ``predict`` uses the saved cut.

    Raises
    ------
    FileNotFoundError, ValueError
        No file; not a model file, a newer format, or a damaged or
        inconsistent file (the message names the problem).
    """
    from . import model_file
    from .detector import ODIM

    fields, arrays, extremes = model_file.load(path, verify)
    try:
        return ODIM._from_fitted_state(fields, arrays, extremes)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None

