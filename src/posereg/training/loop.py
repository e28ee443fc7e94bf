"""The Lightning loop shared by posereg's trainers (volume, slice, relocalisation).

``RigidPoseModule`` trains a rotation head (and optionally a second output) with a
``StageSchedule`` (Salehi et al.'s MSE then geodesic stages). ``fit_pose_network`` runs any of
the trainers' modules on the processes of the configuration's ``trainer`` section (shards and
joined validation metrics: ``posereg.training.shards``; seeds: ``posereg.training.seeding``; the
run folder, ``--resume`` and ``--overwrite``: ``posereg.training.run``) and writes CSV and
TensorBoard logs, ``checkpoints/last.ckpt`` (every epoch) and ``best-epoch=N.ckpt`` (the
best validation rotation error), ``model.pt`` with the configuration, spec and weights,
``model_after_<stage>.pt`` at the end of each earlier stage, and ``summary.json`` (time, epochs,
final validation errors).
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from posereg._files import atomic_path
from posereg.geometry import geodesic_distance
from posereg.geometry._checks import without_autocast
from posereg.models.artifact import ModelArtifact, save_artifact
from posereg.training.config import TrainingConfig
from posereg.training.run import (
    ResumableCSVLogger,
    RunFolder,
    check_run_folder,
    prepare_run_folder,
    resumed_epoch,
)
from posereg.training.schedules import StageSchedule
from posereg.training.seeding import SeedEachEpoch, scoped_rng, seeded_network
from posereg.training.shards import ITEM, gather_items, training_loader, validation_loader

__all__ = [
    "SLICE_INDEX", "TRANSLATION", "AuxiliaryTarget", "RigidPoseModule", "TrainingResult", "batchnorm_for_batch",
    "fit_pose_network", "full_precision", "seeded_network", "training_loader", "validation_loader",
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


@contextmanager
def batchnorm_for_batch(net: nn.Module, batch_size: int) -> Iterator[None]:
    """Batch normalisation for a training batch of ``batch_size`` items: a batch of one (``optim.
    batch_size`` 1, or the last batch of an epoch) is normalised with the running statistics, which
    it does not update (one value per channel has no variance: torch raises), the others as usual."""
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    norms = norms if batch_size == 1 else []
    for m in norms:
        m.train(False)
    try:
        yield
    finally:
        for m in norms:
            m.train(True)


def _items_of(batch: dict[str, Tensor], n: int) -> Tensor:
    """The validation items' indices of a batch (``ITEM``; -1 padding), or ``0..n-1`` without them."""
    return batch[ITEM] if ITEM in batch else torch.arange(n, device=batch["rotation"].device)


