"""Helpers shared by the relocalisation data tests: label files, image trees, scenes in Cambridge's layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.spatial.transform import Rotation

from posereg.data.reloc import CameraPoses, RenderedScene, room_scene, scene_points, visible_points
from posereg.geometry import matrix_to_quaternion

LABELS = Path(__file__).resolve().parents[4] / "shared" / "data" / "relocalisation-labels"
HEADER = "Visual Landmark Dataset V1\nImageFile, Camera Position [X Y Z W P Q R]\n\n"


def wxyz(rotations: Rotation) -> np.ndarray:
    """Scalar-first quaternions of scipy rotations (scipy is scalar-last)."""
    return np.roll(rotations.as_quat(), 1, axis=-1)



def save_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)


def seven_scenes_tree(root: Path, frames: dict[int, int], seed: int = 0) -> dict[str, np.ndarray]:
    """``seq-XX`` folders with tiny colour PNGs and random rigid camera-to-world poses."""
    rng = np.random.default_rng(seed)
    poses = {}
    for seq, n in frames.items():
        for k in range(n):
            T = np.eye(4)
            T[:3, :3] = Rotation.random(random_state=rng.integers(1 << 30)).as_matrix()
            T[:3, 3] = rng.normal(size=3)
            stem = root / f"seq-{seq:02d}" / f"frame-{k:06d}"
            save_png(stem.with_name(stem.name + ".color.png"), rng.integers(0, 256, size=(12, 16, 3)))
            np.savetxt(stem.with_name(stem.name + ".pose.txt"), T, fmt="%.10e", delimiter="\t ")
            poses[f"seq-{seq:02d}/frame-{k:06d}.color.png"] = T
    return poses


def labels(relative: str) -> Path:
    path = LABELS / relative
    if not path.is_file():
        pytest.skip(f"real label file not available: {path}")
    return path


def check_poses(poses: CameraPoses) -> None:
    assert bool(torch.isfinite(poses.positions).all())
    R = poses.rotations
    torch.testing.assert_close(R.mT @ R, torch.eye(3, dtype=torch.float64).expand_as(R), atol=1e-9, rtol=0)
    torch.testing.assert_close(poses.quaternions.norm(dim=1), torch.ones(len(poses), dtype=torch.float64))


def write_cambridge_scene(root: Path, rendered: RenderedScene, split: str, points_per_camera: int = 30) -> None:
    """A rendered split in Cambridge Landmarks' layout: PNGs, dataset_<split>.txt (world-to-camera
    quaternions) and reconstruction.nvm (cameras and the landmarks they see)."""
    names = [f"seq{1 + int(s)}/frame{i:05d}.png" for i, s in enumerate(rendered.sequence.tolist())]
    for name, image in zip(names, rendered.images):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(root / name)
    w2c = matrix_to_quaternion(rendered.rotations.mT)
    rows = [f"{n} " + " ".join(f"{v:.9f}" for v in (*c.tolist(), *q.tolist()))
            for n, c, q in zip(names, rendered.positions, w2c)]  # fmt: skip
    header = "Visual Landmark Dataset V1\nImageFile, Camera Position [X Y Z W P Q R]\n\n"
    (root / f"dataset_{split}.txt").write_text(header + "\n".join(rows) + "\n")
    landmarks = scene_points(room_scene(), 400, seed=5)
    seen = visible_points(room_scene(), rendered.rotations, rendered.positions, landmarks, rendered.images.shape[-1])
    f = rendered.intrinsics[0, 0].item()
    cams = [f"{n.replace('.png', '.jpg')} {f:.9f} " + " ".join(f"{v:.12f}" for v in (*q.tolist(), *c.tolist())) + " 0 0"
            for n, c, q in zip(names, rendered.positions, w2c)]  # fmt: skip
    pts = []
    for j, g in enumerate(landmarks.tolist()):
        cameras = seen[:, j].nonzero().flatten().tolist()[:points_per_camera]
        meas = " ".join(f"{i} 0 0.0 0.0" for i in cameras)
        pts.append(" ".join(f"{v:.12f}" for v in g) + f" 128 128 128 {len(cameras)} {meas}")
    nvm = ["NVM_V3", "", str(len(cams)), *cams, "", str(len(pts)), *pts, "", "0", ""]
    (root / "reconstruction.nvm").write_text("\n".join(nvm))
