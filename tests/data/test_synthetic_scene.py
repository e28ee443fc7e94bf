"""The synthetic relocalisation scenes: ray casting, projection conventions, visibility, labels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from posereg.data.synthetic_scene import (
    Box,
    CameraPath,
    RenderedScene,
    SceneDataset,
    SyntheticScene,
    _cast,
    camera_path_poses,
    look_rotation,
    render_images,
    render_scene,
    room_scene,
    scene_points,
    street_scene,
    visible_points,
)
from posereg.geometry import project_points, quaternion_to_matrix


def _brute_force_hit(o: np.ndarray, d: np.ndarray, boxes: list[Box]) -> tuple[float, int]:
    """Nearest positive intersection of a ray with every face rectangle, by plane equations."""
    best, best_face = math.inf, -1
    for b, box in enumerate(boxes):
        lo, hi = np.array(box.lower), np.array(box.upper)
        for axis in range(3):
            for side, value in enumerate((lo[axis], hi[axis])):
                if abs(d[axis]) < 1e-12:
                    continue
                t = (value - o[axis]) / d[axis]
                if t <= 1e-6:
                    continue
                p = o + t * d
                others = [a for a in range(3) if a != axis]
                if all(lo[a] - 1e-9 <= p[a] <= hi[a] + 1e-9 for a in others) and t < best:
                    best, best_face = t, 6 * b + 2 * axis + side
    return best, best_face


def test_cast_matches_brute_force_plane_intersections() -> None:
    boxes = [
        Box((0.0, 0.0, 0.0), (10.0, 8.0, 4.0), enclosing=True),
        Box((6.0, 1.0, 0.0), (7.0, 3.0, 2.0)),
        Box((2.0, 5.0, 1.0), (4.0, 6.0, 3.0)),
        Box((1.0, 1.0, 0.0), (1.5, 1.5, 4.0)),
    ]
    scene = SyntheticScene("test", tuple(boxes), room_scene().path)
    lower, upper, enclosing = scene.box_tensors()
    g = torch.Generator().manual_seed(0)
    origins = torch.tensor([3.0, 3.0, 1.5], dtype=torch.float64) + 0.5 * torch.randn(300, 3, generator=g, dtype=torch.float64)
    directions = torch.randn(300, 3, generator=g, dtype=torch.float64)
    inside = ((origins[:, None] > lower) & (origins[:, None] < upper)).all(-1)
    valid = ~(inside & ~enclosing).any(-1) & inside[:, 0]  # inside the room, outside the furniture
    origins, directions = origins[valid], directions[valid]
    assert origins.shape[0] > 250
    t, face = _cast(origins, directions, lower, upper, enclosing)
    for i in range(origins.shape[0]):
        t_ref, face_ref = _brute_force_hit(origins[i].numpy(), directions[i].numpy(), boxes)
        assert t[i].item() == pytest.approx(t_ref, rel=1e-9)
        assert face[i].item() == face_ref


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


def _flat_textures(scene: SyntheticScene) -> torch.Tensor:
    """One distinct flat colour per face."""
    faces = 6 * len(scene.boxes)
    colours = torch.rand(3, faces, generator=torch.Generator().manual_seed(3))
    return colours[:, :, None, None].expand(3, faces, 4, 4).contiguous()


def _face_of_points(scene: SyntheticScene, points: torch.Tensor) -> torch.Tensor:
    lower, upper, _ = scene.box_tensors()
    faces = torch.full((points.shape[0],), -1)
    for b in range(lower.shape[0]):
        for axis in range(3):
            for side, value in enumerate((lower[b, axis], upper[b, axis])):
                on = (points[:, axis] - value).abs() < 1e-9
                faces[on & (faces < 0)] = 6 * b + 2 * axis + side
    return faces


def test_visible_points_land_on_pixels_showing_their_face() -> None:
    """Projection (K, pixel convention), ray casting and visibility agree with the rendered image."""
    scene = room_scene()
    tex = _flat_textures(scene)
    size = 48
    R, c = camera_path_poses(scene.path, 6, seed=4)
    images = render_images(scene, R, c, size, supersample=1, textures=tex)
    points = scene_points(scene, 3000, seed=0)
    seen = visible_points(scene, R, c, points, size)
    faces = _face_of_points(scene, points)
    shade = 0.55 + 0.45 * torch.tensor([0.35, 0.55, 0.76]).abs()
    agree = total = 0
    for i in range(6):
        uv, _ = project_points(R[i], c[i], points[seen[i]], scene.intrinsics(size))
        cols, rows = uv[:, 0].round().long(), uv[:, 1].round().long()  # pixel centres at integers (OpenCV)
        f = faces[seen[i]]
        expected = tex[:, f, 0, 0] * shade[(f % 6) // 2]
        got = images[i][:, rows, cols]
        agree += int(((got - expected).abs().max(0).values < 1e-4).sum())
        total += int(f.numel())
    assert total > 300
    assert agree / total > 0.95  # the rest sit within a pixel of an edge


def test_occluded_points_are_not_visible() -> None:
    wall_point = torch.tensor([[10.0, 4.0, 2.0]], dtype=torch.float64)
    path = CameraPath((1, 1, 1), (2, 2, 2), (0.0, 0.0), (0.0, 0.0), 0.0)
    room = Box((0.0, 0.0, 0.0), (10.0, 8.0, 4.0), enclosing=True)
    blocker = Box((5.0, 3.5, 1.5), (6.0, 4.5, 2.5))
    R = look_rotation(*(torch.zeros(1, dtype=torch.float64),) * 3)
    c = torch.tensor([[2.0, 4.0, 2.0]], dtype=torch.float64)
    open_scene = SyntheticScene("open", (room,), path)
    blocked = SyntheticScene("blocked", (room, blocker), path)
    assert visible_points(open_scene, R, c, wall_point, 32).item()
    assert not visible_points(blocked, R, c, wall_point, 32).item()
    behind = torch.tensor([[0.0, 4.0, 2.0]], dtype=torch.float64)  # on the wall behind the camera
    assert not visible_points(open_scene, R, c, behind, 32).item()


def test_render_scene_labels_points_and_determinism(tmp_path) -> None:
    scene = room_scene()
    a = render_scene(scene, sequences=[0, 1], frames=6, size=32, points_per_image=24)
    b = render_scene(scene, sequences=[0, 1], frames=6, size=32, points_per_image=24)
    assert torch.equal(a.images, b.images) and torch.equal(a.points, b.points)
    assert a.images.shape == (12, 3, 32, 32) and a.images.dtype == torch.uint8
    assert a.sequence.tolist() == [0] * 6 + [1] * 6
    assert a.points_mask.sum(1).min() >= 10  # every frame sees enough landmarks
    # every stored point is in front of its camera and inside the image
    uv, front = project_points(a.rotations, a.positions, a.points.double(), a.intrinsics)
    inside = front & (uv >= -0.5).all(-1) & (uv < 31.5).all(-1)
    assert bool(inside[a.points_mask].all())
    other = render_scene(scene, sequences=[1000], frames=6, size=32, points_per_image=24)
    assert (other.positions - a.positions[:6]).norm(dim=-1).min() > 1e-3
    path = tmp_path / "room.pt"
    a.save(path)
    loaded = RenderedScene.load(path)
    assert torch.equal(loaded.images, a.images) and loaded.scene == "room"
    torch.save({"images": a.images}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="not a posereg rendered scene"):
        RenderedScene.load(tmp_path / "bad.pt")
    with pytest.raises(FileNotFoundError):
        RenderedScene.load(tmp_path / "missing.pt")


def test_scene_dataset_items() -> None:
    rendered = render_scene(room_scene(), sequences=[0], frames=4, size=32, points_per_image=16)
    data = SceneDataset(rendered)
    item = data[(3, 2)]
    assert item["image"].shape == (3, 32, 32) and 0 <= item["image"].min() and item["image"].max() <= 1
    torch.testing.assert_close(quaternion_to_matrix(item["quaternion"]), item["rotation"], atol=1e-6, rtol=0)
    assert item["quaternion"][0] >= 0
    assert item["points"].shape == (16, 3) and item["points_mask"].dtype == torch.bool
    with pytest.raises(IndexError):
        data[4]


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
    from posereg.geometry import matrix_to_quaternion

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
    with pytest.raises(ValueError, match="expected shapes"):
        render_images(room_scene(), torch.eye(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64), 16)
    with pytest.raises(ValueError, match="at least one sequence"):
        render_scene(room_scene(), sequences=[], frames=4)
