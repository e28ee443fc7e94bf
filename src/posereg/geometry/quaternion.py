"""Unit quaternions, scalar first: ``q = (w, x, y, z)``, ``R(q) v = q v q*``.

``q`` and ``-q`` are the same rotation. posereg canonicalises to the hemisphere ``w >= 0``
as Kendall & Cipolla (2017) do for PoseNet labels. A quaternion here rotates vectors of
the frame it is expressed in (active rotation); which frames a pose maps between is said
where poses are defined (``posereg.geometry.se3``).

Quaternions need not be unit length where a function normalises them (``quaternion_to_matrix``,
``quaternion_to_rotvec``, ``quaternion_angle``): they are first divided by their largest
component, so ``|q|^2`` neither underflows nor overflows and the result is exact for any
quaternion whose largest ``|q_i|`` is a normal number of its dtype (at least
``torch.finfo(dtype).tiny``: 1.2e-38 in float32, 2.2e-308 in float64, 6.1e-5 in float16).
Smaller ones (zero, or only subnormal components, too few digits to define a direction)
raise ValueError. Gradients are exact too (the results do not depend on the scale, so it is a
constant for autograd); they grow like ``1 / |q|``, as the true derivative does.

References: Shoemake, "Animating rotation with quaternion curves" (SIGGRAPH 1985);
matrix -> quaternion by the largest-diagonal branch of Shepperd (1978) / Markley (2008),
as in ``scipy.spatial.transform.Rotation.from_matrix``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from posereg.geometry._checks import at_index, check_compatible, check_tensor, upcast
from posereg.geometry._layout import join, split
from posereg.geometry._rotation_check import check_rotation_arg

__all__ = [
    "canonicalize_quaternion",
    "matrix_to_quaternion",
    "quaternion_angle",
    "quaternion_conjugate",
    "quaternion_multiply",
    "quaternion_to_matrix",
    "quaternion_to_rotvec",
    "rotvec_to_quaternion",
]


def quaternion_matrix_entries(w: Tensor, x: Tensor, y: Tensor, z: Tensor, s: Tensor | float) -> list[Tensor]:
    """The nine entries (row-major) of the rotation matrix of ``(w, x, y, z)`` (internal).

    ``R = I + s (w [v]x + [v]x^2)`` written out entry by entry (Shoemake 1985), exact for
    any non-zero quaternion when ``s = 2 / |q|^2`` and for unit ones when ``s = 2``. Kept
    as a list so that callers choose the memory layout (``join`` for ``(..., 3, 3)``).
    ``posereg/accel/_kernels.c`` (``posereg.accel.fused``) writes out the same entries.
    """
    sx, sy, sz = s * x, s * y, s * z
    xx, yy, zz = sx * x, sy * y, sz * z
    xy, xz, yz = sx * y, sx * z, sy * z
    wx, wy, wz = sx * w, sy * w, sz * w
    return [
        1 - (yy + zz), xy - wz, xz + wy,
        xy + wz, 1 - (xx + zz), yz - wx,
        xz - wy, yz + wx, 1 - (xx + yy),
    ]  # fmt: skip


def quaternion_to_matrix(q: Tensor) -> Tensor:
    """Rotation matrix of a quaternion.

    Args:
        q: ``(..., 4)`` quaternions ``(w, x, y, z)``; they need not be unit length (the
            matrix of ``q / |q|`` is returned, exact for any scale) but their largest
            component must be a normal number (``>= torch.finfo(q.dtype).tiny``).

    Returns:
        ``(..., 3, 3)`` rotation matrices ``R`` with ``R v = q v q*``, in ``q``'s dtype.

    Raises:
        ValueError: wrong shape, NaN/inf, or a zero or too small quaternion.
    """
    check_tensor(q, (4,), "q")
    w, x, y, z = split(scale_quaternion(upcast(q), "q", q.dtype))
    n2 = w * w + x * x + y * y + z * z  # in [1, 4]
    return join(quaternion_matrix_entries(w, x, y, z, 2.0 / n2), (3, 3)).to(q.dtype)


def scale_quaternion(q: Tensor, name: str, dtype: torch.dtype) -> Tensor:
    """``q / max_i |q_i|``: the same rotation with components in ``[-1, 1]`` (internal).

    The scale is detached: callers compute functions of ``q`` that are homogeneous of
    degree 0 (the matrix, rotation vector, angle of ``q / |q|``), whose gradient is
    orthogonal to ``q``, so a constant scale gives the exact gradient.

    Raises:
        ValueError: where ``max_i |q_i| < torch.finfo(dtype).tiny`` (``dtype``: the caller's
            input dtype, before any ``upcast``), naming ``name`` and the first such index.
    """
    m = q.detach().abs().amax(dim=-1, keepdim=True)
    tiny = torch.finfo(dtype).tiny
    if not torch.compiler.is_compiling() and q.numel() > 0:
        small = m < tiny
        if bool(small.any()):
            first = int(small.flatten().nonzero()[0, 0])
            value = float(m.flatten()[first])
            found = "|q| = 0" if value == 0 else f"largest |q_i| = {value:.3g}"
            found += at_index(first, tuple(q.shape[:-1]))
            raise ValueError(
                f"{name}: expected non-zero quaternions of shape (..., 4) whose largest |q_i| is at least "
                f"{tiny:.3g} (the smallest normal {dtype}), found {found}"
            )
    return q / m


def matrix_to_quaternion(R: Tensor, *, check_rotation: bool = True) -> Tensor:
    """Unit quaternion of a rotation matrix, canonicalised to ``w >= 0``.

    Uses the candidate built from the largest of ``(R00, R11, R22, tr R)`` (Markley 2008),
    so the division is always by a number >= 1: accurate for every angle, 0 and pi
    included, with finite gradients everywhere.

    Args:
        R: ``(..., 3, 3)`` rotation matrices.
        check_rotation: check that ``R`` holds rotations (``check_rotation_matrix``); with
            False, other matrices give meaningless results.

    Returns:
        ``(..., 4)`` unit quaternions ``(w, x, y, z)`` with ``w >= 0``.

    Raises:
        ValueError: wrong shape, NaN/inf, or (``check_rotation``) a matrix that is not a rotation.
    """
    check_rotation_arg(R, "R", check_rotation)
    return _matrix_to_quaternion(upcast(R)).to(R.dtype)


def _matrix_to_quaternion(R: Tensor) -> Tensor:
    r00, r01, r02, r10, r11, r12, r20, r21, r22 = split(R.flatten(-2))
    tr = r00 + r11 + r22
    # Four candidates for 4 q_i q: each is exact; pick the one with the largest |q_i|.
    d0 = 1 + tr  # 4 w^2
    dx = 1 + 2 * r00 - tr  # 4 x^2
    dy = 1 + 2 * r11 - tr
    dz = 1 + 2 * r22 - tr
    a_x, a_y, a_z = r21 - r12, r02 - r20, r10 - r01  # 4 w (x, y, z)
    s_xy, s_xz, s_yz = r01 + r10, r02 + r20, r12 + r21  # 4 x y, 4 x z, 4 y z
    use_x = (r00 >= r11) & (r00 >= r22) & (r00 > tr)
    use_y = ~use_x & (r11 >= r22) & (r11 > tr)
    use_z = ~use_x & ~use_y & (r22 > tr)

    def pick(c0: Tensor, cx: Tensor, cy: Tensor, cz: Tensor) -> Tensor:
        return torch.where(use_x, cx, torch.where(use_y, cy, torch.where(use_z, cz, c0)))

    w = pick(d0, a_x, a_y, a_z)
    x = pick(a_x, dx, s_xy, s_xz)
    y = pick(a_y, s_xy, dy, s_yz)
    z = pick(a_z, s_xz, s_yz, dz)
    # Normalise and move to the w >= 0 hemisphere in one scale factor.
    scale = torch.where(w < 0, -1.0, 1.0) * torch.rsqrt(w * w + x * x + y * y + z * z)
    return join((w * scale, x * scale, y * scale, z * scale), (4,))


def canonicalize_quaternion(q: Tensor) -> Tensor:
    """Map each quaternion to the hemisphere ``w >= 0`` (``q`` and ``-q`` are one rotation).

    Args:
        q: ``(..., 4)`` quaternions ``(w, x, y, z)``.

    Returns:
        ``(..., 4)`` quaternions equal to ``q`` or ``-q``, with ``w >= 0``. Quaternions
        with ``w == 0`` (rotations by pi) are left as they are.
    """
    check_tensor(q, (4,), "q")
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_conjugate(q: Tensor) -> Tensor:
    """Conjugate ``(w, -x, -y, -z)``: the inverse rotation of a unit quaternion.

    Args:
        q: ``(..., 4)`` quaternions ``(w, x, y, z)``.

    Returns:
        ``(..., 4)`` conjugate quaternions.
    """
    check_tensor(q, (4,), "q")
    return q * q.new_tensor([1.0, -1.0, -1.0, -1.0])


def quaternion_multiply(p: Tensor, q: Tensor) -> Tensor:
    """Hamilton product ``p q`` (the rotation ``q`` first, then ``p``).

    Args:
        p: ``(..., 4)`` quaternions ``(w, x, y, z)``.
        q: ``(..., 4)`` quaternions, broadcastable with ``p``, same dtype and device.

    Returns:
        ``(..., 4)`` products, with ``R(p q) = R(p) R(q)``.
    """
    check_tensor(p, (4,), "p")
    check_tensor(q, (4,), "q")
    check_compatible("p, q", (p, q), (1, 1))
    return _quaternion_multiply(upcast(p), upcast(q)).to(p.dtype)


def _quaternion_multiply(p: Tensor, q: Tensor) -> Tensor:
    pw, px, py, pz = split(p)
    qw, qx, qy, qz = split(q)
    return join(
        (
            pw * qw - px * qx - py * qy - pz * qz,
            pw * qx + px * qw + py * qz - pz * qy,
            pw * qy - px * qz + py * qw + pz * qx,
            pw * qz + px * qy - py * qx + pz * qw,
        ),
        (4,),
    )


def rotvec_to_quaternion(rotvec: Tensor) -> Tensor:
    """Unit quaternion of a rotation vector: ``(cos(theta/2), sin(theta/2) v / theta)``.

    Args:
        rotvec: ``(..., 3)`` rotation vectors (axis times angle, radians).

    Returns:
        ``(..., 4)`` unit quaternions ``(w, x, y, z)``; ``w >= 0`` when ``|rotvec| <= pi``.
    """
    check_tensor(rotvec, (3,), "rotvec")
    v = upcast(rotvec)
    w, k = half_angle_terms(torch.linalg.vector_norm(v, dim=-1))
    return torch.cat((w.unsqueeze(-1), k.unsqueeze(-1) * v), dim=-1).to(rotvec.dtype)


def half_angle_terms(theta: Tensor) -> tuple[Tensor, Tensor]:
    """``(cos(theta/2), sin(theta/2)/theta)`` for rotation angles ``theta >= 0`` (internal).

    ``sin(h)/theta = sinc(h)/2`` with ``h = theta/2``; ``torch.sinc`` has an exact value
    and gradient at 0, so no Taylor branch is needed.
    """
    half = 0.5 * theta
    return torch.cos(half), 0.5 * torch.sinc(half * (1.0 / torch.pi))


def quaternion_to_rotvec(q: Tensor) -> Tensor:
    """Rotation vector (axis times angle in [0, pi]) of a quaternion.

    ``theta = 2 atan2(|v|, |w|)`` (stable at 0 and pi, unlike ``2 acos(w)``), and the
    direction of ``v`` times the sign of ``w``. Near ``v = 0`` the factor ``theta / |v|``
    uses its Taylor series so that values and gradients stay finite.

    Args:
        q: ``(..., 4)`` quaternions ``(w, x, y, z)``, not necessarily unit; the largest
            component must be a normal number (``>= torch.finfo(q.dtype).tiny``).

    Returns:
        ``(..., 3)`` rotation vectors with norm in ``[0, pi]`` (radians).

    Raises:
        ValueError: wrong shape, NaN/inf, or a zero or too small quaternion.
    """
    check_tensor(q, (4,), "q")
    return _quaternion_to_rotvec(scale_quaternion(upcast(q), "q", q.dtype)).to(q.dtype)


def _quaternion_to_rotvec(q: Tensor) -> Tensor:
    w, x, y, z = split(q)
    sign = torch.where(w < 0, -1.0, 1.0)
    w = w * sign
    n2 = x * x + y * y + z * z
    # theta/|v| = 2 atan2(n, w)/n = (2/w)(1 - n^2/(3 w^2) + ...) for n << w.
    small = n2 < 1e-6 * (w * w)
    n = torch.sqrt(torch.where(small, 1.0, n2))
    w_safe = torch.where(small, w, 1.0)
    factor = torch.where(
        small,
        (2.0 / w_safe) * (1.0 - n2 / (3.0 * w_safe * w_safe)),
        2.0 * torch.atan2(n, w) / n,
    )
    factor = factor * sign
    return join((factor * x, factor * y, factor * z), (3,))


def quaternion_angle(q1: Tensor, q2: Tensor) -> Tensor:
    """Angle of the rotation between two quaternions, in ``[0, pi]`` radians.

    ``2 atan2(|xyz(q1* q2)|, |w(q1* q2)|)``: sign invariant (``q`` and ``-q`` give the
    same angle), scale invariant, and accurate at 0 and pi, unlike ``2 acos(|<q1, q2>|)``.

    Args:
        q1: ``(..., 4)`` quaternions, not necessarily unit; the largest component must be a
            normal number (``>= torch.finfo(dtype).tiny``).
        q2: ``(..., 4)`` quaternions, broadcastable with ``q1``, same dtype and device.

    Returns:
        ``(...)`` angles in radians.

    Raises:
        ValueError: wrong shapes, NaN/inf, zero or too small quaternions, different dtypes or
            devices, or batch shapes that do not broadcast.
    """
    check_tensor(q1, (4,), "q1")
    check_tensor(q2, (4,), "q2")
    check_compatible("q1, q2", (q1, q2), (1, 1))
    a = scale_quaternion(upcast(q1), "q1", q1.dtype)
    b = scale_quaternion(upcast(q2), "q2", q2.dtype)
    rel = _quaternion_multiply(a * a.new_tensor([1.0, -1.0, -1.0, -1.0]), b)
    angle = 2.0 * torch.atan2(torch.linalg.vector_norm(rel[..., 1:], dim=-1), rel[..., 0].abs())
    return angle.to(q1.dtype)
