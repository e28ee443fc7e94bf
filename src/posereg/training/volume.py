"""Training of the volume Pose-Net and Correction-Net with Lightning (Salehi et al. 2018).

``train_volume(config, output)`` builds the atlas, synthetic training subjects (training
seed family only), on-the-fly motion datasets, the network and Salehi's two-stage schedule
(rotation-vector MSE, then geodesic), and runs a Lightning ``Trainer`` with a progress bar,
CSV and TensorBoard logs, and checkpoints (last and best validation rotation error). The
final weights and their configuration are also written as ``model.pt`` (and, at the end of
each earlier stage, ``model_after_<stage>.pt``; the wall-clock time and final validation
errors go to ``summary.json``), loadable with
``torch.load(..., weights_only=True)`` by ``load_volume_model``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from posereg.data import (
    Atlas,
    Contrast,
    RigidPoseDataset,
    ScannerVariation,
    Split,
    load_atlas,
    subject_seed,
    synthesize_subject,
)
from posereg.data.dataset import EpochSampler
from posereg.geometry import (
    RotationRepresentation,
    geodesic_distance,
    random_euler_rotation,
    random_rotation_with_angle,
)
from posereg.models import CorrectionNet, load_volume_network, volume_network_from_spec
from posereg.training.config import NetworkKind, VolumeTrainingConfig, volume_config_from_dict
from posereg.training.schedules import StageSchedule, salehi_schedule

__all__ = ["RigidPoseModule", "TrainingResult", "build_network", "load_volume_model", "train_volume"]


def build_network(config: VolumeTrainingConfig) -> nn.Module:
    """The network a configuration describes (weights from the current torch RNG)."""
    m = config.model
    spec = {"network": config.network.value, "channels": m.channels, "pool_before": m.pool_before, "fc": m.fc,
            "pooled_size": m.pooled_size, "rotation_head": m.rotation_head}  # fmt: skip
    if config.network is NetworkKind.CORRECTION:
        spec["translation_scale_mm"] = m.translation_scale_mm
    return volume_network_from_spec(spec)


class RigidPoseModule(L.LightningModule):
    """Trains a rotation (and optionally translation) regressor with a ``StageSchedule``.

    Args:
        net: ``VolumePoseNet`` (outputs a rotation) or ``CorrectionNet`` (rotation, translation).
        schedule: the loss of each epoch; losses take ``(rot_pred, rot_target)`` for rotation-only
            networks and ``(rot_pred, t_pred, rot_target, t_target)`` otherwise.
        lr, weight_decay: Adam settings.
        cosine_decay: anneal the learning rate to ``lr / 100`` over ``schedule.total_epochs``.

    Logged: ``train/loss``, ``train/rotation_error_deg``, ``val/rotation_error_deg`` (mean
    geodesic angle), ``val/rotation_median_deg``, ``val/translation_error_mm`` (Correction-Net)
    and ``stage``.
    """

    def __init__(
        self,
        net: nn.Module,
        schedule: StageSchedule,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        cosine_decay: bool = False,
    ) -> None:
        super().__init__()
        self.net, self.schedule = net, schedule
        self.lr, self.weight_decay, self.cosine_decay = lr, weight_decay, cosine_decay
        self.predicts_translation = isinstance(net, CorrectionNet)
        self._val_errors: list[Tensor] = []

    def _step(self, batch: dict[str, Tensor], loss_fn: nn.Module) -> tuple[Tensor, Tensor, Tensor | None]:
        target_rotation = self.net.representation.from_matrix(batch["rotation"])
        if self.predicts_translation:
            rotation, translation = self.net(batch["image"])
            loss = loss_fn(rotation, translation, target_rotation, batch["translation"])
            t_error = torch.linalg.vector_norm(translation - batch["translation"], dim=-1)
        else:
            rotation = self.net(batch["image"])
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
        if t_error is not None:
            self.log("val/translation_error_mm", t_error.mean(), batch_size=n)

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


def _euler_sampler(max_deg: float):  # type: ignore[no-untyped-def]
    """Rotations with each ``xyz`` Euler angle uniform in ``[-max_deg, max_deg]``."""
    limit = math.radians(max_deg)

    def sample(gen: torch.Generator) -> Tensor:
        return random_euler_rotation((), [-limit] * 3, [limit] * 3, "xyz", generator=gen, dtype=torch.float64)

    return sample


def _angle_sampler(max_deg: float):  # type: ignore[no-untyped-def]
    """Rotations about uniform axes with angle uniform in ``[0, max_deg]``."""
    limit = math.radians(max_deg)

    def sample(gen: torch.Generator) -> Tensor:
        return random_rotation_with_angle((), 0.0, limit, generator=gen, dtype=torch.float64)

    return sample


def _datasets(config: VolumeTrainingConfig, atlas: Atlas) -> tuple[RigidPoseDataset, RigidPoseDataset]:
    d = config.data
    subjects = [
        synthesize_subject(atlas, torch.Generator().manual_seed(subject_seed(Split.TRAIN, i, d.subject_base_seed)))
        for i in range(d.train_subjects + d.val_subjects)
    ]
    sampler = None
    if d.max_rotation_deg is not None:
        sampler = _euler_sampler(d.max_rotation_deg)
    elif d.max_rotation_angle_deg is not None:
        sampler = _angle_sampler(d.max_rotation_angle_deg)
    reference = atlas.image if config.network is NetworkKind.CORRECTION else None
    common = {"max_translation_mm": d.max_translation_mm, "rotation_sampler": sampler,
              "scanner": ScannerVariation(crop=d.crop, noise=d.noise), "reference": reference}  # fmt: skip
    train = RigidPoseDataset(subjects[: d.train_subjects], d.items_per_epoch, seed=d.seed, **common)  # type: ignore[arg-type]
    val = RigidPoseDataset(subjects[d.train_subjects :], d.val_items, seed=d.seed + 1, **common)  # type: ignore[arg-type]
    return train, val


@dataclass(frozen=True)
class TrainingResult:
    """Where a training run wrote its outputs, and how long it took."""

    output: Path
    model_path: Path
    best_checkpoint: Path | None
    seconds: float
    metrics_csv: Path | None


def train_volume(
    config: VolumeTrainingConfig, output: str | Path, *, accelerator: str = "cpu", progress: bool = True
) -> TrainingResult:
    """Train the network of ``config``; write checkpoints, logs and ``model.pt`` under ``output``.

    Args:
        config: the training configuration.
        output: run directory (created).
        accelerator: Lightning accelerator ('cpu', 'gpu', 'auto').
        progress: show the progress bar.
    """
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    start = time.perf_counter()
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    a = config.atlas
    atlas = load_atlas(Contrast(a.contrast), (a.shape,) * 3, a.spacing, a.resolution_mm)
    train, val = _datasets(config, atlas)
    with torch.random.fork_rng():  # seeded weights without touching the caller's RNG
        torch.manual_seed(config.seed)
        net = build_network(config)
    s = config.schedule
    translation_weight = s.translation_weight if config.network is NetworkKind.CORRECTION else None
    schedule = _schedule(s.mse_epochs, s.geodesic_epochs, translation_weight, net.representation)
    module = RigidPoseModule(net, schedule, config.optim.lr, config.optim.weight_decay, config.optim.cosine_decay)
    o = config.optim
    loader_args: dict[str, Any] = {"batch_size": o.batch_size, "num_workers": o.num_workers,
                                   "persistent_workers": o.num_workers > 0}  # fmt: skip
    train_loader = DataLoader(train, sampler=EpochSampler(len(train), shuffle=False), **loader_args)
    val_loader = DataLoader(val, **loader_args)
    checkpoint = ModelCheckpoint(dirpath=output / "checkpoints", monitor="val/rotation_error_deg", mode="min",
                                 save_last=True, filename="best-{epoch}")  # fmt: skip
    csv = CSVLogger(output, name="logs", version="")
    trainer = L.Trainer(
        max_epochs=schedule.total_epochs, accelerator=accelerator, devices=1,
        logger=[csv, TensorBoardLogger(output, name="tensorboard", version="")],
        callbacks=[checkpoint, _StageEndSaver(output, config, schedule)], enable_progress_bar=progress, log_every_n_steps=1,
        deterministic=False, enable_model_summary=progress,
    )  # fmt: skip
    trainer.fit(module, train_loader, val_loader)
    model_path = output / "model.pt"
    _save_model(model_path, config, net)
    best = Path(checkpoint.best_model_path) if checkpoint.best_model_path else None
    metrics = output / "logs" / "metrics.csv"
    seconds = time.perf_counter() - start
    summary = {"seconds": seconds, "epochs": schedule.total_epochs, "accelerator": accelerator,
               "final": {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}}  # fmt: skip
    (output / "summary.json").write_text(json.dumps(summary, indent=2))
    return TrainingResult(output, model_path, best, seconds, metrics if metrics.exists() else None)


def _save_model(path: Path, config: VolumeTrainingConfig, net: nn.Module) -> None:
    """``{"config", "spec", "state_dict"}``: what ``load_volume_model`` reads."""
    torch.save({"config": config.to_dict(), "spec": net.spec, "state_dict": net.state_dict()}, path)


class _StageEndSaver(L.Callback):
    """Writes ``model_after_<stage>.pt`` when each stage but the last ends (e.g. the MSE-only
    Pose-Net that Salehi et al. report beside the geodesic one)."""

    def __init__(self, output: Path, config: VolumeTrainingConfig, schedule: StageSchedule) -> None:
        self.output, self.config = output, config
        ends, total = {}, 0
        for stage in schedule.stages[:-1]:
            total += stage.epochs
            ends[total - 1] = stage.name
        self.ends = ends

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        name = self.ends.get(trainer.current_epoch)
        if name is not None:
            _save_model(self.output / f"model_after_{name}.pt", self.config, module.net)


def _schedule(
    mse_epochs: int, geodesic_epochs: int, translation_weight: float | None, representation: RotationRepresentation
) -> StageSchedule:
    """Salehi's schedule, allowing one stage to be skipped (0 epochs)."""
    full = salehi_schedule(max(mse_epochs, 1), max(geodesic_epochs, 1), representation=representation,
                           translation_weight=translation_weight)  # fmt: skip
    stages = [st for st, n in zip(full.stages, (mse_epochs, geodesic_epochs), strict=True) if n > 0]
    return StageSchedule(stages)


def load_volume_model(path: str | Path) -> tuple[nn.Module, VolumeTrainingConfig]:
    """Load a ``model.pt`` written by ``train_volume`` (safe ``weights_only`` loading), in eval mode.

    Raises:
        FileNotFoundError: no such file. ValueError: not a posereg volume model.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or "config" not in payload:
        raise ValueError(f"{path}: not a posereg volume model (expected keys 'config', 'spec' and 'state_dict')")
    try:
        net = load_volume_network(payload)
    except ValueError as exc:
        raise ValueError(f"{path}: not a posereg volume model ({exc})") from exc
    return net, volume_config_from_dict(payload["config"])
