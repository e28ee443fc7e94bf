"""Cambridge Landmarks readers: pose files, NVM reconstructions, the intrinsics and points of frames."""

from __future__ import annotations

import inspect
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from posereg.data.reloc import (
    CameraPoses,
    RelocDataConfig,
    dataset_image_name,
    image_key,
    nvm_intrinsics,
    points_seen_by,
    read_cambridge_poses,
    read_nvm,
)
from posereg.data.reloc.poses import MAX_ABS_POSITION
from posereg.geometry import project_points
from tests.data.reloc.conftest import HEADER, check_poses, labels, wxyz


def write_cambridge(path: Path, files: list[str], positions: np.ndarray, quats: np.ndarray) -> Path:
    rows = [f"{f} " + " ".join(f"{v:.12f}" for v in (*p, *q)) for f, p, q in zip(files, positions, quats)]
    path.write_text(HEADER + "\n".join(rows) + "\n")
    return path


def random_cambridge(tmp: Path, n: int = 6, seed: int = 0) -> tuple[Path, list[str], np.ndarray, Rotation]:
    rng = np.random.default_rng(seed)
    files = [f"seq{1 + i % 2}/frame{i + 1:05d}.png" for i in range(n)]
    positions = rng.normal(scale=20.0, size=(n, 3))
    w2c = Rotation.random(n, random_state=seed)
    q = wxyz(w2c) * rng.choice([-1.0, 1.0], size=(n, 1)) * rng.uniform(0.5, 2.0, size=(n, 1))  # any sign, norm
    return write_cambridge(tmp / "dataset_train.txt", files, positions, q), files, positions, w2c



def test_cambridge_rotations_are_camera_to_world(tmp_path: Path) -> None:
    path, files, positions, w2c = random_cambridge(tmp_path)
    poses = read_cambridge_poses(path)
    assert poses.files == tuple(files)
    assert poses.positions.dtype == torch.float64 and poses.rotations.shape == (6, 3, 3)
    np.testing.assert_allclose(poses.positions.numpy(), positions, atol=1e-10)
    np.testing.assert_allclose(poses.rotations.numpy(), w2c.inv().as_matrix(), atol=1e-10)
    q = poses.quaternions.numpy()
    assert (q[:, 0] >= 0).all()
    np.testing.assert_allclose(np.abs((q * wxyz(w2c.inv())).sum(1)), 1.0, atol=1e-10)  # same rotation
    # Kendall's 7-Scenes files: the same numbers, read as camera-to-world quaternions.
    direct = read_cambridge_poses(path, world_to_camera_quaternion=False)
    np.testing.assert_allclose(direct.rotations.numpy(), w2c.as_matrix(), atol=1e-10)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(*[st.floats(-1, 1)] * 4).filter(lambda q: math.hypot(*q) > 1e-2), min_size=1, max_size=5))
def test_cambridge_round_trip_any_quaternion(quats: list[tuple[float, float, float, float]]) -> None:
    q = np.asarray(quats)
    with tempfile.TemporaryDirectory() as tmp:
        files = [f"/seq1/frame{i:05d}.png" for i in range(len(q))]
        path = write_cambridge(Path(tmp) / "d.txt", files, np.zeros((len(q), 3)), q)
        poses = read_cambridge_poses(path)
    assert poses.files == tuple(f[1:] for f in files)  # the leading '/' of Kendall's names is dropped
    expected = Rotation.from_quat(np.roll(q, -1, axis=1)).as_matrix().transpose(0, 2, 1)
    np.testing.assert_allclose(poses.rotations.numpy(), expected, atol=1e-8)


