"""``python -m posereg``: the ``posereg`` command (for launchers such as ``torchrun -m posereg predict``)."""

import sys

from posereg.cli import main

if __name__ == "__main__":
    sys.exit(main())
