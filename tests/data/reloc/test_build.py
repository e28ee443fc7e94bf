"""``relocalisation_data``: the one entry point, for rendered scenes (through the render cache),
Cambridge Landmarks and 7-Scenes folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from posereg.data.reloc import (
    TEST_SEED_BASE,
    ImageTransform,
    RelocDataConfig,
    RenderedScene,
    camera_path_poses,
    relocalisation_data,
    render_scene,
    rendered_splits,
    room_scene,
    seven_scenes_intrinsics,
)
from posereg.losses import estimate_metric_weights, pose_spread
from tests.data.reloc.conftest import HEADER, seven_scenes_tree, write_cambridge_scene

TINY = {"scene": "room", "train_sequences": 2, "test_sequences": 1, "frames": 16, "size": 32, "points_per_image": 16}


def _batch(data, n: int) -> dict[str, torch.Tensor]:  # type: ignore[no-untyped-def]
    items = [data[i] for i in range(n)]
    return {k: torch.stack([item[k] for item in items]) for k in items[0]}


@pytest.fixture(scope="module")
def cached(tmp_path_factory):  # type: ignore[no-untyped-def]
    tmp_path = tmp_path_factory.mktemp("scenes")
    config = RelocDataConfig(**TINY, cache=str(tmp_path / "cache"))
    return tmp_path, config, *rendered_splits(config)


def test_renders_are_cached_by_settings(cached) -> None:  # type: ignore[no-untyped-def]
    tmp_path, config, train, test = cached
    # the cache's file names (and so its format) are those of the files written before
    files = sorted(p.name for p in (tmp_path / "cache").glob("*.pt"))
    assert files == ["room_test_70896252fc6b.pt", "room_train_fe45799fa5ba.pt"]
    again, _ = rendered_splits(config)
    assert torch.equal(again.images, train.images)
    assert torch.equal(RenderedScene.load(tmp_path / "cache" / files[1]).points, train.points)
    small, _ = rendered_splits(config.replace(frames=8))
    assert len(small) == 16 and len(sorted((tmp_path / "cache").glob("*.pt"))) == 4
    assert (test.positions[:, None] - train.positions[None]).norm(dim=-1).min() > 1e-4  # other paths
    # training paths use seeds 0.., test paths TEST_SEED_BASE..
    torch.testing.assert_close(train.positions[:16], camera_path_poses(room_scene().path, 16, 0)[1])
    torch.testing.assert_close(test.positions, camera_path_poses(room_scene().path, 16, TEST_SEED_BASE)[1])


def test_synthetic_data(cached) -> None:  # type: ignore[no-untyped-def]
    _, config, rendered, _ = cached
    data = relocalisation_data(config)
    # validation: the last of the 2 training paths; the test paths are only for evaluation
    assert (len(data.train), len(data.val), len(data.test)) == (16, 16, 16) and data.has_points
    assert data.train_poses.files[0] == "frame000000" and data.val_poses is not None
    torch.testing.assert_close(data.train_poses.positions, rendered.positions[:16])
    torch.testing.assert_close(data.val_poses.positions, rendered.positions[16:])
    torch.testing.assert_close(data.val[3]["position"], rendered.positions[19].float())
    pixels = rendered.images[:16].double().div(255).transpose(0, 1).reshape(3, -1)  # training images only
    mean, std = data.image_statistics()
    torch.testing.assert_close(torch.tensor(mean, dtype=torch.float64), pixels.mean(1))
    torch.testing.assert_close(torch.tensor(std, dtype=torch.float64), pixels.std(1, correction=0))
    batch = _batch(data.test, 4)
    assert set(batch) == {"image", "position", "rotation", "quaternion", "points", "points_mask", "intrinsics"}


def test_cambridge_layout_reads_back(tmp_path: Path) -> None:
    """A rendered scene written in Cambridge's format reads back with the same poses, and the
    NVM focal lengths give the renderer's own intrinsics, through the resize and the crop."""
    root = tmp_path / "Synthetic"
    rendered = render_scene(room_scene(), sequences=[0, 1], frames=8, size=40, points_per_image=8)
    write_cambridge_scene(root, rendered, "train")
    (root / "dataset_test.txt").write_text((root / "dataset_train.txt").read_text())
    config = RelocDataConfig(source="cambridge", root=str(root), resize=36, crop=32, points_per_image=20)
    data = relocalisation_data(config)
    assert data.has_points and (len(data.train), len(data.val)) == (8, 8)  # seq2 held out for validation
    torch.testing.assert_close(data.train_poses.positions, rendered.positions[:8], atol=1e-8, rtol=0)
    torch.testing.assert_close(data.train_poses.rotations, rendered.rotations[:8], atol=1e-8, rtol=0)
    assert {f.split("/")[0] for f in data.val_poses.files} == {"seq2"} and "points" in data.val[0]
    batch = _batch(data.test, 8)
    assert batch["image"].shape == (8, 3, 32, 32) and int(batch["points_mask"].sum()) > 8 * 5
    expected = rendered.intrinsics[0, 0].item() * 36 / 40
    assert batch["intrinsics"][0, 0, 0].item() == pytest.approx(expected, rel=1e-5)
    # one K per frame from the NVM: the renderer's K of the 40 x 40 images (centre principal point)
    assert data.test.intrinsics.shape == (16, 3, 3)
    torch.testing.assert_close(data.test.intrinsics, rendered.intrinsics.expand(16, 3, 3), atol=1e-6, rtol=0)
    after = ImageTransform(resize=36, crop=32).intrinsics(rendered.intrinsics, (40, 40)).float()
    torch.testing.assert_close(batch["intrinsics"], after.expand(8, 3, 3), atol=1e-4, rtol=0)
    # without the reconstruction there are no points (and no intrinsics)
    (root / "reconstruction.nvm").unlink()
    bare = relocalisation_data(config)
    assert not bare.has_points and "points" not in bare.test[0] and "intrinsics" not in bare.test[0]


