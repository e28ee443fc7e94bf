"""The data layer's configuration sections: the synthetic volume and slice data (the atlas section is ``posereg.data.grid.WorkingGrid``).

Sections of the training configurations (``posereg.training.config``), validated where they are
declared (``posereg.schema.Section``). Seeds are not here: the top-level ``seed`` of a training
configuration seeds its data too.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from posereg.schema import Bool, ConfigError, Float, Int, Section, Str

__all__ = ["SliceDataConfig", "VolumeDataConfig"]

Count = Annotated[Int, Field(ge=1)]
Angle = Annotated[Float, Field(ge=-180.0, le=180.0)]


class VolumeDataConfig(Section):
    """Synthetic training data of the volume networks (``posereg train volume``).

    ``train_subjects`` subjects (seeds from the training family, starting at
    ``subject_base_seed``), ``items_per_epoch`` random motions per epoch, ``val_items`` fixed
    validation motions of ``val_subjects`` other training-family subjects (never the test
    family). Translations uniform in ``[-max_translation_mm, max_translation_mm]`` per axis.
    Rotations are Haar-uniform (the Pose-Net) unless one of ``max_rotation_deg`` (each ``xyz``
    Euler angle uniform in ``[-m, m]``, the paper's Correction-Net data) or
    ``max_rotation_angle_deg`` (angle uniform in ``[0, m]`` about a uniform axis: more small
    residuals, for a Correction-Net that is applied repeatedly) is set. ``crop``: the largest
    fraction of the field of view cut off at each of up to two faces; ``noise``: Rician noise
    relative to the [0, 1] intensity range. ``synthetic_heads``: draw whole synthetic heads on
    the training device instead (``posereg.data.head_synthesis``; ``head_model``: a saved head
    model file, or None to build it from nilearn; ``compile_synthesis``: draw them through
    ``torch.compile``, the same samples several times faster once compiled, which needs a C++
    compiler on CPU or Triton on GPU).
    """

    train_subjects: Count = 16
    val_subjects: Count = 2
    items_per_epoch: Count = 512
    val_items: Count = 64
    max_translation_mm: Float = Field(10.0, ge=0)
    max_rotation_deg: Float | None = Field(None, gt=0, le=180)
    max_rotation_angle_deg: Float | None = Field(None, gt=0, le=180)
    crop: Float = Field(0.15, ge=0, lt=0.5)
    noise: Float = Field(0.03, ge=0)
    subject_base_seed: Int = Field(0, ge=0)
    synthetic_heads: Bool = False
    head_model: Str | None = None
    compile_synthesis: Bool = False

    @model_validator(mode="after")
    def _one_rotation_range(self) -> VolumeDataConfig:
        if self.max_rotation_deg is not None and self.max_rotation_angle_deg is not None:
            raise ConfigError("max_rotation_angle_deg", "set at most one of max_rotation_deg and max_rotation_angle_deg")
        return self


class SliceDataConfig(Section):
    """Synthetic slice data of the slice Pose-Net (``posereg.data.slices``).

    ``items_per_epoch`` slices, ``slices_per_volume`` per rotated subject from the central
    ``middle_fraction`` of its stack; rotations with extrinsic ``x, y, z`` Euler angles
    uniform in the ``[low, high]`` ranges (degrees; the paper's half space by default); Rician
    ``noise``; subjects from the training family, starting at ``subject_base_seed``.
    ``synthetic_heads``: draw slices of whole synthetic heads on the training device instead
    (``posereg.data.head_slices``; ``head_model`` as for volumes; the subject shifted in the
    plane by up to ``in_plane_shift_mm``; ``compile_synthesis`` as for volumes;
    ``slices_per_volume``, ``noise`` and the subject counts then do not apply).
    """

    train_subjects: Count = 16
    val_subjects: Count = 2
    items_per_epoch: Count = 3000
    val_items: Count = 300
    slices_per_volume: Count = 30
    middle_fraction: Float = Field(0.66, gt=0, le=1)
    x_range_deg: tuple[Angle, Angle] = (-90.0, 90.0)
    y_range_deg: tuple[Angle, Angle] = (-90.0, 90.0)
    z_range_deg: tuple[Angle, Angle] = (-180.0, 180.0)
    noise: Float = Field(0.03, ge=0)
    subject_base_seed: Int = Field(0, ge=0)
    synthetic_heads: Bool = False
    head_model: Str | None = None
    in_plane_shift_mm: Float = Field(20.0, ge=0)
    compile_synthesis: Bool = False

    @model_validator(mode="after")
    def _ranges_in_order(self) -> SliceDataConfig:
        for key in ("x_range_deg", "y_range_deg", "z_range_deg"):
            low, high = getattr(self, key)
            if low > high:
                raise ConfigError(key, f"expected [low, high] with low <= high, got {[low, high]}")
        return self
