"""The working grid: the cube of voxels a volume or slice network sees, and where its atlas comes from.

A trained network is tied to one grid (``shape`` voxels of ``spacing`` mm a side) and to the
atlas it was trained against (the MNI152 2009a template of nilearn in one ``contrast``,
resampled from its ``resolution_mm`` grid). Training configurations hold it as their ``atlas``
section, model files record it, and ``posereg.data.load_atlas`` builds the atlas on it: one
type, one atlas builder, one centring rule (the centre of mass of the brain mask).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field

from posereg.schema import Float, Int, Section, one_of, validate_config

__all__ = ["Contrast", "WorkingGrid"]


class Contrast(enum.Enum):
    """MRI contrast of the atlas."""

    T1 = "t1"
    T2 = "t2"


class WorkingGrid(Section):
    """An isotropic cube of voxels, RAS-aligned and centred on the atlas brain.

    Attributes:
        contrast: the atlas contrast (T1, or the T2-like image of ``posereg.data.atlas``).
        shape: voxels per axis.
        spacing: voxel size in mm.
        resolution_mm: the nilearn template grid (1 or 2 mm) the atlas is resampled from.
    """

    contrast: Contrast = Contrast.T1
    shape: Int = Field(64, ge=4, le=512)
    spacing: Float = Field(3.0, gt=0.0, le=50.0)
    resolution_mm: Annotated[Int, one_of(1, 2)] = 1

    @property
    def size(self) -> tuple[int, int, int]:
        """``(shape, shape, shape)``."""
        return (self.shape,) * 3

    @property
    def extent_mm(self) -> float:
        """The side of the cube in mm."""
        return self.shape * self.spacing

    def record(self) -> dict[str, Any]:
        """Plain data for model files and YAML (the contrast by its value, 't1' or 't2')."""
        return self.model_dump(mode="json")

    @classmethod
    def from_record(cls, values: Mapping[str, Any], where: str = "atlas") -> WorkingGrid:
        """The grid of a ``record()`` (or a configuration's ``atlas`` section).

        Raises:
            ValueError: unknown keys or bad values, each named (``where: ... shape: ...``).
        """
        return validate_config(cls, values, where)
