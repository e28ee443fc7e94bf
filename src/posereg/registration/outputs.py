"""The files of one registration, written together or not at all: for a single scan and for every scan of a batch.

``RegistrationOutputs`` says where the transform, the aligned image and the result record go and
how they are written; ``write_outputs`` writes them from the scan and its result inside
``posereg._files.atomic_outputs`` (temporary files renamed into place only when every one is
complete), so a crash or a bad output never leaves half a result behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from posereg._files import atomic_outputs
from posereg.data import Volume, XformCode
from posereg.data.image_io import save_image
from posereg.registration.apply import Interpolation, resample_rigid
from posereg.registration.transform_files import TransformFormat, write_transform

__all__ = ["RegistrationOutputs", "write_outputs"]


@dataclass(frozen=True)
class RegistrationOutputs:
    """Where one registration's files go.

    Attributes:
        transform: the transform file (reference -> scan, ``fmt``).
        fmt: its format (``transform_files.TransformFormat``).
        image: the scan resampled onto ``reference`` (None: no image).
        reference: the grid of ``image`` and its NIfTI frame code (needed with ``image``).
        interpolation: of ``image``.
        record: the result record (JSON text given to ``write_outputs``; None: none).
        flirt_grids: for FSL matrices, ``{"moving_grid": ..., "reference_grid": ...}``: the stored
            voxel grids of ``-in`` and ``-ref`` (``write_transform``).
    """

    transform: Path
    fmt: TransformFormat = TransformFormat.ITK
    image: Path | None = None
    reference: tuple[Volume, XformCode] | None = None
    interpolation: Interpolation = Interpolation.LINEAR
    record: Path | None = None
    flirt_grids: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.image is not None and self.reference is None:
            raise ValueError("RegistrationOutputs: an aligned image needs its reference grid")
        if self.fmt is TransformFormat.FSL and self.flirt_grids is None:
            raise ValueError("RegistrationOutputs: FLIRT matrices need the stored grids of the scan and the reference")

    @property
    def paths(self) -> tuple[Path, ...]:
        """Every file written, transform first."""
        return tuple(p for p in (self.transform, self.image, self.record) if p is not None)


def write_outputs(outputs: RegistrationOutputs, moving: Volume, R: Tensor, t: Tensor, centre: Tensor,
                  record_text: str | None = None) -> tuple[Path, ...]:  # fmt: skip
    """Write the transform ``T(x) = R (x - c) + c + t`` (RAS mm, reference -> scan), the aligned
    image and the record, all or none.

    Args:
        outputs: what to write where.
        moving: the scan (for the aligned image).
        R, t, centre: the result (``(3, 3)``, ``(3,)`` mm, ``(3,)`` mm).
        record_text: the record's text (required when ``outputs.record`` is set).

    Returns:
        The paths written.
    """
    if (outputs.record is None) != (record_text is None):
        raise ValueError("write_outputs: record_text goes with RegistrationOutputs.record")
    paths = outputs.paths
    with atomic_outputs(paths) as temporary:
        written = dict(zip(paths, temporary, strict=True))
        write_transform(written[outputs.transform], R, t, centre, outputs.fmt, **(outputs.flirt_grids or {}))
        if outputs.image is not None:
            assert outputs.reference is not None  # __post_init__
            grid, space = outputs.reference
            aligned = resample_rigid(moving, grid, R, t, centre, outputs.interpolation)
            save_image(aligned, written[outputs.image], xform_code=space)
        if outputs.record is not None:
            Path(written[outputs.record]).write_text(str(record_text))
    return paths
