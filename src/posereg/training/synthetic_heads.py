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

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch
from lightning import Callback
from torch import Tensor, nn

from posereg.data import load_atlas
from posereg.data.dataset import EpochDataset
from posereg.data.head_model import HeadModel, build_head_model, load_head_model
from posereg.data.head_slices import head_slice_batch
from posereg.data.head_synthesis import correction_batch, pose_batch
from posereg.data.slices import SliceGeometry
from posereg.models.artifact import NetworkKind
from posereg.training.config import SliceTrainingConfig, VolumeTrainingConfig
from posereg.training.loop import (
    SLICE_INDEX,
    TRANSLATION,
    AuxiliaryTarget,
    RigidPoseModule,
    TrainingResult,
    fit_pose_network,
)
from posereg.training.schedules import StageSchedule
from posereg.training.shards import ITEM

__all__ = [
    "BatchSeeds", "HeadSampler", "SyntheticHeadModule", "head_model_for", "slice_sampler", "train_on_synthetic_heads",
    "volume_sampler",
]  # fmt: skip


class BatchSeeds(EpochDataset):
    """``length`` items ``{"epoch", "index"}``: the seeds of whole batches drawn on the device."""

    def __getitem__(self, index: int | tuple[int, int]) -> dict[str, int]:
        epoch, index = self.resolve(index)
        return {"epoch": epoch, "index": index}


def _batch_seed(seed: int, epoch: int, index: int, *rank: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, index, *rank]).generate_state(1)[0])


HeadSampler = Callable[[HeadModel, int, torch.Generator], dict[str, Tensor]]


class SyntheticHeadModule(RigidPoseModule):
    """``RigidPoseModule`` whose batches are synthetic heads drawn on its own device.

    Args:
        net, schedule, lr, weight_decay, cosine_decay, auxiliary: as ``RigidPoseModule``.
        head: the head model (moved to the module's device on first use).
        sample: ``(head, n, generator) -> batch``: what the network sees (``volume_sampler``,
            ``slice_sampler``).
        batch_size: samples per drawn batch.
        seed: the training seed (validation uses ``seed + 1``).
    """

    def __init__(
        self,
        net: nn.Module,
        schedule: StageSchedule,
        head: HeadModel,
        sample: HeadSampler,
        *,
        batch_size: int,
        seed: int,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        cosine_decay: bool = False,
        auxiliary: AuxiliaryTarget | None = None,
    ) -> None:
        super().__init__(net, schedule, lr, weight_decay, cosine_decay, auxiliary)
        self.head, self.sample, self.batch_size, self.seed = head, sample, batch_size, seed
        self._head_on: HeadModel | None = None

    def draw(self, epoch: int, index: int, seed: int, *, n: int | None = None, rank: int | None = None) -> dict[str, Tensor]:
        """The batch of ``(seed, epoch, index)`` on this module's device: ``n`` samples (default
        ``batch_size``), drawn from ``(seed, epoch, index, rank)`` when ``rank`` is given."""
        device = self.device
        if self._head_on is None or self._head_on.tissue.device != device:
            self._head_on = self.head.to(device)
        gen = torch.Generator(device=device).manual_seed(_batch_seed(seed, epoch, index, *(() if rank is None else (rank,))))
        with torch.no_grad():
            return self.sample(self._head_on, self.batch_size if n is None else n, gen)

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


def volume_sampler(config: VolumeTrainingConfig) -> HeadSampler:
    """The volume network's batches: Pose-Net views (``pose_batch``) or Correction-Net residuals
    (``correction_batch``, angles up to ``data.max_rotation_angle_deg``, default 50 degrees)."""
    d = config.data
    if config.network is NetworkKind.CORRECTION:
        return partial(correction_batch, max_angle_deg=d.max_rotation_angle_deg or 50.0,
                       max_translation_mm=d.max_translation_mm, compiled=d.compile_synthesis)  # fmt: skip
    # The view's centre comes from a coarse view of the whole field of view; rendered at 4x the
    # working spacing (12 mm) instead of the pipeline's 2x, it costs 8x fewer points (40 % of the
    # whole synthesis) and moves the centre by 1.1 mm (median; 4.9 max over 32 heads): far below
    # the +-20 mm shifts the network is trained to absorb.
    return partial(pose_batch, max_translation_mm=d.max_translation_mm, coarse_spacing=4 * config.atlas.spacing,
                   compiled=d.compile_synthesis)  # fmt: skip


def slice_sampler(config: SliceTrainingConfig) -> HeadSampler:
    """The slice Pose-Net's batches (``head_slice_batch``): the configuration's grid, stack range,
    rotation ranges and in-plane shift."""
    a, d = config.atlas, config.data
    geometry = SliceGeometry(a.shape, a.spacing, a.shape)
    return partial(head_slice_batch, geometry=geometry, index_range=geometry.middle_indices(d.middle_fraction),
                   x_range_deg=d.x_range_deg, y_range_deg=d.y_range_deg, z_range_deg=d.z_range_deg,
                   in_plane_shift_mm=d.in_plane_shift_mm, compiled=d.compile_synthesis)  # fmt: skip


def head_model_for(config: VolumeTrainingConfig | SliceTrainingConfig) -> HeadModel:
    """The configuration's head model: ``data.head_model`` if set, else built from nilearn."""
    if config.data.head_model is not None:
        return load_head_model(config.data.head_model)
    return build_head_model(load_atlas(config.atlas))


def train_on_synthetic_heads(
    config: VolumeTrainingConfig | SliceTrainingConfig,
    net: nn.Module,
    schedule: StageSchedule,
    output: str | Path,
    *,
    progress: bool = True,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: Sequence[Callback] = (),
) -> TrainingResult:
    """Train ``net`` on synthetic heads (see the module doc): a volume network, or the slice
    Pose-Net on single slices; arguments and outputs as ``posereg.training.volume.train_volume``."""
    head = head_model_for(config)
    a = config.atlas
    if head.atlas.image.shape != (a.shape,) * 3 or abs(float(head.atlas.image.spacing[0]) - a.spacing) > 1e-6:
        raise ValueError(f"data.head_model: its atlas grid {head.atlas.image.shape} at {float(head.atlas.image.spacing[0])} mm "
                         f"differs from the config's atlas ({a.shape}^3 at {a.spacing} mm)")  # fmt: skip
    d, o = config.data, config.optim
    batches = max(1, d.items_per_epoch // o.batch_size)
    val_batches = max(1, d.val_items // o.batch_size)
    if isinstance(config, SliceTrainingConfig):
        sample, auxiliary = slice_sampler(config), SLICE_INDEX
    else:
        sample = volume_sampler(config)
        auxiliary = TRANSLATION if config.network is NetworkKind.CORRECTION else None
    module = SyntheticHeadModule(net, schedule, head, sample, batch_size=o.batch_size, seed=config.seed, lr=o.lr,
                                 weight_decay=o.weight_decay, cosine_decay=o.cosine_decay, auxiliary=auxiliary)  # fmt: skip
    return fit_pose_network(module, BatchSeeds(batches, config.seed), BatchSeeds(val_batches, config.seed + 1),
                            config=config, output=output, grid=config.atlas.record(), batch_size=o.batch_size,
                            num_workers=0, max_minutes=o.max_minutes, resume=resume,
                            overwrite=overwrite, progress=progress, items_are_batches=True,
                            callbacks=callbacks)  # fmt: skip
