"""Training PoseNet for camera relocalisation with the geometric losses of the papers.

``train_reloc(config, output)`` renders (or reads from the cache) the synthetic scene's
training and test sequences, builds a ``PoseNet`` whose position head starts at the
training cameras' mean, and trains it with the loss that ``loss.kind`` names:

- 'beta': ``|p - p_hat|_g + beta |q - q_hat|_g`` (PoseNet, beta tuned by a sweep);
- 'homoscedastic': ``L_p exp(-s_p) + s_p + L_q exp(-s_q) + s_q``, ``s`` learned (Kendall & Cipolla);
- 'reprojection': the mean image distance of the visible scene points under the true and
  predicted poses, fine-tuning a homoscedastic model (``model.init_from``);
- 'se3': the squared SE(3) geodesic distance under ``W = diag(w_r I3, w_t I3)`` (Hou et
  al.), with ``W`` estimated from the spread of the training camera poses (training data
  only) unless ``loss.metric_weights`` sets it.

The test sequences serve as the validation set: the curves show test error as training
goes, and nothing is selected on them (``model.pt`` is the last epoch).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from posereg.data.relocalisation import (
    CameraPoses,
    ImageTransform,
    RelocalisationDataset,
    channel_statistics,
    image_key,
    load_rgb,
    points_seen_by,
    read_cambridge_poses,
    read_nvm,
    read_seven_scenes,
    read_seven_scenes_split,
    seven_scenes_intrinsics,
)
from posereg.data.synthetic_scene import (
    RenderedScene,
    SceneDataset,
    SyntheticScene,
    render_scene,
    room_scene,
    street_scene,
)
from posereg.evaluation.metrics import position_error_m, rotation_error_deg
from posereg.evaluation.relocalisation import (
    RelocalisationResult,
    predict_camera_poses,
    relocalisation_result,
    reprojection_error_px,
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
from posereg.models.artifact import NetworkKind, load_artifact
from posereg.models.posenet import PoseNet
from posereg.training.loop import TrainingResult, fit_pose_network, seeded_network
from posereg.training.reloc_config import (
    LossKind,
    RelocDataConfig,
    RelocTrainingConfig,
    reloc_config_from_dict,
)
from posereg.training.schedules import Stage, StageSchedule

__all__ = [
    "PoseTermsLoss", "RelocalisationModule", "ReprojectionTermsLoss", "build_posenet", "evaluate_reloc_model", "load_reloc_model",
    "RelocalisationData", "metric_from_training_poses", "metric_from_training_residuals", "relocalisation_data", "reloc_loss", "rendered_splits",
    "synthetic_scene", "train_reloc",
]  # fmt: skip

TEST_SEED_BASE = 1000  # test sequences use path seeds 1000, 1001, ...: never a training path


def synthetic_scene(name: str) -> SyntheticScene:
    """The scene a configuration names ('room' or 'street')."""
    scenes = {"room": room_scene, "street": street_scene}
    if name not in scenes:
        raise ValueError(f"scene: expected one of {sorted(scenes)}, got {name!r}")
    return scenes[name]()


def rendered_splits(data: RelocDataConfig, *, progress: bool = False) -> tuple[RenderedScene, RenderedScene]:
    """``(train, test)`` renders of the configured scene, read from or written to ``data.cache``.

    The cache key hashes every setting that changes the pixels or labels, so a changed
    configuration never reads a stale render.
    """
    scene = synthetic_scene(data.scene)
    splits = {"train": range(data.train_sequences), "test": range(TEST_SEED_BASE, TEST_SEED_BASE + data.test_sequences)}
    out = []
    for name, seeds in splits.items():
        settings = {"scene": repr(scene), "seeds": list(seeds), "frames": data.frames, "size": data.size,
                    "points": data.points_per_image, "version": 1}  # fmt: skip
        key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
        path = Path(data.cache) / f"{data.scene}_{name}_{key}.pt" if data.cache is not None else None
        if path is not None and path.is_file():
            out.append(RenderedScene.load(path))
            continue
        rendered = render_scene(scene, sequences=list(seeds), frames=data.frames, size=data.size,
                                points_per_image=data.points_per_image, progress=progress)  # fmt: skip
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            rendered.save(path)
        out.append(rendered)
    return out[0], out[1]


@dataclass(frozen=True)
class RelocalisationData:
    """Training and test frames with what the network and the losses need to know of them.

    Attributes:
        train, test: datasets of dict items (``image`` in [0, 1], ``position``, ``rotation``,
            ``quaternion``, and when available ``points``, ``points_mask``, ``intrinsics``).
        train_poses, test_poses: their camera-to-world poses (float64).
        has_points: whether items carry scene points (the reprojection loss needs them).
        statistics_images: yields the ``(3, H, W)`` images in [0, 1] that ``image_statistics``
            summarises (read only when a new network needs them, not for evaluation).
    """

    train: Dataset
    test: Dataset
    train_poses: CameraPoses
    test_poses: CameraPoses
    has_points: bool
    statistics_images: Callable[[], Iterable[Tensor]]

    def image_statistics(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and standard deviation of the training images (``channel_statistics``)."""
        mean, std = channel_statistics(self.statistics_images())
        return mean.tolist(), std.tolist()


