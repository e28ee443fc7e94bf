"""The slice model file of ``posereg locate-slice``: a slice Pose-Net, its grid and its stack range.

Read from a model file (``posereg.models.artifact``) of ``posereg train slice`` with safe
``weights_only`` loading; no training code (or Lightning) is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from posereg.data import Atlas, Volume, WorkingGrid, load_atlas
from posereg.data.slices import SliceGeometry
from posereg.models.artifact import NetworkKind, load_artifact
from posereg.registration.intensity import IntensitySettings
from posereg.registration.slice import SliceLocator

__all__ = ["DEFAULT_MIDDLE_FRACTION", "PRETRAINED_SLICE_MODEL", "SliceModel", "load_slice_model", "pretrained_slice_path"]

DEFAULT_MIDDLE_FRACTION = 0.66  # the training default (posereg.data.config.SliceDataConfig)
PRETRAINED_SLICE_MODEL = "slice_t1_64.pt"


def pretrained_slice_path() -> Path:
    """The bundled slice model (``posereg/weights/``): 64 x 64 slices of 3 mm on the MNI152 T1 grid.

    Run S6 of docs/benchmarks/slice_training_log.md: ``configs/slice_pose_heads.yaml`` on slices
    of synthetic heads for 66 minutes, continued for 100 with ``configs/slice_pose_heads_cpu.yaml``
    (S5) and for 73 more with ``configs/slice_pose_heads_cpu_s6.yaml``, all on this project's 2-core
    CPU; weights stored in float16. On slices of real scans: 28 degrees mean, 18 median
    (docs/benchmarks/real_slices.md); a GPU run of the recipe is the next step.

    Raises:
        FileNotFoundError: the installation lacks it.
    """
    from posereg.weights import bundled_file

    return bundled_file(PRETRAINED_SLICE_MODEL, "slice model")


@dataclass(frozen=True)
class SliceModel:
    """A trained slice Pose-Net and what it was trained on.

    Attributes:
        net: the ``SlicePoseNet`` (eval mode, float32).
        grid: its working grid; slices are ``grid.shape`` pixels of ``grid.spacing`` mm and the
            stack has ``grid.shape`` slices.
        middle_fraction: the central part of the stack the training slices were cut from.
    """

    net: nn.Module
    grid: WorkingGrid
    middle_fraction: float = DEFAULT_MIDDLE_FRACTION

    @property
    def geometry(self) -> SliceGeometry:
        """The slice grid of the network."""
        return SliceGeometry(self.grid.shape, self.grid.spacing, self.grid.shape)

    def atlas(self, image: Volume | None = None) -> Atlas:
        """The atlas on this model's grid: the bundled MNI152 template, or ``image`` (``load_atlas``)."""
        return load_atlas(self.grid, image)

    def locator(self, atlas: Atlas, refine: IntensitySettings | None = None, search_stack: bool = False,
                turns: bool = True) -> SliceLocator:  # fmt: skip
        """A ``SliceLocator`` with this network; ``search_stack`` searches the trained part of the
        stack; ``turns``: the consensus of four in-plane turns (``SliceLocator``)."""
        search = self.geometry.middle_indices(self.middle_fraction) if search_stack else None
        return SliceLocator(atlas, self.net, self.geometry, refine, search, turns)


def load_slice_model(path: str | Path) -> SliceModel:
    """The slice model in a file of ``posereg train slice``.

    Raises:
        FileNotFoundError: no such file. ValueError: not a slice model, or one without a valid grid.
    """
    artifact = load_artifact(path, (NetworkKind.SLICE,))
    if artifact.grid is None:
        raise ValueError(f"{path}: the slice model does not record its working grid")
    grid = WorkingGrid.from_record(artifact.grid, f"{path}: grid")
    data = artifact.config.get("data", {})
    fraction = data.get("middle_fraction", DEFAULT_MIDDLE_FRACTION) if isinstance(data, dict) else DEFAULT_MIDDLE_FRACTION
    if not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ValueError(f"{path}: config.data.middle_fraction must be in (0, 1], got {fraction!r}")
    return SliceModel(artifact.network(), grid, float(fraction))