def test_cambridge_outliers_dropped_by_the_one_default(tmp_path: Path) -> None:
    q = wxyz(Rotation.random(3, random_state=1))
    pos = np.array([[1.0, 2.0, 3.0], [3.1e9, -2.0, 1.0], [4.0, 5.0, 6.0]])
    path = write_cambridge(tmp_path / "dataset_train.txt", ["a.png", "b.png", "c.png"], pos, q)
    # one default, in one place: the reader's and the data section's
    default = inspect.signature(read_cambridge_poses).parameters["max_abs_position"].default
    assert default == RelocDataConfig().max_abs_position == MAX_ABS_POSITION == 1e4
    with pytest.warns(UserWarning, match=r"dataset_train\.txt: dropped 1 of 3 frames as position outliers, with a "
                      r"camera coordinate beyond max_abs_position = 10000 m .*: b\.png \(3\.1e\+09 m\)$"):
        kept = read_cambridge_poses(path)
    assert kept.files == ("a.png", "c.png")
    np.testing.assert_allclose(kept.positions.numpy(), pos[[0, 2]])
    assert len(read_cambridge_poses(path, max_abs_position=None)) == 3
    with pytest.raises(ValueError, match="max_abs_position"):
        read_cambridge_poses(path, max_abs_position=0.0)


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ("seq1/frame00002.png 1 2 3 1 0 0", r"dataset_test\.txt:5: expected 8 columns"),
        ("seq1/frame00002.png 1 2 3 1 0 0 0 9", r"dataset_test\.txt:5: expected 8 columns"),
        ("seq1/frame00002.png 1 2 abc 1 0 0 0", r"dataset_test\.txt:5: expected numbers"),
        ("seq1/frame00002.png 1 2 3 0 0 0 0", r"dataset_test\.txt:5: .*non-zero quaternion"),
        ("seq1/frame00002.png 1 2 3 1 inf 0 0", r"dataset_test\.txt:5: expected a finite non-zero quaternion"),
        ("seq1/frame00002.png 1 nan 3 1 0 0 0", r"dataset_test\.txt:5: expected a finite position"),
        ("seq1/frame00002.png 1 2 -inf 1 0 0 0", r"dataset_test\.txt:5: expected a finite position"),
        ("ImageFile, Camera Position [X Y Z W P Q R]", r"dataset_test\.txt:5: expected 8 columns"),  # not a header here
        ("../../../etc/passwd 1 2 3 1 0 0 0", r"dataset_test\.txt:5: image path '\.\./\.\./\.\./etc/passwd' must name"),
        ("seq1/../../x.png 1 2 3 1 0 0 0", r"dataset_test\.txt:5: image path .* under the dataset folder"),
        ("..\\..\\x.png 1 2 3 1 0 0 0", r"dataset_test\.txt:5: image path .* under the dataset folder"),
        ("//etc/passwd 1 2 3 1 0 0 0", r"dataset_test\.txt:5: image path '//etc/passwd'"),
        ("C:/Windows/win.ini 1 2 3 1 0 0 0", r"dataset_test\.txt:5: image path 'C:/Windows/win\.ini'"),
        ("c:x.png 1 2 3 1 0 0 0", r"dataset_test\.txt:5: image path 'c:x\.png'"),
        ("/ 1 2 3 1 0 0 0", r"dataset_test\.txt:5: image path '/'"),
        ("seq1/a\x00.png 1 2 3 1 0 0 0", r"dataset_test\.txt:5: image path"),
    ],
)
def test_cambridge_malformed_lines(tmp_path: Path, row: str, match: str) -> None:
    path = tmp_path / "dataset_test.txt"
    path.write_text(HEADER + "seq1/frame00001.png 1 2 3 1 0 0 0\n" + row + "\n")
    with pytest.raises(ValueError, match=match):
        read_cambridge_poses(path)


