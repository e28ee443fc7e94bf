"""Training of the volume Pose-Net and Correction-Net (Salehi et al. 2018).

``train_volume(config, output)`` builds the atlas, synthetic training subjects (training
seed family only), on-the-fly motion datasets, the network and Salehi's two-stage schedule
(rotation-vector MSE, then geodesic), and runs ``posereg.training.loop.fit_pose_network``
(progress bar, CSV and TensorBoard logs, checkpoints, ``model.pt``, ``model_after_<stage>.pt``,
``summary.json``). ``load_volume_model`` reads ``model.pt`` back with safe loading.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
from lightning import Callback
from torch import Tensor, nn

from posereg.data import (
    Atlas,
    RigidPoseDataset,
    ScannerVariation,
    Split,
    load_atlas,
    subject_seed,
    synthesize_subject,
)
from posereg.geometry import random_euler_rotation, random_rotation_with_angle
from posereg.models import volume_network_from_spec
from posereg.models.artifact import NetworkKind, load_artifact
from posereg.training.config import VolumeTrainingConfig
from posereg.training.loop import TRANSLATION, RigidPoseModule, TrainingResult, fit_pose_network
from posereg.training.run import check_run_folder
from posereg.training.schedules import salehi_schedule
from posereg.training.seeding import load_initial_weights, seeded_network

__all__ = ["RigidPoseModule", "TrainingResult", "build_network", "load_volume_model", "train_volume"]


def build_network(config: VolumeTrainingConfig) -> nn.Module:
    """The network a configuration describes (weights from the current torch RNG)."""
    return volume_network_from_spec(config.model.spec(config.network))


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
    train = RigidPoseDataset(subjects[: d.train_subjects], d.items_per_epoch, seed=config.seed, **common)  # type: ignore[arg-type]
    val = RigidPoseDataset(subjects[d.train_subjects :], d.val_items, seed=config.seed + 1, **common)  # type: ignore[arg-type]
    return train, val


def train_volume(config: VolumeTrainingConfig, output: str | Path, *, progress: bool = True, resume: bool = False,
                 overwrite: bool = False, callbacks: Sequence[Callback] = ()) -> TrainingResult:  # fmt: skip
    """Train the network of ``config``; write checkpoints, logs and ``model.pt`` under ``output``.

    ``config.seed`` seeds the initial weights, the training motions and (``seed + 1``) the
    validation motions; ``config.trainer`` says where the run executes.

    Args:
        config: the training configuration.
        output: run directory (``fit_pose_network``: refused when not empty unless ``resume``
            or ``overwrite``).
        progress: show the progress bar.
        resume: continue the run in ``output`` from its last checkpoint.
        overwrite: replace the run in ``output``.
        callbacks: more Lightning callbacks.
    """
    check_run_folder(output, config.model_dump(mode="json"), resume=resume, overwrite=overwrite)  # before the data
    net = seeded_network(config.seed, lambda: build_network(config))
    load_initial_weights(net, config.model.init_from, load_volume_model)
    s = config.schedule
    correction = config.network is NetworkKind.CORRECTION
    schedule = salehi_schedule(s.mse_epochs, s.geodesic_epochs, representation=net.representation,
                               translation_weight=s.translation_weight if correction else None)  # fmt: skip
    if config.data.synthetic_heads:
        from posereg.training.synthetic_heads import train_on_synthetic_heads

        return train_on_synthetic_heads(config, net, schedule, output, progress=progress, resume=resume,
                                        overwrite=overwrite, callbacks=callbacks)  # fmt: skip
    train, val = _datasets(config, load_atlas(config.atlas))
    o = config.optim
    module = RigidPoseModule(net, schedule, o.lr, o.weight_decay, o.cosine_decay, TRANSLATION if correction else None)
    # Volume items are independent draws, so order does not matter; kept in index order so that
    # the committed volume runs (docs/benchmarks/volume_training.md) reproduce exactly.
    return fit_pose_network(module, train, val, config=config, output=output, grid=config.atlas.record(),
                            batch_size=o.batch_size, num_workers=o.num_workers, shuffle=False,
                            max_minutes=o.max_minutes, resume=resume, overwrite=overwrite, progress=progress,
                            callbacks=callbacks)  # fmt: skip


def load_volume_model(path: str | Path) -> tuple[nn.Module, VolumeTrainingConfig]:
    """Load a ``model.pt`` written by ``train_volume`` (safe ``weights_only`` loading), in eval mode.

    Raises:
        FileNotFoundError: no such file. ValueError: not a posereg volume model.
    """
    artifact = load_artifact(path, (NetworkKind.POSE, NetworkKind.CORRECTION))
    return artifact.network(), VolumeTrainingConfig.from_stored(artifact.config)
