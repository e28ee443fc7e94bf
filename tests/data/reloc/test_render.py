"""Rendering synthetic scenes: ray casting, projection conventions, visibility, rendered sequences as items."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from posereg.data.reloc import (
    Box,
    CameraPath,
    RenderedScene,
    SceneDataset,
    SyntheticScene,
    camera_path_poses,
    look_rotation,
    render_images,
    render_scene,
    room_scene,
    scene_points,
    visible_points,
)
from posereg.data.reloc.render import _cast
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


def test_bad_render_inputs() -> None:
    with pytest.raises(ValueError, match="expected shapes"):
        render_images(room_scene(), torch.eye(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64), 16)
    with pytest.raises(ValueError, match="at least one sequence"):
        render_scene(room_scene(), sequences=[], frames=4)
