"""posereg: learn rigid poses (3D rotations and rigid transforms) with deep networks.

Layers, each importing only those listed before it: ``geometry`` (pure tensor maths),
``losses``, ``models``, ``data``, ``registration``, ``evaluation``, ``training`` and the
``posereg`` command line (``posereg.cli``). ``accel`` (optional compiled CPU kernels for
the hottest geometry functions) imports ``geometry`` only, and no layer imports it.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("posereg")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
