"""Euler angles in any of the 24 conventions of ``scipy.spatial.transform.Rotation``.

``seq`` is three axis letters: lower case ``"xyz"`` for extrinsic rotations (about the
fixed axes, applied first to last), upper case ``"XYZ"`` for intrinsic rotations (about
the moving axes). ``euler_to_matrix(a, "xyz") == Rz(a2) Ry(a1) Rx(a0)`` and
``euler_to_matrix(a, "XYZ") == Rx(a0) Ry(a1) Rz(a2)``. Both proper Euler (``"zxz"``) and
Tait-Bryan (``"xyz"``) sequences are accepted.

``matrix_to_euler`` follows Bernardes & Viollet, "Quaternion to Euler angles conversion: a
direct, general and computationally efficient method" (PLoS ONE 2022), as scipy does,
including scipy's rule in gimbal lock (the middle angle at 0 or pi): the third angle is
set to 0. Angles are in radians; the first and third lie in ``[-pi, pi)``, the second in
``[0, pi]`` (proper Euler) or ``[-pi/2, pi/2]`` (Tait-Bryan).
"""

from __future__ import annotations

import torch
from torch import Tensor

from posereg.geometry._checks import check_tensor, upcast
from posereg.geometry._layout import join, split
from posereg.geometry._rotation_check import check_rotation_arg
from posereg.geometry._safe import safe_atan2, safe_hypot
from posereg.geometry.quaternion import (
    _matrix_to_quaternion,
    _quaternion_multiply,
    quaternion_matrix_entries,
)

__all__ = ["euler_to_matrix", "euler_to_quaternion", "matrix_to_euler"]

_GIMBAL_EPS = 1e-7  # scipy's threshold on the middle angle (radians)


def _parse_seq(seq: str) -> tuple[list[int], bool]:
    """Axis indices and ``intrinsic`` flag of a scipy Euler sequence; ValueError if invalid."""
    if not isinstance(seq, str) or len(seq) != 3:
        raise ValueError(f"seq: expected three axes such as 'xyz' or 'ZXZ', got {seq!r}")
    if seq.islower() == seq.isupper() or set(seq.lower()) - set("xyz"):
        raise ValueError(
            f"seq: expected three letters from 'xyz' (extrinsic) or 'XYZ' (intrinsic), got {seq!r}"
        )
    if seq[0] == seq[1] or seq[1] == seq[2]:
        raise ValueError(f"seq: consecutive axes must differ, got {seq!r}")
    return ["xyz".index(c) for c in seq.lower()], seq.isupper()


def euler_to_quaternion(angles: Tensor, seq: str) -> Tensor:
    """Unit quaternion ``(w, x, y, z)`` of Euler angles.

    Args:
        angles: ``(..., 3)`` angles in radians, in the order of ``seq``.
        seq: the convention, as in scipy (``"xyz"`` extrinsic, ``"XYZ"`` intrinsic, ...).

    Returns:
        ``(..., 4)`` unit quaternions.
    """
    axes, intrinsic = _parse_seq(seq)
    check_tensor(angles, (3,), "angles")
    return _euler_to_quaternion(upcast(angles), axes, intrinsic).to(angles.dtype)


def _euler_to_quaternion(angles: Tensor, axes: list[int], intrinsic: bool) -> Tensor:
    half = 0.5 * angles
    c, s = torch.cos(half), torch.sin(half)
    zero = torch.zeros_like(half[..., 0])
    q = None
    for i, axis in enumerate(axes):
        comps = [c[..., i], zero, zero, zero]
        comps[1 + axis] = s[..., i]
        qi = join(comps, (4,))
        # intrinsic: q = q1 q2 q3 (later rotations about moving axes act first on vectors)
        q = qi if q is None else (_quaternion_multiply(q, qi) if intrinsic else _quaternion_multiply(qi, q))
    assert q is not None
    return q


