"""Camera poses of relocalisation datasets and the names of their images.

Poses are camera-to-world ``(R, c)`` as in ``posereg.geometry.camera``: ``R`` ``(3, 3)`` maps
camera axes to world axes, ``c`` ``(3,)`` is the camera centre in world coordinates (metres),
the camera looks along ``+z`` (OpenCV); quaternions are ``(w, x, y, z)`` with ``w >= 0``. Image
names are POSIX paths relative to the dataset root (a leading ``/`` is dropped). The readers of
each dataset (``cambridge``, ``seven_scenes``) share the parsing helpers here.

Image names read from label files must stay under the dataset root (``relative_image_name``):
one leading ``/`` is PoseNet's way of writing a root-relative name (Kendall's 7-Scenes files)
and is dropped, but ``//...``, drive letters (``C:``), ``..`` components and empty names are
refused. The check is on the name, not the file system: symbolic links inside the dataset
folder (sequences stored on another disk) are followed, as the folder's owner made them.
``MAX_ABS_POSITION`` is the one default bound on camera coordinates (the reader's default and
the configuration's).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

import torch
from torch import Tensor

from posereg.geometry import matrix_to_quaternion, quaternion_to_matrix

__all__ = [
    "MAX_ABS_POSITION", "CameraPoses", "clean_name", "dataset_image_name", "image_key", "listed", "parse_floats",
    "quaternion_rotation", "read_text_lines", "relative_image_name",
]  # fmt: skip

SHOWN = 5  # how many offending names an error or warning lists
MAX_ABS_POSITION = 1e4
"""Camera coordinates beyond this many metres are reconstruction failures (one Great Court frame
lies near 3e9 m): ``read_cambridge_poses`` and the ``data`` section drop such frames by default."""


def listed(items: Sequence[object]) -> str:
    """The first ``SHOWN`` of ``items``, comma-separated, and how many more (for messages)."""
    more = f" and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return ", ".join(str(i) for i in items[:SHOWN]) + more


def clean_name(name: str) -> str:
    """``name`` as a relative POSIX path (backslashes turned, a leading ``/`` dropped)."""
    return PurePosixPath(name.replace("\\", "/").lstrip("/")).as_posix()


def relative_image_name(name: str, where: str) -> str:
    """``name`` (an image named by a label file) as a POSIX path under the dataset root.

    Backslashes are turned into ``/`` and one leading ``/`` (PoseNet's root-relative names) is
    dropped; for valid names the result is ``clean_name(name)``.

    Raises:
        ValueError: naming ``where`` (``path:line``): an empty name, an absolute path (``//x``, a
            drive ``C:``), a ``..`` component, or a NUL character.
    """
    relative = name.replace("\\", "/").removeprefix("/")
    parts = PurePosixPath(relative).parts
    absolute = relative.startswith("/") or bool(PureWindowsPath(relative).drive)
    if not parts or absolute or ".." in parts or "\x00" in name:
        raise ValueError(f"{where}: image path {name!r} must name a file under the dataset folder "
                         "(relative, without '..' or a drive)")  # fmt: skip
    return PurePosixPath(relative).as_posix()


def read_text_lines(path: str | Path) -> list[str]:
    """The lines of a UTF-8 text file (a byte-order mark dropped; ``\\n``, ``\\r\\n`` or ``\\r`` endings).

    Raises:
        FileNotFoundError: no such file. ValueError: not UTF-8 text, naming the file and the byte.
    """
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a UTF-8 text file ({err.reason} at byte {err.start})") from None


def image_key(name: str) -> str:
    """Matching key of an image name: relative POSIX path without extension.

    ``"/seq1/frame00001.png"`` and ``"seq1/frame00001.jpg"`` both give ``"seq1/frame00001"``
    (the directory is kept: frame names repeat across sequences).
    """
    return PurePosixPath(clean_name(name)).with_suffix("").as_posix()


def dataset_image_name(nvm_name: str, suffix: str = ".png") -> str:
    """The dataset's name of an image a Cambridge ``.nvm`` names (``.jpg`` there): same path, ``suffix``."""
    return PurePosixPath(clean_name(nvm_name)).with_suffix(suffix).as_posix()


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


def parse_floats(tokens: Sequence[str], where: str) -> list[float]:
    """``tokens`` as floats; ValueError naming ``where`` (``path:line``) otherwise."""
    try:
        return [float(t) for t in tokens]
    except ValueError:
        raise ValueError(f"{where}: expected numbers, got {' '.join(tokens)!r}") from None


def quaternion_rotation(q: list[float], where: str) -> Tensor:
    """``(3, 3)`` float64 matrix of a finite non-zero quaternion ``W P Q R`` (any length); ValueError naming ``where``."""
    if not all(math.isfinite(v) for v in q) or math.hypot(*q) == 0:
        raise ValueError(f"{where}: expected a finite non-zero quaternion W P Q R, got {q}")
    return quaternion_to_matrix(torch.tensor(q, dtype=torch.float64))

