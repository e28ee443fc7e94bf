"""7-Scenes readers: split files, camera-to-world pose files, the colour camera's intrinsics."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from posereg.data.reloc import (
    read_cambridge_poses,
    read_seven_scenes,
    read_seven_scenes_split,
    seven_scenes_intrinsics,
)
from posereg.geometry import project_points
from tests.data.reloc.conftest import check_poses, labels, seven_scenes_tree


def test_read_seven_scenes_split(tmp_path: Path) -> None:
    path = tmp_path / "TrainSplit.txt"
    path.write_text("sequence1\n\n# sequence2\nsequence4")
    assert read_seven_scenes_split(path) == [1, 4]
    path.write_text("sequence1\nseq-02\n")
    with pytest.raises(ValueError, match=r"TrainSplit\.txt:2: expected 'sequenceN'"):
        read_seven_scenes_split(path)
    path.write_bytes(b"\xef\xbb\xbfsequence1\r\nsequence3\r\n")  # a byte-order mark, Windows line endings
    assert read_seven_scenes_split(path) == [1, 3]
    path.write_bytes(b"sequence1\n\xff\n")
    with pytest.raises(ValueError, match=r"TrainSplit\.txt: not a UTF-8 text file"):
        read_seven_scenes_split(path)


def test_read_seven_scenes_poses(tmp_path: Path) -> None:
    truth = seven_scenes_tree(tmp_path, {1: 3, 2: 2})
    poses = read_seven_scenes(tmp_path, [2, 1])
    assert poses.files[:2] == ("seq-02/frame-000000.color.png", "seq-02/frame-000001.color.png")
    assert set(poses.files) == set(truth)
    for f, c, R in zip(poses.files, poses.positions, poses.rotations):
        np.testing.assert_allclose(R.numpy(), truth[f][:3, :3], atol=1e-9)
        np.testing.assert_allclose(c.numpy(), truth[f][:3, 3], atol=1e-9)
    assert len(read_seven_scenes(tmp_path, [1])) == 3


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda T: T @ np.diag([1.0, 1.0, 1.01, 1.0]), "rigid"),  # scaled: not orthonormal
        (lambda T: T @ np.diag([1.0, 1.0, -1.0, 1.0]), "rigid"),  # reflection: det -1
        (lambda T: T + np.outer([0, 0, 0, 1], [0.1, 0, 0, 0]), "rigid"),  # last row
    ],
)
def test_seven_scenes_non_rigid_pose(tmp_path: Path, change, match: str) -> None:  # type: ignore[no-untyped-def]
    truth = seven_scenes_tree(tmp_path, {1: 3})
    bad = tmp_path / "seq-01" / "frame-000001.pose.txt"
    np.savetxt(bad, change(truth["seq-01/frame-000001.color.png"]))
    with pytest.raises(ValueError, match=rf"frame-000001\.pose\.txt: expected a {match}"):
        read_seven_scenes(tmp_path, [1])


@pytest.mark.parametrize("bad", ["inf", "-1.#IND"])
def test_seven_scenes_skips_non_finite_pose(tmp_path: Path, bad: str) -> None:
    seven_scenes_tree(tmp_path, {1: 4})
    (tmp_path / "seq-01" / "frame-000002.pose.txt").write_text(" ".join([bad] * 16))
    with pytest.warns(UserWarning, match=r"skipped 1 frames .*seq-01/frame-000002\.pose\.txt"):
        poses = read_seven_scenes(tmp_path, [1])
    assert len(poses) == 3 and "seq-01/frame-000002.color.png" not in poses.files


def test_seven_scenes_missing_sequence_and_garbage(tmp_path: Path) -> None:
    seven_scenes_tree(tmp_path, {1: 2})
    with pytest.raises(FileNotFoundError, match="seq-03"):
        read_seven_scenes(tmp_path, [1, 3])
    (tmp_path / "seq-01" / "frame-000001.pose.txt").write_text("1 0 0\n0 1 0\n")
    with pytest.raises(ValueError, match=r"frame-000001\.pose\.txt: expected a 4x4"):
        read_seven_scenes(tmp_path, [1])


def test_seven_scenes_intrinsics() -> None:
    K = seven_scenes_intrinsics()
    assert K.shape == (3, 3) and K.dtype == torch.float64
    # The optical axis lands on the principal point, a ray 45 degrees right lands 525 px right of it.
    uv, _ = project_points(torch.eye(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64),
                           torch.tensor([[0.0, 0, 2], [1, 0, 1]], dtype=torch.float64), K)  # fmt: skip
    torch.testing.assert_close(uv, torch.tensor([[320.0, 240.0], [845.0, 240.0]], dtype=torch.float64))



def test_real_seven_scenes_heads_labels() -> None:
    poses = read_cambridge_poses(labels("7Scenes_heads/kendall_posenet_heads_train.txt"), world_to_camera_quaternion=False)
    assert len(poses) == 1000 and poses.files[0] == "seq-01/frame-000000.color.png"
    check_poses(poses)
    assert read_seven_scenes_split(labels("7Scenes_heads/atloc_train_split.txt")) == [2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the real files have no outliers to drop
        assert len(read_cambridge_poses(labels("KingsCollege/dataset_test.reconstructed.txt"), max_abs_position=1e4)) == 343
