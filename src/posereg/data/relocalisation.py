"""Camera relocalisation data (Kendall & Cipolla 2017): Cambridge Landmarks, 7-Scenes, NVM, images.

Poses are camera-to-world ``(R, c)`` as in ``posereg.geometry.camera``: ``R`` ``(3, 3)`` maps
camera axes to world axes, ``c`` ``(3,)`` is the camera centre in world coordinates (metres),
the camera looks along ``+z`` (OpenCV); quaternions are ``(w, x, y, z)`` with ``w >= 0``.
Cambridge ``dataset_*.txt`` and ``.nvm`` quaternions are world-to-camera (``R`` = transpose of
their matrix); Kendall's PoseNet 7-Scenes label files (same text format) hold camera-to-world
quaternions; 7-Scenes ``frame-*.pose.txt`` is the 4x4 camera-to-world matrix. Image names are
POSIX paths relative to the dataset root (a leading ``/`` is dropped). Images are ``(C, H, W)``
float tensors with pixel centres at integer ``(u, v)`` (OpenCV). No global RNG is used.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from posereg.data.dataset import EpochDataset, item_generator
from posereg.geometry import matrix_to_quaternion, quaternion_to_matrix

__all__ = [
    "SEVEN_SCENES_FOCAL", "SEVEN_SCENES_IMAGE_HW", "SEVEN_SCENES_PRINCIPAL_POINT", "CameraPoses", "ImageTransform",
    "NVMReconstruction", "RelocalisationDataset", "adjust_intrinsics", "center_crop", "channel_statistics",
    "dataset_image_name", "image_key", "load_rgb", "normalize_channels", "points_seen_by", "random_crop",
    "read_cambridge_poses", "read_nvm", "read_seven_scenes", "read_seven_scenes_split", "resize_shorter",
    "seven_scenes_intrinsics",
]  # fmt: skip

SEVEN_SCENES_FOCAL = 525.0  # colour camera, pixels (585 is the depth camera's)
SEVEN_SCENES_PRINCIPAL_POINT = (320.0, 240.0)  # (u, v) pixels
SEVEN_SCENES_IMAGE_HW = (480, 640)
_SHOWN = 5  # how many offending names an error or warning lists


def _names(items: Sequence[object]) -> str:
    more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return ", ".join(str(i) for i in items[:_SHOWN]) + more


def _clean_name(name: str) -> str:
    return PurePosixPath(name.replace("\\", "/").lstrip("/")).as_posix()


def image_key(name: str) -> str:
    """Matching key of an image name: relative POSIX path without extension.

    ``"/seq1/frame00001.png"`` and ``"seq1/frame00001.jpg"`` both give ``"seq1/frame00001"``
    (the directory is kept: frame names repeat across sequences).
    """
    return PurePosixPath(_clean_name(name)).with_suffix("").as_posix()


def dataset_image_name(nvm_name: str, suffix: str = ".png") -> str:
    """The dataset's name of an image a Cambridge ``.nvm`` names (``.jpg`` there): same path, ``suffix``."""
    return PurePosixPath(_clean_name(nvm_name)).with_suffix(suffix).as_posix()


@dataclass(frozen=True, eq=False)
class CameraPoses:
    """Camera-to-world poses of ``N`` images: ``files`` (names relative to the dataset root),
    ``positions`` ``(N, 3)`` float64 camera centres in world coordinates (metres), ``rotations``
    ``(N, 3, 3)`` float64 camera-to-world rotations."""

    files: tuple[str, ...]
    positions: Tensor
    rotations: Tensor

    def __post_init__(self) -> None:
        object.__setattr__(self, "files", tuple(self.files))
        n = len(self.files)
        if tuple(self.positions.shape) != (n, 3) or tuple(self.rotations.shape) != (n, 3, 3):
            raise ValueError(f"CameraPoses: expected positions ({n}, 3) and rotations ({n}, 3, 3), got "
                             f"{tuple(self.positions.shape)} and {tuple(self.rotations.shape)}")  # fmt: skip

    def __len__(self) -> int:
        return len(self.files)

    @property
    def quaternions(self) -> Tensor:
        """``(N, 4)`` float64 unit camera-to-world quaternions ``(w, x, y, z)``, ``w >= 0``."""
        return matrix_to_quaternion(self.rotations) if len(self) else self.rotations.new_zeros(0, 4)

    def select(self, index: Sequence[int] | Tensor) -> CameraPoses:
        """The poses at ``index`` (integer indices or an ``(N,)`` boolean mask), in that order."""
        idx = torch.as_tensor(index)
        idx = idx.nonzero().flatten() if idx.dtype == torch.bool else idx.long().flatten()
        return CameraPoses(tuple(self.files[i] for i in idx.tolist()), self.positions[idx], self.rotations[idx])


