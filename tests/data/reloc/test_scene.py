"""Synthetic relocalisation scenes: camera orientations and paths, scales, intrinsics, scenes by name."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from posereg.data.reloc import (
    SCENES,
    Box,
    SyntheticScene,
    camera_path_poses,
    look_rotation,
    room_scene,
    street_scene,
    synthetic_scene,
)
from posereg.geometry import matrix_to_quaternion


def test_look_rotation_axes() -> None:
    zero = torch.zeros((), dtype=torch.float64)
    R = look_rotation(zero, zero, zero)
    # Looking along +x with z up: right is -y, down is -z (OpenCV camera axes as columns).
    expected = torch.tensor([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(R, expected)


@settings(max_examples=30, deadline=None)
@given(st.floats(-3.1, 3.1), st.floats(-1.4, 1.4), st.floats(-0.5, 0.5))
def test_look_rotation_is_a_rotation_looking_where_asked(yaw: float, pitch: float, roll: float) -> None:
    y, p, r = (torch.tensor(v, dtype=torch.float64) for v in (yaw, pitch, roll))
    R = look_rotation(y, p, r)
    torch.testing.assert_close(R.T @ R, torch.eye(3, dtype=torch.float64))
    assert torch.linalg.det(R).item() == pytest.approx(1.0)
    forward = torch.tensor([math.cos(pitch) * math.cos(yaw), math.cos(pitch) * math.sin(yaw), math.sin(pitch)], dtype=torch.float64)
    torch.testing.assert_close(R[:, 2], forward)
    # roll turns the image plane about the optical axis: R = R_0 Rz(roll), R_0 unrolled with a horizontal x axis
    R0 = look_rotation(y, p, torch.zeros((), dtype=torch.float64))
    assert abs(R0[2, 0].item()) < 1e-12
    cr, sr = math.cos(roll), math.sin(roll)
    Rz = torch.tensor([[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(R0.T @ R, Rz)


def test_scenes_differ_in_scale_as_7scenes_and_cambridge() -> None:
    def spread(scene: SyntheticScene) -> float:
        c = torch.cat([camera_path_poses(scene.path, 200, seed)[1] for seed in range(4)])
        return float(c.std(0).norm())

    room, street = spread(room_scene()), spread(street_scene())
    assert room < 1.0 and street > 5.0 and street / room > 10


def test_intrinsics_put_the_optical_axis_on_the_centre_pixel() -> None:
    K = room_scene().intrinsics(33)
    assert K[0, 2].item() == K[1, 2].item() == 16.0  # pixel centres at integers: pixel 16 of 0..32
    assert 2 * torch.atan(torch.tensor(33 / 2 / K[0, 0].item())).item() == pytest.approx(math.radians(60.0))


def test_camera_paths_stay_in_their_box_and_quaternions_off_the_hemisphere_edge() -> None:
    for scene in (room_scene(), street_scene()):
        R, c = camera_path_poses(scene.path, 300, seed=7)
        assert bool((c >= torch.tensor(scene.path.position_low, dtype=torch.float64) - 1e-9).all())
        assert bool((c <= torch.tensor(scene.path.position_high, dtype=torch.float64) + 1e-9).all())
        # w stays away from 0: the w >= 0 canonicalisation never flips along a path
        assert matrix_to_quaternion(R)[:, 0].min() > 0.1


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="lower < upper"):
        Box((0.0, 0.0, 0.0), (1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="at least 2 frames"):
        camera_path_poses(room_scene().path, 1, 0)
    with pytest.raises(ValueError, match=r"scene: expected one of \['room', 'street'\], got 'moon'"):
        synthetic_scene("moon")


def test_scenes_by_name() -> None:
    assert sorted(SCENES) == ["room", "street"]
    assert synthetic_scene("street") == street_scene() and synthetic_scene("room").name == "room"
