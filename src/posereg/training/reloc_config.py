"""Typed configuration of ``posereg train reloc`` (camera relocalisation with PoseNet), from YAML.

Sections: ``data`` (``posereg.data.reloc.config``: where the frames come from), ``model`` (the ``PoseNet``),
``loss`` (one switch, ``loss.kind``, picks the paper: Kendall & Cipolla's ``beta`` or
``homoscedastic`` weighting or the ``reprojection`` fine-tune, or Hou et al.'s ``se3``
geodesic loss with data-derived weights) and ``optim``. Unknown keys are rejected.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posereg.data.reloc.config import SOURCES, RelocDataConfig
from posereg.data.reloc.scene import SCENES
from posereg.training.config import parse_section, parse_sections, read_yaml_mapping

__all__ = [
    "LossKind", "RelocLossConfig", "RelocModelConfig", "RelocOptimConfig", "RelocTrainingConfig",
    "load_reloc_config", "reloc_config_from_dict",
]  # fmt: skip


class LossKind(enum.Enum):
    """The training loss (``loss.kind``)."""

    BETA = "beta"  # |p - p_hat|_g + beta |q - q_hat|_g (PoseNet, tuned beta)
    HOMOSCEDASTIC = "homoscedastic"  # learned s_p, s_q (Kendall & Cipolla 2017)
    REPROJECTION = "reprojection"  # L_g on the visible scene points (fine-tune; needs model.init_from)
    SE3 = "se3"  # squared SE(3) geodesic distance under W from the training poses (Hou et al. 2018)


@dataclass(frozen=True)
class RelocModelConfig:
    """``PoseNet`` settings; ``init_from``: a ``model.pt`` whose weights start the run (the
    reprojection fine-tune starts from a homoscedastic model)."""

    width: float = 0.5
    stem_stride: int = 2
    dropout: float = 0.5
    fc_features: int = 512
    rotation_head: str = "quaternion"
    init_from: str | None = None


@dataclass(frozen=True)
class RelocLossConfig:
    """The loss switch. ``gamma``: norm of the position, quaternion and reprojection terms
    (Kendall & Cipolla: 1); ``beta`` for 'beta'; ``init`` = initial ``(s_p, s_q)`` for
    'homoscedastic'; ``clip`` (pixels) bounds reprojection residuals; ``metric_weights``: the
    6 diagonal weights of ``W`` for 'se3', or None to estimate them from the spread of the
    training poses (``estimate_metric_weights(pose_spread(...))``, training data only);
    ``se3_squared``: Hou et al.'s ``d_W^2`` (True) or the distance ``d_W`` (False)."""

    kind: LossKind = LossKind.HOMOSCEDASTIC
    gamma: int = 1
    beta: float = 100.0
    init: tuple[float, float] = (0.0, -3.0)
    clip: float | None = 100.0
    metric_weights: tuple[float, ...] | None = None
    se3_squared: bool = True


@dataclass(frozen=True)
class RelocOptimConfig:
    """Adam settings and batching. ``decoupled_weight_decay``: AdamW (Loshchilov & Hutter
    2019), whose decay does not grow relative to the loss gradient when a loss is small in
    scale (as the SE(3) loss under data-derived weights is); False: Adam with L2 decay."""

    epochs: int = 40
    lr: float = 1e-3
    weight_decay: float = 1e-4
    decoupled_weight_decay: bool = False
    cosine_decay: bool = True
    batch_size: int = 32
    num_workers: int = 0


