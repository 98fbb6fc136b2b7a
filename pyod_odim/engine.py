"""Deprecated alias of :mod:`pyod_odim.adengine`.

The PyOD ADEngine knowledge moved to ``pyod_odim.adengine`` so that its
name no longer reads like ``pyod_odim.engines`` (the compute engines).
Importing this module still works and gives the same objects, with a
``DeprecationWarning``.
"""

import warnings

from . import adengine as _adengine
from .adengine import *  # noqa: F401,F403
from .adengine import __all__  # noqa: F401

warnings.warn(
    "pyod_odim.engine is deprecated and will be removed; import "
    "pyod_odim.adengine instead (same names, e.g. "
    "`from pyod_odim.adengine import engine_knowledge`)",
    DeprecationWarning,
    stacklevel=2,
)


def __getattr__(name):
    # The private helpers too, for code that reached into the old module.
    return getattr(_adengine, name)
