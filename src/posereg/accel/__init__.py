"""Optional CPU accelerator for the hottest geometry functions (compiled C kernels).

``posereg.accel.fused`` has ``rotvec_to_matrix``, ``quaternion_to_matrix``,
``matrix_to_rotvec`` and ``geodesic_distance`` with the values and gradients of their
namesakes in ``posereg.geometry``, each as one compact C loop over the batch. The kernels
(``_kernels.c``) are compiled on first use with the system C compiler in a subprocess and
cached on disk (``_native``), which is why they live here and not in ``posereg.geometry``:
that layer stays pure tensor maths, without subprocesses, file I/O or native code.

This package imports ``posereg.geometry`` only, and no other posereg layer imports it
(import-linter contracts in ``pyproject.toml``): it is something a user opts into.
"""
