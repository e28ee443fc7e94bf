"""Relocalisation errors: median position (metres) and orientation (degrees) per scene.

Kendall & Cipolla (2017) report, per scene, the median distance between predicted and true
camera centres and the median angle between predicted and true camera orientations; this
module computes both from a network and a dataset of frames (``evaluate_relocalisation``: a
network on the test frames of ``posereg.data.reloc.relocalisation_data``). Where the frames carry scene
points, it also gives each frame's reprojection error in pixels: the quantity the paper's
reprojection fine-tune minimises (its ``L_g`` with the Euclidean norm), so that a fine-tune can
be judged on its own objective as well as on metres and degrees. Frames: camera-to-world
poses (``posereg.geometry.camera``).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from posereg.evaluation.metrics import position_error_m, rotation_error_deg
from posereg.losses.reprojection import reprojection_residuals

if TYPE_CHECKING:
    from posereg.data.reloc import RelocalisationData

__all__ = [
    "RelocalisationResult", "evaluate_relocalisation", "predict_camera_poses", "relocalisation_result",
    "reprojection_error_px",
]  # fmt: skip


@dataclass(frozen=True)
class RelocalisationResult:
    """Per-frame errors of one method on one scene, and the poses behind them.

    Attributes:
        position_m: ``(N,)`` camera-centre errors, metres.
        rotation_deg: ``(N,)`` orientation errors (geodesic angle), degrees.
        predicted_positions, true_positions: ``(N, 3)`` camera centres (metres, world).
        reprojection_px: ``(N,)`` mean reprojection error of each frame's visible scene points,
            pixels (NaN for a frame with none); None where the frames carry no points.
    """

    position_m: Tensor
    rotation_deg: Tensor
    predicted_positions: Tensor
    true_positions: Tensor
    reprojection_px: Tensor | None = None

    @property
    def median_position_m(self) -> float:
        """Median camera-centre error, metres."""
        return statistics.median(self.position_m.tolist())

    @property
    def median_rotation_deg(self) -> float:
        """Median orientation error, degrees."""
        return statistics.median(self.rotation_deg.tolist())

    @property
    def median_reprojection_px(self) -> float | None:
        """Median over the frames with visible points of ``reprojection_px``; None without points."""
        if self.reprojection_px is None:
            return None
        values = [v for v in self.reprojection_px.tolist() if v == v]  # NaN: no visible point
        return statistics.median(values) if values else None

    def cell(self) -> str:
        """``'0.42 m, 3.1°'``: the medians as Kendall & Cipolla's tables print them."""
        return f"{self.median_position_m:.2f} m, {self.median_rotation_deg:.1f}°"


@torch.no_grad()
def predict_camera_poses(net: nn.Module, dataset: Dataset, batch_size: int = 64) -> tuple[Tensor, Tensor]:
    """Camera-to-world poses that ``net`` predicts for every frame of ``dataset``.

    Args:
        net: a network returning ``(rotation, position)`` with ``to_matrix`` (``PoseNet``);
            evaluated in eval mode (dropout off) and restored afterwards.
        dataset: items with ``image``.
        batch_size: frames per forward pass.

    Returns:
        ``(R (N, 3, 3), c (N, 3))`` float32 camera-to-world poses.
    """
    was_training = net.training
    net.eval()
    Rs, cs = [], []
    try:
        for batch in DataLoader(dataset, batch_size=batch_size):
            rotation, position = net(batch["image"])
            Rs.append(net.to_matrix(rotation))
            cs.append(position)
    finally:
        net.train(was_training)
    return torch.cat(Rs), torch.cat(cs)


