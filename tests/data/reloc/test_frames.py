"""``RelocalisationDataset``: items of real frames (images, poses, points, intrinsics) and their crops."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from posereg.data.reloc import (
    ImageTransform,
    RelocalisationDataset,
    center_crop,
    load_rgb,
    read_seven_scenes,
    resize_shorter,
    seven_scenes_intrinsics,
)
from posereg.geometry import quaternion_to_matrix
from tests.data.reloc.conftest import seven_scenes_tree


def test_relocalisation_dataset_items(tmp_path: Path) -> None:
    seven_scenes_tree(tmp_path, {1: 3})
    poses = read_seven_scenes(tmp_path, [1])
    points = torch.randn(3, 5, 3, dtype=torch.float64)
    mask = torch.rand(3, 5) > 0.5
    K = seven_scenes_intrinsics() / 40 + torch.diag(torch.tensor([0.0, 0.0, 1 - 1 / 40], dtype=torch.float64))
    ds = RelocalisationDataset(tmp_path, poses, ImageTransform(resize=8, crop=8), points=points, points_mask=mask,
                               intrinsics=K)  # fmt: skip
    assert len(ds) == 3
    item = ds[1]
    assert item["image"].shape == (3, 8, 8) and item["image"].dtype == torch.float32
    assert item["position"].dtype == item["rotation"].dtype == item["quaternion"].dtype == torch.float32
    torch.testing.assert_close(item["position"], poses.positions[1].float())
    torch.testing.assert_close(item["rotation"], poses.rotations[1].float())
    assert item["quaternion"][0] >= 0
    torch.testing.assert_close(quaternion_to_matrix(item["quaternion"]), item["rotation"], atol=1e-6, rtol=0)
    assert item["points"].dtype == torch.float32 and torch.equal(item["points_mask"], mask[1])
    torch.testing.assert_close(item["intrinsics"], ImageTransform(resize=8, crop=8).intrinsics(K, (12, 16)).float())
    expected = center_crop(resize_shorter(load_rgb(tmp_path / poses.files[1]), 8), 8)
    torch.testing.assert_close(item["image"], expected)


def test_relocalisation_dataset_random_crops_per_epoch(tmp_path: Path) -> None:
    seven_scenes_tree(tmp_path, {1: 2})
    ds = RelocalisationDataset(tmp_path, read_seven_scenes(tmp_path, [1]), ImageTransform(None, 6, train=True), seed=3)
    first = ds[0]["image"]
    assert torch.equal(first, ds[0]["image"])  # reproducible
    assert torch.equal(first, ds[(0, 0)]["image"])  # (epoch, index) requests
    others = [ds[(e, 0)]["image"] for e in range(1, 8)]
    assert any(not torch.equal(first, o) for o in others)
    ds.set_epoch(3)
    assert torch.equal(ds[0]["image"], others[2])


def test_relocalisation_dataset_missing_files(tmp_path: Path) -> None:
    seven_scenes_tree(tmp_path, {1: 3})
    poses = read_seven_scenes(tmp_path, [1])
    (tmp_path / poses.files[2]).unlink()
    with pytest.raises(FileNotFoundError, match=r"1 of 3 images missing: .*frame-000002\.color\.png"):
        RelocalisationDataset(tmp_path, poses, ImageTransform())
    with pytest.raises(ValueError, match="points"):
        RelocalisationDataset(tmp_path, poses.select([0, 1]), ImageTransform(), points=torch.zeros(2, 4, 3))