def test_seven_scenes_layout(tmp_path: Path) -> None:
    truth = seven_scenes_tree(tmp_path, {1: 3, 2: 2})
    (tmp_path / "TrainSplit.txt").write_text("sequence1\n")
    (tmp_path / "TestSplit.txt").write_text("sequence2\n")
    data = relocalisation_data(RelocDataConfig(source="seven_scenes", root=str(tmp_path), resize=20, crop=16))
    assert data.val_poses is not None
    # one training sequence: its last tenth (at least a frame) validates
    assert (len(data.train), len(data.val), len(data.test)) == (2, 1, 2) and not data.has_points
    assert set(data.train_poses.files) | set(data.val_poses.files) | set(data.test_poses.files) == set(truth)
    assert data.val_poses.files == (sorted(data.train_poses.files + data.val_poses.files)[-1],)
    item = data.test[1]
    assert item["image"].shape == (3, 16, 16) and "points" not in item
    # 12 x 16 images resized to 20 x 27 (shorter side 20), then a central 16 x 16 crop
    K = ImageTransform(resize=20, crop=16).intrinsics(seven_scenes_intrinsics(), (12, 16))
    torch.testing.assert_close(item["intrinsics"], K.float())
    train = data.train
    assert train[(0, 0)]["image"].shape == (3, 16, 16)  # random crops for training, seeded by the seed
    reseeded = relocalisation_data(RelocDataConfig(source="seven_scenes", root=str(tmp_path), resize=20, crop=16), seed=3)
    assert (train.seed, reseeded.train.seed) == (0, 3)
    crops = [(train[(e, 0)]["image"], reseeded.train[(e, 0)]["image"]) for e in range(4)]
    assert any(not torch.equal(a, b) for a, b in crops)
    assert torch.equal(data.test[0]["image"], reseeded.test[0]["image"])  # central crops for testing
    mean, std = data.image_statistics()
    assert len(mean) == len(std) == 3 and min(std) > 0


def test_missing_dataset_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        relocalisation_data(RelocDataConfig(source="cambridge", root=str(tmp_path)))
    with pytest.raises(FileNotFoundError):
        relocalisation_data(RelocDataConfig(source="seven_scenes", root=str(tmp_path)))


@pytest.fixture(scope="module")
def cambridge_scene(tmp_path_factory):  # type: ignore[no-untyped-def]
    """A rendered scene in Cambridge's layout (train = test), its renders, and a copy to spoil per test."""
    root = tmp_path_factory.mktemp("cambridge") / "Synthetic"
    rendered = render_scene(room_scene(), sequences=[0, 1], frames=8, size=40, points_per_image=8)
    write_cambridge_scene(root, rendered, "train")
    (root / "dataset_test.txt").write_text((root / "dataset_train.txt").read_text())
    return root, rendered


