"""Pinhole projection with camera-to-world poses."""

from __future__ import annotations

import math

import pytest
import torch

from posereg import geometry as g

F64 = torch.float64


def test_hand_projected_example():
    # Camera at c = (1, 2, 3), rotated 90 degrees about world z: camera x axis = world y.
    R = g.rotvec_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2], dtype=F64))
    c = torch.tensor([1.0, 2.0, 3.0], dtype=F64)
    points = torch.tensor([[1.0, 4.0, 7.0], [3.0, 2.0, 5.0]], dtype=F64)
    # x_cam = R^T (g - c): (0, 2, 4) -> (2, 0, 4); (2, 0, 2) -> (0, -2, 2).
    torch.testing.assert_close(
        g.world_to_camera(R, c, points), torch.tensor([[2.0, 0.0, 4.0], [0.0, -2.0, 2.0]], dtype=F64)
    )
    uv, front = g.project_points(R, c, points)
    torch.testing.assert_close(uv, torch.tensor([[0.5, 0.0], [0.0, -1.0]], dtype=F64))
    assert front.tolist() == [True, True]
    K = torch.tensor([[500.0, 0.0, 320.0], [0.0, 400.0, 240.0], [0.0, 0.0, 1.0]], dtype=F64)
    uv_px, _ = g.project_points(R, c, points, K)
    torch.testing.assert_close(uv_px, torch.tensor([[570.0, 240.0], [320.0, -160.0]], dtype=F64))


def test_batched_intrinsics_match_one_at_a_time():
    gen = torch.Generator().manual_seed(0)
    R = g.random_rotation(4, generator=gen, dtype=F64)
    c = torch.randn(4, 3, generator=gen, dtype=F64)
    points = torch.randn(4, 7, 3, generator=gen, dtype=F64) * 5
    K = torch.eye(3, dtype=F64).repeat(4, 1, 1)
    K[:, 0, 0] = torch.tensor([100.0, 200.0, 300.0, 400.0], dtype=F64)
    K[:, :2, 2] = torch.randn(4, 2, generator=gen, dtype=F64)
    uv, front = g.project_points(R, c, points, K)
    for i in range(4):
        uv_i, front_i = g.project_points(R[i], c[i], points[i], K[i])
        torch.testing.assert_close(uv[i], uv_i)
        assert torch.equal(front[i], front_i)


def test_points_behind_are_flagged_and_stay_finite():
    R = torch.eye(3, dtype=F64)
    c = torch.zeros(3, dtype=F64, requires_grad=True)
    points = torch.tensor([[0.0, 0.0, -1.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 2.0]], dtype=F64)
    uv, front = g.project_points(R, c, points)
    assert front.tolist() == [False, False, False, True]
    uv.sum().backward()
    assert torch.isfinite(uv).all() and torch.isfinite(c.grad).all()


def test_bad_input():
    R, c = torch.eye(3), torch.zeros(3)
    with pytest.raises(ValueError, match=r"points: expected .*\(\.\.\., N, 3\)"):
        g.world_to_camera(R, c, torch.zeros(3))
    with pytest.raises(ValueError, match=r"K: expected .*\(\.\.\., 3, 3\)"):
        g.project_points(R, c, torch.ones(2, 3), torch.eye(4))
    with pytest.raises(ValueError, match=r"c: expected .*\(\.\.\., 3\)"):
        g.project_points(R, torch.zeros(2), torch.ones(2, 3))
