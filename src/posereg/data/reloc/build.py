"""The one entry point of relocalisation data: ``relocalisation_data(data_config)``.

It builds the training, validation and test datasets the ``data`` section describes: a rendered
synthetic scene (through the render cache), a Cambridge Landmarks scene (poses, and with its
``reconstruction.nvm`` the visible scene points and each frame's intrinsics) or a 7-Scenes scene
(poses and the colour camera's intrinsics; no scene points). Validation frames are carved from the
training sequences (``RelocDataConfig.val_sequences``); the test frames are for evaluation only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from pathlib import Path, PurePosixPath

import torch
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

__all__ = ["RelocalisationData", "relocalisation_data", "validation_split"]


@dataclass(frozen=True)
class RelocalisationData:
    """Training, validation and test frames with what the network and the losses need to know of them.

    Attributes:
        train, test: datasets of dict items (``image`` in [0, 1], ``position``, ``rotation``,
            ``quaternion``, and when available ``points``, ``points_mask``, ``intrinsics``).
        train_poses, test_poses: their camera-to-world poses (float64).
        has_points: whether items carry scene points (the reprojection loss needs them).
        statistics_images: yields the ``(3, H, W)`` images in [0, 1] that ``image_statistics``
            summarises (training images only; read only when a new network needs them).
        val, val_poses: the validation frames, carved from the training sequences (disjoint
            from ``train``; None only where a caller built the data without them).
    """

    train: Dataset
    test: Dataset
    train_poses: CameraPoses
    test_poses: CameraPoses
    has_points: bool
    statistics_images: Callable[[], Iterable[Tensor]]
    val: Dataset | None = None
    val_poses: CameraPoses | None = None

    def image_statistics(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and standard deviation of the training images (``channel_statistics``)."""
        mean, std = channel_statistics(self.statistics_images())
        return mean.tolist(), std.tolist()


def _poses_of(rendered: RenderedScene) -> CameraPoses:
    return CameraPoses(tuple(f"frame{i:06d}" for i in range(len(rendered))), rendered.positions, rendered.rotations)


def _frames_of(rendered: RenderedScene, keep: Tensor) -> RenderedScene:
    """The frames of ``rendered`` where the ``(N,)`` boolean ``keep`` is True."""
    per_frame = {f.name: getattr(rendered, f.name)[keep] for f in fields(rendered) if f.name not in ("intrinsics", "scene")}
    return RenderedScene(intrinsics=rendered.intrinsics, scene=rendered.scene, **per_frame)


def _synthetic_data(data: RelocDataConfig, progress: bool, write_cache: bool) -> RelocalisationData:
    rendered, test = rendered_splits(data, progress=progress, write_cache=write_cache)
    held_out = rendered.sequence >= data.train_sequences - data.val_sequences  # the last val_sequences paths
    train, val = _frames_of(rendered, ~held_out), _frames_of(rendered, held_out)
    return RelocalisationData(SceneDataset(train), SceneDataset(test), _poses_of(train), _poses_of(test), True,
                              lambda: (image.float() / 255 for image in train.images),
                              SceneDataset(val), _poses_of(val))  # fmt: skip


def validation_split(poses: CameraPoses, val_sequences: int) -> tuple[CameraPoses, CameraPoses]:
    """``(train, val)``: the training frames of a real scene without and with its last
    ``val_sequences`` sequence folders (the first path component of each file, in the order
    listed), or, with no more sequences than that, without and with the last tenth (at least one
    frame) of every sequence.

    Raises:
        ValueError: fewer than two training frames.
    """
    if len(poses) < 2:
        raise ValueError(f"the training list has {len(poses)} frame(s): at least 2 are needed to carve out validation frames")
    sequence = [PurePosixPath(f).parts[0] if len(PurePosixPath(f).parts) > 1 else "" for f in poses.files]
    names = list(dict.fromkeys(sequence))
    if len(names) > val_sequences:
        held = set(names[-val_sequences:])
        keep = torch.tensor([s in held for s in sequence])
    else:
        keep = torch.zeros(len(poses), dtype=torch.bool)
        for name in names:
            index = [i for i, s in enumerate(sequence) if s == name]
            if len(index) > 1:
                keep[index[-max(1, len(index) // 10) :]] = True
        if not bool(keep.any()):  # sequences of one frame each
            keep[-1] = True
    return poses.select(~keep), poses.select(keep)


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
    train, val = validation_split(split[0], data.val_sequences)
    split = [train, split[1], val]
    nvm = root / "reconstruction.nvm"
    points: list[tuple[Tensor, Tensor] | None] = [None, None, None]
    intrinsics: list[Tensor | None] = [None, None, None]
    if data.source == "cambridge" and nvm.is_file():
        reconstruction = read_nvm(nvm)
        for i, poses in enumerate(split):
            points[i] = points_seen_by(reconstruction, poses, data.points_per_image, allow_missing=True)
            hw = load_rgb(root / poses.files[0]).shape[-2:]
            intrinsics[i] = nvm_intrinsics(reconstruction, poses.files, hw)
    elif data.source == "seven_scenes":
        intrinsics = [seven_scenes_intrinsics()] * 3
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
                              lambda: (probe(load_rgb(root / f)) for f in split[0].files[::step]),
                              datasets[2], split[2])  # fmt: skip


def relocalisation_data(
    data: RelocDataConfig, *, seed: int = 0, progress: bool = False, write_cache: bool = True
) -> RelocalisationData:
    """The frames ``data`` describes: a rendered synthetic scene, Cambridge Landmarks or 7-Scenes.

    Args:
        data: the ``data`` section of a relocalisation configuration.
        seed: the seed of the random crops of real training images (the configuration's ``seed``).
            Validation and test images are centre-cropped.
        progress: show a progress bar while rendering a synthetic scene.
        write_cache: write new renders to ``data.cache``; pass False when ``data`` came from a
            model file (evaluation), so that no path named by a model file is written.

    Raises:
        FileNotFoundError: missing dataset files. ValueError: malformed ones.
    """
    return _synthetic_data(data, progress, write_cache) if data.source == "synthetic" else _real_data(data, seed)
