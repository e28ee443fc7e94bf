"""The Lightning loop shared by posereg's pose networks (volume, slice).

``RigidPoseModule`` trains a rotation head (and optionally a second output) with a
``StageSchedule`` (Salehi et al.'s MSE then geodesic stages); ``fit_pose_network`` runs it
with a progress bar, CSV and TensorBoard logs, checkpoints (last and best validation rotation
error), ``model.pt`` with the configuration, spec and weights, ``model_after_<stage>.pt`` at
the end of each earlier stage, and ``summary.json`` (time, epochs, final validation errors).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from posereg.data.dataset import EpochSampler
from posereg.geometry import geodesic_distance
from posereg.models.artifact import ModelArtifact, save_artifact
from posereg.training.schedules import StageSchedule

__all__ = [
    "SLICE_INDEX", "TRANSLATION", "AuxiliaryTarget", "RigidPoseModule", "TrainingResult", "fit_pose_network",
    "seeded_network", "training_loader",
]  # fmt: skip


def _as_vectors(x: Tensor) -> Tensor:
    """``(N,)`` scalars as ``(N, 3)`` vectors ``(x, 0, 0)``; ``(N, 3)`` unchanged.

    The schedules' translation term (``PoseLoss`` with ``TranslationDistance``) takes
    3-vectors; a scalar such as a slice index is embedded on the first axis, where the
    squared distance is exactly ``(x - x_hat)^2``.
    """
    if x.dim() == 1:
        return torch.nn.functional.pad(x.unsqueeze(-1), (0, 2))
    return x


@dataclass(frozen=True)
class AuxiliaryTarget:
    """A second output trained beside the rotation: its batch key and logged error name.

    The network returns ``(rotation, output)``; the loss sees ``output`` and ``batch[key]``
    as 3-vectors (a scalar target such as a slice index becomes ``(x, 0, 0)``).
    """

    key: str
    metric: str


TRANSLATION = AuxiliaryTarget("translation", "val/translation_error_mm")  # Correction-Net, mm
SLICE_INDEX = AuxiliaryTarget("slice_index", "val/slice_index_error")  # SlicePoseNet, slices


class RigidPoseModule(L.LightningModule):
    """Trains a rotation regressor (and optionally a second output) with a ``StageSchedule``.

    Args:
        net: a module whose ``forward`` returns the rotation (``VolumePoseNet``) or
            ``(rotation, auxiliary output)`` (``CorrectionNet``, ``SlicePoseNet``), with
            ``representation`` and ``to_matrix``.
        schedule: the loss of each epoch; losses take ``(rot_pred, rot_target)`` for rotation-only
            networks and ``(rot_pred, aux_pred, rot_target, aux_target)`` otherwise.
        lr, weight_decay: Adam settings.
        cosine_decay: anneal the learning rate to ``lr / 100`` over ``schedule.total_epochs``.
        auxiliary: the second output (``TRANSLATION``, ``SLICE_INDEX``), or None.

    Logged: ``train/loss``, ``train/rotation_error_deg``, ``val/rotation_error_deg`` (mean
    geodesic angle), ``val/rotation_median_deg``, the auxiliary error (mean Euclidean
    distance in the target's units) and ``stage``.
    """

    def __init__(
        self,
        net: nn.Module,
        schedule: StageSchedule,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        cosine_decay: bool = False,
        auxiliary: AuxiliaryTarget | None = None,
    ) -> None:
        super().__init__()
        self.net, self.schedule = net, schedule
        self.lr, self.weight_decay, self.cosine_decay = lr, weight_decay, cosine_decay
        self.auxiliary = auxiliary
        self._val_errors: list[Tensor] = []

    def _step(self, batch: dict[str, Tensor], loss_fn: nn.Module) -> tuple[Tensor, Tensor, Tensor | None]:
        target_rotation = self.net.representation.from_matrix(batch["rotation"])
        if self.auxiliary is not None:
            rotation, aux = self.net(batch["image"])
            # Losses in float32 whatever the precision of the forward pass (mixed precision).
            rotation, aux = rotation.float(), aux.float()
            aux, aux_target = _as_vectors(aux), _as_vectors(batch[self.auxiliary.key])
            loss = loss_fn(rotation, aux, target_rotation, aux_target)
            t_error = torch.linalg.vector_norm(aux - aux_target, dim=-1)
        else:
            rotation = self.net(batch["image"]).float()
            loss = loss_fn(rotation, target_rotation)
            t_error = None
        with torch.no_grad():
            angle = geodesic_distance(self.net.to_matrix(rotation.detach()), batch["rotation"])
        return loss, torch.rad2deg(angle), t_error

    def _epoch(self) -> int:
        """The schedule epoch (the last one if Lightning runs past it, e.g. a final validation)."""
        return min(self.current_epoch, self.schedule.total_epochs - 1)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        epoch = self._epoch()
        loss, angle_deg, _ = self._step(batch, self.schedule.loss_at(epoch))
        self.log("train/loss", loss, prog_bar=True, batch_size=angle_deg.numel())
        self.log("train/rotation_error_deg", angle_deg.mean(), prog_bar=True, batch_size=angle_deg.numel())
        self.log("stage", float(self.schedule.stage_index(epoch)), batch_size=angle_deg.numel())
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        loss, angle_deg, t_error = self._step(batch, self.schedule.loss_at(self._epoch()))
        self._val_errors.append(angle_deg)
        n = angle_deg.numel()
        self.log("val/loss", loss, batch_size=n)
        self.log("val/rotation_error_deg", angle_deg.mean(), prog_bar=True, batch_size=n)
        if t_error is not None and self.auxiliary is not None:
            self.log(self.auxiliary.metric, t_error.mean(), batch_size=n)

    def on_validation_epoch_end(self) -> None:
        if self._val_errors:
            self.log("val/rotation_median_deg", torch.cat(self._val_errors).median())
        self._val_errors.clear()

    def configure_optimizers(self):  # type: ignore[no-untyped-def]
        optimiser = torch.optim.Adam(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        if not self.cosine_decay:
            return optimiser
        decay = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimiser, T_max=self.schedule.total_epochs, eta_min=self.lr / 100
        )
        return {"optimizer": optimiser, "lr_scheduler": {"scheduler": decay, "interval": "epoch"}}


@dataclass(frozen=True)
class TrainingResult:
    """Where a training run wrote its outputs, and how long it took."""

    output: Path
    model_path: Path
    best_checkpoint: Path | None
    seconds: float
    metrics_csv: Path | None


def _save_model(path: Path, config: Mapping[str, Any], net: nn.Module, grid: Mapping[str, Any] | None) -> None:
    """The model file (``posereg.models.artifact``) that inference and ``posereg bundle`` read."""
    save_artifact(ModelArtifact.of_network(net, config, grid), path)


class _StageEndSaver(L.Callback):
    """Writes ``model_after_<stage>.pt`` when each stage but the last ends (e.g. the MSE-only
    Pose-Net that Salehi et al. report beside the geodesic one)."""

    def __init__(self, output: Path, config: Mapping[str, Any], grid: Mapping[str, Any] | None,
                 schedule: StageSchedule) -> None:  # fmt: skip
        self.output, self.config, self.grid = output, config, grid
        ends, total = {}, 0
        for stage in schedule.stages[:-1]:
            total += stage.epochs
            ends[total - 1] = stage.name
        self.ends = ends

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        name = self.ends.get(trainer.current_epoch)
        if name is not None:
            _save_model(self.output / f"model_after_{name}.pt", self.config, module.net, self.grid)


def training_loader(train: Dataset, batch_size: int, num_workers: int, *, shuffle: bool = True,
                    seed: int = 0) -> DataLoader:  # fmt: skip
    """The training ``DataLoader``: an ``EpochSampler`` over ``train``, shuffled by default (a new
    order each epoch, drawn from ``seed``).

    Shuffling matters beyond fixed datasets: the slice dataset yields its items in groups of
    ``slices_per_volume`` slices of one rotated subject, so an ordered batch of 32 holds one
    or two rotations. Trained that way (session 3's run), every step pulled the network
    towards one rotation and batch normalisation saw a single pose per batch: the rotation
    was never learned (70 degrees on validation, the error of a constant prediction).
    """
    sampler = EpochSampler(len(train), shuffle=shuffle, seed=seed)  # type: ignore[arg-type]
    return DataLoader(train, sampler=sampler, batch_size=batch_size, num_workers=num_workers,  # type: ignore[arg-type]
                      persistent_workers=num_workers > 0)  # fmt: skip


def seeded_network(seed: int, build: Callable[[], nn.Module]) -> nn.Module:
    """``build()`` with torch's RNG seeded by ``seed`` (reproducible initial weights), restoring the
    caller's RNG state afterwards."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build()


def fit_pose_network(
    module: RigidPoseModule,
    train: Dataset,
    val: Dataset,
    *,
    config: Mapping[str, Any],
    output: str | Path,
    grid: Mapping[str, Any] | None = None,
    batch_size: int,
    num_workers: int,
    accelerator: str = "cpu",
    progress: bool = True,
    shuffle: bool = True,
    precision: str = "32-true",
    max_minutes: float | None = None,
    seed: int = 0,
) -> TrainingResult:
    """Train ``module`` on ``train`` (an epoch-aware dataset, see ``EpochSampler``) and write the run.

    Args:
        module: the network, schedule and optimiser settings.
        train, val: datasets of dict items (``image``, ``rotation`` and the auxiliary key).
        config: the run's configuration as plain data (stored with every model file).
        grid: the working grid record of volume and slice networks (``WorkingGrid.record()``).
        output: run directory (created).
        batch_size, num_workers: data loading.
        accelerator: Lightning accelerator ('cpu', 'gpu', 'auto').
        progress: show the progress bar.
        shuffle: visit the training items in a new seeded order each epoch (see
            ``training_loader``; False only for datasets whose consecutive items are
            independent and where the order must be kept).
        precision: Lightning's precision ('32-true', 'bf16-mixed', '16-mixed').
        max_minutes: stop after this wall-clock time (``model.pt`` is written all the same).
        seed: the seed of the order of the training items (with ``shuffle``).
    """
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    start = time.perf_counter()
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "config.json").write_text(json.dumps(dict(config), indent=2))
    train_loader = training_loader(train, batch_size, num_workers, shuffle=shuffle, seed=seed)
    val_loader = DataLoader(val, batch_size=batch_size, num_workers=num_workers, persistent_workers=num_workers > 0)
    checkpoint = ModelCheckpoint(dirpath=output / "checkpoints", monitor="val/rotation_error_deg", mode="min",
                                 save_last=True, filename="best-{epoch}")  # fmt: skip
    schedule = module.schedule
    trainer = L.Trainer(
        max_epochs=schedule.total_epochs, accelerator=accelerator, devices=1,
        logger=[CSVLogger(output, name="logs", version=""), TensorBoardLogger(output, name="tensorboard", version="")],
        callbacks=[checkpoint, _StageEndSaver(output, config, grid, schedule)], enable_progress_bar=progress,
        log_every_n_steps=1, deterministic=False, enable_model_summary=progress, precision=precision,
        max_time=None if max_minutes is None else {"seconds": round(60 * max_minutes)},
    )  # fmt: skip
    trainer.fit(module, train_loader, val_loader)
    model_path = output / "model.pt"
    _save_model(model_path, config, module.net, grid)
    best = Path(checkpoint.best_model_path) if checkpoint.best_model_path else None
    metrics = output / "logs" / "metrics.csv"
    seconds = time.perf_counter() - start
    summary = {"seconds": seconds, "epochs": schedule.total_epochs, "accelerator": accelerator,
               "final": {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}}  # fmt: skip
    (output / "summary.json").write_text(json.dumps(summary, indent=2))
    return TrainingResult(output, model_path, best, seconds, metrics if metrics.exists() else None)
