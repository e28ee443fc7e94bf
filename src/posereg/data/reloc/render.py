"""Rendering synthetic relocalisation scenes by ray casting, with exact labels; rendered sequences as data.

Rendering is pure torch on the CPU (no GPU or display): one ray per sub-pixel, intersected with
every box by the slab method, shaded by a per-face texture and a fixed light. Frames, units and
pixel conventions as in ``posereg.data.reloc.scene``. ``render_scene`` renders whole sequences
with their poses, intrinsics and visible landmarks (``RenderedScene``); ``SceneDataset`` serves
them as training items.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from posereg.data.dataset import EpochDataset
from posereg.data.reloc.scene import SyntheticScene, camera_path_poses, face_frames, scene_points
from posereg.geometry import matrix_to_quaternion, project_points

__all__ = ["RenderedScene", "SceneDataset", "render_images", "render_scene", "visible_points"]

_EPS = 1e-6
_LIGHT = (0.35, 0.55, 0.76)  # a fixed sun/lamp direction: each face orientation gets its own shade


def _cast(origins: Tensor, directions: Tensor, lower: Tensor, upper: Tensor, enclosing: Tensor) -> tuple[Tensor, Tensor]:
    """First hit of each ray with the boxes (slab method).

    Args:
        origins, directions: ``(N, 3)`` rays (directions need not be unit).
        lower, upper, enclosing: the boxes (see ``SyntheticScene.box_tensors``).

    Returns:
        ``(t (N,), face (N,))``: ray parameter of the hit (inf if none) and face index
        ``6 box + 2 axis + side`` (side 0: the face at ``lower``; -1 if none).
    """
    safe = torch.where(directions.abs() < _EPS, torch.full_like(directions, _EPS), directions)
    inv = 1.0 / safe
    t1 = (lower - origins[:, None]) * inv[:, None]  # (N, B, 3)
    t2 = (upper - origins[:, None]) * inv[:, None]
    near_axis, far_axis = torch.minimum(t1, t2), torch.maximum(t1, t2)
    near, near_idx = near_axis.max(-1)
    far, far_idx = far_axis.min(-1)
    crosses = near <= far
    # A solid box is entered at `near` through the face its ray meets first: the lower face
    # when the ray runs up that axis. An enclosing box is left at `far`, through the face
    # ahead of the ray: the upper face when it runs up that axis.
    t = torch.where(enclosing, far, near)
    axis = torch.where(enclosing, far_idx, near_idx)
    up = torch.gather(directions[:, None].expand(-1, lower.shape[0], -1), 2, axis.unsqueeze(-1)).squeeze(-1) > 0
    side = torch.where(enclosing, up, ~up).long()
    valid = crosses & (t > _EPS)
    t = torch.where(valid, t, torch.inf)
    best, box = t.min(-1)
    face = 6 * box + 2 * axis.gather(1, box[:, None]).squeeze(1) + side.gather(1, box[:, None]).squeeze(1)
    return best, torch.where(torch.isfinite(best), face, -1)


def render_images(scene: SyntheticScene, R: Tensor, c: Tensor, size: int, *, supersample: int = 2,
                  textures: Tensor | None = None) -> Tensor:  # fmt: skip
    """Render ``size x size`` RGB images of the scene from camera-to-world poses.

    Args:
        scene: the scene.
        R, c: ``(N, 3, 3)``, ``(N, 3)`` camera-to-world poses (metres).
        size: image side in pixels (intrinsics ``scene.intrinsics(size)``).
        supersample: rays per pixel side (anti-aliasing by averaging).
        textures: ``scene.textures()``, to reuse across calls.

    Returns:
        ``(N, 3, size, size)`` float32 images in [0, 1].
    """
    if R.dim() != 3 or R.shape[1:] != (3, 3) or c.shape != (R.shape[0], 3):
        raise ValueError(f"R, c: expected shapes (N, 3, 3) and (N, 3), got {tuple(R.shape)} and {tuple(c.shape)}")
    tex = scene.textures() if textures is None else textures
    lower, upper, enclosing = scene.box_tensors()
    axis, origin, extent = face_frames(lower, upper)
    K = scene.intrinsics(size)
    n = size * supersample
    sub = (torch.arange(n, dtype=torch.float64) + 0.5) / supersample - 0.5  # sub-pixel centres, pixel j spans j -+ 1/2
    v, u = torch.meshgrid(sub, sub, indexing="ij")
    rays_cam = torch.stack(((u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], torch.ones_like(u)), -1).reshape(-1, 3)
    light = torch.tensor(_LIGHT, dtype=torch.float64)
    shade_of_axis = 0.55 + 0.45 * light.abs()  # |n . light| for the two faces of each axis
    faces = tex.shape[1]
    out = []
    for Ri, ci in zip(R.to(torch.float64), c.to(torch.float64)):
        d = rays_cam @ Ri.T
        t, face = _cast(ci.expand_as(d), d, lower, upper, enclosing)
        hit = ci + t.clamp(max=1e6)[:, None] * d
        f = face.clamp(min=0)
        a = axis[f]
        a1, a2 = (a + 1) % 3, (a + 2) % 3
        rel = (hit - origin[f]) / extent[f]
        uu = rel.gather(1, a1[:, None]).squeeze(1)
        vv = rel.gather(1, a2[:, None]).squeeze(1)
        zz = f.double() / max(faces - 1, 1)
        grid = torch.stack((uu, vv, zz), -1).mul(2).sub(1).float().view(1, 1, 1, -1, 3)
        colour = F.grid_sample(tex[None], grid, mode="bilinear", padding_mode="border", align_corners=True)
        colour = colour.view(3, -1) * shade_of_axis[a].float()
        colour = torch.where(face >= 0, colour, 0.0)
        image = colour.view(3, n, n)
        out.append(F.avg_pool2d(image[None], supersample)[0] if supersample > 1 else image)
    return torch.stack(out).clamp(0, 1)


def visible_points(scene: SyntheticScene, R: Tensor, c: Tensor, points: Tensor, size: int,
                   tolerance: float = 1e-4) -> Tensor:  # fmt: skip
    """Which points each camera sees: in front, inside the image, and not occluded.

    A point is unoccluded when the first surface along the ray from the camera centre to it
    lies no nearer than the point itself (up to ``tolerance`` relative distance).

    Args:
        scene: the scene.
        R, c: ``(N, 3, 3)``, ``(N, 3)`` camera-to-world poses.
        points: ``(P, 3)`` world points (on the scene's surfaces).
        size: image side in pixels.

    Returns:
        ``(N, P)`` bool.
    """
    lower, upper, enclosing = scene.box_tensors()
    K = scene.intrinsics(size)
    uv, front = project_points(R.double(), c.double(), points.double().expand(R.shape[0], -1, -1), K)
    inside = front & (uv >= -0.5).all(-1) & (uv < size - 0.5).all(-1)
    seen = torch.zeros_like(inside)
    for i in range(R.shape[0]):
        idx = inside[i].nonzero().squeeze(1)
        if idx.numel() == 0:
            continue
        d = points[idx].double() - c[i].double()
        t, _ = _cast(c[i].double().expand_as(d), d, lower, upper, enclosing)
        seen[i, idx] = t >= 1.0 - tolerance  # the point itself is at t = 1
    return seen


@dataclass
class RenderedScene:
    """Rendered sequences of a scene with their labels.

    Attributes:
        images: ``(N, 3, H, W)`` uint8.
        rotations: ``(N, 3, 3)`` float64 camera-to-world rotations.
        positions: ``(N, 3)`` float64 camera centres (metres, world).
        intrinsics: ``(3, 3)`` float64 pixel intrinsics of the images.
        points: ``(N, M, 3)`` float32 world points seen by each image (padded).
        points_mask: ``(N, M)`` bool, True for real points.
        sequence: ``(N,)`` int64 sequence number of each frame.
        scene: the scene's name.
    """

    images: Tensor
    rotations: Tensor
    positions: Tensor
    intrinsics: Tensor
    points: Tensor
    points_mask: Tensor
    sequence: Tensor
    scene: str = field(default="")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def save(self, path: str | Path) -> None:
        """Write a ``.pt`` file (read back with ``RenderedScene.load``)."""
        torch.save({k: getattr(self, k) for k in self.__dataclass_fields__}, path)

    @classmethod
    def load(cls, path: str | Path) -> RenderedScene:
        """Read a file written by ``save`` (safe ``weights_only`` loading).

        Raises:
            FileNotFoundError: no such file. ValueError: not a rendered scene.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such rendered scene")
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or set(payload) != set(cls.__dataclass_fields__):
            raise ValueError(f"{path}: not a posereg rendered scene (expected keys {sorted(cls.__dataclass_fields__)})")
        return cls(**payload)


def render_scene(
    scene: SyntheticScene,
    *,
    sequences: Sequence[int],
    frames: int,
    size: int = 96,
    points_per_image: int = 64,
    landmark_count: int = 4000,
    progress: bool = False,
) -> RenderedScene:
    """Render the sequences with the given seeds: images, poses, intrinsics and visible points.

    Args:
        scene: the scene.
        sequences: one path seed per sequence (training and test use different seeds).
        frames: frames per sequence.
        size: image side (pixels).
        points_per_image: at most this many visible landmarks are kept per image (an even,
            seeded subsample when more are visible).
        landmark_count: the number of landmarks spread over the scene (seed ``texture_seed``).
        progress: show a progress bar.
    """
    from tqdm.auto import tqdm

    if not sequences:
        raise ValueError("sequences: expected at least one sequence seed")
    textures = scene.textures()
    landmarks = scene_points(scene, landmark_count, scene.texture_seed)
    Rs, cs, images, pts, masks, seq = [], [], [], [], [], []
    bar = tqdm(total=len(sequences) * frames, desc=f"render {scene.name}", unit="img", disable=not progress)
    for number, seed in enumerate(sequences):
        R, c = camera_path_poses(scene.path, frames, seed)
        for start in range(0, frames, 16):
            Rb, cb = R[start : start + 16], c[start : start + 16]
            images.append((render_images(scene, Rb, cb, size, textures=textures) * 255).round().to(torch.uint8))
            seen = visible_points(scene, Rb, cb, landmarks, size)
            for i in range(Rb.shape[0]):
                p, m = _pick_points(landmarks, seen[i], points_per_image, seed * 100003 + start + i)
                pts.append(p)
                masks.append(m)
            bar.update(Rb.shape[0])
        Rs.append(R)
        cs.append(c)
        seq.append(torch.full((frames,), number, dtype=torch.int64))
    bar.close()
    return RenderedScene(
        torch.cat(images), torch.cat(Rs), torch.cat(cs), scene.intrinsics(size),
        torch.stack(pts), torch.stack(masks), torch.cat(seq), scene.name,
    )  # fmt: skip


def _pick_points(landmarks: Tensor, seen: Tensor, count: int, seed: int) -> tuple[Tensor, Tensor]:
    idx = seen.nonzero().squeeze(1)
    if idx.numel() > count:
        g = torch.Generator().manual_seed(int(np.random.SeedSequence(seed).generate_state(1)[0]))
        idx = idx[torch.randperm(idx.numel(), generator=g)[:count]].sort().values
    points = torch.zeros(count, 3, dtype=torch.float32)
    mask = torch.zeros(count, dtype=torch.bool)
    points[: idx.numel()] = landmarks[idx].float()
    mask[: idx.numel()] = True
    return points, mask


class SceneDataset(EpochDataset):
    """Training items of a ``RenderedScene`` (the same frames every epoch).

    Items are dicts: ``image`` ``(3, H, W)`` float32 in [0, 1], ``position`` ``(3,)`` (metres),
    ``rotation`` ``(3, 3)`` and ``quaternion`` ``(4,)`` (camera-to-world, ``w >= 0``),
    ``points`` ``(M, 3)``, ``points_mask`` ``(M,)`` and the pixel ``intrinsics`` ``(3, 3)``; all
    float32 but the mask. Indices are
    plain ints or ``EpochSampler``'s ``(epoch, index)`` pairs.
    """

    def __init__(self, rendered: RenderedScene) -> None:
        super().__init__(len(rendered), seed=0)
        self.rendered = rendered
        self.quaternions = matrix_to_quaternion(rendered.rotations).float()
        self.intrinsics = rendered.intrinsics.float()

    def __getitem__(self, index: int | tuple[int, int]) -> dict[str, Tensor]:
        _, i = self.resolve(index)
        r = self.rendered
        return {"image": r.images[i].float() / 255, "position": r.positions[i].float(), "rotation": r.rotations[i].float(),
                "quaternion": self.quaternions[i], "points": r.points[i], "points_mask": r.points_mask[i],
                "intrinsics": self.intrinsics}  # fmt: skip