def relocalisation_result(
    R_pred: Tensor, c_pred: Tensor, R_true: Tensor, c_true: Tensor, reprojection_px: Tensor | None = None
) -> RelocalisationResult:
    """Errors of predicted camera-to-world poses.

    Args:
        R_pred, R_true: ``(N, 3, 3)`` rotations.
        c_pred, c_true: ``(N, 3)`` camera centres, metres.
        reprojection_px: ``(N,)`` per-frame reprojection errors (``reprojection_error_px``), or None.

    Raises:
        ValueError: mismatched or empty inputs.
    """
    if R_pred.shape != R_true.shape or c_pred.shape != c_true.shape or R_pred.shape[0] != c_pred.shape[0]:
        raise ValueError(
            f"poses: expected matching (N, 3, 3) and (N, 3) shapes, got {tuple(R_pred.shape)}, {tuple(R_true.shape)}, "
            f"{tuple(c_pred.shape)}, {tuple(c_true.shape)}"
        )
    if R_pred.shape[0] == 0:
        raise ValueError("poses: expected at least one frame")
    if reprojection_px is not None and reprojection_px.shape != c_pred.shape[:1]:
        raise ValueError(f"reprojection_px: expected shape ({c_pred.shape[0]},), got {tuple(reprojection_px.shape)}")
    R_true, c_true = R_true.to(R_pred.dtype), c_true.to(c_pred.dtype)
    return RelocalisationResult(
        position_error_m(c_pred, c_true), rotation_error_deg(R_pred, R_true), c_pred.detach(), c_true.detach(),
        reprojection_px,
    )


@torch.no_grad()
def reprojection_error_px(R_pred: Tensor, c_pred: Tensor, dataset: Dataset, batch_size: int = 64) -> Tensor:
    """Each frame's mean reprojection error: over the scene points it sees, the pixel distance
    between their projections by the true and by the predicted camera (Kendall & Cipolla's
    ``L_g`` with the Euclidean norm, unclipped; points behind either camera are left out).

    Args:
        R_pred: ``(N, 3, 3)`` predicted camera-to-world rotations, in ``dataset`` order.
        c_pred: ``(N, 3)`` predicted camera centres, metres (world).
        dataset: ``N`` items with ``rotation``, ``position``, ``points`` ``(M, 3)``,
            ``points_mask`` ``(M,)`` and ``intrinsics`` ``(3, 3)`` (pixels of the item's image).
        batch_size: frames per step.

    Returns:
        ``(N,)`` pixels, in ``R_pred``'s dtype; NaN for a frame with no visible point.

    Raises:
        ValueError: items without scene points, or a dataset of another length than ``R_pred``.
    """
    if len(dataset) != R_pred.shape[0] or c_pred.shape != (R_pred.shape[0], 3):  # type: ignore[arg-type]
        raise ValueError(f"R_pred, c_pred: expected ({len(dataset)}, 3, 3) and ({len(dataset)}, 3) for the "  # type: ignore[arg-type]
                         f"dataset's frames, got {tuple(R_pred.shape)} and {tuple(c_pred.shape)}")  # fmt: skip
    errors, start = [], 0
    for batch in DataLoader(dataset, batch_size=batch_size):
        missing = sorted({"points", "points_mask", "intrinsics"} - set(batch))
        if missing:
            raise ValueError(f"dataset: the reprojection error needs {missing} in every item")
        n = batch["points"].shape[0]
        R, c = R_pred[start : start + n], c_pred[start : start + n]
        dtype = R.dtype
        res = reprojection_residuals(
            R, c, batch["rotation"].to(dtype), batch["position"].to(dtype), batch["points"].to(dtype),
            batch["points_mask"], batch["intrinsics"].to(dtype), gamma=2,
        )  # fmt: skip
        count = res.visible.sum(-1)
        mean = res.residual.sum(-1) / count.clamp_min(1).to(dtype)
        errors.append(torch.where(count > 0, mean, torch.nan))
        start += n
    return torch.cat(errors)


def evaluate_relocalisation(net: nn.Module, data: RelocalisationData, *, batch_size: int = 64) -> RelocalisationResult:
    """Errors of ``net`` on the test frames of ``data``, with each frame's reprojection error in
    pixels where the frames carry scene points.

    Args:
        net: a network returning ``(rotation, position)`` with ``to_matrix`` (``PoseNet``).
        data: the frames (``relocalisation_data``); only ``data.test`` is evaluated.
        batch_size: frames per forward pass.

    Returns:
        Position errors in metres, rotation errors in degrees (and pixels) per test frame.
    """
    R, c = predict_camera_poses(net, data.test, batch_size)
    reprojection = reprojection_error_px(R, c, data.test, batch_size) if data.has_points else None
    truth = data.test_poses
    return relocalisation_result(R, c, truth.rotations.float(), truth.positions.float(), reprojection)
