"""Training PoseNet for camera relocalisation with the geometric losses of the papers.

``train_reloc(config, output)`` takes the training and test frames of ``config.data``
(``posereg.data.reloc.relocalisation_data``: a rendered synthetic scene, Cambridge Landmarks or
7-Scenes), builds a ``PoseNet`` whose position head starts at the training cameras' mean, and
trains it with the loss that ``loss.kind`` names (``reloc_loss``, the one loss switch):

- 'beta': ``|p - p_hat|_g + beta |q - q_hat|_g`` (PoseNet, beta tuned by a sweep);
- 'homoscedastic': ``L_p exp(-s_p) + s_p + L_q exp(-s_q) + s_q``, ``s`` learned (Kendall & Cipolla);
- 'reprojection': the mean image distance of the visible scene points under the true and
  predicted poses, fine-tuning a homoscedastic model (``model.init_from``);
- 'se3': the squared SE(3) geodesic distance under ``W = diag(w_r I3, w_t I3)`` (Hou et
  al.), with ``W`` estimated from the spread of the training camera poses (training data
  only) unless ``loss.metric_weights`` sets it.

Validation frames are carved from the training sequences (``data.val_sequences``): the curves and
the best checkpoint are on them. The test sequences are only evaluated (``posereg evaluate
reloc``); ``model.pt`` is the last epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
from torch import Tensor, nn

from posereg.data.reloc import CameraPoses, RelocalisationData, relocalisation_data
from posereg.evaluation.metrics import position_error_m, rotation_error_deg
from posereg.evaluation.relocalisation import (
    predict_camera_poses,
)
from posereg.geometry import riemannian_log
from posereg.losses import (
    FixedWeighting,
    HomoscedasticWeighting,
    MetricWeighting,
    PoseLoss,
    QuaternionDistance,
    TranslationDistance,
    estimate_metric_weights,
    pose_spread,
    reprojection_loss,
)
from posereg.models import ROTATION_HEADS
from posereg.models.posenet import PoseNet
from posereg.training.config import LossKind, RelocTrainingConfig
from posereg.training.loop import TrainingResult, batchnorm_for_batch, fit_pose_network, full_precision
from posereg.training.reloc_model import load_reloc_model
from posereg.training.run import check_run_folder
from posereg.training.schedules import Stage, StageSchedule
from posereg.training.seeding import load_initial_weights, seeded_network
from posereg.training.shards import ITEM, gather_items

__all__ = [
    "PoseTermsLoss", "RelocalisationModule", "ReprojectionTermsLoss", "build_posenet",
    "metric_from_training_poses", "metric_from_training_residuals", "reloc_loss", "train_reloc",
]  # fmt: skip


def metric_from_training_poses(poses: CameraPoses) -> Tensor:
    """``W`` (6 x 6, block-isotropic, unit-length diagonal) from the spread of the training cameras.

    Hou et al.'s rule, ``w = diag(cov^-1)`` of SE(3) residuals normalised to unit length,
    applied to the training poses about their mean (``pose_spread``): training data only.
    """
    return estimate_metric_weights(pose_spread(poses.rotations, poses.positions)).float()


def metric_from_training_residuals(net: nn.Module, data: RelocalisationData) -> Tensor:
    """``W`` from the residuals of a trained network on the training frames (Hou et al.'s rule).

    The authors trained once with ``W = I`` and took ``w = diag(cov^-1)`` of the residuals
    ``Log_{y_true}(y_pred)``, computed on the test set; here on the training frames only.

    Args:
        net: a trained ``PoseNet`` (any loss).
        data: the frames it was trained on.

    Returns:
        ``(6, 6)`` block-isotropic diagonal ``W`` with unit-length diagonal.
    """
    R, c = predict_camera_poses(net, data.train)
    truth = data.train_poses
    residuals = riemannian_log(truth.rotations.to(R.dtype), truth.positions.to(c.dtype), R, c)
    return estimate_metric_weights(residuals).float()


class PoseTermsLoss(nn.Module):
    """A ``PoseLoss`` on ``(rotation, position)`` outputs against the batch's camera pose."""

    def __init__(self, loss: PoseLoss) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, rotation: Tensor, position: Tensor, batch: dict[str, Tensor], net: nn.Module) -> Tensor:
        target = self.loss.representation.from_matrix(batch["rotation"])
        return self.loss(rotation, position, target, batch["position"])


