"""The one entry point of relocalisation data: ``relocalisation_data(data_config)``.

It builds the training and test datasets the ``data`` section describes: a rendered synthetic
scene (through the render cache), a Cambridge Landmarks scene (poses, and with its
``reconstruction.nvm`` the visible scene points and each frame's intrinsics) or a 7-Scenes scene
(poses and the colour camera's intrinsics; no scene points).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor
from torch.utils.data import Dataset

from posereg.data.reloc.cache import rendered_splits
from posereg.data.reloc.cambridge import nvm_intrinsics, points_seen_by, read_cambridge_poses, read_nvm
from posereg.data.reloc.config import RelocDataConfig
from posereg.data.reloc.frames import RelocalisationDataset, check_image_files
from posereg.data.reloc.images import ImageTransform, channel_statistics, load_rgb
from posereg.data.reloc.poses import CameraPoses
from posereg.data.reloc.render import RenderedScene, SceneDataset
from posereg.data.reloc.seven_scenes import (
    read_seven_scenes,
    read_seven_scenes_split,
    seven_scenes_intrinsics,
)

__all__ = ["RelocalisationData", "relocalisation_data"]


@dataclass(frozen=True)
class RelocalisationData:
    """Training and test frames with what the network and the losses need to know of them.

    Attributes:
        train, test: datasets of dict items (``image`` in [0, 1], ``position``, ``rotation``,
            ``quaternion``, and when available ``points``, ``points_mask``, ``intrinsics``).
        train_poses, test_poses: their camera-to-world poses (float64).
        has_points: whether items carry scene points (the reprojection loss needs them).
        statistics_images: yields the ``(3, H, W)`` images in [0, 1] that ``image_statistics``
            summarises (read only when a new network needs them, not for evaluation).
    """

    train: Dataset
    test: Dataset
    train_poses: CameraPoses
    test_poses: CameraPoses
    has_points: bool
    statistics_images: Callable[[], Iterable[Tensor]]

    def image_statistics(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and standard deviation of the training images (``channel_statistics``)."""
        mean, std = channel_statistics(self.statistics_images())
        return mean.tolist(), std.tolist()


def _poses_of(rendered: RenderedScene) -> CameraPoses:
    return CameraPoses(tuple(f"frame{i:06d}" for i in range(len(rendered))), rendered.positions, rendered.rotations)


def _synthetic_data(data: RelocDataConfig, progress: bool, write_cache: bool) -> RelocalisationData:
    train, test = rendered_splits(data, progress=progress, write_cache=write_cache)
    return RelocalisationData(SceneDataset(train), SceneDataset(test), _poses_of(train), _poses_of(test), True,
                              lambda: (image.float() / 255 for image in train.images))  # fmt: skip


def _real_data(data: RelocDataConfig, seed: int) -> RelocalisationData:
    assert data.root is not None
    root = Path(data.root)
    if data.source == "cambridge":
        split = [read_cambridge_poses(root / f"dataset_{name}.txt", max_abs_position=data.max_abs_position)
                 for name in ("train", "test")]  # fmt: skip
    else:
        split = [read_seven_scenes(root, read_seven_scenes_split(root / f"{name}Split.txt")) for name in ("Train", "Test")]
    for poses in split:
        check_image_files(root, poses.files)  # all images, before any is read (the NVM's image size)
    nvm = root / "reconstruction.nvm"
    points: list[tuple[Tensor, Tensor] | None] = [None, None]
    intrinsics: list[Tensor | None] = [None, None]
    if data.source == "cambridge" and nvm.is_file():
        reconstruction = read_nvm(nvm)
        for i, poses in enumerate(split):
            points[i] = points_seen_by(reconstruction, poses, data.points_per_image, allow_missing=True)
            hw = load_rgb(root / poses.files[0]).shape[-2:]
            intrinsics[i] = nvm_intrinsics(reconstruction, poses.files, hw)
    elif data.source == "seven_scenes":
        intrinsics = [seven_scenes_intrinsics(), seven_scenes_intrinsics()]
    datasets = []
    for i, poses in enumerate(split):
        transform = ImageTransform(resize=data.resize, crop=data.crop, train=i == 0)
        pts = points[i]
        datasets.append(RelocalisationDataset(root, poses, transform, points=None if pts is None else pts[0],
                                              points_mask=None if pts is None else pts[1], intrinsics=intrinsics[i],
                                              seed=seed))  # fmt: skip
    # statistics of up to 200 evenly spread training images, centre-cropped
    probe = ImageTransform(resize=data.resize, crop=data.crop, train=False)
    step = max(1, len(split[0]) // 200)
    return RelocalisationData(datasets[0], datasets[1], split[0], split[1], points[0] is not None,
                              lambda: (probe(load_rgb(root / f)) for f in split[0].files[::step]))  # fmt: skip


def relocalisation_data(
    data: RelocDataConfig, *, seed: int = 0, progress: bool = False, write_cache: bool = True
) -> RelocalisationData:
    """The frames ``data`` describes: a rendered synthetic scene, Cambridge Landmarks or 7-Scenes.

    Args:
        data: the ``data`` section of a relocalisation configuration.
        seed: the seed of the random crops of real training images (the configuration's ``seed``).
        progress: show a progress bar while rendering a synthetic scene.
        write_cache: write new renders to ``data.cache``; pass False when ``data`` came from a
            model file (evaluation), so that no path named by a model file is written.

    Raises:
        FileNotFoundError: missing dataset files. ValueError: malformed ones.
    """
    return _synthetic_data(data, progress, write_cache) if data.source == "synthetic" else _real_data(data, seed)