@dataclass(frozen=True)
class RelocTrainingConfig:
    """Everything ``posereg train reloc`` needs."""

    seed: int = 0
    data: RelocDataConfig = field(default_factory=RelocDataConfig)
    model: RelocModelConfig = field(default_factory=RelocModelConfig)
    loss: RelocLossConfig = field(default_factory=RelocLossConfig)
    optim: RelocOptimConfig = field(default_factory=RelocOptimConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for YAML and model files)."""
        out = {"network": "reloc", **dataclasses.asdict(self)}
        out["loss"]["kind"] = self.loss.kind.value
        return out


def _check(config: RelocTrainingConfig) -> RelocTrainingConfig:
    d, m, loss, o = config.data, config.model, config.loss, config.optim
    problems = []
    if d.source not in SOURCES:
        problems.append(f"data.source must be one of {list(SOURCES)}, got {d.source!r}")
    elif d.source == "synthetic" and d.scene not in SCENES:
        problems.append(f"data.scene must be one of {sorted(SCENES)}, got {d.scene!r}")
    elif d.source != "synthetic" and d.root is None:
        problems.append(f"data.root must name the {d.source} scene folder")
    if d.source == "seven_scenes" and loss.kind is LossKind.REPROJECTION:
        problems.append("loss.kind reprojection needs scene points, which the 7-Scenes loader does not provide")
    if d.crop < 16 or d.resize < d.crop:
        problems.append("data.crop must be >= 16 and data.resize >= data.crop")
    for key in ("train_sequences", "test_sequences", "points_per_image"):
        if getattr(d, key) < 1:
            problems.append(f"data.{key} must be >= 1")
    if d.frames < 2 or d.size < 16:
        problems.append("data.frames must be >= 2 and data.size >= 16")
    if m.rotation_head not in ("rotvec", "quaternion", "sixd", "svd9d"):
        problems.append(f"model.rotation_head must be rotvec, quaternion, sixd or svd9d, got {m.rotation_head!r}")
    elif loss.kind in (LossKind.BETA, LossKind.HOMOSCEDASTIC) and m.rotation_head != "quaternion":
        problems.append("model.rotation_head must be quaternion for the beta and homoscedastic losses (they compare quaternions)")
    if m.width <= 0 or m.stem_stride not in (1, 2) or not 0 <= m.dropout < 1 or m.fc_features < 1:
        problems.append("model: width > 0, stem_stride 1 or 2, dropout in [0, 1), fc_features >= 1")
    if loss.gamma not in (1, 2):
        problems.append(f"loss.gamma must be 1 or 2, got {loss.gamma}")
    if loss.beta <= 0:
        problems.append("loss.beta must be > 0")
    if len(loss.init) != 2:
        problems.append("loss.init must be [s_p, s_q]")
    if loss.clip is not None and loss.clip <= 0:
        problems.append("loss.clip must be > 0 or null")
    if loss.metric_weights is not None and (len(loss.metric_weights) != 6 or min(loss.metric_weights) <= 0):
        problems.append("loss.metric_weights must be 6 positive numbers or null")
    if loss.kind is LossKind.REPROJECTION and m.init_from is None:
        problems.append("loss.kind reprojection needs model.init_from (it diverges from random weights: "
                        "fine-tune a homoscedastic model)")  # fmt: skip
    if o.epochs < 1 or o.lr <= 0 or o.batch_size < 1 or o.num_workers < 0 or o.weight_decay < 0:
        problems.append("optim: epochs >= 1, lr > 0, batch_size >= 1, num_workers >= 0, weight_decay >= 0")
    if problems:
        raise ValueError("config: " + "; ".join(problems))
    return config


def reloc_config_from_dict(values: Mapping[str, Any]) -> RelocTrainingConfig:
    """Build and check a ``RelocTrainingConfig`` from nested mappings (e.g. parsed YAML)."""
    sections = {"data": RelocDataConfig, "model": RelocModelConfig, "optim": RelocOptimConfig}
    parsed = parse_sections(values, sections, "reloc", extra_keys=("loss",))
    loss_values = dict(values.get("loss") or {})
    kinds = {k.value: k for k in LossKind}
    kind = loss_values.get("kind", LossKind.HOMOSCEDASTIC.value)
    if kind not in kinds:
        raise ValueError(f"config: loss.kind must be one of {sorted(kinds)}, got {kind!r}")
    loss_values["kind"] = kinds[kind]
    loss = parse_section(RelocLossConfig, loss_values, "loss")
    return _check(RelocTrainingConfig(seed=int(values.get("seed", 0)), loss=loss, **parsed))  # type: ignore[arg-type]


def load_reloc_config(path: str | Path) -> RelocTrainingConfig:
    """Read a YAML relocalisation training configuration.

    Raises:
        FileNotFoundError: no such file. ValueError: not a YAML mapping, or bad keys/values.
    """
    return reloc_config_from_dict(read_yaml_mapping(path))
