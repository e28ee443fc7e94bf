"""7-Scenes readers: split files and ``frame-*.pose.txt`` camera-to-world matrices; the colour camera.

``frame-*.pose.txt`` is the 4x4 camera-to-world matrix (metres); image names are
``seq-XX/frame-XXXXXX.color.png`` (``posereg.data.reloc.poses`` conventions).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from posereg.data.reloc.poses import CameraPoses, listed, parse_floats, read_text_lines

__all__ = [
    "SEVEN_SCENES_FOCAL", "SEVEN_SCENES_IMAGE_HW", "SEVEN_SCENES_PRINCIPAL_POINT", "read_seven_scenes",
    "read_seven_scenes_split", "seven_scenes_intrinsics",
]  # fmt: skip

SEVEN_SCENES_FOCAL = 525.0  # colour camera, pixels (585 is the depth camera's)
SEVEN_SCENES_PRINCIPAL_POINT = (320.0, 240.0)  # (u, v) pixels
SEVEN_SCENES_IMAGE_HW = (480, 640)


def read_seven_scenes_split(path: str | Path) -> list[int]:
    """Sequence numbers of a 7-Scenes ``TrainSplit.txt`` / ``TestSplit.txt`` (``sequenceN`` lines).

    Blank lines and lines starting with ``#`` are skipped; any other line (or a file that is not
    UTF-8 text) is a ValueError naming the file and line.
    """
    out = []
    for lineno, line in enumerate(read_text_lines(path), start=1):
        line = line.strip()
        if line and not line.startswith("#"):
            match = re.fullmatch(r"sequence(\d+)", line)
            if match is None:
                raise ValueError(f"{path}:{lineno}: expected 'sequenceN', got {line!r}")
            out.append(int(match.group(1)))
    return out


def _pose_matrix(path: Path) -> Tensor:
    tokens = " ".join(read_text_lines(path)).split()
    if len(tokens) != 16:
        raise ValueError(f"{path}: expected a 4x4 pose matrix (16 numbers), got {len(tokens)}")
    tokens = ["nan" if "#" in t else t for t in tokens]  # MSVC's -1.#IND, 1.#INF
    return torch.tensor(parse_floats(tokens, str(path)), dtype=torch.float64).reshape(4, 4)


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
        warnings.warn(f"{root}: skipped {len(skipped)} frames with non-finite poses: {listed(skipped)}", stacklevel=2)
    if not files:
        return CameraPoses((), torch.zeros(0, 3, dtype=torch.float64), torch.zeros(0, 3, 3, dtype=torch.float64))
    return CameraPoses(tuple(files), torch.stack(positions), torch.stack(rotations))


def seven_scenes_intrinsics(dtype: torch.dtype = torch.float64) -> Tensor:
    """``(3, 3)`` pixel intrinsics of the 7-Scenes colour camera (640x480, f = 525, (320, 240))."""
    (cx, cy), f = SEVEN_SCENES_PRINCIPAL_POINT, SEVEN_SCENES_FOCAL
    return torch.tensor([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]], dtype=dtype)
