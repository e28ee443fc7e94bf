"""Relocalisation data: Cambridge / Kendall pose files, NVM, 7-Scenes, image transforms, dataset."""

from __future__ import annotations

import math
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from scipy.spatial.transform import Rotation

from posereg.data.relocalisation import (
    CameraPoses,
    ImageTransform,
    RelocalisationDataset,
    adjust_intrinsics,
    center_crop,
    channel_statistics,
    dataset_image_name,
    image_key,
    load_rgb,
    normalize_channels,
    points_seen_by,
    random_crop,
    read_cambridge_poses,
    read_nvm,
    read_seven_scenes,
    read_seven_scenes_split,
    resize_shorter,
    seven_scenes_intrinsics,
)
from posereg.geometry import project_points, quaternion_to_matrix

LABELS = Path(__file__).resolve().parents[3] / "shared" / "data" / "relocalisation-labels"
HEADER = "Visual Landmark Dataset V1\nImageFile, Camera Position [X Y Z W P Q R]\n\n"


def wxyz(rotations: Rotation) -> np.ndarray:
    """Scalar-first quaternions of scipy rotations (scipy is scalar-last)."""
    return np.roll(rotations.as_quat(), 1, axis=-1)


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


def save_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)


# --- Cambridge / Kendall pose files ----------------------------------------------------------------


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


def test_cambridge_outlier_kept_unless_filtered(tmp_path: Path) -> None:
    q = wxyz(Rotation.random(3, random_state=1))
    pos = np.array([[1.0, 2.0, 3.0], [3.1e9, -2.0, 1.0], [4.0, 5.0, 6.0]])
    path = write_cambridge(tmp_path / "dataset_train.txt", ["a.png", "b.png", "c.png"], pos, q)
    assert len(read_cambridge_poses(path)) == 3
    with pytest.warns(UserWarning, match=r"dropped 1 of 3 rows .*b\.png"):
        kept = read_cambridge_poses(path, max_abs_position=1e4)
    assert kept.files == ("a.png", "c.png")
    np.testing.assert_allclose(kept.positions.numpy(), pos[[0, 2]])


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ("seq1/frame00002.png 1 2 3 1 0 0", r"dataset_test\.txt:5: expected 8 columns"),
        ("seq1/frame00002.png 1 2 3 1 0 0 0 9", r"dataset_test\.txt:5: expected 8 columns"),
        ("seq1/frame00002.png 1 2 abc 1 0 0 0", r"dataset_test\.txt:5: expected numbers"),
        ("seq1/frame00002.png 1 2 3 0 0 0 0", r"dataset_test\.txt:5: .*non-zero quaternion"),
        ("seq1/frame00002.png 1 nan 3 1 0 0 0", r"dataset_test\.txt:5: expected a finite position"),
    ],
)
def test_cambridge_malformed_lines(tmp_path: Path, row: str, match: str) -> None:
    path = tmp_path / "dataset_test.txt"
    path.write_text(HEADER + "seq1/frame00001.png 1 2 3 1 0 0 0\n" + row + "\n")
    with pytest.raises(ValueError, match=match):
        read_cambridge_poses(path)


def test_cambridge_missing_header(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text("seq1/frame00001.png 1 2 3 1 0 0 0\n")
    with pytest.raises(ValueError, match=r"x\.txt:1: expected the header"):
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


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda ls: ["NVM_V2"] + ls[1:], r"nvm:1: expected the header"),
        (lambda ls: ls[:3] + [ls[3].rsplit(" ", 1)[0]] + ls[4:], r"nvm:4: expected 11 columns"),
        (lambda ls: ls[:3] + [ls[3].split()[0] + " 500 0 0 0 0 1 2 3 0 0"] + ls[4:], r"nvm:4: .*non-zero quaternion"),
        (lambda ls: ls[:10] + [ls[10].split()[0] + " 0 0 1 2 3 1 7 0 1 2"] + ls[11:], r"nvm:11: image index out of range"),
        (lambda ls: ls[:10] + [" ".join(ls[10].split()[:-1])] + ls[11:], r"nvm:11: expected '<X Y Z> <R G B> <n>'"),
        (lambda ls: ls[:12], r"file ends before point"),
    ],
)
def test_nvm_malformed(tmp_path: Path, edit, match: str) -> None:  # type: ignore[no-untyped-def]
    path, _ = synthetic_nvm(tmp_path, n_cams=5, n_points=40)
    lines = path.read_text().split("\n")
    assert lines[9] == "40"  # layout the edits rely on: header, blank, count, 5 cameras, blank, count
    path.write_text("\n".join(edit(lines)))
    with pytest.raises(ValueError, match=match):
        read_nvm(path)


