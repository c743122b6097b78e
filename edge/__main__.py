"""``python -m edge``: the same as the ``fer-edge`` console script."""

import sys

from edge.cli import main

if __name__ == "__main__":
    sys.exit(main())
