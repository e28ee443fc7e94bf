"""Typed training configurations read from YAML, with errors that name the bad key.

A configuration file has sections; each section maps onto a frozen dataclass, unknown keys
are rejected (a typo must not silently fall back to a default), and values are checked
where they are parsed. No Lightning import here.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "AtlasConfig",
    "DataConfig",
    "ModelConfig",
    "NetworkKind",
    "OptimConfig",
    "ScheduleConfig",
    "VolumeTrainingConfig",
    "load_volume_config",
    "parse_sections",
]

T = TypeVar("T")


class NetworkKind(enum.Enum):
    """Which of Salehi et al.'s volume networks a configuration trains."""

    POSE = "pose"  # VolumePoseNet: one channel, full SO(3)
    CORRECTION = "correction"  # CorrectionNet: moving + atlas, small residual motions


@dataclass(frozen=True)
class AtlasConfig:
    """The atlas grid. ``contrast``: 't1' or 't2'; ``shape``: voxels per axis; ``spacing``: mm."""

    contrast: str = "t1"
    shape: int = 64
    spacing: float = 3.0
    resolution_mm: int = 1


@dataclass(frozen=True)
class DataConfig:
    """Synthetic training data.

    ``train_subjects`` subjects (seeds from the training family), ``items_per_epoch`` random
    motions per epoch, ``val_items`` fixed validation motions of ``val_subjects`` other
    training-family subjects (never the test family). Rotations are Haar-uniform (the
    Pose-Net) unless one of ``max_rotation_deg`` (each ``xyz`` Euler angle uniform in
    ``[-m, m]``, the paper's Correction-Net data) or ``max_rotation_angle_deg`` (angle
    uniform in ``[0, m]`` about a uniform axis: more small residuals, for a Correction-Net
    that is applied repeatedly) is set.
    """

    train_subjects: int = 16
    val_subjects: int = 2
    items_per_epoch: int = 512
    val_items: int = 64
    max_translation_mm: float = 10.0
    max_rotation_deg: float | None = None
    max_rotation_angle_deg: float | None = None
    crop: float = 0.15
    noise: float = 0.03
    subject_base_seed: int = 0
    seed: int = 0
    synthetic_heads: bool = False
    head_model: str | None = None


@dataclass(frozen=True)
class ModelConfig:
    """Network sizes and rotation head (see ``posereg.models.volume``; heads: rotvec, quaternion, sixd, svd9d)."""

    channels: tuple[int, ...] = (8, 32, 32, 64, 64)
    pool_before: tuple[int, ...] = (1, 2)
    fc: tuple[int, ...] = (512, 512, 256)
    pooled_size: int = 4
    translation_scale_mm: float = 15.0
    rotation_head: str = "rotvec"


@dataclass(frozen=True)
class ScheduleConfig:
    """Salehi's two stages; ``translation_weight`` is lambda (Correction-Net only)."""

    mse_epochs: int = 10
    geodesic_epochs: int = 10
    translation_weight: float = 0.01


@dataclass(frozen=True)
class OptimConfig:
    """Adam settings and batching; ``cosine_decay`` anneals the learning rate to ``lr / 100``
    over all epochs (without it, late epochs of the geodesic stage can destabilise);
    ``precision`` is Lightning's ('32-true', 'bf16-mixed', '16-mixed'); ``max_minutes`` stops
    training after that wall-clock time (the model so far is still written)."""

    lr: float = 1e-3
    weight_decay: float = 0.0
    cosine_decay: bool = False
    batch_size: int = 8
    num_workers: int = 2
    precision: str = "32-true"
    max_minutes: float | None = None