def _poses_of(rendered: RenderedScene) -> CameraPoses:
    return CameraPoses(tuple(f"frame{i:06d}" for i in range(len(rendered))), rendered.positions, rendered.rotations)


def _synthetic_data(data: RelocDataConfig, progress: bool) -> RelocalisationData:
    train, test = rendered_splits(data, progress=progress)
    return RelocalisationData(SceneDataset(train), SceneDataset(test), _poses_of(train), _poses_of(test), True,
                              lambda: (image.float() / 255 for image in train.images))  # fmt: skip


def _real_data(data: RelocDataConfig) -> RelocalisationData:
    assert data.root is not None
    root = Path(data.root)
    if data.source == "cambridge":
        split = [read_cambridge_poses(root / f"dataset_{name}.txt", max_abs_position=data.max_abs_position)
                 for name in ("train", "test")]  # fmt: skip
    else:
        split = [read_seven_scenes(root, read_seven_scenes_split(root / f"{name}Split.txt")) for name in ("Train", "Test")]
    nvm = root / "reconstruction.nvm"
    points: list[tuple[Tensor, Tensor] | None] = [None, None]
    intrinsics: list[Tensor | None] = [None, None]
    if data.source == "cambridge" and nvm.is_file():
        reconstruction = read_nvm(nvm)
        focal = {image_key(k): f for k, f in zip(reconstruction.files, reconstruction.focal_lengths.tolist())}
        for i, poses in enumerate(split):
            points[i] = points_seen_by(reconstruction, poses, data.points_per_image, allow_missing=True)
            # NVM measurements are relative to the image centre: K has the centre as principal point
            h, w = load_rgb(root / poses.files[0]).shape[-2:]
            # frames the reconstruction lacks have no points (all-False mask); give them the median
            # focal length so that no NaN enters the loss or its gradient
            typical = float(reconstruction.focal_lengths.median())
            f = torch.tensor([focal.get(image_key(name), typical) for name in poses.files], dtype=torch.float64)
            K = torch.zeros(len(poses), 3, 3, dtype=torch.float64)
            K[:, 0, 0] = K[:, 1, 1] = f
            K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = (w - 1) / 2, (h - 1) / 2, 1.0
            intrinsics[i] = K
    elif data.source == "seven_scenes":
        intrinsics = [seven_scenes_intrinsics(), seven_scenes_intrinsics()]
    datasets = []
    for i, poses in enumerate(split):
        transform = ImageTransform(resize=data.resize, crop=data.crop, train=i == 0)
        pts = points[i]
        datasets.append(RelocalisationDataset(root, poses, transform, points=None if pts is None else pts[0],
                                              points_mask=None if pts is None else pts[1], intrinsics=intrinsics[i]))  # fmt: skip
    # statistics of up to 200 evenly spread training images, centre-cropped
    probe = ImageTransform(resize=data.resize, crop=data.crop, train=False)
    step = max(1, len(split[0]) // 200)
    return RelocalisationData(datasets[0], datasets[1], split[0], split[1], points[0] is not None,
                              lambda: (probe(load_rgb(root / f)) for f in split[0].files[::step]))  # fmt: skip


def relocalisation_data(data: RelocDataConfig, *, progress: bool = False) -> RelocalisationData:
    """The frames ``data`` describes: a rendered synthetic scene, Cambridge Landmarks or 7-Scenes.

    Raises:
        FileNotFoundError: missing dataset files. ValueError: malformed ones.
    """
    return _synthetic_data(data, progress) if data.source == "synthetic" else _real_data(data)


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

    Logged: ``train/loss``, ``train/position_error_m``, ``train/rotation_error_deg``,
    ``loss/s_p`` and ``loss/s_q`` when learned; on the validation frames
    ``val/position_median_m``, ``val/rotation_median_deg`` (the papers' statistics) and the
    means ``val/position_error_m``, ``val/rotation_error_deg``.
    """

    def __init__(self, net: PoseNet, schedule: StageSchedule, lr: float = 1e-3, weight_decay: float = 0.0,
                 cosine_decay: bool = True, decoupled_weight_decay: bool = False) -> None:  # fmt: skip
        super().__init__()
        self.net, self.schedule = net, schedule
        self.losses = nn.ModuleList([stage.loss for stage in schedule])
        self.lr, self.weight_decay, self.cosine_decay = lr, weight_decay, cosine_decay
        self.decoupled_weight_decay = decoupled_weight_decay
        self._val: list[tuple[Tensor, Tensor]] = []

    def _errors(self, rotation: Tensor, position: Tensor, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            return (position_error_m(position, batch["position"]),
                    rotation_error_deg(self.net.to_matrix(rotation), batch["rotation"]))  # fmt: skip

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        epoch = min(self.current_epoch, self.schedule.total_epochs - 1)
        rotation, position = self.net(batch["image"])
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
        self._val.append(self._errors(rotation, position, batch))

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        p_err = torch.cat([p for p, _ in self._val])
        r_err = torch.cat([r for _, r in self._val])
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


def train_reloc(
    config: RelocTrainingConfig, output: str | Path, *, accelerator: str = "cpu", progress: bool = True
) -> TrainingResult:
    """Train PoseNet as ``config`` says; write checkpoints, logs, ``model.pt`` and ``summary.json``.

    Raises:
        FileNotFoundError: ``model.init_from`` names no file.
        ValueError: ``model.init_from`` is not a relocalisation model of the same network.
    """
    data = relocalisation_data(config.data, progress=progress)
    if config.loss.kind is LossKind.REPROJECTION and not data.has_points:
        raise ValueError(f"loss.kind reprojection: the {config.data.source} data has no scene points "
                         "(Cambridge: put reconstruction.nvm in data.root)")  # fmt: skip
    net = seeded_network(config.seed, lambda: build_posenet(config, data))
    if config.model.init_from is not None:
        start, _ = load_reloc_model(config.model.init_from)
        if start.spec != net.spec:
            raise ValueError(f"model.init_from: {config.model.init_from} is a different network "
                             f"({start.spec} vs {net.spec})")  # fmt: skip
        net.load_state_dict(start.state_dict())
    o = config.optim
    schedule = StageSchedule([Stage(config.loss.kind.value, o.epochs, reloc_loss(config, data.train_poses))])
    module = RelocalisationModule(net, schedule, o.lr, o.weight_decay, o.cosine_decay, o.decoupled_weight_decay)
    return fit_pose_network(module, data.train, data.test, config=config.to_dict(), output=output,
                            batch_size=o.batch_size, num_workers=o.num_workers, accelerator=accelerator,
                            progress=progress)  # fmt: skip


def load_reloc_model(path: str | Path) -> tuple[PoseNet, RelocTrainingConfig]:
    """Load a relocalisation ``model.pt`` (safe ``weights_only`` loading), in eval mode.

    Raises:
        FileNotFoundError: no such file. ValueError: not a posereg relocalisation model.
    """
    artifact = load_artifact(path, (NetworkKind.POSENET,))
    return artifact.network(), reloc_config_from_dict(artifact.config)  # type: ignore[return-value]


def evaluate_reloc_model(path: str | Path, *, progress: bool = False) -> tuple[RelocalisationResult, RelocTrainingConfig]:
    """Errors of a relocalisation ``model.pt`` on the test frames of the data it was trained on
    (with the per-frame reprojection error in pixels where the frames carry scene points).

    Raises:
        FileNotFoundError: no such file. ValueError: not a posereg relocalisation model.
    """
    net, config = load_reloc_model(path)
    data = relocalisation_data(config.data, progress=progress)
    R, c = predict_camera_poses(net, data.test)
    reprojection = reprojection_error_px(R, c, data.test) if data.has_points else None
    return relocalisation_result(R, c, data.test_poses.rotations.float(), data.test_poses.positions.float(),
                                 reprojection), config  # fmt: skip
