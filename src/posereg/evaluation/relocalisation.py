"""Relocalisation errors: median position (metres) and orientation (degrees) per scene.

Kendall & Cipolla (2017) report, per scene, the median distance between predicted and true
camera centres and the median angle between predicted and true camera orientations; this
module computes both from a network and a dataset of frames. Frames: camera-to-world poses
(``posereg.geometry.camera``).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from posereg.evaluation.metrics import position_error_m, rotation_error_deg

__all__ = ["RelocalisationResult", "predict_camera_poses", "relocalisation_result"]


@dataclass(frozen=True)
class RelocalisationResult:
    """Per-frame errors of one method on one scene, and the poses behind them.

    Attributes:
        position_m: ``(N,)`` camera-centre errors, metres.
        rotation_deg: ``(N,)`` orientation errors (geodesic angle), degrees.
        predicted_positions, true_positions: ``(N, 3)`` camera centres (metres, world).
    """

    position_m: Tensor
    rotation_deg: Tensor
    predicted_positions: Tensor
    true_positions: Tensor

    @property
    def median_position_m(self) -> float:
        """Median camera-centre error, metres."""
        return statistics.median(self.position_m.tolist())

    @property
    def median_rotation_deg(self) -> float:
        """Median orientation error, degrees."""
        return statistics.median(self.rotation_deg.tolist())

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


def relocalisation_result(R_pred: Tensor, c_pred: Tensor, R_true: Tensor, c_true: Tensor) -> RelocalisationResult:
    """Errors of predicted camera-to-world poses.

    Args:
        R_pred, R_true: ``(N, 3, 3)`` rotations.
        c_pred, c_true: ``(N, 3)`` camera centres, metres.

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
    R_true, c_true = R_true.to(R_pred.dtype), c_true.to(c_pred.dtype)
    return RelocalisationResult(
        position_error_m(c_pred, c_true), rotation_error_deg(R_pred, R_true), c_pred.detach(), c_true.detach()
    )
