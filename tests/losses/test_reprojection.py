"""Kendall & Cipolla's geometric reprojection loss."""

from __future__ import annotations

import math

import pytest
import torch

from posereg import geometry as g
from posereg.losses import ReprojectionLoss, reprojection_loss, reprojection_residuals

F64 = torch.float64


def _scene(seed: int, batch: int = 3, points: int = 20):
    """Cameras near the origin looking along +z at points 4-8 units in front."""
    gen = torch.Generator().manual_seed(seed)
    R = g.rotvec_to_matrix(0.1 * torch.randn(batch, 3, generator=gen, dtype=F64))
    c = 0.2 * torch.randn(batch, 3, generator=gen, dtype=F64)
    pts = torch.randn(batch, points, 3, generator=gen, dtype=F64)
    pts[..., 2] = 4 + 4 * torch.rand(batch, points, generator=gen, dtype=F64)
    return R, c, pts


def test_hand_projected_example():
    R = torch.eye(3, dtype=F64)
    c_pred = torch.zeros(3, dtype=F64)
    c_true = torch.tensor([0.1, 0.0, 0.0], dtype=F64)
    pts = torch.tensor([[0.0, 0.0, 1.0], [1.0, 1.0, 2.0]], dtype=F64)
    # True images: (-0.1, 0) and (0.45, 0.5); predicted: (0, 0) and (0.5, 0.5).
    assert reprojection_loss(R, c_pred, R, c_true, pts).item() == pytest.approx((0.1 + 0.05) / 2)
    assert reprojection_loss(R, c_pred, R, c_true, pts, gamma=2).item() == pytest.approx((0.1 + 0.05) / 2)
    K = torch.tensor([[100.0, 0, 50], [0, 100.0, 40], [0, 0, 1]], dtype=F64)
    assert reprojection_loss(R, c_pred, R, c_true, pts, K=K).item() == pytest.approx(100 * 0.075)
    # A rotation by 90 degrees about the optical axis maps (x, y) -> (y, -x) in the image.
    Rz = g.rotvec_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2], dtype=F64))
    res = reprojection_residuals(Rz, c_pred, R, c_pred, pts[1:], gamma=1)
    assert res.residual.item() == pytest.approx(abs(0.5 - 0.5) + abs(-0.5 - 0.5))


def test_zero_at_equality_positive_otherwise():
    R, c, pts = _scene(0)
    assert reprojection_loss(R, c, R, c, pts).item() == 0.0
    R2, c2, _ = _scene(1)
    assert bool((reprojection_loss(R2, c2, R, c, pts, reduction="none") > 0).all())


def test_padding_mask_gives_per_image_means_of_the_real_points():
    R, c, pts = _scene(2, batch=2, points=10)
    R2, c2, _ = _scene(3, batch=2, points=10)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[0, 6:] = False
    padded = pts.clone()
    padded[0, 6:] = 1e6  # garbage in the padding must not matter
    per = reprojection_loss(R2, c2, R, c, padded, mask, reduction="none")
    first = reprojection_loss(R2[0], c2[0], R[0], c[0], pts[0, :6], reduction="none")
    second = reprojection_loss(R2[1], c2[1], R[1], c[1], pts[1], reduction="none")
    torch.testing.assert_close(per, torch.stack((first, second)))


def test_points_behind_either_camera_are_masked_counted_and_never_nan():
    R, c, pts = _scene(4, batch=2, points=5)
    pts[0, 0] = c[0] - 3 * R[0, :, 2]  # behind both cameras
    R_pred = R.clone()
    R_pred[1] = R[1] @ g.rotvec_to_matrix(torch.tensor([0.0, math.pi, 0.0], dtype=F64))  # turned around
    c_pred = c.clone().requires_grad_(True)
    R_pred.requires_grad_(True)
    module = ReprojectionLoss(reduction="none")
    per = module(R_pred, c_pred, R, c, pts)
    assert module.last_behind == 1 + 5 and module.last_empty_images == 1
    assert per[1].item() == 0.0 and per[0].item() == pytest.approx(0.0, abs=1e-12)
    per.sum().backward()
    assert torch.isfinite(c_pred.grad).all() and torch.isfinite(R_pred.grad).all()
    res = reprojection_residuals(R_pred, c_pred, R, c, pts)
    assert res.behind.sum().item() == 6 and res.visible.sum().item() == 4


def test_clip_bounds_residuals_and_stops_their_gradient():
    R, c, pts = _scene(5, batch=1, points=8)
    c_pred = (c + torch.tensor([2.0, 0.0, 0.0], dtype=F64)).requires_grad_(True)
    res = reprojection_residuals(R, c_pred, R, c, pts, clip=0.05)
    assert res.residual.max().item() == pytest.approx(0.05)
    reprojection_loss(R, c_pred, R, c, pts, clip=1e-3).backward()
    assert torch.count_nonzero(c_pred.grad) == 0


def test_gradcheck_float64():
    R, c, pts = _scene(6, batch=2, points=6)
    v = (0.05 * torch.randn(2, 3, generator=torch.Generator().manual_seed(7), dtype=F64)).requires_grad_(True)
    c_pred = (c + 0.1).requires_grad_(True)
    K = torch.tensor([[80.0, 0, 30], [0, 90.0, 20], [0, 0, 1]], dtype=F64)
    for gamma in (1, 2):
        assert torch.autograd.gradcheck(
            lambda w, cp: reprojection_loss(R @ g.rotvec_to_matrix(w), cp, R, c, pts, K=K, gamma=gamma, reduction="none"),
            (v, c_pred),
        )


def test_bad_inputs():
    R, c, pts = _scene(8, batch=2, points=4)
    with pytest.raises(ValueError, match=r"K: expected .*\(\.\.\., 3, 3\)"):
        reprojection_loss(R, c, R, c, pts, K=torch.eye(2, dtype=F64))
    with pytest.raises(ValueError, match=r"K: expected .*\(\.\.\., 3, 3\)"):
        ReprojectionLoss(K=torch.eye(4))
    with pytest.raises(ValueError, match=r"mask: expected a bool tensor of shape \(2, 4\)"):
        reprojection_loss(R, c, R, c, pts, torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask: expected a bool tensor"):
        reprojection_loss(R, c, R, c, pts, torch.ones(2, 4))
    with pytest.raises(ValueError, match=r"points: expected .*\(\.\.\., 3\)"):
        reprojection_loss(R, c, R, c, pts[..., :2])
    with pytest.raises(ValueError, match="clip"):
        reprojection_loss(R, c, R, c, pts, clip=0.0)
    with pytest.raises(ValueError, match="gamma"):
        reprojection_loss(R, c, R, c, pts, gamma=0)


def test_predictions_and_targets_must_pair_up():
    R, c, pts = _scene(9, batch=2, points=4)
    with pytest.raises(ValueError, match=r"R_pred, R_target: expected equal shapes"):
        reprojection_loss(R[:1], c[:1], R, c, pts)
    with pytest.raises(ValueError, match=r"c_pred, c_target: expected equal shapes"):
        reprojection_loss(R, c[:1], R, c, pts)
    with pytest.raises(ValueError, match="min_depth"):
        reprojection_loss(R, c, R, c, pts, min_depth=0.0)
    K = torch.eye(3, dtype=F64)
    K[2, 0] = 0.1
    with pytest.raises(ValueError, match=r"last row \(0, 0, 1\)"):
        reprojection_loss(R, c, R, c, pts, K=K)
    with pytest.raises(ValueError, match="c, points: expected the same dtype"):
        g.world_to_camera(R, c.float(), pts)
