"""pyod-odim: the ODIM outlier detector for PyOD.

>>> from pyod_odim import ODIM
>>> clf = ODIM().fit(X)            # doctest: +SKIP
>>> clf.decision_scores_           # doctest: +SKIP
"""

from .detector import ODIM

__version__ = "0.1.0"
__all__ = ["ODIM", "__version__"]
