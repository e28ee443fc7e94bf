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

from posereg.geometry._checks import check_same_dtype_device, check_tensor

__all__ = ["project_points", "world_to_camera"]


def world_to_camera(R: Tensor, c: Tensor, points: Tensor) -> Tensor:
    """Camera coordinates ``R^T (g - c)`` of world points.

    Args:
        R: ``(..., 3, 3)`` camera-to-world rotations.
        c: ``(..., 3)`` camera centres in world coordinates.
        points: ``(..., N, 3)`` world points ``g``.

    Returns:
        ``(..., N, 3)`` points in the camera frame (``z`` is the depth along the optical axis).
    """
    check_tensor(R, (3, 3), "R")
    check_tensor(c, (3,), "c")
    check_tensor(points, (3,), "points")
    check_same_dtype_device(R, points, "R, points")
    check_same_dtype_device(c, points, "c, points")
    if points.dim() < 2:
        raise ValueError(f"points: expected a floating-point tensor of shape (..., N, 3), got shape {tuple(points.shape)}")
    # (g - c) R is the row-vector form of R^T (g - c).
    return (points - c.unsqueeze(-2)) @ R


def project_points(
    R: Tensor, c: Tensor, points: Tensor, K: Tensor | None = None, *, min_depth: float = 1e-6
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

    Returns:
        ``(uv, in_front)``: ``(..., N, 2)`` image coordinates and the ``(..., N)`` boolean mask
        of points in front of the camera.

    Raises:
        ValueError: wrong shapes, NaN/inf, ``min_depth <= 0``, or a ``K`` that is not
            ``(..., 3, 3)`` with last row ``(0, 0, 1)``.
    """
    if not min_depth > 0:
        raise ValueError(f"min_depth: expected a positive depth, got {min_depth!r}")
    x = world_to_camera(R, c, points)
    z = x[..., 2]
    in_front = z > min_depth
    xy = x[..., :2] / torch.where(in_front, z, 1.0).unsqueeze(-1)
    if K is None:
        return xy, in_front
    check_tensor(K, (3, 3), "K")
    check_same_dtype_device(K, points, "K, points")
    last_row = torch.tensor([0.0, 0.0, 1.0], dtype=K.dtype, device=K.device)
    if not bool((K[..., 2, :] == last_row).all()):
        raise ValueError("K: expected pinhole intrinsics of shape (..., 3, 3) with last row (0, 0, 1)")
    # Affine part of K only: the last row of a pinhole K is (0, 0, 1).
    uv = xy @ K[..., :2, :2].mT + K[..., None, :2, 2]
    return uv, in_front
