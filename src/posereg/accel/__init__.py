"""Optional CPU accelerator for the hottest geometry functions (compiled C kernels).

``posereg.accel.fused`` has ``rotvec_to_matrix``, ``quaternion_to_matrix``,
``matrix_to_rotvec`` and ``geodesic_distance`` with the values and gradients of their
namesakes in ``posereg.geometry``, each as one compact C loop over the batch. The kernels
(``_kernels.c``) are compiled on first use with the system C compiler in a subprocess and
cached on disk (``_native``), which is why they live here and not in ``posereg.geometry``:
that layer stays pure tensor maths, without subprocesses, file I/O or native code.

This package imports ``posereg.geometry`` only, and no other posereg layer imports it
(import-linter contracts in ``pyproject.toml``): it is something a user opts into.

Environment variables:

- ``POSEREG_NO_NATIVE=1``: never compile or load the kernels; every function runs the
  eager formula of ``posereg.geometry`` and ``fused.available()`` is False.
- ``POSEREG_CACHE_DIR``: where the built libraries are kept (default
  ``$XDG_CACHE_HOME/posereg``, else ``~/.cache/posereg``); they go in its ``kernels``
  subdirectory. Both are created private (mode 0700), and a library is loaded only when
  it and both directories are owned by the current user and writable by no one else
  (otherwise one warning and the eager formulas; see ``_native``).

Both are read at the first use of the kernels in a process; ``fused.reset()`` makes the
next call read them again.
"""

__all__: list[str] = []  # the functions are in posereg.accel.fused, imported on purpose