def euler_to_matrix(angles: Tensor, seq: str) -> Tensor:
    """Rotation matrix of Euler angles.

    Args:
        angles: ``(..., 3)`` angles in radians, in the order of ``seq``.
        seq: the convention, as in scipy (``"xyz"`` extrinsic, ``"XYZ"`` intrinsic, ...).

    Returns:
        ``(..., 3, 3)`` rotation matrices.
    """
    axes, intrinsic = _parse_seq(seq)
    check_tensor(angles, (3,), "angles")
    w, x, y, z = split(_euler_to_quaternion(upcast(angles), axes, intrinsic))  # unit to rounding
    s = 2.0 / (w * w + x * x + y * y + z * z)
    return join(quaternion_matrix_entries(w, x, y, z, s), (3, 3)).to(angles.dtype)


def matrix_to_euler(R: Tensor, seq: str, *, check_rotation: bool = True) -> Tensor:
    """Euler angles of rotation matrices (scipy's ``as_euler`` in torch).

    Args:
        R: ``(..., 3, 3)`` rotation matrices.
        seq: the convention, as in scipy (``"xyz"`` extrinsic, ``"XYZ"`` intrinsic, ...).
        check_rotation: check that ``R`` holds rotations (``check_rotation_matrix``); with
            False, other matrices give meaningless results.

    Returns:
        ``(..., 3)`` angles in radians in the order of ``seq``. In gimbal lock (middle
        angle within 1e-7 of 0 or pi) the third angle is 0, as in scipy.

    Raises:
        ValueError: a bad ``seq``, wrong shape, NaN/inf, or (``check_rotation``) a matrix
            that is not a rotation.
    """
    axes, intrinsic = _parse_seq(seq)
    check_rotation_arg(R, "R", check_rotation)
    return _matrix_to_euler(upcast(R), axes, intrinsic).to(R.dtype)


def _matrix_to_euler(R: Tensor, axes: list[int], intrinsic: bool) -> Tensor:
    extrinsic = not intrinsic
    q = split(_matrix_to_quaternion(R))
    qw, qv = q[0], q[1:]
    i, j, k = axes if extrinsic else axes[::-1]
    symmetric = i == k
    if symmetric:
        k = 3 - i - j
    sign = (i - j) * (j - k) * (k - i) // 2  # +1 or -1: parity of the permutation (i, j, k)
    if symmetric:
        a, b, c, d = qw, qv[i], qv[j], qv[k] * sign
    else:
        a, b, c, d = qw - qv[j], qv[i] + qv[k] * sign, qv[j] + qw, qv[k] * sign - qv[i]

    middle = 2.0 * safe_atan2(safe_hypot(c, d), safe_hypot(a, b))
    half_sum = safe_atan2(b, a)
    half_diff = safe_atan2(d, c)
    case1 = middle.abs() <= _GIMBAL_EPS
    case2 = (middle - torch.pi).abs() <= _GIMBAL_EPS
    regular = ~(case1 | case2)
    # scipy's bookkeeping: the value fixed in gimbal lock always lands in output angle 0,
    # the undetermined one (set to 0) in output angle 2.
    locked = torch.where(case1, 2.0 * half_sum, 2.0 * half_diff * (-1.0 if extrinsic else 1.0))
    zero = torch.zeros_like(locked)
    if extrinsic:
        first = torch.where(regular, half_sum - half_diff, locked)
        third = torch.where(regular, half_sum + half_diff, zero)
        if not symmetric:
            third = third * sign
    else:
        third = torch.where(regular, half_sum - half_diff, zero)
        first = torch.where(regular, half_sum + half_diff, locked)
        if not symmetric:
            first = first * sign
    if not symmetric:
        middle = middle - torch.pi / 2
    # Wrap the first and third angles to [-pi, pi); the middle one is already in its range
    # (wrapping it would turn a middle angle of exactly pi into -pi).
    first, third = (torch.remainder(a + torch.pi, 2 * torch.pi) - torch.pi for a in (first, third))
    return join((first, middle, third), (3,))
