"""Geometric reprojection loss (Kendall & Cipolla 2017, "L_g").

``L_g(I) = 1/|G'| sum_{g in G'} | pi(pose, g) - pi(pose_hat, g) |_gamma`` over the scene
points ``G'`` visible in image ``I``; ``pi`` projects a world point by a camera pose
(``posereg.geometry.project_points``). The loss compares where the scene lands in the image,
so position and orientation are balanced by the scene's own geometry, without ``beta``.

Frames: poses are camera-to-world, ``(R, c)`` with ``c`` the camera centre in world
coordinates (PoseNet's ``p``); Cambridge Landmarks stores the world-to-camera quaternion,
so its loader transposes that rotation. Batches may have a different number of points per
image: pad ``points`` and pass ``mask``. A point behind either camera has no image in it; it
is dropped from the mean and counted in ``behind``, so a prediction that turns the camera
away from the scene is visible in the logs rather than hidden as a NaN or a huge residual.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from posereg.geometry import project_points
from posereg.geometry._checks import check_tensor
from posereg.losses._checks import check_pair
from posereg.losses._norms import check_gamma, gamma_norm
from posereg.losses._reduction import check_reduction, reduce_loss

__all__ = ["ReprojectionLoss", "ReprojectionResiduals", "reprojection_loss", "reprojection_residuals"]


class ReprojectionResiduals(NamedTuple):
    """Per-point reprojection residuals and the masks behind them.

    Attributes:
        residual: ``(..., N)`` ``|pi(target, g) - pi(pred, g)|_gamma`` (image units of ``K``;
            normalised coordinates for ``K = None``), clipped at ``clip``; 0 where not visible.
        visible: ``(..., N)`` points that count: in ``mask`` and in front of both cameras.
        behind: ``(..., N)`` points in ``mask`` dropped for being behind either camera.
    """

    residual: Tensor
    visible: Tensor
    behind: Tensor


def reprojection_residuals(
    R_pred: Tensor,
    c_pred: Tensor,
    R_target: Tensor,
    c_target: Tensor,
    points: Tensor,
    mask: Tensor | None = None,
    K: Tensor | None = None,
    *,
    gamma: int = 1,
    clip: float | None = None,
    min_depth: float = 1e-6,
) -> ReprojectionResiduals:
    """Per-point residuals of the reprojection loss.

    Args:
        R_pred, c_pred: ``(..., 3, 3)``, ``(..., 3)`` predicted camera-to-world poses.
        R_target, c_target: ``(..., 3, 3)``, ``(..., 3)`` true camera-to-world poses.
        points: ``(..., N, 3)`` world points seen by each image (padded to a common ``N``).
        mask: ``(..., N)`` booleans, True for real points; ``None`` when all are real.
        K: ``(3, 3)`` or ``(..., 3, 3)`` intrinsics, ``None`` for normalised coordinates.
        gamma: 1 (L1, the paper's choice) or 2 (Euclidean).
        clip: if given, residuals are clamped at this value (robustness to outliers; the
            clamped points then have zero gradient).
        min_depth: depth below which a point counts as behind a camera.

    Returns:
        ``ReprojectionResiduals``.

    Raises:
        ValueError: bad shapes, a ``mask`` that does not match ``points``, a bad ``K``,
            ``gamma`` or ``clip``.
    """
    check_gamma(gamma)
    if clip is not None and not clip > 0:
        raise ValueError(f"clip: expected a positive residual bound or None, got {clip!r}")
    check_pair(R_pred, R_target, (3, 3), ("R_pred", "R_target"))
    check_pair(c_pred, c_target, (3,), ("c_pred", "c_target"))
    if R_pred.shape[:-2] != c_pred.shape[:-1]:
        raise ValueError(f"R_pred, c_pred: expected the same batch shape, got {tuple(R_pred.shape)} and {tuple(c_pred.shape)}")
    check_tensor(points, (3,), "points")
    if points.dim() < 2:
        raise ValueError(f"points: expected a floating-point tensor of shape (..., N, 3), got shape {tuple(points.shape)}")
    if mask is None:
        mask = torch.ones(points.shape[:-1], dtype=torch.bool, device=points.device)
    elif not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.shape != points.shape[:-1]:
        got = f"{mask.dtype} {tuple(mask.shape)}" if isinstance(mask, Tensor) else type(mask).__name__
        raise ValueError(f"mask: expected a bool tensor of shape {tuple(points.shape[:-1])} (points' (..., N)), got {got}")
    uv_pred, front_pred = project_points(R_pred, c_pred, points, K, min_depth=min_depth)
    uv_target, front_target = project_points(R_target, c_target, points, K, min_depth=min_depth)
    in_front = front_pred & front_target
    residual = gamma_norm(uv_target - uv_pred, gamma)
    if clip is not None:
        residual = residual.clamp(max=clip)
    visible = mask & in_front
    return ReprojectionResiduals(torch.where(visible, residual, 0.0), visible, mask & ~in_front)


def reprojection_loss(
    R_pred: Tensor,
    c_pred: Tensor,
    R_target: Tensor,
    c_target: Tensor,
    points: Tensor,
    mask: Tensor | None = None,
    K: Tensor | None = None,
    *,
    gamma: int = 1,
    clip: float | None = None,
    min_depth: float = 1e-6,
    reduction: str = "mean",
) -> Tensor:
    """Kendall & Cipolla's ``L_g``: mean residual over the visible points of each image.

    An image with no visible point contributes 0 (and no gradient). Arguments as in
    ``reprojection_residuals``; ``reduction`` applies over images.

    Returns:
        The reduced loss, or ``(...)`` per-image losses (image units of ``K``).
    """
    check_reduction(reduction)
    res = reprojection_residuals(
        R_pred, c_pred, R_target, c_target, points, mask, K, gamma=gamma, clip=clip, min_depth=min_depth
    )
    return reduce_loss(_per_image_mean(res), reduction)


def _per_image_mean(res: ReprojectionResiduals) -> Tensor:
    count = res.visible.sum(-1).clamp_min(1)
    return res.residual.sum(-1) / count.to(res.residual.dtype)


class ReprojectionLoss(nn.Module):
    """Module form of ``reprojection_loss``; counts what it had to drop.

    After each call, ``last_behind`` holds the number of real points dropped for being
    behind a camera and ``last_empty_images`` the number of images left with no visible
    point (Python ints, for logging).
    """

    def __init__(
        self,
        K: Tensor | None = None,
        *,
        gamma: int = 1,
        clip: float | None = None,
        min_depth: float = 1e-6,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        check_gamma(gamma)
        check_reduction(reduction)
        if K is not None:
            check_tensor(K, (3, 3), "K")
        self.register_buffer("K", K)
        self.gamma, self.clip, self.min_depth, self.reduction = gamma, clip, min_depth, reduction
        self.last_behind = 0
        self.last_empty_images = 0

    def forward(
        self,
        R_pred: Tensor,
        c_pred: Tensor,
        R_target: Tensor,
        c_target: Tensor,
        points: Tensor,
        mask: Tensor | None = None,
    ) -> Tensor:
        """See ``reprojection_loss``."""
        res = reprojection_residuals(
            R_pred, c_pred, R_target, c_target, points, mask, self.K,
            gamma=self.gamma, clip=self.clip, min_depth=self.min_depth,
        )  # fmt: skip
        self.last_behind = int(res.behind.sum())
        self.last_empty_images = int((~res.visible.any(-1)).sum())
        return reduce_loss(_per_image_mean(res), self.reduction)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, clip={self.clip}, reduction={self.reduction!r}"
