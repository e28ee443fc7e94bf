"""Volume-network training on synthetic heads drawn on the training device (``data.synthetic_heads``).

The data loader yields only ``(epoch, index)`` pairs; ``on_after_batch_transfer`` turns each
into a whole batch drawn by ``posereg.data.head_synthesis`` on the module's device, from a
``torch.Generator`` on that device seeded by ``(seed, epoch, index)`` (``item_generator``'s
hash). So the images never cross the host-device link, batches are reproducible and new in
every epoch, and the validation batches (seed + 1, epoch 0) are the same in every epoch.

With ``W > 1`` processes every process takes every training batch seed and draws its own
``batch_size / W`` samples of that step from ``(seed, epoch, index, rank)`` (so the processes draw
different samples, none draws the whole batch, and a run on ``W`` processes draws other, equally
distributed, samples than a run on one); validation batch seeds are sharded between the processes,
each drawing whole batches, so the validation set is the same on any number of processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from lightning import Callback
from torch import Tensor, nn

from posereg.data import load_atlas
from posereg.data.dataset import EpochDataset
from posereg.data.head_model import HeadModel, build_head_model, load_head_model
from posereg.data.head_synthesis import HeadVariation, correction_batch, pose_batch
from posereg.models.artifact import NetworkKind
from posereg.training.config import VolumeTrainingConfig
from posereg.training.loop import TRANSLATION, RigidPoseModule, TrainingResult, fit_pose_network
from posereg.training.schedules import StageSchedule
from posereg.training.shards import ITEM

__all__ = ["BatchSeeds", "SyntheticHeadModule", "head_model_for", "train_on_synthetic_heads"]


class BatchSeeds(EpochDataset):
    """``length`` items ``{"epoch", "index"}``: the seeds of whole batches drawn on the device."""

    def __getitem__(self, index: int | tuple[int, int]) -> dict[str, int]:
        epoch, index = self.resolve(index)
        return {"epoch": epoch, "index": index}


def _batch_seed(seed: int, epoch: int, index: int, *rank: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, index, *rank]).generate_state(1)[0])


class SyntheticHeadModule(RigidPoseModule):
    """``RigidPoseModule`` whose batches are synthetic heads drawn on its own device.

    Args:
        net, schedule, lr, weight_decay, cosine_decay: as ``RigidPoseModule``.
        head: the head model (moved to the module's device on first use).
        kind: which network (Pose-Net: full-SO(3) views centred on the scan's centroid;
            Correction-Net: residual motions on the atlas grid, atlas as second channel).
        batch_size: samples per drawn batch.
        seed: the training seed (validation uses ``seed + 1``).
        variation: the synthesis ranges.
        max_translation_mm, max_angle_deg: the motions (``max_angle_deg`` for the
            Correction-Net's residual rotation).
    """

    def __init__(
        self,
        net: nn.Module,
        schedule: StageSchedule,
        head: HeadModel,
        kind: NetworkKind,
        *,
        batch_size: int,
        seed: int,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        cosine_decay: bool = False,
        variation: HeadVariation = HeadVariation(),
        max_translation_mm: float = 20.0,
        max_angle_deg: float = 50.0,
    ) -> None:
        auxiliary = TRANSLATION if kind is NetworkKind.CORRECTION else None
        super().__init__(net, schedule, lr, weight_decay, cosine_decay, auxiliary)
        self.head, self.kind, self.batch_size, self.seed = head, kind, batch_size, seed
        self.variation, self.max_translation_mm, self.max_angle_deg = variation, max_translation_mm, max_angle_deg
        self._head_on: HeadModel | None = None

    def draw(self, epoch: int, index: int, seed: int, *, n: int | None = None, rank: int | None = None) -> dict[str, Tensor]:
        """The batch of ``(seed, epoch, index)`` on this module's device: ``n`` samples (default
        ``batch_size``), drawn from ``(seed, epoch, index, rank)`` when ``rank`` is given."""
        device = self.device
        if self._head_on is None or self._head_on.tissue.device != device:
            self._head_on = self.head.to(device)
        gen = torch.Generator(device=device).manual_seed(_batch_seed(seed, epoch, index, *(() if rank is None else (rank,))))
        n = self.batch_size if n is None else n
        with torch.no_grad():
            if self.kind is NetworkKind.CORRECTION:
                return correction_batch(self._head_on, n, gen, self.variation,
                                        max_angle_deg=self.max_angle_deg, max_translation_mm=self.max_translation_mm)  # fmt: skip
            return pose_batch(self._head_on, n, gen, self.variation, max_translation_mm=self.max_translation_mm)

    def on_after_batch_transfer(self, batch: dict[str, Tensor], dataloader_idx: int) -> dict[str, Tensor]:
        epoch, index = int(batch["epoch"][0]), int(batch["index"][0])
        if self._trainer is None or self.trainer.training:
            world = self.trainer.world_size if self._trainer is not None else 1
            if world == 1:
                return self.draw(epoch, index, self.seed)
            return self.draw(epoch, index, self.seed, n=self.batch_size // world, rank=self.trainer.global_rank)
        drawn = self.draw(epoch, index, self.seed + 1)
        item = int(batch[ITEM][0]) if ITEM in batch else index
        ids = torch.arange(self.batch_size, device=self.device) + item * self.batch_size
        return {**drawn, ITEM: ids if item >= 0 else torch.full_like(ids, -1)}


def head_model_for(config: VolumeTrainingConfig) -> HeadModel:
    """The configuration's head model: ``data.head_model`` if set, else built from nilearn."""
    if config.data.head_model is not None:
        return load_head_model(config.data.head_model)
    return build_head_model(load_atlas(config.atlas))


def train_on_synthetic_heads(
    config: VolumeTrainingConfig,
    net: nn.Module,
    schedule: StageSchedule,
    output: str | Path,
    *,
    progress: bool = True,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: Sequence[Callback] = (),
) -> TrainingResult:
    """Train ``net`` on synthetic heads (see the module doc); arguments and outputs as
    ``posereg.training.volume.train_volume``."""
    head = head_model_for(config)
    a = config.atlas
    if head.atlas.image.shape != (a.shape,) * 3 or abs(float(head.atlas.image.spacing[0]) - a.spacing) > 1e-6:
        raise ValueError(f"data.head_model: its atlas grid {head.atlas.image.shape} at {float(head.atlas.image.spacing[0])} mm "
                         f"differs from the config's atlas ({a.shape}^3 at {a.spacing} mm)")  # fmt: skip
    d, o = config.data, config.optim
    batches = max(1, d.items_per_epoch // o.batch_size)
    val_batches = max(1, d.val_items // o.batch_size)
    module = SyntheticHeadModule(net, schedule, head, config.network, batch_size=o.batch_size, seed=config.seed, lr=o.lr,
                                 weight_decay=o.weight_decay, cosine_decay=o.cosine_decay,
                                 max_translation_mm=d.max_translation_mm,
                                 max_angle_deg=d.max_rotation_angle_deg or 50.0)  # fmt: skip
    return fit_pose_network(module, BatchSeeds(batches, config.seed), BatchSeeds(val_batches, config.seed + 1),
                            config=config, output=output, grid=config.atlas.record(), batch_size=o.batch_size,
                            num_workers=0, max_minutes=o.max_minutes, resume=resume,
                            overwrite=overwrite, progress=progress, items_are_batches=True,
                            callbacks=callbacks)  # fmt: skip
