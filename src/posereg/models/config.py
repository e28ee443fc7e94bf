"""The models layer's configuration sections: the volume networks, the slice Pose-Net and PoseNet.

Rotation heads are named by the one registry, ``posereg.models.heads.ROTATION_HEADS``; every
section refuses a network it could not build (validated on the class, ``posereg.schema``).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field, model_validator

from posereg.models.artifact import NetworkKind
from posereg.models.heads import ROTATION_HEADS
from posereg.schema import ConfigError, Float, Int, Section, Str, one_of

__all__ = ["RelocModelConfig", "RotationHeadName", "SliceModelConfig", "VolumeModelConfig"]


def _registered_head(name: str) -> str:
    if name not in ROTATION_HEADS:
        raise ValueError(f"must be one of {sorted(ROTATION_HEADS)} (posereg.models.ROTATION_HEADS), got {name!r}")
    return name


RotationHeadName = Annotated[Str, AfterValidator(_registered_head)]
"""The name of a rotation head in ``ROTATION_HEADS`` ('rotvec', 'quaternion', 'sixd', 'svd9d')."""

Positive = Annotated[Int, Field(ge=1)]


class VolumeModelConfig(Section):
    """Sizes and rotation head of the volume networks (``posereg.models.volume``): 3x3x3
    convolutions of ``channels`` kernels, 2x max-pooling before the convolutions whose 0-based
    indices are in ``pool_before``, the last map average-pooled to ``pooled_size`` per axis,
    fully connected layers ``fc``; the Correction-Net's translation head outputs multiples of
    ``translation_scale_mm`` millimetres; ``init_from``: a volume ``model.pt`` of the same network
    whose weights start the run (fine-tuning), or None for seeded random weights."""

    channels: tuple[Positive, ...] = Field((8, 32, 32, 64, 64), min_length=1)
    pool_before: tuple[Annotated[Int, Field(ge=0)], ...] = (1, 2)
    fc: tuple[Positive, ...] = Field((512, 512, 256), min_length=1)
    pooled_size: Positive = 4
    translation_scale_mm: Float = Field(15.0, gt=0)
    rotation_head: RotationHeadName = "rotvec"
    init_from: Str | None = None

    @model_validator(mode="after")
    def _buildable(self) -> VolumeModelConfig:
        bad = [i for i in self.pool_before if i >= len(self.channels)]
        if bad:
            raise ConfigError("pool_before", f"indices {bad} are not convolutions 0..{len(self.channels) - 1}")
        if len(set(self.pool_before)) != len(self.pool_before):
            raise ConfigError("pool_before", f"expected distinct indices, got {list(self.pool_before)}")
        return self

    def spec(self, network: NetworkKind) -> dict[str, Any]:
        """The ``spec`` of the ``network`` these settings describe (``volume_network_from_spec``)."""
        spec: dict[str, Any] = {"network": network.value, "channels": self.channels, "pool_before": self.pool_before,
                                "fc": self.fc, "pooled_size": self.pooled_size, "rotation_head": self.rotation_head}  # fmt: skip
        if network is NetworkKind.CORRECTION:
            spec["translation_scale_mm"] = self.translation_scale_mm
        return spec


class SliceModelConfig(Section):
    """``SlicePoseNet`` settings: ResNet-18 ``width`` (multiplier of the channels) and
    ``stem_stride`` (1 or 2), rotation head; ``init_from`` as for volumes (a slice ``model.pt``)."""

    width: Float = Field(1.0, gt=0)
    stem_stride: Annotated[Int, one_of(1, 2)] = 1
    rotation_head: RotationHeadName = "rotvec"
    init_from: Str | None = None


class RelocModelConfig(Section):
    """``PoseNet`` settings: ResNet-18 ``width`` and ``stem_stride``, ``dropout`` before the
    ``fc_features`` regression layer, rotation head; ``init_from``: a relocalisation
    ``model.pt`` whose weights start the run (the reprojection fine-tune starts from a
    homoscedastic model)."""

    width: Float = Field(0.5, gt=0)
    stem_stride: Annotated[Int, one_of(1, 2)] = 2
    dropout: Float = Field(0.5, ge=0, lt=1)
    fc_features: Positive = 512
    rotation_head: RotationHeadName = "quaternion"
    init_from: Str | None = None
