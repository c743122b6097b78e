"""``python -m convert``: same as ``fer-convert``."""

import sys

from convert.cli import main

sys.exit(main())
