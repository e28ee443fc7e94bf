"""Training of the slice Pose-Net (Salehi et al. 2018, 2D->3D).

``train_slice(config, output)`` builds the atlas, synthetic training subjects (training
seed family only), on-the-fly slice datasets (``posereg.data.slices``) or, with
``data.synthetic_heads``, slices of synthetic heads drawn on the training device
(``posereg.data.head_slices``), a ``SlicePoseNet``
and Salehi's two stages (rotation-vector MSE, then geodesic; the squared slice-index error
weighted by ``schedule.translation_weight`` in both), and runs ``fit_pose_network``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from lightning import Callback
from torch import nn

from posereg.data import Split, load_atlas, subject_seed, synthesize_subject
from posereg.data.slices import SliceGeometry, SlicePoseDataset, half_space_rotation
from posereg.models import ROTATION_HEADS
from posereg.models.artifact import NetworkKind, load_artifact
from posereg.models.slice import SlicePoseNet
from posereg.training.config import SliceTrainingConfig
from posereg.training.loop import SLICE_INDEX, RigidPoseModule, TrainingResult, fit_pose_network
from posereg.training.run import check_run_folder
from posereg.training.schedules import salehi_schedule
from posereg.training.seeding import load_initial_weights, seeded_network

__all__ = ["build_slice_network", "load_slice_model", "slice_datasets", "train_slice"]


def build_slice_network(config: SliceTrainingConfig) -> SlicePoseNet:
    """The ``SlicePoseNet`` a configuration describes (weights from the current torch RNG)."""
    m = config.model
    return SlicePoseNet(m.width, m.stem_stride, float(config.atlas.shape), ROTATION_HEADS[m.rotation_head])


def slice_datasets(config: SliceTrainingConfig) -> tuple[SlicePoseDataset, SlicePoseDataset]:
    """Training and validation slices (disjoint training-family subjects; items seeded by
    ``config.seed`` and ``config.seed + 1``)."""
    a, d = config.atlas, config.data
    atlas = load_atlas(a)
    subjects = [
        synthesize_subject(atlas, torch.Generator().manual_seed(subject_seed(Split.TRAIN, i, d.subject_base_seed)))
        for i in range(d.train_subjects + d.val_subjects)
    ]
    geometry = SliceGeometry(a.shape, a.spacing, a.shape)

    def sampler(gen: torch.Generator) -> torch.Tensor:
        return half_space_rotation(gen, d.x_range_deg, d.y_range_deg, d.z_range_deg)

    common = {"geometry": geometry, "rotation_sampler": sampler, "slices_per_volume": d.slices_per_volume,
              "middle_fraction": d.middle_fraction, "noise": d.noise}  # fmt: skip
    train = SlicePoseDataset(subjects[: d.train_subjects], d.items_per_epoch, config.seed, **common)  # type: ignore[arg-type]
    val = SlicePoseDataset(subjects[d.train_subjects :], d.val_items, config.seed + 1, **common)  # type: ignore[arg-type]
    return train, val


def train_slice(config: SliceTrainingConfig, output: str | Path, *, progress: bool = True, resume: bool = False,
                overwrite: bool = False, callbacks: Sequence[Callback] = ()) -> TrainingResult:  # fmt: skip
    """Train the slice network of ``config``; write checkpoints, logs and ``model.pt`` under ``output``.

    ``config.seed`` seeds the initial weights, the slices (``seed + 1``: validation) and their order;
    the other arguments as ``posereg.training.volume.train_volume``.
    """
    check_run_folder(output, config.model_dump(mode="json"), resume=resume, overwrite=overwrite)  # before the data
    net = seeded_network(config.seed, lambda: build_slice_network(config))
    load_initial_weights(net, config.model.init_from, load_slice_model)
    s, o = config.schedule, config.optim
    schedule = salehi_schedule(s.mse_epochs, s.geodesic_epochs, representation=net.representation,
                               translation_weight=s.translation_weight)  # fmt: skip
    if config.data.synthetic_heads:
        from posereg.training.synthetic_heads import train_on_synthetic_heads

        return train_on_synthetic_heads(config, net, schedule, output, progress=progress, resume=resume,
                                        overwrite=overwrite, callbacks=callbacks)  # fmt: skip
    train, val = slice_datasets(config)
    module = RigidPoseModule(net, schedule, o.lr, o.weight_decay, o.cosine_decay, SLICE_INDEX)
    return fit_pose_network(module, train, val, config=config, output=output, grid=config.atlas.record(),
                            batch_size=o.batch_size, num_workers=o.num_workers, max_minutes=o.max_minutes,
                            resume=resume, overwrite=overwrite, progress=progress, callbacks=callbacks)  # fmt: skip


def load_slice_model(path: str | Path) -> tuple[nn.Module, SliceTrainingConfig]:
    """Load a slice ``model.pt`` (safe ``weights_only`` loading), in eval mode.

    Raises:
        FileNotFoundError: no such file. ValueError: not a posereg slice model.
    """
    artifact = load_artifact(path, (NetworkKind.SLICE,))
    return artifact.network(), SliceTrainingConfig.from_stored(artifact.config)
