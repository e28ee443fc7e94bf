"""``RelocalisationDataset``: items of real frames (images, poses, points, intrinsics) and their crops."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from posereg.data.reloc import (
    CameraPoses,
    ImageTransform,
    RelocalisationDataset,
    center_crop,
    load_rgb,
    read_seven_scenes,
    resize_shorter,
    seven_scenes_intrinsics,
)
from posereg.data.reloc.frames import check_image_files
from posereg.data.reloc.images import image_size
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
    with pytest.raises(FileNotFoundError, match=r"1 of 3 images missing: seq-01/frame-000002\.color\.png$"):
        RelocalisationDataset(tmp_path, poses, ImageTransform())
    with pytest.raises(ValueError, match="points"):
        RelocalisationDataset(tmp_path, poses.select([0, 1]), ImageTransform(), points=torch.zeros(2, 4, 3))


def _break(root: Path, files: list[str], how: str) -> list[str]:
    """Spoil the image tree ``root`` of ``files`` in one way; the names the dataset is then given."""
    if how == "missing":
        for f in files[1:]:
            (root / f).unlink()
    elif how == "text":
        (root / files[1]).write_text("root:x:0:0:root:/root:/bin/bash\n")
    elif how == "empty":
        (root / files[2]).write_bytes(b"")
    elif how == "truncated header":
        (root / files[0]).write_bytes((root / files[0]).read_bytes()[:12])
    elif how == "folder":
        (root / files[0]).unlink()
        (root / files[0]).mkdir()
    elif how == "outside":
        outside = root.parent / "outside.png"
        outside.write_bytes((root / files[0]).read_bytes())  # a real image, but not under the root
        return [files[0], "../outside.png", files[2]]
    elif how == "absolute":
        return [files[0], str((root / files[1]).resolve()).replace("/", "//", 1), files[2]]
    elif how == "none":
        return []
    return files


@pytest.mark.parametrize(
    ("how", "error", "match"),
    [
        ("missing", FileNotFoundError, r"data: 2 of 3 images missing: seq-01/frame-000001\.color\.png, seq-01/frame-0"),
        ("folder", FileNotFoundError, r"1 of 3 images missing: seq-01/frame-000000\.color\.png"),
        ("text", ValueError, r"data: 1 of 3 images cannot be read: seq-01/frame-000001\.color\.png \(not a readable image"),
        ("empty", ValueError, r"1 of 3 images cannot be read: seq-01/frame-000002\.color\.png"),
        ("truncated header", ValueError, r"1 of 3 images cannot be read: seq-01/frame-000000\.color\.png"),
        ("outside", ValueError, r"data: image 1 of 3: image path '\.\./outside\.png' must name a file under"),
        ("absolute", ValueError, r"data: image 1 of 3: image path '//.*' must name a file under"),
        ("none", ValueError, r"data: no frames"),
    ],
)
def test_image_files_checked_when_the_dataset_is_built(tmp_path: Path, how: str, error: type, match: str) -> None:
    root = tmp_path / "data"
    seven_scenes_tree(root, {1: 3})
    poses = read_seven_scenes(root, [1])
    files = _break(root, list(poses.files), how)
    with pytest.raises(error, match=match):
        check_image_files(root, files)
    named = CameraPoses(tuple(files), poses.positions[: len(files)], poses.rotations[: len(files)])
    with pytest.raises(error, match=match):
        RelocalisationDataset(root, named, ImageTransform(resize=8, crop=8))


def test_image_files_under_the_root(tmp_path: Path) -> None:
    seven_scenes_tree(tmp_path, {1: 2})
    files = read_seven_scenes(tmp_path, [1]).files
    # PoseNet's root-relative names (a leading '/'), backslashes and './' are names under the root
    variants = ["/" + files[0], files[1].replace("/", "\\"), "./" + files[0]]
    assert check_image_files(tmp_path, variants) == [tmp_path / files[0], tmp_path / files[1], tmp_path / files[0]]
    assert image_size(tmp_path / files[0]) == (12, 16)
