"""``python -m posereg.cli``: the ``posereg`` command."""

import sys

from posereg.cli import main

sys.exit(main())