def full_precision(device: torch.device) -> AbstractContextManager[object]:
    """The trainer's autocast (``bf16-mixed``, ``16-mixed``) turned off for what follows a network's
    forward pass: targets, losses and errors. Under autocast, matrix products of float32 tensors run
    in bfloat16 (entries rounded to 3 significant digits: up to 4e-3 off in a product of two
    rotations), so a loss built from such products loses that precision, and converting the target
    rotations (``representation.from_matrix``) failed the rotation check (``|R^T R - I|`` <= 1e-3):
    every ``bf16-mixed`` slice run stopped at its first step. The caller casts the networks'
    outputs to float32."""
    return without_autocast(device.type)


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

    Logged: ``train/loss``, ``train/rotation_error_deg`` (this process's batch), ``stage``; over
    the whole validation set (joined across processes, identical on each): ``val/loss``,
    ``val/rotation_error_deg`` (mean geodesic angle), ``val/rotation_median_deg`` and the auxiliary
    error (mean Euclidean distance in the target's units).
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
        self._val: list[tuple[Tensor, ...]] = []

    def _outputs(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        """``(rotation, target rotation, auxiliary, auxiliary target)``, float32 (the forward pass
        in the trainer's precision, the rest in float32: ``full_precision``); the auxiliary pair as
        3-vectors or None."""
        out = self.net(batch["image"])
        with full_precision(self.device):
            target_rotation = self.net.representation.from_matrix(batch["rotation"])
            if self.auxiliary is None:
                return out.float(), target_rotation, None, None
            rotation, aux = out
            return rotation.float(), target_rotation, _as_vectors(aux.float()), _as_vectors(batch[self.auxiliary.key])

    def _loss(self, loss_fn: nn.Module, rotation: Tensor, target: Tensor, aux: Tensor | None, aux_target: Tensor | None) -> Tensor:
        with full_precision(self.device):
            return loss_fn(rotation, target) if aux is None else loss_fn(rotation, aux, target, aux_target)

    def _angle_deg(self, rotation: Tensor, batch: dict[str, Tensor]) -> Tensor:
        with torch.no_grad(), full_precision(self.device):
            return torch.rad2deg(geodesic_distance(self.net.to_matrix(rotation.detach()), batch["rotation"]))

    def _step(self, batch: dict[str, Tensor], loss_fn: nn.Module) -> tuple[Tensor, Tensor, Tensor | None]:
        """``(loss, rotation error in degrees (N,), auxiliary error (N,) or None)`` of a batch."""
        rotation, target, aux, aux_target = self._outputs(batch)
        loss = self._loss(loss_fn, rotation, target, aux, aux_target)
        error = None if aux is None or aux_target is None else torch.linalg.vector_norm(aux - aux_target, dim=-1)
        return loss, self._angle_deg(rotation, batch), error

    def _epoch(self) -> int:
        """The schedule epoch (the last one if Lightning runs past it, e.g. a final validation)."""
        return min(self.current_epoch, self.schedule.total_epochs - 1)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        epoch = self._epoch()
        with batchnorm_for_batch(self.net, batch["rotation"].shape[0]):
            loss, angle_deg, _ = self._step(batch, self.schedule.loss_at(epoch))
        self.log("train/loss", loss, prog_bar=True, batch_size=angle_deg.numel())
        self.log("train/rotation_error_deg", angle_deg.mean(), prog_bar=True, batch_size=angle_deg.numel())
        self.log("stage", float(self.schedule.stage_index(epoch)), batch_size=angle_deg.numel())
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        rotation, target, aux, aux_target = self._outputs(batch)
        n = rotation.shape[0]
        empty = rotation.new_zeros(n, 0)
        self._val.append((_items_of(batch, n), rotation.reshape(n, -1), target.reshape(n, -1),
                          empty if aux is None else aux, empty if aux_target is None else aux_target,
                          self._angle_deg(rotation, batch)))  # fmt: skip

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        items, *values = (torch.cat(parts) for parts in zip(*self._val))
        self._val.clear()
        rotation, target, aux, aux_target, angle = gather_items(self, items, *values)
        shape = self.net.representation.trailing
        rotation, target = rotation.reshape(-1, *shape), target.reshape(-1, *shape)
        with_aux = self.auxiliary is not None
        with torch.no_grad():
            loss = self._loss(self.schedule.loss_at(self._epoch()), rotation, target,
                              aux if with_aux else None, aux_target if with_aux else None)  # fmt: skip
        self.log("val/loss", loss)
        self.log("val/rotation_error_deg", angle.mean(), prog_bar=True)
        self.log("val/rotation_median_deg", angle.median())
        if self.auxiliary is not None:
            self.log(self.auxiliary.metric, torch.linalg.vector_norm(aux - aux_target, dim=-1).mean())

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
    """Where a training run wrote its outputs, and how long it took (this call: a resumed run
    counts from the resume)."""

    output: Path
    model_path: Path
    best_checkpoint: Path | None
    seconds: float
    metrics_csv: Path | None
    resumed_from: Path | None = None


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
        if name is not None and trainer.is_global_zero:
            _save_model(self.output / f"model_after_{name}.pt", self.config, module.net, self.grid)


class _Loaders(L.LightningDataModule):
    """The loaders of this process, built once Lightning knows its rank (``items_are_batches``:
    every process takes every training item, a batch seed it draws its share of, and one
    validation batch seed per step); ``prepare_data`` readies the run folder on the first process."""

    prepare_data_per_node = False  # one process of the run: the folder is shared

    def __init__(self, train: Dataset, val: Dataset, batch_size: int, num_workers: int, shuffle: bool,
                 seed: int, items_are_batches: bool, folder: RunFolder, config: Mapping[str, Any]) -> None:  # fmt: skip
        super().__init__()
        self.train, self.val, self.batch_size, self.num_workers = train, val, batch_size, num_workers
        self.shuffle, self.seed, self.items_are_batches = shuffle, seed, items_are_batches
        self.folder, self.config = folder, config

    def prepare_data(self) -> None:
        prepare_run_folder(self.folder, self.config)

    def train_dataloader(self) -> DataLoader:
        rank, world = (0, 1) if self.items_are_batches else (self.trainer.global_rank, self.trainer.world_size)
        return training_loader(self.train, 1 if self.items_are_batches else self.batch_size, self.num_workers,
                               shuffle=self.shuffle, seed=self.seed, rank=rank, world=world)  # fmt: skip

    def val_dataloader(self) -> DataLoader:
        world = self.trainer.world_size
        return validation_loader(self.val, world if self.items_are_batches else self.batch_size, self.num_workers,
                                 seed=self.seed, rank=self.trainer.global_rank, world=world)  # fmt: skip


_EXPECTED_WARNINGS = (
    r"It is recommended to use `self.log\('val/",  # the validation metrics are joined already (gather_items)
    r"Checkpoint directory .* exists and is not empty",  # --resume
    r"You have overridden `on_after_batch_transfer`",  # synthetic heads: the module's is meant
)


def fit_pose_network(
    module: L.LightningModule,
    train: Dataset,
    val: Dataset,
    *,
    config: TrainingConfig,
    output: str | Path,
    grid: Mapping[str, Any] | None = None,
    batch_size: int,
    num_workers: int,
    shuffle: bool = True,
    max_minutes: float | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    items_are_batches: bool = False,
    callbacks: Sequence[L.Callback] = (),
) -> TrainingResult:
    """Train ``module`` on ``train`` (an epoch-aware dataset, see ``EpochSampler``) and write the run.

    Args:
        module: the network, schedule and optimiser settings (``RigidPoseModule`` or another
            module with ``net`` and ``schedule``, logging ``val/rotation_error_deg``).
        train, val: datasets of dict items (``image``, ``rotation`` and the auxiliary key).
        config: the run's configuration: its ``seed`` and ``trainer`` section drive the run, its
            dump is stored with every model file.
        output: run directory (refused when not empty unless ``resume`` or ``overwrite``).
        grid: the working grid record of volume and slice networks (``WorkingGrid.record()``).
        batch_size: the global batch (split over the processes); num_workers: per process.
        shuffle: visit the training items in a new seeded order each epoch (see
            ``training_loader``; False only for datasets whose consecutive items are
            independent and where the order must be kept).
        max_minutes: stop after this wall-clock time (``model.pt`` is written all the same).
        resume: continue from ``output/checkpoints/last.ckpt`` (``check_run_folder``).
        overwrite: replace an earlier run in ``output``.
        progress: show the progress bar.
        items_are_batches: the items are batch seeds drawn on the device (``synthetic_heads``).
        callbacks: more Lightning callbacks (e.g. to observe a run).

    Raises:
        ValueError: a folder the run may not use (``check_run_folder``).
    """
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import TensorBoardLogger

    start = time.perf_counter()
    stored = config.model_dump(mode="json")
    folder = check_run_folder(output, stored, resume=resume, overwrite=overwrite)
    output = folder.output
    keep_epochs, purge = None, {}
    if folder.resume_from is not None:
        keep_epochs, step = resumed_epoch(folder.resume_from)
        purge = {"purge_step": step}
    best = ModelCheckpoint(dirpath=folder.checkpoints, monitor="val/rotation_error_deg", mode="min",
                           filename="best-{epoch}", enable_version_counter=False)  # fmt: skip
    last = ModelCheckpoint(dirpath=folder.checkpoints, filename="last", enable_version_counter=False)
    schedule, t, seed = module.schedule, config.trainer, config.seed
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    with scoped_rng():
        trainer = L.Trainer(
            max_epochs=schedule.total_epochs, accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes,
            strategy=t.strategy, precision=t.precision, sync_batchnorm=t.sync_batchnorm,
            deterministic="warn" if t.deterministic else None, use_distributed_sampler=False,
            logger=[ResumableCSVLogger(output, "logs", keep_epochs),
                    TensorBoardLogger(output, name="tensorboard", version="", **purge)],
            callbacks=[SeedEachEpoch(seed), _StageEndSaver(output, stored, grid, schedule),
                       *callbacks, best, last],
            enable_progress_bar=progress, enable_model_summary=progress, log_every_n_steps=1, num_sanity_val_steps=0,
            max_time=None if max_minutes is None else {"seconds": round(60 * max_minutes)},
        )  # fmt: skip
        loaders = _Loaders(train, val, batch_size, num_workers, shuffle, seed, items_are_batches, folder, stored)
        try:
            with warnings.catch_warnings():
                for expected in _EXPECTED_WARNINGS:
                    warnings.filterwarnings("ignore", message=expected)
                trainer.fit(module, datamodule=loaders, ckpt_path=folder.resume_from)
        finally:
            torch.use_deterministic_algorithms(deterministic_before)
    model_path, metrics = output / "model.pt", output / "logs" / "metrics.csv"
    seconds = time.perf_counter() - start
    if trainer.is_global_zero:
        _save_model(model_path, stored, module.net, grid)
        summary = {"seconds": seconds, "epochs": schedule.total_epochs, "processes": trainer.world_size,
                   "accelerator": t.accelerator, "precision": t.precision,
                   "resumed_from": None if folder.resume_from is None else str(folder.resume_from),
                   "final": {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}}  # fmt: skip
        with atomic_path(output / "summary.json") as tmp:
            tmp.write_text(json.dumps(summary, indent=2))
    best_path = Path(best.best_model_path) if best.best_model_path else None
    return TrainingResult(output, model_path, best_path, seconds, metrics if metrics.exists() else None, folder.resume_from)
