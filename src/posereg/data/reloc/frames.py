"""``RelocalisationDataset``: the frames of a real relocalisation scene (image files and poses) as training items.

``check_image_files`` checks every image when a dataset is built, not when an item is loaded:
names stay under the dataset folder (``relative_image_name``; symbolic links inside it are
followed), files exist, and their headers are images Pillow can read. Training then cannot stop
mid-run on a missing or foreign file (a truncated image body is still only found when decoded).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from posereg.data.dataset import EpochDataset, item_generator
from posereg.data.reloc.images import ImageTransform, adjust_intrinsics, image_size, load_rgb
from posereg.data.reloc.poses import CameraPoses, listed, relative_image_name

__all__ = ["RelocalisationDataset", "check_image_files"]


def check_image_files(root: str | Path, files: Sequence[str]) -> list[Path]:
    """The paths of the images ``files`` (names relative to ``root``), every one checked.

    Raises:
        ValueError: no files; a name outside ``root`` (absolute, a drive, ``..``); or files whose
            header is not an image, saying how many and listing the first few.
        FileNotFoundError: missing files, saying how many and listing the first few.
    """
    root = Path(root)
    if not files:
        raise ValueError(f"{root}: no frames (an empty label file, or every frame dropped?)")
    paths = [root / relative_image_name(f, f"{root}: image {i} of {len(files)}") for i, f in enumerate(files)]
    missing = [f for f, p in zip(files, paths) if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{root}: {len(missing)} of {len(paths)} images missing: {listed(missing)}")
    unreadable = []
    for f, p in zip(files, paths):
        try:
            image_size(p)
        except (OSError, ValueError) as err:
            unreadable.append(f"{f} ({str(err).removeprefix(f'{p}: ')})")
    if unreadable:
        raise ValueError(f"{root}: {len(unreadable)} of {len(paths)} images cannot be read: "
                         f"{listed(unreadable)}")  # fmt: skip
    return paths


class RelocalisationDataset(EpochDataset):
    """Images and camera-to-world poses for pose regression (PoseNet and its losses).

    Image ``i`` is ``root / poses.files[i]``; all are checked at construction
    (``check_image_files``: names under ``root``, files present, image headers). With
    ``transform.train`` item ``i`` of epoch ``e`` crops with ``item_generator(seed, i, e)``
    (``set_epoch``; or request ``(epoch, index)``). Optional
    ``points`` ``(N, M, 3)`` world points with ``points_mask`` ``(N, M)`` (``points_seen_by``)
    feed the reprojection loss; optional ``intrinsics`` ``(3, 3)`` or ``(N, 3, 3)`` pixel
    intrinsics of the original images give those of each output image (its actual crop).

    Items (float32): ``image`` ``(3, h, w)``, ``position`` ``(3,)`` (metres), ``rotation``
    ``(3, 3)`` camera-to-world, ``quaternion`` ``(4,)`` camera-to-world with ``w >= 0``, and when
    given ``points`` ``(M, 3)``, ``points_mask`` ``(M,)`` bool, ``intrinsics`` ``(3, 3)``.
    """

    def __init__(
        self, root: str | Path, poses: CameraPoses, transform: ImageTransform, *, points: Tensor | None = None,
        points_mask: Tensor | None = None, intrinsics: Tensor | None = None, seed: int = 0,
    ) -> None:  # fmt: skip
        paths = check_image_files(root, poses.files)
        super().__init__(len(poses), seed)
        self.root, self.poses, self.transform, self.paths = Path(root), poses, transform, paths
        n = len(poses)
        if points is not None or points_mask is not None:
            if points is None or points_mask is None or points.dim() != 3 or points.shape[0] != n \
                    or points.shape[2] != 3 or points_mask.shape != points.shape[:2]:  # fmt: skip
                raise ValueError(f"points, points_mask: expected ({n}, M, 3) and ({n}, M), got "
                                 f"{getattr(points, 'shape', None)} and {getattr(points_mask, 'shape', None)}")  # fmt: skip
            points, points_mask = points.to(torch.float32), points_mask.to(torch.bool)
        if intrinsics is not None and tuple(intrinsics.shape) not in ((3, 3), (n, 3, 3)):
            raise ValueError(f"intrinsics: expected (3, 3) or ({n}, 3, 3), got {tuple(intrinsics.shape)}")
        self.points, self.points_mask, self.intrinsics = points, points_mask, intrinsics
        self.positions, self.rotations = poses.positions.float(), poses.rotations.float()
        self.quaternions = poses.quaternions.float()

    def __getitem__(self, index: int | tuple[int, int]) -> dict[str, Tensor]:
        """Item ``index`` of the current epoch, or ``(epoch, index)`` (``EpochSampler``)."""
        epoch, index = self.resolve(index)
        generator = item_generator(self.seed, index, epoch) if self.transform.train else None
        image, scale, offset = self.transform.apply(load_rgb(self.paths[index]), generator)
        item = {"image": image, "position": self.positions[index], "rotation": self.rotations[index],
                "quaternion": self.quaternions[index]}  # fmt: skip
        if self.points is not None and self.points_mask is not None:
            item["points"], item["points_mask"] = self.points[index], self.points_mask[index]
        if self.intrinsics is not None:
            K = self.intrinsics if self.intrinsics.dim() == 2 else self.intrinsics[index]
            item["intrinsics"] = adjust_intrinsics(K.to(torch.float64), scale, offset).float()
        return item