def _floats(tokens: Sequence[str], where: str) -> list[float]:
    try:
        return [float(t) for t in tokens]
    except ValueError:
        raise ValueError(f"{where}: expected numbers, got {' '.join(tokens)!r}") from None


def _rotation(q: list[float], where: str) -> Tensor:
    if not all(math.isfinite(v) for v in q) or math.hypot(*q) == 0:
        raise ValueError(f"{where}: expected a finite non-zero quaternion W P Q R, got {q}")
    return quaternion_to_matrix(torch.tensor(q, dtype=torch.float64))


def read_cambridge_poses(
    path: str | Path, *, world_to_camera_quaternion: bool = True, max_abs_position: float | None = None
) -> CameraPoses:
    """Read a Cambridge Landmarks (or Kendall PoseNet-format) pose file.

    Three header lines (``Visual Landmark Dataset V1``, ``ImageFile, Camera Position [X Y Z W
    P Q R]``, blank), then ``<image> X Y Z W P Q R`` rows (blank lines skipped). ``XYZ`` is the
    camera centre in world coordinates; quaternions need not be unit length.

    Args:
        world_to_camera_quaternion: ``True`` for Cambridge ``dataset_*.txt`` (``WPQR`` is the
            world-to-camera rotation; ``R`` is the transpose of its matrix); ``False`` for
            Kendall's 7-Scenes files ``kendall_posenet_*`` (``WPQR`` is camera-to-world).
        max_abs_position: drop rows with any ``|X|, |Y|, |Z|`` above it (metres) with a warning
            naming them (one Great Court frame sits near 3e9 m); ``None`` keeps every row.

    Returns:
        Camera-to-world poses in file order.

    Raises:
        ValueError: missing header, a row without 8 columns, a non-numeric or non-finite value,
            or a zero quaternion; the message gives ``path:line``.
    """
    path = Path(path)
    lines = path.read_text().splitlines()
    if not lines or not lines[0].startswith("Visual Landmark Dataset"):
        raise ValueError(f"{path}:1: expected the header 'Visual Landmark Dataset V1'")
    files, positions, rotations = [], [], []
    for lineno, line in enumerate(lines[3:], start=4):
        tokens, where = line.split(), f"{path}:{lineno}"
        if not tokens:
            continue
        if len(tokens) != 8:
            raise ValueError(f"{where}: expected 8 columns 'image X Y Z W P Q R', got {len(tokens)}: {line!r}")
        values = _floats(tokens[1:], where)
        if not all(math.isfinite(v) for v in values[:3]):
            raise ValueError(f"{where}: expected a finite position, got {values[:3]}")
        files.append(_clean_name(tokens[0]))
        positions.append(values[:3])
        rotations.append(_rotation(values[3:], where))
    R = torch.stack(rotations) if rotations else torch.zeros(0, 3, 3, dtype=torch.float64)
    c = torch.tensor(positions, dtype=torch.float64).reshape(-1, 3)
    poses = CameraPoses(tuple(files), c, R.mT if world_to_camera_quaternion else R)
    if max_abs_position is not None:
        keep = poses.positions.abs().amax(-1) <= max_abs_position
        dropped = [f for f, k in zip(poses.files, keep.tolist()) if not k]
        if dropped:
            warnings.warn(f"{path}: dropped {len(dropped)} of {len(poses)} rows with |position| > "
                          f"{max_abs_position}: {_names(dropped)}", stacklevel=2)  # fmt: skip
            poses = poses.select(keep)
    return poses


@dataclass(frozen=True, eq=False)
class NVMReconstruction:
    """The first model of a VisualSFM ``NVM_V3`` file: ``N`` cameras, ``P`` points.

    ``files`` (names as written), ``focal_lengths`` ``(N,)`` pixels, ``rotations`` ``(N, 3, 3)``
    camera-to-world, ``centres`` ``(N, 3)`` world coordinates, ``radial`` ``(N,)`` distortion,
    ``points`` ``(P, 3)`` world coordinates (all float64), ``colours`` ``(P, 3)`` uint8 RGB, and
    ``visibility``: per camera, the sorted int64 indices of the points it sees.
    """

    files: tuple[str, ...]
    focal_lengths: Tensor
    rotations: Tensor
    centres: Tensor
    radial: Tensor
    points: Tensor
    colours: Tensor
    visibility: tuple[Tensor, ...]

    def poses(self) -> CameraPoses:
        """The cameras as ``CameraPoses`` (names as in the file)."""
        return CameraPoses(self.files, self.centres, self.rotations)