def _copy(tree: Path, tmp_path: Path) -> Path:
    shutil.copytree(tree, tmp_path / tree.name)
    return tmp_path / tree.name


def test_cambridge_outliers_never_reach_the_metric_weights(cambridge_scene, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = _copy(cambridge_scene[0], tmp_path)
    train = root / "dataset_train.txt"
    train.write_text(train.read_text() + "seq1/frame00099.png 3.1e9 1.0 2.0 1 0 0 0\n")  # no image: dropped first
    config = RelocDataConfig(source="cambridge", root=str(root), resize=36, crop=32)
    with pytest.warns(UserWarning, match=r"dataset_train\.txt: dropped 1 of 17 frames as position outliers"):
        data = relocalisation_data(config)
    train, val = data.train_poses, data.val_poses  # the last sequence folder is the validation split
    assert len(train) + len(val) == 16 and "seq1/frame00099.png" not in train.files + val.files
    poses = train
    W = estimate_metric_weights(pose_spread(poses.rotations, poses.positions))
    assert bool(torch.isfinite(W).all())


@pytest.mark.parametrize(
    ("spoil", "error", "match"),
    [
        # the first image is read for the NVM's image size: it is checked (with all the others) before
        (lambda root: (root / "seq1/frame00000.png").unlink(), FileNotFoundError,
         r"Synthetic: 1 of 16 images missing: seq1/frame00000\.png$"),
        (lambda root: (root / "seq2/frame00009.png").write_text("not an image"), ValueError,
         r"Synthetic: 1 of 16 images cannot be read: seq2/frame00009\.png"),
        (lambda root: _append(root / "dataset_test.txt", "../../../etc/passwd 1 2 3 1 0 0 0"), ValueError,
         r"dataset_test\.txt:20: image path '\.\./\.\./\.\./etc/passwd' must name a file under the dataset folder"),
        (lambda root: _append(root / "dataset_train.txt", "/etc/passwd 1 2 3 1 0 0 0"), FileNotFoundError,
         r"Synthetic: 1 of 17 images missing: etc/passwd$"),  # PoseNet's '/name' is under the root
        (lambda root: (root / "dataset_test.txt").write_text(HEADER), ValueError, r"Synthetic: no frames"),
    ],
)  # fmt: skip
def test_cambridge_bad_files_refused_when_built(cambridge_scene, tmp_path: Path, spoil, error, match) -> None:  # type: ignore[no-untyped-def]
    root = _copy(cambridge_scene[0], tmp_path)
    spoil(root)
    with pytest.raises(error, match=match):
        relocalisation_data(RelocDataConfig(source="cambridge", root=str(root), resize=36, crop=32))


def _append(path: Path, row: str) -> None:
    path.write_text(path.read_text() + row + "\n")


def test_validation_split_holds_out_whole_sequences_or_each_sequences_tail() -> None:
    from posereg.data.reloc import CameraPoses
    from posereg.data.reloc.build import validation_split

    def poses(files: list[str]) -> CameraPoses:
        n = len(files)
        return CameraPoses(tuple(files), torch.arange(3 * n, dtype=torch.float64).reshape(n, 3),
                           torch.eye(3, dtype=torch.float64).expand(n, 3, 3))  # fmt: skip

    listed = [f"seq{s}/f{i}.png" for s in (3, 1, 2) for i in range(4)]  # listed order, not sorted
    train, val = validation_split(poses(listed), 1)
    assert val.files == tuple(listed[8:]) and train.files == tuple(listed[:8])  # the last listed: seq2
    train, val = validation_split(poses(listed), 2)
    assert {f.split("/")[0] for f in val.files} == {"seq1", "seq2"} and len(train) == 4
    one = [f"seq1/f{i:02d}.png" for i in range(25)]  # no more sequences than val_sequences: each one's tail
    train, val = validation_split(poses(one), 1)
    assert val.files == tuple(one[-2:]) and train.files == tuple(one[:-2])
    torch.testing.assert_close(val.positions, poses(one).positions[-2:])
    train, val = validation_split(poses(["a.png", "b.png"]), 1)  # flat lists: one sequence
    assert (train.files, val.files) == (("a.png",), ("b.png",))
    train, val = validation_split(poses(["s1/a.png", "s2/b.png"]), 2)  # sequences of one frame each
    assert (len(train), len(val)) == (1, 1)
    with pytest.raises(ValueError, match="at least 2"):
        validation_split(poses(["s1/a.png"]), 1)
