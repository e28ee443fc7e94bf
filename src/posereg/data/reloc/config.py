"""The ``data`` section of a relocalisation configuration (``posereg train reloc``): where the frames come from."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from posereg.data.reloc.poses import MAX_ABS_POSITION
from posereg.data.reloc.scene import SCENES
from posereg.schema import ConfigError, Float, Int, Section, Str

__all__ = ["RelocDataConfig"]


def _known_scene(name: str) -> str:
    if name not in SCENES:
        raise ValueError(f"must be one of {sorted(SCENES)}, got {name!r}")
    return name


class RelocDataConfig(Section):
    """Where the frames come from.

    ``source``: 'synthetic' (posereg's rendered ``scene``, a name of ``SCENES``: 'room' or
    'street'), 'cambridge' (a Cambridge Landmarks scene folder ``root`` with
    ``dataset_train.txt``, ``dataset_test.txt`` and, for the reprojection loss,
    ``reconstruction.nvm``) or 'seven_scenes' (a 7-Scenes scene folder ``root`` with
    ``TrainSplit.txt``, ``TestSplit.txt`` and ``seq-XX`` folders; no scene points, so no
    reprojection loss).

    Synthetic: ``train_sequences`` and ``test_sequences`` paths of ``frames`` frames each
    (seeds ``0 ..`` and ``1000 ..``), ``size`` x ``size`` pixels, renders cached under
    ``cache`` (None: no cache).

    Validation (the data the best checkpoint is chosen on) is carved from the training
    sequences: the last ``val_sequences`` of them (synthetic: of the ``train_sequences``, which
    must leave at least one to train on; real scenes: of the sequence folders their training
    list names, in the order listed). A real scene with no more training sequences than
    ``val_sequences`` validates on the last tenth of the frames of each training sequence
    instead. The test sequences are only evaluated. Real images: shorter side resized to ``resize`` pixels, then a
    ``crop`` x ``crop`` crop (random for training, central for testing; PoseNet: 256, 224);
    Cambridge rows with a coordinate beyond ``max_abs_position`` metres are dropped (one
    Great Court frame lies at 3e9 m). Both: at most ``points_per_image`` scene points per
    frame for the reprojection loss.
    """

    source: Literal["synthetic", "cambridge", "seven_scenes"] = "synthetic"
    scene: Annotated[Str, AfterValidator(_known_scene)] = "room"
    root: Str | None = None
    train_sequences: Int = Field(8, ge=1)
    test_sequences: Int = Field(3, ge=1)
    val_sequences: Int = Field(1, ge=1)
    frames: Int = Field(250, ge=2)
    size: Int = Field(64, ge=16)
    points_per_image: Int = Field(64, ge=1)
    cache: Str | None = "runs/scenes"
    resize: Int = Field(256, ge=16)
    crop: Int = Field(224, ge=16)
    max_abs_position: Float | None = Field(MAX_ABS_POSITION, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> RelocDataConfig:
        if self.source != "synthetic" and self.root is None:
            raise ConfigError("root", f"must name the {self.source} scene folder")
        if self.source == "synthetic" and self.val_sequences >= self.train_sequences:
            raise ConfigError("val_sequences", f"must leave training sequences: {self.val_sequences} of "
                              f"train_sequences {self.train_sequences} held out for validation")  # fmt: skip
        if self.crop > self.resize:
            raise ConfigError("crop", f"must be <= resize ({self.resize}), got {self.crop}")
        return self