def read_nvm(path: str | Path) -> NVMReconstruction:
    """Read a VisualSFM ``NVM_V3`` reconstruction (the Cambridge ``reconstruction.nvm``).

    Layout (blank lines ignored): ``NVM_V3``; camera count; per camera ``<file> <focal>
    <qw qx qy qz> <cx cy cz> <radial> 0`` (``q`` world-to-camera, ``c`` the centre); point
    count; per point ``<X Y Z> <R G B> <n>`` and ``n`` x ``<image> <feature> <x> <y>`` (pixels
    relative to the image centre). Anything after the first model is ignored.

    Raises:
        ValueError: bad header, count, column count, number, zero quaternion, image index out
            of range, or a truncated file; the message gives ``path:line``.
    """
    path = Path(path)
    cursor = iter([(i, line.split()) for i, line in enumerate(path.read_text().splitlines(), 1) if line.strip()])

    def take(what: str) -> tuple[str, list[str]]:
        try:
            lineno, tokens = next(cursor)
        except StopIteration:
            raise ValueError(f"{path}: file ends before {what}") from None
        return f"{path}:{lineno}", tokens

    def count(what: str) -> int:
        where, tokens = take(what)
        if len(tokens) != 1 or not tokens[0].isdigit():
            raise ValueError(f"{where}: expected {what}, got {' '.join(tokens)!r}")
        return int(tokens[0])

    where, tokens = take("the header")
    if not tokens[0].startswith("NVM_V3"):
        raise ValueError(f"{where}: expected the header 'NVM_V3', got {' '.join(tokens)!r}")
    n = count("the camera count")
    files, cams, rotations = [], [], []
    for i in range(n):
        where, tokens = take(f"camera {i}")
        if len(tokens) != 11:
            raise ValueError(f"{where}: expected 11 columns '<file> <f> <qw qx qy qz> <cx cy cz> <r> 0', "
                             f"got {len(tokens)}")  # fmt: skip
        values = _floats(tokens[1:], where)
        files.append(tokens[0])
        cams.append(values[:1] + values[5:9])
        rotations.append(_rotation(values[1:5], where).mT)
    cam = torch.tensor(cams, dtype=torch.float64).reshape(-1, 5)
    p = count("the point count")
    xyz, rgb, seen_image, seen_point = np.zeros((p, 3)), np.zeros((p, 3), np.uint8), [], []
    for j in range(p):
        where, tokens = take(f"point {j}")
        m = int(tokens[6]) if len(tokens) > 6 and tokens[6].isdigit() else -1
        if m < 0 or len(tokens) != 7 + 4 * m:
            raise ValueError(f"{where}: expected '<X Y Z> <R G B> <n>' and n measurements of 4 numbers, "
                             f"got {len(tokens)} columns")  # fmt: skip
        values = np.asarray(_floats(tokens[:6] + tokens[7:], where))
        xyz[j], rgb[j] = values[:3], values[3:6]
        images = values[6:].reshape(m, 4)[:, 0].astype(np.int64)
        if m and (images.min() < 0 or images.max() >= n):
            raise ValueError(f"{where}: image index out of range 0..{n - 1}: {images.tolist()}")
        seen_image.append(images)
        seen_point.append(np.full(m, j, dtype=np.int64))
    image_idx, point_idx = (np.concatenate(s) if s else np.zeros(0, np.int64) for s in (seen_image, seen_point))
    order = np.lexsort((point_idx, image_idx))
    groups = np.split(point_idx[order], np.searchsorted(image_idx[order], np.arange(1, n))) if n else []
    R = torch.stack(rotations) if rotations else torch.zeros(0, 3, 3, dtype=torch.float64)
    return NVMReconstruction(tuple(files), cam[:, 0], R, cam[:, 1:4], cam[:, 4], torch.from_numpy(xyz),
                             torch.from_numpy(rgb), tuple(torch.from_numpy(np.unique(g)) for g in groups))  # fmt: skip