# --- 7-Scenes ---------------------------------------------------------------------------------------


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


def test_read_seven_scenes_split(tmp_path: Path) -> None:
    path = tmp_path / "TrainSplit.txt"
    path.write_text("sequence1\n\n# sequence2\nsequence4")
    assert read_seven_scenes_split(path) == [1, 4]
    path.write_text("sequence1\nseq-02\n")
    with pytest.raises(ValueError, match=r"TrainSplit\.txt:2: expected 'sequenceN'"):
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


# --- image transforms ------------------------------------------------------------------------------


def test_load_rgb(tmp_path: Path) -> None:
    array = np.random.default_rng(0).integers(0, 256, size=(5, 7, 3))
    save_png(tmp_path / "a.png", array)
    save_png(tmp_path / "g.png", array[..., 0])  # greyscale -> 3 equal channels
    image = load_rgb(tmp_path / "a.png")
    assert image.shape == (3, 5, 7) and image.dtype == torch.float32
    np.testing.assert_allclose(image.numpy(), array.transpose(2, 0, 1) / 255.0, atol=1e-7)
    grey = load_rgb(tmp_path / "g.png")
    assert torch.equal(grey[0], grey[2]) and torch.equal(grey[0], image[0])


def test_resize_and_crops() -> None:
    image = torch.rand(3, 48, 64, generator=torch.Generator().manual_seed(0))
    assert resize_shorter(image, 24).shape == (3, 24, 32)
    assert resize_shorter(image.transpose(1, 2), 24).shape == (3, 32, 24)
    assert resize_shorter(torch.rand(3, 1080, 1920), 256).shape == (3, 256, 455)  # PoseNet's 455x256
    flat = resize_shorter(torch.full((3, 40, 50), 0.25), 17)  # antialiased resize keeps a constant
    torch.testing.assert_close(flat, torch.full_like(flat, 0.25))
    assert torch.equal(center_crop(image, 32), image[:, 8:40, 16:48])
    assert torch.equal(center_crop(image, (10, 21)), image[:, 19:29, 21:42])
    with pytest.raises(ValueError, match="larger than the image"):
        center_crop(image, 50)


def test_random_crop_uses_only_its_generator() -> None:
    image = torch.rand(3, 30, 40, generator=torch.Generator().manual_seed(1))
    state = torch.random.get_rng_state()
    a = random_crop(image, 16, torch.Generator().manual_seed(7))
    b = random_crop(image, 16, torch.Generator().manual_seed(7))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a, b)
    crops = [random_crop(image, 16, torch.Generator().manual_seed(s)) for s in range(10)]
    assert len({c.sum().item() for c in crops}) > 1
    windows = {image[:, i : i + 16, j : j + 16].sum().item() for i in range(15) for j in range(25)}
    assert all(c.shape == (3, 16, 16) and c.sum().item() in windows for c in crops)


def test_normalisation_from_own_statistics() -> None:
    gen = torch.Generator().manual_seed(2)
    images = [torch.rand(3, h, w, generator=gen) * torch.tensor([1.0, 0.5, 2.0]).reshape(3, 1, 1) + 0.3
              for h, w in [(8, 9), (5, 13), (11, 4)]]  # fmt: skip
    mean, std = channel_statistics(iter(images))
    pooled = torch.cat([img.flatten(1) for img in images], 1).double()
    torch.testing.assert_close(mean, pooled.mean(1))
    normalised = torch.cat([normalize_channels(img, mean.tolist(), std.tolist()).flatten(1) for img in images], 1)
    torch.testing.assert_close(normalised.double().mean(1), torch.zeros(3, dtype=torch.float64), atol=1e-6, rtol=0)
    torch.testing.assert_close(normalised.double().std(1, correction=0), torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="std > 0"):
        normalize_channels(images[0], mean, [1.0, 0.0, 1.0])


def blob_image(hw: tuple[int, int], uv: tuple[float, float], sigma: float) -> torch.Tensor:
    v, u = torch.meshgrid(torch.arange(hw[0], dtype=torch.float64), torch.arange(hw[1], dtype=torch.float64), indexing="ij")
    return torch.exp(-((u - uv[0]) ** 2 + (v - uv[1]) ** 2) / (2 * sigma**2)).expand(3, *hw).clone()


