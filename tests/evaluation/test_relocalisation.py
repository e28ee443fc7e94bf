"""The per-frame reprojection error of relocalisation results, in pixels: exact values for
shifted and turned cameras, agreement with the reprojection loss, frames without points."""

from __future__ import annotations

import math
import statistics

import pytest
import torch

from posereg.evaluation.relocalisation import (
    evaluate_relocalisation,
    relocalisation_result,
    reprojection_error_px,
)
from posereg.geometry import rotvec_to_matrix
from posereg.losses import reprojection_loss

F = 100.0
K = torch.tensor([[F, 0.0, 32.0], [0.0, F, 32.0], [0.0, 0.0, 1.0]], dtype=torch.float64)


def _item(points: list[list[float]], mask: list[bool]) -> dict[str, torch.Tensor]:
    """A frame of a camera at the origin looking down +z (camera-to-world identity)."""
    return {"rotation": torch.eye(3, dtype=torch.float64), "position": torch.zeros(3, dtype=torch.float64),
            "points": torch.tensor(points, dtype=torch.float64), "points_mask": torch.tensor(mask),
            "intrinsics": K}  # fmt: skip


def test_shift_and_turn_give_the_pinhole_displacements() -> None:
    a = 0.03
    dataset = [
        _item([[0.0, 0.0, 10.0], [1.0, -2.0, 10.0]], [True, True]),  # camera moved 0.5 m sideways
        _item([[0.0, 0.0, 8.0], [5.0, 5.0, 8.0]], [True, False]),  # turned by a about y; 2nd point masked
        _item([[0.0, 0.0, 8.0], [0.0, 0.0, 9.0]], [False, False]),  # no point: NaN
    ]
    R_pred = torch.stack([torch.eye(3, dtype=torch.float64), rotvec_to_matrix(torch.tensor([0.0, a, 0.0], dtype=torch.float64)),
                          torch.eye(3, dtype=torch.float64)])  # fmt: skip
    c_pred = torch.tensor([[0.5, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    err = reprojection_error_px(R_pred, c_pred, dataset, batch_size=2)  # two batches
    # a sideways shift d moves points at depth z by f d / z; a turn moves the axis point by f tan(a)
    torch.testing.assert_close(err[:2], torch.tensor([F * 0.5 / 10.0, F * math.tan(a)], dtype=torch.float64))
    assert math.isnan(err[2])
    result = relocalisation_result(R_pred, c_pred, torch.eye(3, dtype=torch.float64).expand(3, 3, 3), 0 * c_pred, err)
    assert result.median_reprojection_px == pytest.approx(statistics.median([5.0, F * math.tan(a)]))
    assert relocalisation_result(R_pred, c_pred, R_pred, c_pred).median_reprojection_px is None


def test_agrees_with_the_euclidean_reprojection_loss() -> None:
    gen = torch.Generator().manual_seed(3)
    n, m = 5, 7
    points = torch.randn(n, m, 3, generator=gen, dtype=torch.float64) + torch.tensor([0.0, 0.0, 6.0], dtype=torch.float64)
    mask = torch.rand(n, m, generator=gen) > 0.3
    mask[:, 0] = True
    dataset = [_item(points[i].tolist(), mask[i].tolist()) for i in range(n)]
    R_pred = rotvec_to_matrix(0.05 * torch.randn(n, 3, generator=gen, dtype=torch.float64))
    c_pred = 0.2 * torch.randn(n, 3, generator=gen, dtype=torch.float64)
    eye = torch.eye(3, dtype=torch.float64).expand(n, 3, 3)
    expected = reprojection_loss(R_pred, c_pred, eye, torch.zeros(n, 3, dtype=torch.float64), points, mask, K,
                                 gamma=2, reduction="none")  # fmt: skip
    torch.testing.assert_close(reprojection_error_px(R_pred, c_pred, dataset), expected)


def test_bad_inputs_raise() -> None:
    dataset = [_item([[0.0, 0.0, 5.0]], [True])]
    R, c = torch.eye(3, dtype=torch.float64)[None], torch.zeros(1, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"expected \(1, 3, 3\) and \(1, 3\)"):
        reprojection_error_px(R.expand(2, 3, 3), c, dataset)
    without_points = [{k: v for k, v in dataset[0].items() if k != "points"}]
    with pytest.raises(ValueError, match=r"needs \['points'\]"):
        reprojection_error_px(R, c, without_points)
    with pytest.raises(ValueError, match="reprojection_px: expected shape"):
        relocalisation_result(R, c, R, c, torch.zeros(2))


def test_relocalisation_result_units() -> None:
    R = rotvec_to_matrix(torch.zeros(3, 3))
    c = torch.zeros(3, 3)
    R_pred = rotvec_to_matrix(torch.tensor([[0.0, 0.0, math.radians(10)], [0.0, math.radians(4), 0.0], [0.0, 0.0, 0.0]]))
    c_pred = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    result = relocalisation_result(R_pred, c_pred, R, c)
    torch.testing.assert_close(result.position_m, torch.tensor([5.0, 1.0, 0.0]))
    torch.testing.assert_close(result.rotation_deg, torch.tensor([10.0, 4.0, 0.0]), atol=1e-3, rtol=0)
    assert result.median_position_m == 1.0 and result.median_rotation_deg == pytest.approx(4.0, abs=1e-3)
    assert result.cell() == "1.00 m, 4.0°"
    with pytest.raises(ValueError, match="matching"):
        relocalisation_result(R_pred[:2], c_pred, R, c)


class _ShiftedOracle(torch.nn.Module):
    """Reads each frame's true pose off its image and answers it moved by ``shift`` metres."""

    def __init__(self, shift: list[float]) -> None:
        super().__init__()
        self.shift = torch.tensor(shift)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return image[:, 0, 0, :4], image[:, 1, 0, :3] + self.shift

    def to_matrix(self, rotation: torch.Tensor) -> torch.Tensor:
        from posereg.geometry import quaternion_to_matrix

        return quaternion_to_matrix(rotation)


def test_evaluate_relocalisation_scores_the_test_frames() -> None:
    from posereg.data.reloc import CameraPoses, RelocalisationData
    from posereg.geometry import matrix_to_quaternion

    gen = torch.Generator().manual_seed(0)
    n = 5
    # cameras turned about the optical axis (world z), at height 0, looking at a point 10 m up
    R = rotvec_to_matrix(torch.randn(n, 1, generator=gen, dtype=torch.float64) * torch.tensor([0.0, 0.0, 1.0]))
    c = torch.randn(n, 3, generator=gen, dtype=torch.float64) * torch.tensor([1.0, 1.0, 0.0])
    items = []
    for i in range(n):
        image = torch.zeros(3, 1, 4)
        image[0, 0], image[1, 0, :3] = matrix_to_quaternion(R[i]).float(), c[i].float()
        item = _item([[*c[i, :2].tolist(), 10.0]], [True])
        item.update(image=image, rotation=R[i].float(), position=c[i].float(), points=item["points"].float(),
                    intrinsics=K.float())  # fmt: skip
        items.append(item)
    poses = CameraPoses(tuple(str(i) for i in range(n)), c, R)
    data = RelocalisationData(items[:1], items, poses.select([0]), poses, True, lambda: [])
    result = evaluate_relocalisation(_ShiftedOracle([0.3, 0.4, 0.0]), data, batch_size=2)
    torch.testing.assert_close(result.position_m, torch.full((n,), 0.5), atol=1e-5, rtol=0)
    assert result.median_rotation_deg < 0.1 and result.reprojection_px is not None
    # a camera moved 0.5 m sideways moves a point at 10 m depth by f * 0.5 / 10 pixels
    torch.testing.assert_close(result.reprojection_px, torch.full((n,), F * 0.5 / 10), atol=1e-3, rtol=0)
    no_points = RelocalisationData(items[:1], items, poses.select([0]), poses, False, lambda: [])
    assert evaluate_relocalisation(_ShiftedOracle([0.0, 0.0, 0.0]), no_points).reprojection_px is None