def points_seen_by(
    reconstruction: NVMReconstruction, poses: CameraPoses, max_points: int, *, allow_missing: bool = False
) -> tuple[Tensor, Tensor]:
    """The reconstruction's points each image of ``poses`` sees, padded to ``M = max_points``.

    Images match NVM cameras by ``image_key`` (path without extension). A camera seeing more
    than ``M`` points keeps ``M`` evenly spaced ones of its sorted point indices (deterministic).
    With ``allow_missing``, images without an NVM camera get an all-False mask instead of a
    ValueError.

    Returns:
        ``(points, mask)``: ``(N, M, 3)`` float64 world points (zeros where padded) and the
        ``(N, M)`` bool mask of real points.
    """
    if max_points < 1:
        raise ValueError(f"max_points: expected a positive int, got {max_points}")
    camera_of = {image_key(f): i for i, f in enumerate(reconstruction.files)}
    missing = [f for f in poses.files if image_key(f) not in camera_of]
    if missing and not allow_missing:
        raise ValueError(f"{len(missing)} of {len(poses)} images have no camera in the reconstruction: "
                         f"{_names(missing)}")  # fmt: skip
    points = torch.zeros(len(poses), max_points, 3, dtype=torch.float64)
    mask = torch.zeros(len(poses), max_points, dtype=torch.bool)
    for k, f in enumerate(poses.files):
        if image_key(f) in camera_of:
            seen = reconstruction.visibility[camera_of[image_key(f)]]
            if len(seen) > max_points:
                seen = seen[torch.arange(max_points) * len(seen) // max_points]
            points[k, : len(seen)] = reconstruction.points[seen]
            mask[k, : len(seen)] = True
    return points, mask


def read_seven_scenes_split(path: str | Path) -> list[int]:
    """Sequence numbers of a 7-Scenes ``TrainSplit.txt`` / ``TestSplit.txt`` (``sequenceN`` lines).

    Blank lines and lines starting with ``#`` are skipped; any other line is a ValueError.
    """
    out = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), start=1):
        line = line.strip()
        if line and not line.startswith("#"):
            match = re.fullmatch(r"sequence(\d+)", line)
            if match is None:
                raise ValueError(f"{path}:{lineno}: expected 'sequenceN', got {line!r}")
            out.append(int(match.group(1)))
    return out


def _pose_matrix(path: Path) -> Tensor:
    tokens = path.read_text().split()
    if len(tokens) != 16:
        raise ValueError(f"{path}: expected a 4x4 pose matrix (16 numbers), got {len(tokens)}")
    tokens = ["nan" if "#" in t else t for t in tokens]  # MSVC's -1.#IND, 1.#INF
    return torch.tensor(_floats(tokens, str(path)), dtype=torch.float64).reshape(4, 4)


def read_seven_scenes(root: str | Path, sequences: Sequence[int], *, tolerance: float = 1e-3) -> CameraPoses:
    """Camera-to-world poses of 7-Scenes sequences of one scene (``root`` = the scene folder).

    Reads ``root/seq-XX/frame-XXXXXX.pose.txt`` (4x4 camera-to-world, metres), frames in name
    order; image names are ``seq-XX/frame-XXXXXX.color.png``. Frames whose pose has
    non-finite entries (7-Scenes has a few) are skipped with a warning.

    Raises:
        FileNotFoundError: a sequence folder is missing or has no pose files.
        ValueError: a pose that is not rigid (not 16 numbers, ``|R^T R - I|`` or ``|det R - 1|``
            above ``tolerance``, last row not ``0 0 0 1``); the message names the file.
    """
    root = Path(root)
    files, positions, rotations, skipped = [], [], [], []
    last_row = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    for s in sequences:
        seq = f"seq-{int(s):02d}"
        pose_files = sorted((root / seq).glob("frame-*.pose.txt"))
        if not pose_files:
            raise FileNotFoundError(f"{root / seq}: no frame-*.pose.txt files (missing sequence {s}?)")
        for pf in pose_files:
            T = _pose_matrix(pf)
            if not bool(torch.isfinite(T).all()):
                skipped.append(pf.relative_to(root).as_posix())
                continue
            R = T[:3, :3]
            orthonormal = float((R.mT @ R - torch.eye(3, dtype=R.dtype)).abs().max()) <= tolerance
            if not (orthonormal and abs(float(torch.linalg.det(R)) - 1) <= tolerance
                    and torch.allclose(T[3], last_row, rtol=0, atol=1e-6)):  # fmt: skip
                raise ValueError(f"{pf}: expected a rigid camera-to-world pose (R orthonormal within "
                                 f"{tolerance}, det +1, last row 0 0 0 1), got\n{T.numpy()}")  # fmt: skip
            files.append(f"{seq}/{pf.name.removesuffix('.pose.txt')}.color.png")
            positions.append(T[:3, 3])
            rotations.append(R)
    if skipped:
        warnings.warn(f"{root}: skipped {len(skipped)} frames with non-finite poses: {_names(skipped)}", stacklevel=2)
    if not files:
        return CameraPoses((), torch.zeros(0, 3, dtype=torch.float64), torch.zeros(0, 3, 3, dtype=torch.float64))
    return CameraPoses(tuple(files), torch.stack(positions), torch.stack(rotations))