@pytest.mark.parametrize(
    "text",
    [
        "Visual Landmark Dataset V1\nImageFile, Camera Position [X Y Z W P Q R]\n\n{rows}\n",  # the dataset's own
        "Visual Landmark Dataset V1\nImageFile, Camera Position [X Y Z W P Q R]\n{rows}\n",  # no blank third line
        "Visual Landmark Dataset V1\r\nImageFile, Camera Position [X Y Z W P Q R]\r\n\r\n{crlf_rows}\r\n",
        "Visual Landmark Dataset V1\r\nImageFile, Camera Position [X Y Z W P Q R]\r\n{crlf_rows}",
        "\ufeffVisual Landmark Dataset V1\nImageFile,Camera Position [X Y Z W P Q R]\n\n{rows}",  # BOM, no space
        "Visual Landmark Dataset V1\n\n{rows}\n\n",  # no column line
        "Visual Landmark Dataset V1\n{rows}",  # no column line, no blank line
        "\nVisual Landmark Dataset V1\n\nimagefile, camera position\n\n{spaced_rows}\n",  # blank lines anywhere
    ],
)
def test_cambridge_header_variants_keep_every_row(tmp_path: Path, text: str) -> None:
    path, files, _, _ = random_cambridge(tmp_path, n=4)
    expected = read_cambridge_poses(path)
    rows = path.read_text().splitlines()[3:]
    variant = text.format(rows="\n".join(rows), crlf_rows="\r\n".join(rows), spaced_rows="\n\n".join(rows))
    path.write_bytes(variant.encode())
    poses = read_cambridge_poses(path)
    assert poses.files == expected.files == tuple(files)  # same frames, same order: none taken for a header
    assert torch.equal(poses.positions, expected.positions) and torch.equal(poses.rotations, expected.rotations)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"seq1/frame00001.png 1 2 3 1 0 0 0\n", r"x\.txt:1: expected the header"),
        (b"", r"x\.txt:1: expected the header"),
        (b"\n\nseq1/frame00001.png 1 2 3 1 0 0 0\n", r"x\.txt:3: expected the header"),
        (b"Visual Landmark Dataset V1\n\n\xff\xfe.png 1 2 3 1 0 0 0\n", r"x\.txt: not a UTF-8 text file"),
    ],
)
def test_cambridge_missing_header(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "x.txt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        read_cambridge_poses(path)


# --- NVM ---------------------------------------------------------------------------------------------


def synthetic_nvm(tmp: Path, n_cams: int = 5, n_points: int = 40, seed: int = 0):  # type: ignore[no-untyped-def]
    """Cameras on a sphere of radius 10 looking at points in [-1, 1]^3; measurements by projection."""
    rng = np.random.default_rng(seed)
    points = rng.uniform(-1, 1, size=(n_points, 3))
    centres = rng.normal(size=(n_cams, 3))
    centres *= 10 / np.linalg.norm(centres, axis=1, keepdims=True)
    c2w = []
    for c in centres:
        z = -c / np.linalg.norm(c)
        x = np.cross(z, rng.normal(size=3))
        x /= np.linalg.norm(x)
        c2w.append(np.stack([x, np.cross(z, x), z], axis=1))
    c2w = np.asarray(c2w)
    focal = rng.uniform(500, 2000, size=n_cams)
    lines = ["NVM_V3", "", str(n_cams)]
    q = wxyz(Rotation.from_matrix(c2w.transpose(0, 2, 1)))  # world-to-camera
    for i in range(n_cams):
        lines.append(f"seq{i}/frame{i:05d}.jpg {focal[i]:.9f} " + " ".join(f"{v:.12f}" for v in (*q[i], *centres[i])) + " 0 0")
    lines += ["", str(n_points)]
    seen, measured = [set() for _ in range(n_cams)], {}
    for j, g in enumerate(points):
        cams = rng.choice(n_cams, size=rng.integers(1, n_cams + 1), replace=False)
        meas = []
        for i in cams:
            x = c2w[i].T @ (g - centres[i])
            uv = focal[i] * x[:2] / x[2]
            measured[(int(i), j)] = uv
            seen[i].add(j)
            meas.append(f"{i} {rng.integers(1000)} {uv[0]:.9f} {uv[1]:.9f}")
        rgb = rng.integers(0, 256, size=3)
        lines.append(" ".join(f"{v:.12f}" for v in g) + f" {rgb[0]} {rgb[1]} {rgb[2]} {len(cams)} " + " ".join(meas))
        if j == 0:
            colour0 = rgb
    lines += ["", "0", ""]
    path = tmp / "reconstruction.nvm"
    path.write_text("\n".join(lines))
    truth = {"points": points, "centres": centres, "c2w": c2w, "focal": focal, "seen": seen, "measured": measured}
    return path, {**truth, "colour0": colour0}


def test_read_nvm_matches_written_model(tmp_path: Path) -> None:
    path, truth = synthetic_nvm(tmp_path)
    rec = read_nvm(path)
    assert rec.files == tuple(f"seq{i}/frame{i:05d}.jpg" for i in range(5))
    np.testing.assert_allclose(rec.focal_lengths.numpy(), truth["focal"], atol=1e-8)
    np.testing.assert_allclose(rec.centres.numpy(), truth["centres"], atol=1e-10)
    np.testing.assert_allclose(rec.rotations.numpy(), truth["c2w"], atol=1e-10)
    np.testing.assert_allclose(rec.points.numpy(), truth["points"], atol=1e-10)
    assert rec.colours.dtype == torch.uint8 and rec.colours[0].tolist() == truth["colour0"].tolist()
    assert [set(v.tolist()) for v in rec.visibility] == truth["seen"]
    assert all(bool((v[1:] > v[:-1]).all()) for v in rec.visibility)
    assert rec.poses().files == rec.files


def test_nvm_points_project_onto_their_measurements(tmp_path: Path) -> None:
    path, truth = synthetic_nvm(tmp_path, seed=3)
    rec = read_nvm(path)
    for i, seen in enumerate(rec.visibility):
        f = float(rec.focal_lengths[i])
        K = torch.tensor([[f, 0, 0], [0, f, 0], [0, 0, 1.0]], dtype=torch.float64)
        uv, in_front = project_points(rec.rotations[i], rec.centres[i], rec.points[seen], K)
        assert bool(in_front.all())
        expected = np.stack([truth["measured"][(i, j)] for j in seen.tolist()])
        np.testing.assert_allclose(uv.numpy(), expected, atol=1e-5)


def test_nvm_and_dataset_names() -> None:
    assert dataset_image_name("seq1/frame00001.jpg") == "seq1/frame00001.png"
    assert image_key("seq1/frame00001.jpg") == image_key("/seq1/frame00001.png") == "seq1/frame00001"
    assert image_key("seq1/frame00001.png") != image_key("seq2/frame00001.png")


def test_points_seen_by_matches_visibility(tmp_path: Path) -> None:
    path, _ = synthetic_nvm(tmp_path, n_cams=4, n_points=60, seed=5)
    rec = read_nvm(path)
    order = [2, 0, 3]
    files = [dataset_image_name(rec.files[i]) for i in order]
    poses = CameraPoses(tuple(files), rec.centres[order], rec.rotations[order])
    counts = [len(rec.visibility[i]) for i in order]
    m = sorted(counts)[1]  # one image below, one above the cap
    points, mask = points_seen_by(rec, poses, m)
    assert points.shape == (3, m, 3) and mask.shape == (3, m)
    for k, i in enumerate(order):
        seen = rec.visibility[i]
        assert int(mask[k].sum()) == min(len(seen), m)
        chosen = seen if len(seen) <= m else seen[torch.arange(m) * len(seen) // m]
        assert len(set(chosen.tolist())) == len(chosen)
        torch.testing.assert_close(points[k, : len(chosen)], rec.points[chosen])
        assert bool((points[k, len(chosen) :] == 0).all())
    again = points_seen_by(rec, poses, m)
    assert torch.equal(again[0], points) and torch.equal(again[1], mask)


def test_points_seen_by_missing_image(tmp_path: Path) -> None:
    rec = read_nvm(synthetic_nvm(tmp_path)[0])
    poses = CameraPoses(("seq0/frame00000.png", "seq9/frame00099.png"), torch.zeros(2, 3, dtype=torch.float64),
                        torch.eye(3, dtype=torch.float64).expand(2, 3, 3))  # fmt: skip
    with pytest.raises(ValueError, match=r"1 of 2 images .*seq9/frame00099\.png"):
        points_seen_by(rec, poses, 8)
    _, mask = points_seen_by(rec, poses, 8, allow_missing=True)
    assert bool(mask[0].any()) and not bool(mask[1].any())


def _token(line: int, column: int, value: str):  # type: ignore[no-untyped-def]
    """An edit of the NVM's lines setting one token (``column``) of line ``line`` (0-based) to ``value``."""

    def edit(ls: list[str]) -> list[str]:
        tokens = ls[line].split()
        tokens[column] = value
        return ls[:line] + [" ".join(tokens)] + ls[line + 1 :]

    return edit


# The synthetic NVM's layout: 0 header, 1 blank, 2 camera count, 3-7 cameras '<file> <f> <q x4> <c x3> <r> 0',
# 8 blank, 9 point count, 10.. points '<X Y Z> <R G B> <n> (<image> <feature> <x> <y>) x n'.
@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda ls: ["NVM_V2"] + ls[1:], r"nvm:1: expected the header"),
        (lambda ls: ls[:3] + [ls[3].rsplit(" ", 1)[0]] + ls[4:], r"nvm:4: expected 11 columns"),
        (lambda ls: ls[:3] + [ls[3].split()[0] + " 500 0 0 0 0 1 2 3 0 0"] + ls[4:], r"nvm:4: .*non-zero quaternion"),
        (lambda ls: ls[:10] + [ls[10].split()[0] + " 0 0 1 2 3 1 7 0 1 2"] + ls[11:], r"nvm:11: image index out of range"),
        (lambda ls: ls[:10] + [" ".join(ls[10].split()[:-1])] + ls[11:], r"nvm:11: expected '<X Y Z> <R G B> <n>'"),
        (lambda ls: ls[:12], r"file ends before point"),
        (_token(2, 0, "-5"), r"nvm:3: expected the camera count"),
        (_token(4, 1, "nan"), r"nvm:5: expected a finite focal length > 0"),
        (_token(4, 1, "inf"), r"nvm:5: expected a finite focal length > 0"),
        (_token(4, 1, "-500"), r"nvm:5: expected a finite focal length > 0"),
        (_token(4, 1, "0"), r"nvm:5: expected a finite focal length > 0"),
        (_token(4, 2, "nan"), r"nvm:5: expected a finite non-zero quaternion"),
        (_token(4, 5, "inf"), r"nvm:5: expected a finite non-zero quaternion"),
        (_token(4, 6, "nan"), r"nvm:5: expected a finite camera centre"),
        (_token(4, 8, "-inf"), r"nvm:5: expected a finite camera centre"),
        (_token(4, 9, "nan"), r"nvm:5: expected a finite camera centre and radial distortion"),
        (_token(4, 3, "abc"), r"nvm:5: expected numbers"),
        (_token(11, 0, "inf"), r"nvm:12: expected a finite point X Y Z"),
        (_token(11, 2, "nan"), r"nvm:12: expected a finite point X Y Z"),
        (_token(11, 3, "300"), r"nvm:12: expected colours R G B, integers in 0\.\.255"),
        (_token(11, 4, "-1"), r"nvm:12: expected colours R G B"),
        (_token(11, 5, "1.5"), r"nvm:12: expected colours R G B"),
        (_token(11, 9, "nan"), r"nvm:12: expected finite measurements"),
        (_token(11, 7, "0.5"), r"nvm:12: image index out of range"),
        (_token(11, 7, "inf"), r"nvm:12: expected finite measurements"),
        (_token(9, 0, "99999999999999"), r"nvm:52: expected .<X Y Z>"),  # a huge count allocates nothing
    ],
)
def test_nvm_malformed(tmp_path: Path, edit, match: str) -> None:  # type: ignore[no-untyped-def]
    path, _ = synthetic_nvm(tmp_path, n_cams=5, n_points=40)
    lines = path.read_text().split("\n")
    assert lines[9] == "40"  # layout the edits rely on: header, blank, count, 5 cameras, blank, count
    path.write_text("\n".join(edit(lines)))
    with pytest.raises(ValueError, match=match):
        read_nvm(path)


