"""Sphinx configuration of the pyod-odim documentation.

Build (what ``.ci/run`` runs, warnings as errors)::

    pip install -e ".[docs]"
    python3 -m sphinx -W --keep-going -b html docs docs/_build/html
"""

import os
import sys

# The source tree first: an editable install compiles the extensions there.
sys.path.insert(0, os.path.abspath(".."))

from pyod_odim import __version__  # noqa: E402  (cheap: ODIM itself loads lazily)

project = "pyod-odim"
author = "pyod-odim developers"
copyright = "pyod-odim developers"
release = __version__
version = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build"]

# API reference: one stub page per entry of api.rst, from _templates/autosummary.
autosummary_generate = True
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # numpydoc sections already state the types
# numpydoc's own member tables would need a stub per method.
numpydoc_show_class_members = False
numpydoc_xref_param_type = False

# Markdown pages (the benchmark tables) link to each other's sections.
myst_heading_anchors = 3

html_theme = "alabaster"
html_title = f"pyod-odim {release}"
html_static_path = []


def _skip_metadata_requests(app, what, name, obj, skip, options):
    # scikit-learn adds set_fit_request & co. to every estimator class; their
    # docstrings point into scikit-learn's own glossary.
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_metadata_requests)