def seven_scenes_intrinsics(dtype: torch.dtype = torch.float64) -> Tensor:
    """``(3, 3)`` pixel intrinsics of the 7-Scenes colour camera (640x480, f = 525, (320, 240))."""
    (cx, cy), f = SEVEN_SCENES_PRINCIPAL_POINT, SEVEN_SCENES_FOCAL
    return torch.tensor([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]], dtype=dtype)


def load_rgb(path: str | Path) -> Tensor:
    """``(3, H, W)`` float32 RGB image in [0, 1] (Pillow; any mode is converted to RGB)."""
    with Image.open(path) as im:
        array = np.asarray(im.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)


def _check_image(image: Tensor) -> None:
    if not isinstance(image, Tensor) or image.dim() != 3 or not image.dtype.is_floating_point:
        raise ValueError(f"image: expected a floating-point (C, H, W) tensor, got {getattr(image, 'shape', image)}")


def _offset(hw: Sequence[int], size: int | Sequence[int], generator: torch.Generator | None) -> tuple[int, int]:
    """``(top, left)`` of an ``(h, w)`` crop of an ``hw`` image: centred, or uniform from ``generator``."""
    h, w = (size, size) if isinstance(size, int) else size
    if not (0 < h <= hw[0] and 0 < w <= hw[1]):
        raise ValueError(f"size: crop {(h, w)} empty or larger than the image {tuple(hw)}")
    if generator is None:
        return (hw[0] - h) // 2, (hw[1] - w) // 2
    top = int(torch.randint(hw[0] - h + 1, (), generator=generator))
    return top, int(torch.randint(hw[1] - w + 1, (), generator=generator))


def _crop(image: Tensor, size: int | Sequence[int], offset: tuple[int, int]) -> Tensor:
    h, w = (size, size) if isinstance(size, int) else size
    return image[:, offset[0] : offset[0] + h, offset[1] : offset[1] + w]


def resize_shorter(image: Tensor, size: int) -> Tensor:
    """Resize ``(C, H, W)`` so the shorter side is ``size`` (the longer rounded; bilinear, antialiased)."""
    _check_image(image)
    h, w = image.shape[-2:]
    out = (size, max(1, round(w * size / h))) if h <= w else (max(1, round(h * size / w)), size)
    return F.interpolate(image[None], size=out, mode="bilinear", align_corners=False, antialias=True)[0]


def center_crop(image: Tensor, size: int | Sequence[int]) -> Tensor:
    """Central ``(h, w)`` window of ``(C, H, W)``, at ``((H - h) // 2, (W - w) // 2)``."""
    _check_image(image)
    return _crop(image, size, _offset(image.shape[-2:], size, None))


def random_crop(image: Tensor, size: int | Sequence[int], generator: torch.Generator) -> Tensor:
    """A uniformly placed ``(h, w)`` window of ``(C, H, W)``, drawn from ``generator`` only."""
    _check_image(image)
    return _crop(image, size, _offset(image.shape[-2:], size, generator))


def normalize_channels(image: Tensor, mean: Sequence[float] | Tensor, std: Sequence[float] | Tensor) -> Tensor:
    """``(image - mean) / std`` per channel of ``(C, H, W)``; ``mean``, ``std`` have ``C`` entries."""
    _check_image(image)
    mean_t, std_t = (torch.as_tensor(v, dtype=image.dtype).reshape(-1, 1, 1) for v in (mean, std))
    if mean_t.shape[0] != image.shape[0] or std_t.shape[0] != image.shape[0] or not bool((std_t > 0).all()):
        raise ValueError(f"mean, std: expected {image.shape[0]} values each, std > 0; got {mean}, {std}")
    return (image - mean_t) / std_t


