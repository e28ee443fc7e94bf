"""Typed configuration of ``posereg train slice`` (Salehi et al.'s 2D->3D network), from YAML.

Sections as for volumes (``atlas``, ``schedule``, ``optim`` are shared); ``data`` and
``model`` are the slice sampler's and the ``SlicePoseNet``'s. Unknown keys are rejected.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posereg.training.config import (
    AtlasConfig,
    OptimConfig,
    ScheduleConfig,
    common_problems,
    parse_sections,
    read_yaml_mapping,
)

__all__ = ["SliceDataConfig", "SliceModelConfig", "SliceTrainingConfig", "load_slice_config", "slice_config_from_dict"]


@dataclass(frozen=True)
class SliceDataConfig:
    """Synthetic slice data (``posereg.data.slices``).

    ``items_per_epoch`` slices, ``slices_per_volume`` per rotated subject from the central
    ``middle_fraction`` of its stack; rotations with extrinsic ``x, y, z`` Euler angles
    uniform in the ranges (degrees; the paper's half space by default); Rician ``noise``.
    """

    train_subjects: int = 16
    val_subjects: int = 2
    items_per_epoch: int = 3000
    val_items: int = 300
    slices_per_volume: int = 30
    middle_fraction: float = 0.66
    x_range_deg: tuple[float, float] = (-90.0, 90.0)
    y_range_deg: tuple[float, float] = (-90.0, 90.0)
    z_range_deg: tuple[float, float] = (-180.0, 180.0)
    noise: float = 0.03
    subject_base_seed: int = 0
    seed: int = 0


@dataclass(frozen=True)
class SliceModelConfig:
    """``SlicePoseNet`` settings: ResNet-18 ``width`` and ``stem_stride``, rotation head."""

    width: float = 1.0
    stem_stride: int = 1
    rotation_head: str = "rotvec"


@dataclass(frozen=True)
class SliceTrainingConfig:
    """Everything ``posereg train slice`` needs (``schedule.translation_weight`` weighs the
    squared slice-index error against the rotation loss)."""

    seed: int = 0
    atlas: AtlasConfig = field(default_factory=AtlasConfig)
    data: SliceDataConfig = field(default_factory=SliceDataConfig)
    model: SliceModelConfig = field(default_factory=SliceModelConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for YAML and checkpoints)."""
        return {"network": "slice", **dataclasses.asdict(self)}


def _check(config: SliceTrainingConfig) -> SliceTrainingConfig:
    problems = common_problems(config.atlas, config.model.rotation_head, config.schedule, config.optim)
    d = config.data
    for key in ("train_subjects", "val_subjects", "items_per_epoch", "val_items", "slices_per_volume"):
        if getattr(d, key) < 1:
            problems.append(f"data.{key} must be >= 1")
    if not 0 < d.middle_fraction <= 1:
        problems.append(f"data.middle_fraction must be in (0, 1], got {d.middle_fraction}")
    for key in ("x_range_deg", "y_range_deg", "z_range_deg"):
        low_high = getattr(d, key)
        if len(low_high) != 2 or not -180 <= low_high[0] <= low_high[1] <= 180:
            problems.append(f"data.{key} must be [low, high] within [-180, 180], got {list(low_high)}")
    if config.model.stem_stride not in (1, 2) or config.model.width <= 0:
        problems.append("model.stem_stride must be 1 or 2 and model.width > 0")
    if problems:
        raise ValueError("config: " + "; ".join(problems))
    return config


def slice_config_from_dict(values: Mapping[str, Any]) -> SliceTrainingConfig:
    """Build and check a ``SliceTrainingConfig`` from nested mappings (e.g. parsed YAML)."""
    sections = {"atlas": AtlasConfig, "data": SliceDataConfig, "model": SliceModelConfig, "schedule": ScheduleConfig,
                "optim": OptimConfig}  # fmt: skip
    parsed = parse_sections(values, sections, "slice")
    return _check(SliceTrainingConfig(seed=int(values.get("seed", 0)), **parsed))  # type: ignore[arg-type]


def load_slice_config(path: str | Path) -> SliceTrainingConfig:
    """Read a YAML slice training configuration.

    Raises:
        FileNotFoundError: no such file. ValueError: not a YAML mapping, or bad keys/values.
    """
    return slice_config_from_dict(read_yaml_mapping(path))