class ReprojectionTermsLoss(nn.Module):
    """Kendall & Cipolla's ``L_g`` on the batch's visible scene points, in pixels of each
    image's ``intrinsics`` (the frame's own, after resizing and cropping).

    Args:
        gamma: residual norm (the paper: 1).
        clip: residual bound in pixels, or None.
    """

    def __init__(self, gamma: int = 1, clip: float | None = None) -> None:
        super().__init__()
        self.gamma, self.clip = gamma, clip

    def forward(self, rotation: Tensor, position: Tensor, batch: dict[str, Tensor], net: nn.Module) -> Tensor:
        missing = sorted({"points", "points_mask", "intrinsics"} - set(batch))
        if missing:
            raise ValueError(f"batch: the reprojection loss needs {missing} in every item")
        return reprojection_loss(net.to_matrix(rotation), position, batch["rotation"], batch["position"],
                                 batch["points"], batch["points_mask"], batch["intrinsics"], gamma=self.gamma,
                                 clip=self.clip)  # fmt: skip


def reloc_loss(config: RelocTrainingConfig, train: CameraPoses) -> nn.Module:
    """The loss module ``loss.kind`` names (see the module docstring); ``train``: the training
    cameras (for the SE(3) metric weights)."""
    c = config.loss
    distances = {"rotation": QuaternionDistance(c.gamma), "translation": TranslationDistance(c.gamma)}
    if c.kind is LossKind.BETA:
        return PoseTermsLoss(PoseLoss(FixedWeighting(c.beta), **distances))
    if c.kind is LossKind.HOMOSCEDASTIC:
        return PoseTermsLoss(PoseLoss(HomoscedasticWeighting(c.init, reduction="none"), **distances))
    if c.kind is LossKind.REPROJECTION:
        return ReprojectionTermsLoss(c.gamma, c.clip)
    W = torch.diag(torch.tensor(c.metric_weights)) if c.metric_weights is not None else metric_from_training_poses(train)
    representation = ROTATION_HEADS[config.model.rotation_head].representation
    return PoseTermsLoss(PoseLoss(MetricWeighting(W.float(), representation, squared=c.se3_squared)))


def build_posenet(config: RelocTrainingConfig, data: RelocalisationData) -> PoseNet:
    """The ``PoseNet`` of ``config``, its position head centred on the training cameras
    and its input normalised by the training images' statistics."""
    m = config.model
    positions = data.train_poses.positions
    spread = float(positions.std(0).mean().clamp_min(1e-3))
    mean, std = data.image_statistics()
    return PoseNet(m.width, m.stem_stride, m.dropout, m.fc_features, positions.mean(0).tolist(), spread,
                   mean, std, ROTATION_HEADS[m.rotation_head])  # fmt: skip