def test_nvm_not_text(tmp_path: Path) -> None:
    path = tmp_path / "reconstruction.nvm"
    path.write_bytes(b"NVM_V3\n\n1\n\xff\xfe 500 1 0 0 0 0 0 0 0 0\n")
    with pytest.raises(ValueError, match=r"reconstruction\.nvm: not a UTF-8 text file"):
        read_nvm(path)


# --- 7-Scenes ---------------------------------------------------------------------------------------


def test_real_kings_college_labels() -> None:
    poses = read_cambridge_poses(labels("KingsCollege/dataset_train.reconstructed.txt"))
    assert len(poses) == 1220 and poses.files[0].endswith(".png")
    check_poses(poses)
    # World z is up in King's College and the camera is held upright: its y axis (image down)
    # points down in the world. The transposed (wrong) convention fails this.
    assert poses.rotations[:, 2, 1].median() < -0.9
    assert poses.rotations.mT[:, 2, 1].median() > -0.5



@pytest.mark.parametrize(
    "relative",
    ["KingsCollege/dataset_train.reconstructed.txt", "KingsCollege/dataset_test.reconstructed.txt",
     "ShopFacade/dataset_train.reconstructed.txt", "ShopFacade/dataset_test.reconstructed.txt",
     "7Scenes_heads/kendall_posenet_heads_train.txt", "7Scenes_stairs/kendall_posenet_stairs_val.txt"],
)  # fmt: skip
def test_real_label_files_every_row_kept_in_any_header_variant(tmp_path: Path, relative: str) -> None:
    path = labels(relative)
    kendall = relative.startswith("7Scenes")
    poses = read_cambridge_poses(path, world_to_camera_quaternion=not kendall)
    lines = path.read_text().splitlines()
    assert lines[:3] == HEADER.splitlines()
    assert len(poses) == sum(1 for line in lines[3:] if line.strip())  # no outliers in these: every row
    assert all(not f.startswith("/") and ".." not in f.split("/") for f in poses.files)
    check_poses(poses)
    # the same rows with Windows line endings and without the blank third line
    variant = tmp_path / path.name
    variant.write_bytes("\r\n".join(lines[:2] + lines[3:]).encode())
    again = read_cambridge_poses(variant, world_to_camera_quaternion=not kendall)
    assert again.files == poses.files and torch.equal(again.positions, poses.positions)


def test_nvm_intrinsics_per_frame(tmp_path: Path) -> None:
    rec = read_nvm(synthetic_nvm(tmp_path, n_cams=4)[0])
    files = [dataset_image_name(rec.files[2]), "seq9/frame00099.png", dataset_image_name(rec.files[0])]
    K = nvm_intrinsics(rec, files, (48, 64))
    assert K.shape == (3, 3, 3) and K.dtype == torch.float64
    focal = rec.focal_lengths
    torch.testing.assert_close(K[:, 0, 0], torch.stack([focal[2], focal.median(), focal[0]]))  # median: no camera
    torch.testing.assert_close(K[:, 1, 1], K[:, 0, 0])
    # NVM measures pixels from the image centre: pixel centres at integers put it at ((w - 1) / 2, (h - 1) / 2)
    assert K[:, 0, 2].tolist() == [31.5] * 3 and K[:, 1, 2].tolist() == [23.5] * 3
    assert K[:, 2].tolist() == [[0.0, 0.0, 1.0]] * 3
