"""``python -m pyod_odim``: the ``odim`` command line."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