class RelocalisationModule(L.LightningModule):
    """Trains a ``PoseNet`` with the loss of a one-stage ``StageSchedule``.

    The loss modules are submodules, so learned weights (homoscedastic ``s``) are optimised
    (without weight decay) and saved in checkpoints.

    Logged: ``train/loss``, ``train/position_error_m``, ``train/rotation_error_deg`` (this
    process's batch), ``loss/s_p`` and ``loss/s_q`` when learned; over all validation frames
    (joined across processes, identical on each) ``val/position_median_m``,
    ``val/rotation_median_deg`` (the papers' statistics) and the means ``val/position_error_m``,
    ``val/rotation_error_deg``.
    """

    def __init__(self, net: PoseNet, schedule: StageSchedule, lr: float = 1e-3, weight_decay: float = 0.0,
                 cosine_decay: bool = True, decoupled_weight_decay: bool = False) -> None:  # fmt: skip
        super().__init__()
        self.net, self.schedule = net, schedule
        self.losses = nn.ModuleList([stage.loss for stage in schedule])
        self.lr, self.weight_decay, self.cosine_decay = lr, weight_decay, cosine_decay
        self.decoupled_weight_decay = decoupled_weight_decay
        self._val: list[tuple[Tensor, Tensor, Tensor]] = []

    def _errors(self, rotation: Tensor, position: Tensor, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        with torch.no_grad(), full_precision(self.device):
            return (position_error_m(position, batch["position"]),
                    rotation_error_deg(self.net.to_matrix(rotation), batch["rotation"]))  # fmt: skip

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        epoch = min(self.current_epoch, self.schedule.total_epochs - 1)
        with batchnorm_for_batch(self.net, batch["image"].shape[0]):
            rotation, position = self.net(batch["image"])
        rotation, position = rotation.float(), position.float()
        with full_precision(self.device):  # the losses in float32 whatever the forward pass's precision
            loss = self.schedule.loss_at(epoch)(rotation, position, batch, self.net)
        p_err, r_err = self._errors(rotation, position, batch)
        n = p_err.numel()
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        self.log("train/position_error_m", p_err.mean(), prog_bar=True, batch_size=n)
        self.log("train/rotation_error_deg", r_err.mean(), prog_bar=True, batch_size=n)
        for module in self.losses.modules():
            if isinstance(module, HomoscedasticWeighting):
                s = module.log_variances.detach()
                self.log("loss/s_p", s[0], batch_size=n)
                self.log("loss/s_q", s[1], batch_size=n)
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        rotation, position = self.net(batch["image"])
        items = batch[ITEM] if ITEM in batch else torch.arange(rotation.shape[0], device=rotation.device)
        self._val.append((items, *self._errors(rotation.float(), position.float(), batch)))

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        items, p_err, r_err = (torch.cat(parts) for parts in zip(*self._val))
        p_err, r_err = gather_items(self, items, p_err, r_err)
        self.log("val/position_median_m", p_err.median(), prog_bar=True)
        self.log("val/rotation_median_deg", r_err.median(), prog_bar=True)
        self.log("val/position_error_m", p_err.mean())
        self.log("val/rotation_error_deg", r_err.mean())
        self._val.clear()

    def configure_optimizers(self):  # type: ignore[no-untyped-def]
        groups = [{"params": list(self.net.parameters()), "weight_decay": self.weight_decay},
                  {"params": list(self.losses.parameters()), "weight_decay": 0.0}]  # fmt: skip
        adam = torch.optim.AdamW if self.decoupled_weight_decay else torch.optim.Adam
        optimiser = adam([g for g in groups if g["params"]], lr=self.lr)
        if not self.cosine_decay:
            return optimiser
        decay = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=self.schedule.total_epochs,
                                                           eta_min=self.lr / 100)  # fmt: skip
        return {"optimizer": optimiser, "lr_scheduler": {"scheduler": decay, "interval": "epoch"}}


def train_reloc(config: RelocTrainingConfig, output: str | Path, *, progress: bool = True, resume: bool = False,
                overwrite: bool = False, callbacks: Sequence[L.Callback] = ()) -> TrainingResult:  # fmt: skip
    """Train PoseNet as ``config`` says; write checkpoints, logs, ``model.pt`` and ``summary.json``.

    ``config.seed`` seeds the initial weights, the order of the training frames, dropout and the
    random crops of real training images; the best checkpoint is chosen on the validation frames
    (``data.val_sequences``), never on the test frames. The other arguments as
    ``posereg.training.volume.train_volume``.

    Raises:
        FileNotFoundError: ``model.init_from`` names no file.
        ValueError: ``model.init_from`` is not a relocalisation model of the same network.
    """
    check_run_folder(output, config.model_dump(mode="json"), resume=resume, overwrite=overwrite)  # before the data
    data = relocalisation_data(config.data, seed=config.seed, progress=progress)
    if config.loss.kind is LossKind.REPROJECTION and not data.has_points:
        raise ValueError(f"loss.kind reprojection: the {config.data.source} data has no scene points "
                         "(Cambridge: put reconstruction.nvm in data.root)")  # fmt: skip
    net = seeded_network(config.seed, lambda: build_posenet(config, data))
    load_initial_weights(net, config.model.init_from, load_reloc_model)
    o = config.optim
    schedule = StageSchedule([Stage(config.loss.kind.value, o.epochs, reloc_loss(config, data.train_poses))])
    module = RelocalisationModule(net, schedule, o.lr, o.weight_decay, o.cosine_decay, o.decoupled_weight_decay)
    assert data.val is not None  # relocalisation_data always carves it
    return fit_pose_network(module, data.train, data.val, config=config, output=output, batch_size=o.batch_size,
                            num_workers=o.num_workers, resume=resume, overwrite=overwrite, progress=progress,
                            callbacks=callbacks)  # fmt: skip
