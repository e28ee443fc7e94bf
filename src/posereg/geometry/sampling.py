"""Random rotations with an explicit ``torch.Generator`` (no global RNG state is touched
when a generator is given).

- ``random_rotation``: Haar-uniform on SO(3), Arvo, "Fast random rotation matrices"
  (Graphics Gems III, 1992). The angle of such rotations has density ``(1 - cos t)/pi``
  on ``[0, pi]``: small rotations are rare.
- ``random_rotation_with_angle``: uniform axis, angle uniform in a range (for evaluation
  binned by rotation magnitude, Salehi et al. 2018).
- ``random_euler_rotation``: each Euler angle uniform in its own range (the half-space
  slice training set of Salehi et al.: x and y within +-90 degrees). Such rotations are
  NOT Haar-uniform even with full ranges.
- ``super_fibonacci_rotations``: a deterministic, evenly spread set of ``n`` rotations
  (Alexa, "Super-Fibonacci spirals", CVPR 2022), for exhaustive coarse searches.

For ``dtype=torch.float16`` or ``torch.bfloat16`` the rotations are drawn and computed in
float32 and rounded once to the dtype (the draws then match float32's for the same generator).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from posereg.geometry._checks import HALF_DTYPES
from posereg.geometry._layout import join, split
from posereg.geometry.euler import euler_to_matrix
from posereg.geometry.quaternion import quaternion_to_matrix
from posereg.geometry.so3 import rotvec_to_matrix

__all__ = ["random_euler_rotation", "random_rotation", "random_rotation_with_angle", "super_fibonacci_rotations"]

Shape = int | Sequence[int]


def _shape(shape: Shape) -> tuple[int, ...]:
    out = (shape,) if isinstance(shape, int) else tuple(shape)
    if any((not isinstance(s, int)) or s < 0 for s in out):
        raise ValueError(f"shape: expected non-negative integers, got {shape!r}")
    return out


def _uniform(shape: tuple[int, ...], generator: torch.Generator | None, dtype: torch.dtype, device) -> Tensor:  # type: ignore[no-untyped-def]
    return torch.rand(shape, generator=generator, dtype=dtype, device=device)


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype to compute in for results of ``dtype``; ValueError unless it is floating."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype: expected a floating-point torch.dtype, got {dtype!r}")
    return torch.float32 if dtype in HALF_DTYPES else dtype


def random_rotation(
    shape: Shape = (),
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Haar-uniform random rotation matrices (Arvo 1992).

    With ``x1, x2, x3 ~ U[0, 1)``: ``theta = 2 pi x1``, ``phi = 2 pi x2``,
    ``V = (cos(phi) sqrt(x3), sin(phi) sqrt(x3), sqrt(1 - x3))``, ``H = I - 2 V V^T`` and
    ``R = -H Rz(theta)``.

    Args:
        shape: batch shape of the result.
        generator: source of randomness (its device must match ``device``).
        dtype: floating dtype of the result.
        device: device of the result.

    Returns:
        ``(*shape, 3, 3)`` rotation matrices.
    """
    work = _work_dtype(dtype)
    u1, u2, u3 = split(_uniform((*_shape(shape), 3), generator, work, device))
    theta, phi = 2 * torch.pi * u1, 2 * torch.pi * u2
    r = torch.sqrt(u3)
    vx, vy, vz = torch.cos(phi) * r, torch.sin(phi) * r, torch.sqrt(1 - u3)
    ct, st = torch.cos(theta), torch.sin(theta)
    # -H = 2 V V^T - I; M = -H Rz(theta), Rz = [[c, -s, 0], [s, c, 0], [0, 0, 1]].
    h = [[2 * vx * vx - 1, 2 * vx * vy, 2 * vx * vz],
         [2 * vy * vx, 2 * vy * vy - 1, 2 * vy * vz],
         [2 * vz * vx, 2 * vz * vy, 2 * vz * vz - 1]]  # fmt: skip
    comps = []
    for row in h:
        comps += [row[0] * ct + row[1] * st, row[1] * ct - row[0] * st, row[2]]
    return join(comps, (3, 3)).to(dtype)