@dataclass(frozen=True)
class VolumeTrainingConfig:
    """Everything ``posereg train volume`` needs."""

    network: NetworkKind = NetworkKind.POSE
    seed: int = 0
    atlas: AtlasConfig = field(default_factory=AtlasConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for YAML and checkpoints)."""
        out = dataclasses.asdict(self)
        out["network"] = self.network.value
        return out


def parse_section(cls: type[T], values: object, name: str) -> T:
    """A frozen dataclass from a mapping, rejecting unknown keys (lists become tuples)."""
    if values is None:
        return cls()
    if not isinstance(values, Mapping):
        raise ValueError(f"config: section {name!r} must be a mapping, got {type(values).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"config: unknown keys {unknown} in section {name!r}; expected some of {sorted(known)}")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    hints = typing.get_type_hints(cls)
    for key, value in kwargs.items():
        kwargs[key] = _checked_scalar(hints[key], value, f"{name}.{key}")
    return cls(**kwargs)


_SCALARS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _checked_scalar(hint: object, value: object, where: str) -> object:
    """``value`` for a field typed ``hint``, checked when the field is a plain scalar
    (``bool``/``int``/``float``/``str``, optionally ``| None``); other fields pass through.

    YAML's ``no`` is ``False`` but ``'no'`` is a string, which ``bool`` would read as true:
    such slips are errors here, not silent settings. A number field also takes a numeric
    string, because PyYAML reads ``1e-3`` (no dot) as one.

    Raises:
        ValueError: naming the field and the expected type.
    """
    args = typing.get_args(hint)
    optional = type(None) in args
    if optional:
        if value is None:
            return None
        rest = [a for a in args if a is not type(None)]
        hint = rest[0] if len(rest) == 1 else hint
    if hint not in _SCALARS:
        return value
    if hint is float and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ValueError(f"config: {where} must be {_SCALARS[hint]}{' or null' if optional else ''}, got {value!r}")  # type: ignore[index]
    return value


def parse_sections(values: Mapping[str, Any], sections: Mapping[str, type], network: str,
                   extra_keys: tuple[str, ...] = ()) -> dict[str, Any]:  # fmt: skip
    """Parse the ``sections`` of a one-network configuration (``network``, if given, must be ``network``).

    Args:
        values: the top-level mapping.
        sections: the dataclass of each section.
        network: the only value ``network`` may take.
        extra_keys: other top-level keys the caller parses itself (besides ``network``, ``seed``).

    Returns:
        ``{section: parsed dataclass}``.

    Raises:
        ValueError: unknown top-level keys, another network, or a bad section.
    """
    allowed = {"network", "seed", *extra_keys, *sections}
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ValueError(f"config: unknown top-level keys {unknown}; expected some of {sorted(allowed)}")
    if values.get("network", network) != network:
        raise ValueError(f"config: network must be {network!r} for posereg train {network}, got {values.get('network')!r}")
    return {name: parse_section(cls, values.get(name), name) for name, cls in sections.items()}


def common_problems(atlas: AtlasConfig, rotation_head: str, schedule: ScheduleConfig, optim: OptimConfig) -> list[str]:
    """What is wrong with the sections every pose-network configuration shares (empty if nothing)."""
    problems = []
    if atlas.contrast not in ("t1", "t2"):
        problems.append(f"atlas.contrast must be 't1' or 't2', got {atlas.contrast!r}")
    if atlas.shape < 8 or atlas.spacing <= 0:
        problems.append("atlas.shape must be >= 8 and atlas.spacing > 0")
    if schedule.mse_epochs < 0 or schedule.geodesic_epochs < 0:
        problems.append("schedule epochs must be >= 0")
    if schedule.mse_epochs + schedule.geodesic_epochs < 1:
        problems.append("schedule: at least one epoch in all")
    if rotation_head not in ("rotvec", "quaternion", "sixd", "svd9d"):
        problems.append(f"model.rotation_head must be rotvec, quaternion, sixd or svd9d, got {rotation_head!r}")
    elif rotation_head != "rotvec" and schedule.mse_epochs > 0:
        problems.append("schedule.mse_epochs must be 0 unless model.rotation_head is rotvec (the MSE stage regresses rotation vectors)")
    if not (optim.lr > 0 and math.isfinite(optim.lr)) or optim.batch_size < 1 or optim.num_workers < 0:
        problems.append("optim.lr must be finite and > 0, optim.batch_size >= 1, optim.num_workers >= 0")
    if optim.precision not in ("32-true", "bf16-mixed", "16-mixed"):
        problems.append(f"optim.precision must be '32-true', 'bf16-mixed' or '16-mixed', got {optim.precision!r}")
    if optim.max_minutes is not None and not (optim.max_minutes > 0 and math.isfinite(optim.max_minutes)):
        problems.append(f"optim.max_minutes must be a positive number or null, got {optim.max_minutes}")
    return problems


def _check(config: VolumeTrainingConfig) -> VolumeTrainingConfig:
    problems = common_problems(config.atlas, config.model.rotation_head, config.schedule, config.optim)
    for key in ("train_subjects", "val_subjects", "items_per_epoch", "val_items"):
        if getattr(config.data, key) < 1:
            problems.append(f"data.{key} must be >= 1")
    d = config.data
    if d.max_rotation_deg is not None and d.max_rotation_angle_deg is not None:
        problems.append("data: set at most one of max_rotation_deg and max_rotation_angle_deg")
    if d.max_rotation_angle_deg is not None and not 0 < d.max_rotation_angle_deg <= 180:
        problems.append(f"data.max_rotation_angle_deg must be in (0, 180], got {d.max_rotation_angle_deg}")
    if d.max_rotation_deg is not None and not 0 < d.max_rotation_deg <= 180:
        problems.append(f"data.max_rotation_deg must be in (0, 180], got {d.max_rotation_deg}")
    if problems:
        raise ValueError("config: " + "; ".join(problems))
    return config


def volume_config_from_dict(values: Mapping[str, Any]) -> VolumeTrainingConfig:
    """Build and check a ``VolumeTrainingConfig`` from nested mappings (e.g. parsed YAML)."""
    sections = {"atlas": AtlasConfig, "data": DataConfig, "model": ModelConfig, "schedule": ScheduleConfig,
                "optim": OptimConfig}  # fmt: skip
    allowed = {"network", "seed", *sections}
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ValueError(f"config: unknown top-level keys {unknown}; expected some of {sorted(allowed)}")
    network = values.get("network", "pose")
    kinds = {k.value: k for k in NetworkKind}
    if network not in kinds:
        raise ValueError(f"config: network must be one of {sorted(kinds)}, got {network!r}")
    parsed = {name: parse_section(cls, values.get(name), name) for name, cls in sections.items()}
    return _check(VolumeTrainingConfig(network=kinds[network], seed=int(values.get("seed", 0)), **parsed))


def read_yaml_mapping(path: str | Path) -> Mapping[str, Any]:
    """The top-level mapping of a YAML configuration file.

    Raises:
        FileNotFoundError: no such file. ValueError: not a YAML mapping.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such configuration file")
    values = yaml.safe_load(path.read_text())
    if not isinstance(values, Mapping):
        raise ValueError(f"{path}: expected a YAML mapping of sections, got {type(values).__name__}")
    return values


def load_volume_config(path: str | Path) -> VolumeTrainingConfig:
    """Read a YAML training configuration.

    Raises:
        FileNotFoundError: no such file. ValueError: not a YAML mapping, or bad keys/values.
    """
    return volume_config_from_dict(read_yaml_mapping(path))