def centroid(image: torch.Tensor) -> torch.Tensor:
    w = image[0].double()
    v, u = torch.meshgrid(torch.arange(w.shape[0], dtype=torch.float64), torch.arange(w.shape[1], dtype=torch.float64), indexing="ij")
    return torch.stack([(w * u).sum() / w.sum(), (w * v).sum() / w.sum()])


def project(K: torch.Tensor, point: torch.Tensor) -> torch.Tensor:
    eye, zero = torch.eye(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    return project_points(eye, zero, point[None], K)[0][0]


@settings(max_examples=20, deadline=None)
@given(top=st.integers(0, 20), left=st.integers(0, 20), x=st.floats(-0.3, 0.3), y=st.floats(-0.3, 0.3))
def test_adjusted_intrinsics_follow_a_crop_exactly(top: int, left: int, x: float, y: float) -> None:
    K = torch.tensor([[40.0, 0, 31.0], [0, 40.0, 23.0], [0, 0, 1]], dtype=torch.float64)
    point = torch.tensor([x, y, 1.0], dtype=torch.float64)
    u, v = project(K, point).round().long().tolist()  # mark the nearest pixel of the projection
    image = torch.zeros(3, 48, 64)
    image[:, v, u] = 1.0
    crop = image[:, top : top + 24, left : left + 30]
    uv = project(adjust_intrinsics(K, 1.0, (top, left)), point)
    if 0 <= u - left < 30 and 0 <= v - top < 24:
        assert crop[0, round(uv[1].item()), round(uv[0].item())] == 1.0
    torch.testing.assert_close(uv, project(K, point) - torch.tensor([left, top], dtype=torch.float64))


def test_adjusted_intrinsics_follow_resize_and_crop() -> None:
    K = torch.tensor([[50.0, 0, 40.0], [0, 50.0, 30.0], [0, 0, 1]], dtype=torch.float64)
    point = torch.tensor([0.13, -0.07, 1.0], dtype=torch.float64)
    image = blob_image((60, 80), tuple(project(K, point).tolist()), sigma=4.0)
    transform = ImageTransform(resize=30, crop=(24, 28))
    out, scale, offset = transform.apply(image.float())
    assert out.shape == (3, 24, 28) and scale == (0.5, 0.5) and offset == (3, 6)
    K2 = transform.intrinsics(K, (60, 80))
    torch.testing.assert_close(K2, adjust_intrinsics(K, scale, offset))
    # The blob's centre in the output is where the adjusted intrinsics project the point;
    # the naive u -> s u (no half-pixel shift) would be 0.25 px off.
    torch.testing.assert_close(centroid(out), project(K2, point), atol=0.03, rtol=0)


def test_image_transform_pipeline() -> None:
    image = torch.rand(3, 45, 60, generator=torch.Generator().manual_seed(3))
    eval_tf = ImageTransform(resize=30, crop=24, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    expected = (center_crop(resize_shorter(image, 30), 24) - 0.5) / 0.25
    torch.testing.assert_close(eval_tf(image), expected)
    train_tf = ImageTransform(resize=30, crop=24, train=True)
    with pytest.raises(ValueError, match="generator"):
        train_tf(image)
    a = train_tf(image, torch.Generator().manual_seed(4))
    assert torch.equal(a, random_crop(resize_shorter(image, 30), 24, torch.Generator().manual_seed(4)))


# --- dataset ----------------------------------------------------------------------------------------


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


# --- real label files (optional, read in place from ../shared) -------------------------------------


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


def test_real_kings_college_labels() -> None:
    poses = read_cambridge_poses(labels("KingsCollege/dataset_train.reconstructed.txt"))
    assert len(poses) == 1220 and poses.files[0].endswith(".png")
    check_poses(poses)
    # World z is up in King's College and the camera is held upright: its y axis (image down)
    # points down in the world. The transposed (wrong) convention fails this.
    assert poses.rotations[:, 2, 1].median() < -0.9
    assert poses.rotations.mT[:, 2, 1].median() > -0.5


def test_real_seven_scenes_heads_labels() -> None:
    poses = read_cambridge_poses(labels("7Scenes_heads/kendall_posenet_heads_train.txt"), world_to_camera_quaternion=False)
    assert len(poses) == 1000 and poses.files[0] == "seq-01/frame-000000.color.png"
    check_poses(poses)
    assert read_seven_scenes_split(labels("7Scenes_heads/atloc_train_split.txt")) == [2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the real files have no outliers to drop
        assert len(read_cambridge_poses(labels("KingsCollege/dataset_test.reconstructed.txt"), max_abs_position=1e4)) == 343