def random_rotation_with_angle(
    shape: Shape,
    min_angle: float,
    max_angle: float,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Rotations about uniformly random axes with angles uniform in ``[min_angle, max_angle]``.

    Args:
        shape: batch shape of the result.
        min_angle: smallest angle, radians, ``0 <= min_angle <= max_angle <= pi``.
        max_angle: largest angle, radians.
        generator: source of randomness.
        dtype: floating dtype of the result.
        device: device of the result.

    Returns:
        ``(*shape, 3, 3)`` rotation matrices whose geodesic angle from the identity is in
        the range.
    """
    if not (0.0 <= min_angle <= max_angle <= torch.pi):
        raise ValueError(f"angle range: expected 0 <= min <= max <= pi, got [{min_angle}, {max_angle}]")
    shape = _shape(shape)
    work = _work_dtype(dtype)
    axis = torch.randn((*shape, 3), generator=generator, dtype=work, device=device)
    axis = axis / torch.linalg.vector_norm(axis, dim=-1, keepdim=True).clamp_min(torch.finfo(work).tiny)
    angle = min_angle + (max_angle - min_angle) * _uniform(shape, generator, work, device)
    return rotvec_to_matrix(axis * angle.unsqueeze(-1)).to(dtype)


def random_euler_rotation(
    shape: Shape,
    low: Sequence[float],
    high: Sequence[float],
    seq: str = "xyz",
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Rotations whose three Euler angles are drawn independently and uniformly.

    Args:
        shape: batch shape of the result.
        low: the three lower bounds, radians, in the order of ``seq``.
        high: the three upper bounds, radians (``high >= low``).
        seq: the Euler convention (see ``posereg.geometry.euler``).
        generator: source of randomness.
        dtype: floating dtype of the result.
        device: device of the result.

    Returns:
        ``(*shape, 3, 3)`` rotation matrices.
    """
    work = _work_dtype(dtype)
    lo = torch.as_tensor(low, dtype=work, device=device)
    hi = torch.as_tensor(high, dtype=work, device=device)
    if lo.shape != (3,) or hi.shape != (3,) or bool((hi < lo).any()):
        raise ValueError(f"low, high: expected three bounds each with high >= low, got {low!r}, {high!r}")
    u = _uniform((*_shape(shape), 3), generator, work, device)
    return euler_to_matrix(lo + (hi - lo) * u, seq).to(dtype)


# Alexa (2022): psi is the real root of psi^4 = psi + 4.
_PHI = 2.0**0.5
_PSI = 1.533751168755204288118041


def super_fibonacci_rotations(
    n: int, *, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> Tensor:
    """``n`` rotations spread evenly over SO(3): the super-Fibonacci spiral (Alexa 2022, Alg. 1).

    Deterministic and low-discrepancy: its covering radius shrinks like ``n^(-1/3)``, with
    far smaller gaps than ``n`` random draws. Sample ``i`` is the unit quaternion
    ``(r sin a, r cos a, R sin b, R cos b)`` with ``s = i + 1/2``, ``r = sqrt(s/n)``,
    ``R = sqrt(1 - s/n)``, ``a = 2 pi s / sqrt(2)``, ``b = 2 pi s / psi``.

    Args:
        n: number of rotations, ``>= 1``.
        dtype: floating dtype of the result.
        device: device of the result.

    Returns:
        ``(n, 3, 3)`` rotation matrices.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected a positive int, got {n!r}")
    _work_dtype(dtype)
    s = torch.arange(n, dtype=torch.float64) + 0.5
    r = torch.sqrt(s / n)
    big_r = torch.sqrt(1.0 - s / n)
    alpha = 2 * torch.pi * s / _PHI
    beta = 2 * torch.pi * s / _PSI
    q = torch.stack((r * torch.sin(alpha), r * torch.cos(alpha), big_r * torch.sin(beta), big_r * torch.cos(beta)), -1)
    return quaternion_to_matrix(q).to(dtype=dtype, device=device)
