"""Is a ``(..., 3, 3)`` tensor made of rotation matrices? ``R^T R = I`` and ``det R = +1``.

Functions of ``posereg.geometry`` that take rotation matrices call ``check_rotation_matrix``
on them unless they are given ``check_rotation=False``. It refuses reflections (det -1),
scaled, sheared or otherwise non-orthonormal matrices, and NaN or inf entries, whose
results would otherwise be silently meaningless (``geodesic_distance(I, diag(1, 1, -1))``
was 0).

Tolerance: ``max |R^T R - I|`` over all entries may be at most ``rotation_tolerance(dtype)``
= ``max(1e-3, 8 eps)``: 1e-3 for float32 and float64, 7.8e-3 for float16, 0.0625 for
bfloat16 (rounding a rotation to float16 leaves up to 8e-4, to bfloat16 up to 7e-3). float64
gets the float32 tolerance on purpose: float64 rotations often carry float32 or text-file
precision (network outputs converted with ``.double()``, 7-Scenes poses, which
``posereg.data.read_seven_scenes`` accepts within 1e-3; ``torch.autograd.gradcheck``
perturbs entries by 1e-6). The check is for matrices that are not rotations, not for
rounding; call ``check_rotation_matrix(R, tolerance=...)`` for a tighter one.

Cost: products of the entries, no SVD or LU. Small batches use one batched matmul (fewest
kernel launches: about 0.1 ms a call); large ones the 27 entry products of ``R^T R`` and
``det R`` on blocks of matrices that stay in cache. On one core of a shared machine, 1e6
float32 matrices took 30-40 ms, while ``geodesic_distance`` without the check took 120-250 ms
and ``posereg.accel.fused.geodesic_distance`` 17 ms: each checked argument adds 15-30 % to the
eager functions at large batches, and dominates the fused kernels' time (pass
``check_rotation=False`` for matrices known to be rotations). The check also detects NaN and
inf (they fail it), so functions that run it skip their separate finiteness check. Skipped
while ``torch.compile`` traces. It runs in the matrices' own precision also inside an autocast
region (mixed-precision training): there ``R^T R`` of float32 matrices would be computed in
bfloat16, whose rounding (up to 4e-3) alone fails the 1e-3 tolerance.
"""

from __future__ import annotations

import torch
from torch import Tensor

from posereg.geometry._checks import at_index, check_tensor, upcast, without_autocast

__all__ = ["check_rotation_matrix", "rotation_tolerance"]

# Up to this many matrices, one batched matmul (about 8 kernel launches in all); above it the
# entry-wise products, by blocks of _BLOCK matrices copied entry-major into one reused buffer
# (no page faults, contiguous reads: 1e6 float32 matrices in 30 ms on one shared core, against
# 45 ms reading the strided entries in place and 140 ms on whole-batch temporaries). The two
# are equally fast near 1e3 matrices.
_MATMUL_MAX = 1024
_BLOCK = 32768


def rotation_tolerance(dtype: torch.dtype) -> float:
    """Default tolerance on ``max |R^T R - I|`` for rotation matrices of ``dtype``.

    ``max(1e-3, 8 * torch.finfo(dtype).eps)``: 1e-3 for float32 and float64, 7.8e-3 for
    float16, 0.0625 for bfloat16.
    """
    return max(1e-3, 8 * torch.finfo(dtype).eps)


def check_rotation_matrix(R: Tensor, name: str = "R", *, tolerance: float | None = None) -> Tensor:
    """Raise ValueError unless ``R`` holds rotation matrices: ``R^T R = I``, ``det R = +1``.

    Args:
        R: ``(..., 3, 3)`` floating-point matrices (any dtype, device, batch shape).
        name: the argument name used in the error message.
        tolerance: the largest ``|R^T R - I|`` entry accepted; default
            ``rotation_tolerance(R.dtype)`` (1e-3 for float32 and float64).

    Returns:
        ``R`` itself.

    Raises:
        ValueError: wrong shape or dtype, NaN or inf entries, or a matrix that is not a
            rotation within ``tolerance``; the message gives ``max |R^T R - I|`` and
            ``det R`` of the first such matrix and its batch index, e.g.
            ``R: expected rotation matrices of shape (..., 3, 3) (max |R^T R - I| <= 0.001,
            det +1), got max |R^T R - I| = 0, det = -1 at index (3,) (1 of 5 matrices); ...``
    """
    check_tensor(R, (3, 3), name, finite=False)
    tol = rotation_tolerance(R.dtype) if tolerance is None else _checked_tolerance(tolerance)
    if torch.compiler.is_compiling() or R.numel() == 0:
        return R
    X = upcast(R.detach())
    with torch.no_grad(), without_autocast(X.device.type):
        err, det = _extremes(X)
        if bool((err <= tol) & (det > 0)):  # False for NaN: one synchronisation in the common case
            return R
        check_tensor(R, (3, 3), name)  # NaN or inf: the usual message
        errs, dets = _per_matrix(X)
    bad = ~((errs <= tol) & (dets > 0))
    first = int(bad.flatten().nonzero()[0, 0])
    where = at_index(first, tuple(R.shape[:-2]))
    if where:
        where += f" ({int(bad.sum())} of {bad.numel()} matrices)"
    e, d = float(errs.flatten()[first]), float(dets.flatten()[first])
    raise ValueError(
        f"{name}: expected rotation matrices of shape (..., 3, 3) (max |R^T R - I| <= {tol:g}, det +1), "
        f"got max |R^T R - I| = {e:.3g}, det = {d:.3g}{where}; project_to_so3 gives the nearest "
        "rotation, check_rotation=False skips this check"
    )


