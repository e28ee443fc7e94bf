"""Optional fused kernels (``torch.compile``) for the two hottest operations.

``rotvec_to_matrix`` and ``geodesic_distance`` here compute the same values as their
namesakes in ``posereg.geometry.so3`` (same formulas, tested to agree), but run as three
compiled stages: a transpose of the ``(N, 3)`` / ``(N, 3, 3)`` input to component-major
rows, the element-wise formula on contiguous rows (which inductor vectorises, sin/cos/atan2
included), and for matrices a transpose back to ``(N, 3, 3)``. Fusing the whole formula
into one kernel is slower: inductor does not vectorise the strided loads and stores of
the interleaved layout and falls back to scalar ``std::sin``/``std::atan2`` (17 ms for
rotvec -> matrix and 28 ms for the distance at 1e6 on one core). Staged, the vectorised
math takes 1.6 / 2.3 ms at 1e6, but the transposes (7-15 ms at 1e6, once the data no
longer fits in cache) dominate; at 1e5 the staged kernels are 2-3x faster than eager.
See docs/benchmarks/geometry.md for the measured rows.

The first call for a dtype/device compiles (seconds; cached on disk by torch). Shapes are
dynamic, so batch sizes do not recompile. If compilation fails (no C++ compiler, an
unsupported platform), each function warns once and falls back to the eager version, so
callers can use this module unconditionally. Gradients flow through all stages.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

import torch
from torch import Tensor

from posereg.geometry import so3
from posereg.geometry._checks import check_tensor
from posereg.geometry._safe import safe_sqrt

__all__ = ["geodesic_distance", "rotvec_to_matrix"]


def _transpose(x: Tensor) -> Tensor:
    return x.t().contiguous()


def _rotvec_rows(rows: Tensor) -> Tensor:
    x, y, z = rows
    theta = safe_sqrt(x * x + y * y + z * z)  # gradient 0 at 0
    return torch.stack(so3.rotvec_matrix_entries(x, y, z, theta), dim=0)


def _geodesic_rows(a: Tensor, b: Tensor) -> Tensor:
    # The formula of so3.geodesic_distance on component rows: u = sum_k a_k x b_k.
    ux = sum(a[3 * k + 1] * b[3 * k + 2] - a[3 * k + 2] * b[3 * k + 1] for k in range(3))
    uy = sum(a[3 * k + 2] * b[3 * k] - a[3 * k] * b[3 * k + 2] for k in range(3))
    uz = sum(a[3 * k] * b[3 * k + 1] - a[3 * k + 1] * b[3 * k] for k in range(3))
    c = sum(a[i] * b[i] for i in range(9)) - 1.0
    return torch.atan2(safe_sqrt(ux * ux + uy * uy + uz * uz), c)


@functools.cache
def _compiled(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    return torch.compile(fn, dynamic=True)


def _run(stages: Callable[[], Tensor], fallback: Callable[[], Tensor], name: str) -> Tensor:
    try:
        return stages()
    except Exception as err:  # compilation or codegen failure: use the eager formula
        warnings.warn(f"posereg.geometry.fused.{name}: torch.compile failed ({err!r:.200}); using eager", stacklevel=3)
        return fallback()


def rotvec_to_matrix(rotvec: Tensor) -> Tensor:
    """Fused ``so3.rotvec_to_matrix``: same arguments, values and gradients.

    Args:
        rotvec: ``(..., 3)`` rotation vectors, radians.

    Returns:
        ``(..., 3, 3)`` rotation matrices.
    """
    check_tensor(rotvec, (3,), "rotvec")
    batch = rotvec.shape[:-1]

    def stages() -> Tensor:
        rows = _compiled(_transpose)(rotvec.reshape(-1, 3))
        entries = _compiled(_rotvec_rows)(rows)
        return _compiled(_transpose)(entries).reshape(*batch, 3, 3)

    return _run(stages, lambda: so3.rotvec_to_matrix(rotvec), "rotvec_to_matrix")


def geodesic_distance(R1: Tensor, R2: Tensor) -> Tensor:
    """Fused ``so3.geodesic_distance``: same arguments, values and gradients.

    Args:
        R1: ``(..., 3, 3)`` rotation matrices.
        R2: ``(..., 3, 3)`` rotation matrices, broadcastable with ``R1``.

    Returns:
        ``(...)`` angles in radians, in ``[0, pi]``.
    """
    check_tensor(R1, (3, 3), "R1")
    check_tensor(R2, (3, 3), "R2")
    if R1.shape != R2.shape:
        R1, R2 = torch.broadcast_tensors(R1, R2)
    batch = R1.shape[:-2]

    def stages() -> Tensor:
        a = _compiled(_transpose)(R1.reshape(-1, 9))
        b = _compiled(_transpose)(R2.reshape(-1, 9))
        return _compiled(_geodesic_rows)(a, b).reshape(batch)

    return _run(stages, lambda: so3.geodesic_distance(R1, R2), "geodesic_distance")
