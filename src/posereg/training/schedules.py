"""Training schedules as plain objects: which loss is active at which epoch.

Both seed papers train in two stages because their final loss misbehaves from random
weights: Salehi et al. (2018) train rotation-vector MSE first and fine-tune with the
geodesic distance (ten epochs each, ``salehi_schedule``); Kendall & Cipolla (2017) train with
learned homoscedastic weights and fine-tune with the reprojection loss, which diverges from
scratch (two runs of ``posereg train reloc``: ``loss.kind`` homoscedastic, then reprojection
with ``model.init_from``). A ``StageSchedule`` holds the stages; the Lightning module asks it for the loss of
the current epoch. No Lightning import here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from torch import nn

from posereg.geometry import ROTVEC, RotationRepresentation
from posereg.losses import (
    FixedWeighting,
    PoseLoss,
    RotvecMSELoss,
    SO3GeodesicLoss,
    TranslationDistance,
)

__all__ = ["Stage", "StageSchedule", "salehi_schedule"]


@dataclass(frozen=True)
class Stage:
    """One training stage.

    Attributes:
        name: a short label for logs (e.g. 'mse', 'geodesic').
        epochs: how many epochs the stage lasts, ``>= 1``.
        loss: the loss module active during the stage.
    """

    name: str
    epochs: int
    loss: nn.Module


class StageSchedule:
    """Consecutive stages; epoch ``e`` (0-based) belongs to the stage whose range holds it.

    Args:
        stages: one or more ``Stage``s, in training order.

    Raises:
        ValueError: no stages, a stage with ``epochs < 1``, or repeated names.
    """

    def __init__(self, stages: Sequence[Stage]) -> None:
        if not stages:
            raise ValueError("stages: expected at least one Stage, got none")
        for stage in stages:
            if not isinstance(stage.epochs, int) or stage.epochs < 1:
                raise ValueError(f"stages: stage {stage.name!r} must last at least one epoch, got {stage.epochs!r}")
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stages: expected distinct names, got {names}")
        self.stages = tuple(stages)

    @property
    def total_epochs(self) -> int:
        """The number of epochs of all stages together."""
        return sum(s.epochs for s in self.stages)

    def stage_index(self, epoch: int) -> int:
        """Index of the stage that epoch ``epoch`` (0-based) belongs to.

        Raises:
            ValueError: ``epoch`` outside ``[0, total_epochs)``.
        """
        if not isinstance(epoch, int) or not 0 <= epoch < self.total_epochs:
            raise ValueError(f"epoch: expected an int in [0, {self.total_epochs}), got {epoch!r}")
        end = 0
        for index, stage in enumerate(self.stages):
            end += stage.epochs
            if epoch < end:
                return index
        raise AssertionError("unreachable")

    def stage_at(self, epoch: int) -> Stage:
        """The ``Stage`` active at epoch ``epoch`` (0-based)."""
        return self.stages[self.stage_index(epoch)]

    def loss_at(self, epoch: int) -> nn.Module:
        """The loss module active at epoch ``epoch`` (0-based)."""
        return self.stage_at(epoch).loss

    def starts_stage(self, epoch: int) -> bool:
        """Whether ``epoch`` is the first epoch of a stage (e.g. to reset an optimiser)."""
        index = self.stage_index(epoch)
        return epoch == sum(s.epochs for s in self.stages[:index])

    def __iter__(self) -> Iterator[Stage]:
        return iter(self.stages)

    def __len__(self) -> int:
        return len(self.stages)

    def __repr__(self) -> str:
        return "StageSchedule(" + ", ".join(f"{s.name}: {s.epochs}" for s in self.stages) + ")"


def salehi_schedule(
    mse_epochs: int = 10,
    geodesic_epochs: int = 10,
    *,
    representation: RotationRepresentation = ROTVEC,
    translation_weight: float | None = None,
) -> StageSchedule:
    """Salehi et al. (2018): rotation-vector MSE, then the SO(3) geodesic loss.

    Args:
        mse_epochs: epochs of stage 1 (the paper: 10; 0 skips it).
        geodesic_epochs: epochs of stage 2 (the paper: 10; 0 skips it).
        representation: the head's representation for the geodesic stage (the MSE stage
            needs rotation vectors).
        translation_weight: ``None`` for rotation-only networks (losses take
            ``(rotation_pred, rotation_target)``); ``lambda`` for ``L_rot + lambda L_trans``
            with the MSE of translations (``PoseLoss``, inputs
            ``(rotation_pred, translation_pred, rotation_target, translation_target)``).
    """
    mse: nn.Module = RotvecMSELoss()
    geodesic: nn.Module = SO3GeodesicLoss(representation)
    if translation_weight is not None:
        mse = PoseLoss(
            FixedWeighting(1.0, translation_weight=translation_weight),
            RotvecMSELoss("none"),
            TranslationDistance(2, squared=True),
        )
        geodesic = PoseLoss(
            FixedWeighting(1.0, translation_weight=translation_weight),
            SO3GeodesicLoss(representation, reduction="none"),
            TranslationDistance(2, squared=True),
        )
    if mse_epochs < 0 or geodesic_epochs < 0 or mse_epochs + geodesic_epochs < 1:
        raise ValueError(f"epochs: expected non-negative stage lengths, at least one epoch in all, got {mse_epochs}, {geodesic_epochs}")
    stages = [Stage("mse", mse_epochs, mse), Stage("geodesic", geodesic_epochs, geodesic)]
    return StageSchedule([stage for stage in stages if stage.epochs > 0])
