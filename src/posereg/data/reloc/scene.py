"""Synthetic relocalisation scenes: textured boxes, camera paths through them and their landmarks.

Neither Cambridge Landmarks nor 7-Scenes can be downloaded here, so posereg renders its own
scenes (``posereg.data.reloc.render``), with everything Kendall & Cipolla's losses need: images,
camera poses, intrinsics and the 3D scene points visible in each image (the reprojection loss's
``G'``). This module holds the scenes' geometry; rendering and visibility live in ``render``.

Frames and units:
- World: metres, ``z`` up.
- Cameras: camera-to-world ``(R, c)`` as in ``posereg.geometry.camera``: ``R`` maps camera
  axes to world axes, ``c`` is the camera centre; OpenCV axes (``x`` right, ``y`` down,
  ``z`` forward).
- Pixels: ``K`` maps camera coordinates to pixels, ``(u, v) = K (x/z, y/z, 1)``, with
  OpenCV's convention (as ``posereg.data.reloc.images``): the centre of the pixel in row
  ``i``, column ``j`` is ``(u, v) = (j, i)``, so it covers ``u in [j - 1/2, j + 1/2)`` and
  ``project_points(R, c, g, K)`` rounded to integers indexes the images.

Two layouts of different scale (``room_scene``: metres, like 7-Scenes; ``street_scene``:
tens of metres, like Cambridge Landmarks) make the rotation/translation balance differ as it
does between those datasets. Camera paths are smooth random curves (sums of sinusoids), one
seed per sequence; training and test sequences are different paths through the same region.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = [
    "SCENES", "Box", "CameraPath", "SyntheticScene", "camera_path_poses", "face_frames", "look_rotation",
    "room_scene", "scene_points", "street_scene", "synthetic_scene",
]  # fmt: skip


@dataclass(frozen=True)
class Box:
    """An axis-aligned box of the scene (metres).

    Attributes:
        lower, upper: opposite corners, ``lower < upper`` on every axis.
        enclosing: the cameras are inside it and see its inner faces (room walls, the sky).
        landmarks: scene points are sampled on its faces (False for the sky, which
            structure from motion would not reconstruct).
    """

    lower: tuple[float, float, float]
    upper: tuple[float, float, float]
    enclosing: bool = False
    landmarks: bool = True

    def __post_init__(self) -> None:
        if len(self.lower) != 3 or len(self.upper) != 3 or not all(a < b for a, b in zip(self.lower, self.upper)):
            raise ValueError(f"Box: expected 3D corners with lower < upper, got {self.lower} and {self.upper}")


@dataclass(frozen=True)
class CameraPath:
    """Where the cameras of a scene move and look (each quantity a smooth curve in its range).

    Attributes:
        position_low, position_high: the box of camera centres (metres).
        yaw_deg: ``(centre, half-range)`` of the heading about world ``z``; 0 looks along ``+x``.
        pitch_deg: ``(low, high)`` elevation of the optical axis (positive looks up).
        roll_deg: largest roll about the optical axis.
    """

    position_low: tuple[float, float, float]
    position_high: tuple[float, float, float]
    yaw_deg: tuple[float, float]
    pitch_deg: tuple[float, float]
    roll_deg: float


@dataclass(frozen=True)
class SyntheticScene:
    """A scene: boxes, their textures' seed, where the cameras go and how they see.

    Attributes:
        name: a label for logs and file names.
        boxes: the geometry; at least one ``enclosing`` box so that every ray hits something.
        path: the camera path distribution.
        texture_seed: seed of the face textures.
        texture_size: texels per face side.
        fov_deg: horizontal field of view of the (square-pixel) camera.
    """

    name: str
    boxes: tuple[Box, ...]
    path: CameraPath
    texture_seed: int = 0
    texture_size: int = 96
    fov_deg: float = 60.0

    def intrinsics(self, size: int) -> Tensor:
        """``(3, 3)`` float64 pixel intrinsics of a ``size x size`` image (principal point at the
        image centre, ``(size - 1) / 2`` with pixel centres at integers)."""
        f = 0.5 * size / math.tan(math.radians(self.fov_deg) / 2)
        centre = (size - 1) / 2
        return torch.tensor([[f, 0.0, centre], [0.0, f, centre], [0.0, 0.0, 1.0]], dtype=torch.float64)

    def box_tensors(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(lower (B, 3), upper (B, 3), enclosing (B,))`` float64 / bool."""
        lower = torch.tensor([b.lower for b in self.boxes], dtype=torch.float64)
        upper = torch.tensor([b.upper for b in self.boxes], dtype=torch.float64)
        return lower, upper, torch.tensor([b.enclosing for b in self.boxes])

    def textures(self) -> Tensor:
        """``(3, 6B, T, T)`` float32 face textures in [0, 1], face ``6 b + 2 axis + side``.

        Each face: a smooth random colour field plus random rectangles (windows, posters,
        doors), so that views are distinctive and edges abound.
        """
        g = torch.Generator().manual_seed(self.texture_seed)
        faces, size = 6 * len(self.boxes), self.texture_size
        base = torch.rand(faces, 3, 4, 4, generator=g) * 0.6 + 0.2
        tex = F.interpolate(base, size=(size, size), mode="bicubic", align_corners=True)
        tex = tex + 0.08 * F.interpolate(torch.randn(faces, 3, 16, 16, generator=g), size=(size, size), mode="bilinear")
        rows = torch.arange(size).view(size, 1)
        cols = torch.arange(size).view(1, size)
        for face in range(faces):
            for _ in range(int(torch.randint(4, 12, (1,), generator=g))):
                r0, c0 = torch.randint(0, size - 4, (2,), generator=g).tolist()
                h, w = torch.randint(3, size // 3, (2,), generator=g).tolist()
                inside = (rows >= r0) & (rows < r0 + h) & (cols >= c0) & (cols < c0 + w)
                colour = torch.rand(3, 1, 1, generator=g)
                tex[face] = torch.where(inside, colour, tex[face])
        return tex.clamp(0, 1).permute(1, 0, 2, 3).contiguous()


def room_scene(texture_seed: int = 1) -> SyntheticScene:
    """A furnished 6 x 5 x 3 m room; a hand-held camera moves within about 2 x 1.5 m (7-Scenes-like)."""
    boxes = (
        Box((0.0, 0.0, 0.0), (6.0, 5.0, 3.0), enclosing=True),
        Box((4.6, 0.2, 0.0), (5.8, 1.0, 2.1)),  # wardrobe
        Box((4.9, 2.0, 0.0), (5.7, 4.4, 0.8)),  # sideboard
        Box((0.3, 3.8, 0.0), (1.6, 4.8, 0.75)),  # desk
        Box((0.3, 4.3, 0.75), (1.0, 4.8, 1.3)),  # monitor
        Box((2.7, 4.5, 0.0), (3.3, 4.95, 1.9)),  # bookshelf
        Box((0.05, 0.4, 0.9), (0.15, 1.8, 1.7)),  # picture
        Box((2.9, 2.2, 0.0), (3.1, 2.4, 3.0)),  # pillar
        Box((0.0, 1.9, 0.0), (0.6, 2.7, 1.0)),  # chest
    )
    path = CameraPath((1.6, 1.4, 1.1), (3.6, 2.9, 1.7), yaw_deg=(20.0, 70.0), pitch_deg=(-25.0, 10.0), roll_deg=6.0)
    return SyntheticScene("room", boxes, path, texture_seed=texture_seed)


def street_scene(texture_seed: int = 2) -> SyntheticScene:
    """A 60 m street between building facades; cameras walk along 45 m of it (Cambridge-like)."""
    buildings = []
    widths = ((0.0, 11.0, 12.0), (12.0, 20.0, 8.0), (21.5, 33.0, 15.0), (33.0, 41.0, 10.0), (43.0, 60.0, 13.0))
    for x0, x1, height in widths:
        buildings.append(Box((x0, 7.0, 0.0), (x1, 15.0, height)))
    for x0, x1, height in ((0.0, 9.0, 9.0), (9.0, 22.0, 14.0), (24.0, 36.0, 7.0), (36.0, 48.0, 16.0), (48.0, 60.0, 11.0)):
        buildings.append(Box((x0, -15.0, 0.0), (x1, -7.0, height)))
    landmarks = (
        Box((60.0, -15.0, 0.0), (70.0, 15.0, 20.0)),  # the church closing the street
        Box((17.0, 4.0, 0.0), (18.0, 5.0, 3.5)),  # kiosk
        Box((30.0, -5.5, 0.0), (30.4, -5.1, 5.0)),  # lamp post
        Box((39.0, 3.5, 0.0), (42.0, 6.5, 1.2)),  # fountain
        Box((5.0, -6.0, 0.0), (7.0, -4.5, 2.5)),  # bus shelter
    )
    ground = Box((-40.0, -40.0, -1.0), (110.0, 40.0, 0.0))
    sky = Box((-50.0, -60.0, -2.0), (120.0, 60.0, 60.0), enclosing=True, landmarks=False)
    path = CameraPath((6.0, -3.0, 1.5), (50.0, 3.0, 1.9), yaw_deg=(0.0, 35.0), pitch_deg=(-5.0, 15.0), roll_deg=3.0)
    return SyntheticScene("street", (sky, ground, *buildings, *landmarks), path, texture_seed=texture_seed)


def look_rotation(yaw: Tensor, pitch: Tensor, roll: Tensor) -> Tensor:
    """Camera-to-world rotations of cameras with the given heading, elevation and roll (radians).

    The optical axis (camera ``z``) is ``(cos p cos y, cos p sin y, sin p)``; camera ``x``
    (right) is horizontal before the roll, camera ``y`` points down; ``roll`` turns the
    image plane about the optical axis.

    Args:
        yaw, pitch, roll: ``(...)`` angles in radians, ``|pitch| < pi / 2``.

    Returns:
        ``(..., 3, 3)`` rotations whose columns are the camera axes in world coordinates.
    """
    forward = torch.stack((pitch.cos() * yaw.cos(), pitch.cos() * yaw.sin(), pitch.sin()), dim=-1)
    up = torch.zeros_like(forward)
    up[..., 2] = 1.0
    right = torch.linalg.cross(forward, up)
    right = right / torch.linalg.vector_norm(right, dim=-1, keepdim=True)
    down = torch.linalg.cross(forward, right)
    cr, sr = roll.cos().unsqueeze(-1), roll.sin().unsqueeze(-1)
    right, down = cr * right + sr * down, -sr * right + cr * down
    return torch.stack((right, down, forward), dim=-1)


def _smooth_curve(n: int, generator: torch.Generator, terms: int = 3) -> Tensor:
    """``(n,)`` values in [0, 1]: a random sum of sinusoids over one sequence, rescaled."""
    s = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    freq = 0.4 + 1.6 * torch.rand(terms, generator=generator, dtype=torch.float64)
    phase = 2 * math.pi * torch.rand(terms, generator=generator, dtype=torch.float64)
    amp = torch.rand(terms, generator=generator, dtype=torch.float64) + 0.2
    x = (amp[:, None] * torch.sin(2 * math.pi * freq[:, None] * s + phase[:, None])).sum(0) / amp.sum()
    return 0.5 + 0.5 * x  # sum |amp sin| <= sum amp: x in [-1, 1]


def camera_path_poses(path: CameraPath, frames: int, seed: int) -> tuple[Tensor, Tensor]:
    """One camera sequence: ``frames`` poses along a smooth random path (seeded).

    Returns:
        ``(R (frames, 3, 3), c (frames, 3))`` float64 camera-to-world poses.
    """
    if frames < 2:
        raise ValueError(f"frames: expected at least 2 frames per sequence, got {frames}")
    g = torch.Generator().manual_seed(seed)
    low, high = torch.tensor(path.position_low, dtype=torch.float64), torch.tensor(path.position_high, dtype=torch.float64)
    c = low + (high - low) * torch.stack([_smooth_curve(frames, g) for _ in range(3)], dim=-1)
    yaw = math.radians(path.yaw_deg[0]) + math.radians(path.yaw_deg[1]) * (2 * _smooth_curve(frames, g) - 1)
    p0, p1 = (math.radians(a) for a in path.pitch_deg)
    pitch = p0 + (p1 - p0) * _smooth_curve(frames, g)
    roll = math.radians(path.roll_deg) * (2 * _smooth_curve(frames, g) - 1)
    return look_rotation(yaw, pitch, roll), c


def face_frames(lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per face ``6 box + 2 axis + side`` of boxes ``(B, 3)``: ``(axis (F,), origin (F, 3), extent (F, 3))``
    (metres), for texture coordinates and points on the faces."""
    faces = 6 * lower.shape[0]
    index = torch.arange(faces)
    box, axis = index // 6, (index % 6) // 2
    return axis, lower[box], upper[box] - lower[box]


def scene_points(scene: SyntheticScene, count: int, seed: int) -> Tensor:
    """``(count, 3)`` float64 landmark points spread over the faces of ``landmarks`` boxes (area-weighted).

    The structure-from-motion points of a real scene: what the reprojection loss projects.
    """
    lower, upper, _ = scene.box_tensors()
    keep = torch.tensor([b.landmarks for b in scene.boxes])
    axis, origin, extent = face_frames(lower, upper)
    side = torch.arange(6 * len(scene.boxes)) % 2
    e = extent
    area = e.prod(-1) / e.gather(1, axis[:, None]).squeeze(1)
    area = area * keep.repeat_interleave(6)
    g = torch.Generator().manual_seed(seed)
    face = torch.multinomial(area, count, replacement=True, generator=g)
    rel = torch.rand(count, 3, generator=g, dtype=torch.float64)
    rel.scatter_(1, axis[face][:, None], side[face][:, None].double())
    return origin[face] + rel * extent[face]


SCENES: dict[str, Callable[[], SyntheticScene]] = {"room": room_scene, "street": street_scene}
"""The synthetic scenes by the name a configuration gives them (``data.scene``)."""


def synthetic_scene(name: str) -> SyntheticScene:
    """The scene called ``name`` in ``SCENES`` ('room' or 'street').

    Raises:
        ValueError: an unknown name.
    """
    if name not in SCENES:
        raise ValueError(f"scene: expected one of {sorted(SCENES)}, got {name!r}")
    return SCENES[name]()
