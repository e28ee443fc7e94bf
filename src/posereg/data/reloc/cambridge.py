"""Cambridge Landmarks readers: ``dataset_*.txt`` pose files and VisualSFM ``.nvm`` reconstructions.

Cambridge ``dataset_*.txt`` and ``.nvm`` quaternions are world-to-camera (``R`` = transpose of
their matrix); Kendall's PoseNet 7-Scenes label files (same text format) hold camera-to-world
quaternions. Poses are returned camera-to-world (``posereg.data.reloc.poses``). ``nvm_intrinsics``
gives each frame's pixel intrinsics from the reconstruction's focal lengths.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from posereg.data.reloc.poses import (
    MAX_ABS_POSITION,
    CameraPoses,
    image_key,
    listed,
    parse_floats,
    quaternion_rotation,
    read_text_lines,
    relative_image_name,
)

__all__ = ["NVMReconstruction", "nvm_intrinsics", "points_seen_by", "read_cambridge_poses", "read_nvm"]


_COLUMNS_LINE = re.compile(r"imagefile\s*,", re.IGNORECASE)  # 'ImageFile, Camera Position [X Y Z W P Q R]'


def read_cambridge_poses(
    path: str | Path, *, world_to_camera_quaternion: bool = True, max_abs_position: float | None = MAX_ABS_POSITION
) -> CameraPoses:
    """Read a Cambridge Landmarks (or Kendall PoseNet-format) pose file.

    Header lines (``Visual Landmark Dataset V1``, ``ImageFile, Camera Position [X Y Z W P Q R]``,
    blank), then ``<image> X Y Z W P Q R`` rows. The header is recognised by its content, not
    by position: blank lines are skipped anywhere, the first other line must be ``Visual Landmark
    Dataset ...``, and a line starting with ``ImageFile,`` before the first row is the column header.
    Every other line is a row (a file without the blank third line loses none of its rows);
    ``\\n`` and ``\\r\\n`` endings and a byte-order mark are accepted. ``XYZ`` is the camera
    centre in world coordinates; quaternions need not be unit length. Image names must stay
    under the dataset folder (``relative_image_name``).

    Args:
        world_to_camera_quaternion: ``True`` for Cambridge ``dataset_*.txt`` (``WPQR`` is the
            world-to-camera rotation; ``R`` is the transpose of its matrix); ``False`` for
            Kendall's 7-Scenes files ``kendall_posenet_*`` (``WPQR`` is camera-to-world).
        max_abs_position: drop the frames with any ``|X|, |Y|, |Z|`` above it (metres), with a
            warning saying how many and which (one Great Court frame sits near 3e9 m, a
            reconstruction failure that would swamp the pose statistics and the metric
            weights); ``None`` keeps every row. The default is ``MAX_ABS_POSITION``, as in the
            ``data`` section.

    Returns:
        Camera-to-world poses in file order.

    Raises:
        ValueError: missing header, a row without 8 columns, a non-numeric or non-finite value,
            a zero quaternion, an image path outside the dataset folder, or a file that is not
            UTF-8 text; the message gives ``path:line``.
    """
    path = Path(path)
    if max_abs_position is not None and not max_abs_position > 0:
        raise ValueError(f"max_abs_position: expected a positive number of metres or None, got {max_abs_position}")
    lines = [(i, line) for i, line in enumerate(read_text_lines(path), start=1) if line.strip()]
    if not lines or not lines[0][1].strip().startswith("Visual Landmark Dataset"):
        raise ValueError(f"{path}:{lines[0][0] if lines else 1}: expected the header 'Visual Landmark Dataset V1'")
    files, positions, rotations = [], [], []
    for lineno, line in lines[1:]:
        tokens, where = line.split(), f"{path}:{lineno}"
        if not files and _COLUMNS_LINE.match(line.strip()):
            continue
        if len(tokens) != 8:
            raise ValueError(f"{where}: expected 8 columns 'image X Y Z W P Q R', got {len(tokens)}: {line!r}")
        values = parse_floats(tokens[1:], where)
        if not all(math.isfinite(v) for v in values[:3]):
            raise ValueError(f"{where}: expected a finite position, got {values[:3]}")
        rotations.append(quaternion_rotation(values[3:], where))
        files.append(relative_image_name(tokens[0], where))
        positions.append(values[:3])
    R = torch.stack(rotations) if rotations else torch.zeros(0, 3, 3, dtype=torch.float64)
    c = torch.tensor(positions, dtype=torch.float64).reshape(-1, 3)
    poses = CameraPoses(tuple(files), c, R.mT if world_to_camera_quaternion else R)
    return poses if max_abs_position is None else _drop_outliers(poses, max_abs_position, path)


def _drop_outliers(poses: CameraPoses, max_abs_position: float, path: Path) -> CameraPoses:
    """``poses`` without the frames beyond ``max_abs_position`` metres, with a warning naming them."""
    extent = poses.positions.abs().amax(-1)
    keep = extent <= max_abs_position
    if bool(keep.all()):
        return poses
    dropped = [f"{f} ({e:.3g} m)" for f, e, k in zip(poses.files, extent.tolist(), keep.tolist()) if not k]
    warnings.warn(f"{path}: dropped {len(dropped)} of {len(poses)} frames as position outliers, with a camera "
                  f"coordinate beyond max_abs_position = {max_abs_position:g} m (failed reconstructions, such as "
                  f"the Great Court frame near 3e9 m; None keeps them): {listed(dropped)}", stacklevel=3)  # fmt: skip
    return poses.select(keep)


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
    relative to the image centre). Anything after the first model is ignored. Camera names are
    kept as written: they are matched to the dataset's images (``image_key``), never opened.

    Raises:
        ValueError: bad header, count, column count or number; a non-finite value (focal
            length, quaternion, centre, distortion, point, measurement); a focal length not
            above 0; a zero quaternion; colours outside 0..255; an image index that is not an
            integer in range; a truncated file; the message gives ``path:line``.
    """
    path = Path(path)
    rows = [(i, line.split()) for i, line in enumerate(read_text_lines(path), 1) if line.strip()]
    cursor = iter(rows)

    def take(what: str) -> tuple[str, list[str]]:
        try:
            lineno, tokens = next(cursor)
        except StopIteration:
            raise ValueError(f"{path}: file ends before {what}") from None
        return f"{path}:{lineno}", tokens

    def count(what: str) -> int:
        where, tokens = take(what)
        if len(tokens) != 1 or re.fullmatch(r"[0-9]+", tokens[0]) is None:
            raise ValueError(f"{where}: expected {what}, got {' '.join(tokens)!r}")
        return int(tokens[0])

    where, tokens = take("the header")
    if not tokens[0].startswith("NVM_V3"):
        raise ValueError(f"{where}: expected the header 'NVM_V3', got {' '.join(tokens)!r}")
    n = count("the camera count")
    files, cams, rotations = [], [], []
    for i in range(n):
        where, tokens = take(f"camera {i}")
        files.append(tokens[0])
        cams.append(_nvm_camera(tokens, where))
        rotations.append(quaternion_rotation(cams[-1][1:5], where).mT)
    cam = torch.tensor(cams, dtype=torch.float64).reshape(-1, 9)
    p = count("the point count")
    xyz, rgb, seen_image, seen_point = [], [], [], []
    for j in range(p):
        where, tokens = take(f"point {j}")
        point, colour, images = _nvm_point(tokens, where, n)
        xyz.append(point)
        rgb.append(colour)
        seen_image.append(images)
        seen_point.append(np.full(len(images), j, dtype=np.int64))
    image_idx, point_idx = (np.concatenate(s) if s else np.zeros(0, np.int64) for s in (seen_image, seen_point))
    order = np.lexsort((point_idx, image_idx))
    groups = np.split(point_idx[order], np.searchsorted(image_idx[order], np.arange(1, n))) if n else []
    R = torch.stack(rotations) if rotations else torch.zeros(0, 3, 3, dtype=torch.float64)
    points = torch.tensor(np.asarray(xyz, dtype=np.float64).reshape(-1, 3))
    colours = torch.tensor(np.asarray(rgb, dtype=np.uint8).reshape(-1, 3))
    return NVMReconstruction(tuple(files), cam[:, 0], R, cam[:, 5:8], cam[:, 8], points, colours,
                             tuple(torch.from_numpy(np.unique(g)) for g in groups))  # fmt: skip