def check_rotation_arg(R: Tensor, name: str, rotation: bool) -> Tensor:
    """``check_rotation_matrix(R, name)`` if ``rotation``, else the shape and finiteness checks."""
    return check_rotation_matrix(R, name) if rotation else check_tensor(R, (3, 3), name)


def _checked_tolerance(tolerance: float) -> float:
    tol = float(tolerance)
    if not 0 < tol < float("inf"):
        raise ValueError(f"tolerance: expected a positive finite number, got {tolerance!r}")
    return tol


def _det(X: Tensor) -> Tensor:
    """``det X`` as the triple product of the columns (exact formula, no LU)."""
    return torch.linalg.vecdot(X[..., :, 0], torch.linalg.cross(X[..., :, 1], X[..., :, 2], dim=-1))


def _per_matrix(X: Tensor) -> tuple[Tensor, Tensor]:
    """``max |X^T X - I|`` and ``det X`` of each matrix, ``(...)`` each (the error path)."""
    eye = torch.eye(3, dtype=X.dtype, device=X.device)
    return (X.mT @ X - eye).abs().amax(dim=(-2, -1)), _det(X)


def _extremes(X: Tensor) -> tuple[Tensor, Tensor]:
    """The largest ``|X^T X - I|`` entry and the smallest ``det X`` of the whole batch (0-d
    tensors; NaN when any entry is NaN, inf or NaN when any is inf)."""
    n = X.numel() // 9
    if n <= _MATMUL_MAX:
        G = X.mT @ X
        G.diagonal(dim1=-2, dim2=-1).sub_(1)
        return G.abs().amax(), _det(X).amin()
    flat = X.reshape(n, 9)
    work = X.new_empty(16, min(n, _BLOCK))  # rows 0-8: a block's entries, 9-15: its results
    stats = []
    for start in range(0, n, _BLOCK):
        block = flat[start : start + _BLOCK]
        entries, out = work[:9, : block.shape[0]], work[9:, : block.shape[0]]
        entries.copy_(block.T)  # entry-major: the products below read contiguous memory
        _block(entries, out)
        diag, off = torch.aminmax(out[:3]), torch.aminmax(out[3:6])
        stats.append(torch.stack((diag.max - 1, 1 - diag.min, off.max, -off.min, out[6].amin())))
    s = torch.stack(stats)  # (blocks, 5)
    return s[:, :4].amax(), s[:, 4].amin()


def _block(entries: Tensor, out: Tensor) -> None:
    """Write the entries of ``X^T X`` (rows 0-2: diagonal, 3-5: upper triangle) and ``det X``
    (row 6) of ``B`` matrices into ``out`` ``(7, B)``, from their entries ``(9, B)`` (row-major
    order of the matrix), in place (no temporaries beyond three minors)."""
    r00, r01, r02, r10, r11, r12, r20, r21, r22 = entries.unbind(0)
    c0, c1, c2 = (r00, r10, r20), (r01, r11, r21), (r02, r12, r22)  # columns

    def dot(a: tuple[Tensor, ...], b: tuple[Tensor, ...], row: Tensor) -> None:
        torch.mul(a[0], b[0], out=row).addcmul_(a[1], b[1]).addcmul_(a[2], b[2])

    for k, (a, b) in enumerate(((c0, c0), (c1, c1), (c2, c2), (c0, c1), (c0, c2), (c1, c2))):
        dot(a, b, out[k])
    minors = (
        (r11 * r22).addcmul_(r12, r21, value=-1),
        (r12 * r20).addcmul_(r10, r22, value=-1),
        (r10 * r21).addcmul_(r11, r20, value=-1),
    )
    dot((r00, r01, r02), minors, out[6])