def channel_statistics(images: Iterable[Tensor]) -> tuple[Tensor, Tensor]:
    """Per-channel ``(C,)`` float64 mean and population std over all pixels of all ``(C, H, W)`` images."""
    total, total_sq, count = 0.0, 0.0, 0
    for image in images:
        _check_image(image)
        x = image.to(torch.float64).flatten(1)
        total, total_sq, count = total + x.sum(1), total_sq + (x * x).sum(1), count + x.shape[1]
    if not count:
        raise ValueError("images: expected at least one non-empty image")
    mean = total / count
    return mean, (total_sq / count - mean * mean).clamp_min(0).sqrt()


def adjust_intrinsics(K: Tensor, scale: float | Sequence[float], crop_offset: Sequence[int] = (0, 0)) -> Tensor:
    """``(..., 3, 3)`` pixel intrinsics after resizing by ``scale`` then cropping at ``crop_offset``.

    Pixel centres are integer coordinates, so resizing (``align_corners=False``) maps ``u`` to
    ``s (u + 1/2) - 1/2``; a crop at ``(top, left)`` subtracts ``(left, top)`` from ``(u, v)``.
    ``scale`` is new/old size, one factor or ``(scale_y, scale_x)`` (``resize_shorter`` rounds the
    longer side); ``crop_offset`` is ``(top, left)`` in resized pixels. Same dtype as ``K``.
    """
    sy, sx = (scale, scale) if isinstance(scale, (int, float)) else tuple(scale)
    top, left = crop_offset
    A = [[sx, 0.0, 0.5 * sx - 0.5 - left], [0.0, sy, 0.5 * sy - 0.5 - top], [0.0, 0.0, 1.0]]
    return torch.tensor(A, dtype=K.dtype, device=K.device) @ K


@dataclass(frozen=True)
class ImageTransform:
    """PoseNet-style preprocessing: ``resize_shorter`` -> crop -> ``normalize_channels``.

    ``resize``: shorter side (pixels) or ``None``; ``crop``: ``h`` or ``(h, w)`` or ``None``;
    ``mean``/``std``: per-channel statistics (``channel_statistics``) or ``None``; ``train``:
    random crops from an explicit generator instead of centre crops.
    """

    resize: int | None = 256
    crop: int | tuple[int, int] | None = 224
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    train: bool = False

    def apply(
        self, image: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, tuple[float, float], tuple[int, int]]:
        """``(output (C, h, w), (scale_y, scale_x), (top, left))``: the image and its geometry."""
        _check_image(image)
        h0, w0 = image.shape[-2:]
        if self.resize is not None:
            image = resize_shorter(image, self.resize)
        scale, offset = (image.shape[-2] / h0, image.shape[-1] / w0), (0, 0)
        if self.crop is not None:
            if self.train and generator is None:
                raise ValueError("generator: random crops (train=True) need an explicit torch.Generator")
            offset = _offset(image.shape[-2:], self.crop, generator if self.train else None)
            image = _crop(image, self.crop, offset)
        if self.mean is not None or self.std is not None:
            C = image.shape[0]
            image = normalize_channels(image, self.mean or (0.0,) * C, self.std or (1.0,) * C)
        return image, scale, offset

    def __call__(self, image: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The transformed ``(C, h, w)`` image (a random crop from ``generator`` when training)."""
        return self.apply(image, generator)[0]

    def intrinsics(self, K: Tensor, original_hw: Sequence[int]) -> Tensor:
        """``(..., 3, 3)`` intrinsics of the output of an ``original_hw`` image (centre crop)."""
        empty = torch.zeros(1, int(original_hw[0]), int(original_hw[1]))
        _, scale, offset = ImageTransform(self.resize, self.crop).apply(empty)
        return adjust_intrinsics(K, scale, offset)


class RelocalisationDataset(EpochDataset):
    """Images and camera-to-world poses for pose regression (PoseNet and its losses).

    Image ``i`` is ``root / poses.files[i]``; all are checked at construction (FileNotFoundError
    naming the first missing). With ``transform.train`` item ``i`` of epoch ``e`` crops with
    ``item_generator(seed, i, e)`` (``set_epoch``; or request ``(epoch, index)``). Optional
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
        super().__init__(len(poses), seed)
        self.root, self.poses, self.transform = Path(root), poses, transform
        self.paths = [self.root / f for f in poses.files]
        missing = [p for p in self.paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} of {len(self.paths)} images missing: {_names(missing)}")
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