def _nvm_camera(tokens: list[str], where: str) -> list[float]:
    """``[f, qw, qx, qy, qz, cx, cy, cz, radial]`` of an NVM camera line, checked."""
    if len(tokens) != 11:
        raise ValueError(f"{where}: expected 11 columns '<file> <f> <qw qx qy qz> <cx cy cz> <r> 0', "
                         f"got {len(tokens)}")  # fmt: skip
    values = parse_floats(tokens[1:10], where)
    if not (math.isfinite(values[0]) and values[0] > 0):
        raise ValueError(f"{where}: expected a finite focal length > 0 pixels, got {values[0]}")
    if not all(math.isfinite(v) for v in values[5:9]):
        raise ValueError(f"{where}: expected a finite camera centre and radial distortion, got {values[5:9]}")
    return values


def _nvm_point(tokens: list[str], where: str, cameras: int) -> tuple[list[float], list[int], np.ndarray]:
    """``(XYZ, RGB, image indices)`` of an NVM point line, checked against ``cameras`` cameras."""
    m = int(tokens[6]) if len(tokens) > 6 and re.fullmatch(r"[0-9]+", tokens[6]) else -1
    if m < 0 or len(tokens) != 7 + 4 * m:
        raise ValueError(f"{where}: expected '<X Y Z> <R G B> <n>' and n measurements of 4 numbers, "
                         f"got {len(tokens)} columns")  # fmt: skip
    values = np.asarray(parse_floats(tokens[:6] + tokens[7:], where))
    if not np.isfinite(values[:3]).all():
        raise ValueError(f"{where}: expected a finite point X Y Z, got {values[:3].tolist()}")
    colour = values[3:6]
    if not (np.isfinite(colour).all() and (colour == np.round(colour)).all() and (colour >= 0).all()
            and (colour <= 255).all()):  # fmt: skip
        raise ValueError(f"{where}: expected colours R G B, integers in 0..255, got {colour.tolist()}")
    measurements = values[6:].reshape(m, 4)
    if not np.isfinite(measurements).all():
        raise ValueError(f"{where}: expected finite measurements '<image> <feature> <x> <y>'")
    images = measurements[:, 0]
    if m and ((images != np.round(images)).any() or images.min() < 0 or images.max() >= cameras):
        raise ValueError(f"{where}: image index out of range 0..{cameras - 1}: {images.tolist()}")
    return values[:3].tolist(), colour.astype(np.int64).tolist(), images.astype(np.int64)


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
                         f"{listed(missing)}")  # fmt: skip
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



def nvm_intrinsics(reconstruction: NVMReconstruction, files: Sequence[str], image_hw: Sequence[int]) -> Tensor:
    """``(N, 3, 3)`` float64 pixel intrinsics of the images ``files`` (all ``image_hw`` pixels).

    NVM measurements are relative to the image centre, so ``K`` has the centre
    ``((w - 1) / 2, (h - 1) / 2)`` as principal point and the focal length of the image's NVM
    camera (matched by ``image_key``). Frames the reconstruction lacks have no points (an
    all-False mask in ``points_seen_by``); they get the median focal length, so that no NaN
    enters a loss or its gradient.
    """
    focal = {image_key(k): f for k, f in zip(reconstruction.files, reconstruction.focal_lengths.tolist())}
    typical = float(reconstruction.focal_lengths.median())
    h, w = image_hw
    f = torch.tensor([focal.get(image_key(name), typical) for name in files], dtype=torch.float64)
    K = torch.zeros(len(files), 3, 3, dtype=torch.float64)
    K[:, 0, 0] = K[:, 1, 1] = f
    K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = (w - 1) / 2, (h - 1) / 2, 1.0
    return K
