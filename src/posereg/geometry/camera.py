"""Pinhole projection of world points by cameras with camera-to-world poses.

Frames: a camera pose is camera-to-world ``(R, c)``: ``R`` ``(..., 3, 3)`` maps camera axes
to world axes and ``c`` ``(..., 3)`` is the camera centre in world coordinates (PoseNet's
position ``p``; 7-Scenes' ``frame-*.pose.txt`` is this pose as a 4x4 matrix). A world point
``g`` has camera coordinates ``x = R^T (g - c)``; the camera looks along ``+z`` (OpenCV
convention: ``x`` right, ``y`` down). Pixels are ``K (x / z)``; with ``K = I`` they are
normalised image coordinates, the choice Kendall & Cipolla (2017) allow for the
reprojection loss.
"""

from __future__ import annotations

import torch
from torch import Tensor

from posereg.geometry._checks import check_compatible, check_tensor, upcast
from posereg.geometry._rotation_check import check_rotation_arg

__all__ = ["project_points", "world_to_camera"]


def world_to_camera(R: Tensor, c: Tensor, points: Tensor, *, check_rotation: bool = True) -> Tensor:
    """Camera coordinates ``R^T (g - c)`` of world points.

    Args:
        R: ``(..., 3, 3)`` camera-to-world rotations.
        c: ``(..., 3)`` camera centres in world coordinates.
        points: ``(..., N, 3)`` world points ``g``; the batch shapes of ``R``, ``c`` and
            ``points.shape[:-2]`` broadcast, and all three share dtype and device.
        check_rotation: check that ``R`` holds rotations (``check_rotation_matrix``).

    Returns:
        ``(..., N, 3)`` points in the camera frame (``z`` is the depth along the optical axis).
    """
    _check_camera(R, c, points, check_rotation)
    return _world_to_camera(upcast(R), upcast(c), upcast(points)).to(points.dtype)


def _check_camera(R: Tensor, c: Tensor, points: Tensor, check_rotation: bool) -> None:
    check_tensor(R, (3, 3), "R", finite=False)
    check_tensor(c, (3,), "c")
    check_tensor(points, (3,), "points")
    if points.dim() < 2:
        raise ValueError(
            f"points: expected a floating-point tensor of shape (..., N, 3), got shape {tuple(points.shape)}"
        )
    check_compatible("R, c, points", (R, c, points), (2, 1, 2))
    check_rotation_arg(R, "R", check_rotation)


def _world_to_camera(R: Tensor, c: Tensor, points: Tensor) -> Tensor:
    # (g - c) R is the row-vector form of R^T (g - c).
    return (points - c.unsqueeze(-2)) @ R


def project_points(
    R: Tensor,
    c: Tensor,
    points: Tensor,
    K: Tensor | None = None,
    *,
    min_depth: float = 1e-6,
    check_rotation: bool = True,
) -> tuple[Tensor, Tensor]:
    """Pinhole projection of world points into the image of a camera-to-world pose.

    Points at depth ``z <= min_depth`` (behind or on the camera plane) have no image; they
    are projected as if at depth 1 so that values and gradients stay finite, and flagged in
    the returned mask.

    Args:
        R: ``(..., 3, 3)`` camera-to-world rotations.
        c: ``(..., 3)`` camera centres, world coordinates.
        points: ``(..., N, 3)`` world points.
        K: ``(3, 3)`` or ``(..., 3, 3)`` intrinsics (pixels); ``None`` for the identity
            (normalised image coordinates).
        min_depth: the smallest depth counted as in front of the camera (> 0), same length
            unit as ``c``.
        check_rotation: check that ``R`` holds rotations (``check_rotation_matrix``).

    Returns:
        ``(uv, in_front)``: ``(..., N, 2)`` image coordinates and the ``(..., N)`` boolean mask
        of points in front of the camera.

    Raises:
        ValueError: wrong shapes, NaN/inf, ``min_depth <= 0``, a ``K`` that is not
            ``(..., 3, 3)`` with last row ``(0, 0, 1)``, arguments of different dtypes or
            devices or with batch shapes that do not broadcast, or (``check_rotation``) an
            ``R`` that is not a rotation.
    """
    if not min_depth > 0:
        raise ValueError(f"min_depth: expected a positive depth, got {min_depth!r}")
    _check_camera(R, c, points, check_rotation)
    if K is not None:
        check_tensor(K, (3, 3), "K")
        check_compatible("R, c, points, K", (R, c, points, K), (2, 1, 2, 2))
        last_row = torch.tensor([0.0, 0.0, 1.0], dtype=K.dtype, device=K.device)
        if not bool((K[..., 2, :] == last_row).all()):
            raise ValueError("K: expected pinhole intrinsics of shape (..., 3, 3) with last row (0, 0, 1)")
    x = _world_to_camera(upcast(R), upcast(c), upcast(points))
    z = x[..., 2]
    in_front = z > min_depth
    xy = x[..., :2] / torch.where(in_front, z, 1.0).unsqueeze(-1)
    if K is None:
        return xy.to(points.dtype), in_front
    # Affine part of K only: the last row of a pinhole K is (0, 0, 1).
    k = upcast(K)
    uv = xy @ k[..., :2, :2].mT + k[..., None, :2, 2]
    return uv.to(points.dtype), in_front
