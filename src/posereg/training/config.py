"""The training configurations of every trainer, from YAML or from a model file, validated on load.

One declarative schema (``posereg.schema``): each layer owns its sections (the data
sections in ``posereg.data.config`` and ``posereg.data.reloc.config``, the networks in
``posereg.models.config``); this module holds the optimisation, schedule and loss sections and
the top-level configurations, which check what spans sections (the atlas section is the
working grid, ``posereg.data.grid.WorkingGrid``). One top-level ``seed`` seeds
everything a run draws: the initial weights, the training items (``seed``), the validation items
(``seed + 1``), the order of the training items, the random crops, dropout and the data-loader
workers (``posereg.training.seeding``). The ``trainer`` section (``TrainerConfig``) says where a run
executes (Lightning's accelerator, devices, nodes, strategy, precision); it does not change what
is trained, except through the numerics of its precision.

Load a file with ``load_config(path, VolumeTrainingConfig)`` (or ``VolumeTrainingConfig.from_yaml``),
dump one with ``config.model_dump(mode="json")`` (what model files store) and read a stored dump
back with ``VolumeTrainingConfig.from_stored(values)``. No Lightning import here.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, Field, PlainValidator, model_validator

from posereg.data.config import SliceDataConfig, VolumeDataConfig
from posereg.data.grid import WorkingGrid
from posereg.data.reloc.config import RelocDataConfig
from posereg.models.artifact import NetworkKind
from posereg.models.config import RelocModelConfig, SliceModelConfig, VolumeModelConfig
from posereg.schema import Bool, ConfigError, Float, Int, Section, load_config, one_of, validate_config

__all__ = [
    "LossKind", "OptimConfig", "RelocLossConfig", "RelocOptimConfig", "RelocTrainingConfig", "ScheduleConfig",
    "SliceTrainingConfig", "TrainerConfig", "TrainingConfig", "VolumeTrainingConfig", "load_config",
]  # fmt: skip

Epochs = Annotated[Int, Field(ge=0)]
T = TypeVar("T", bound="TrainingConfig")


class ScheduleConfig(Section):
    """Salehi's two stages: ``mse_epochs`` of rotation-vector MSE, then ``geodesic_epochs`` of the
    geodesic loss (at least one epoch in all); ``translation_weight`` is lambda, the weight of the
    squared translation (mm^2) or slice-index (slices^2) error."""

    mse_epochs: Epochs = 10
    geodesic_epochs: Epochs = 10
    translation_weight: Float = Field(0.01, ge=0)

    @model_validator(mode="after")
    def _some_epochs(self) -> ScheduleConfig:
        if self.mse_epochs + self.geodesic_epochs < 1:
            raise ConfigError("geodesic_epochs", "expected at least one epoch in all (mse_epochs + geodesic_epochs)")
        return self


class OptimConfig(Section):
    """Adam settings and batching of the volume and slice trainers; ``cosine_decay`` anneals the
    learning rate to ``lr / 100`` over all epochs (without it, late epochs of the geodesic stage
    can destabilise); ``batch_size`` is the global batch (items per optimiser step, split evenly
    over the processes of the ``trainer`` section); ``max_minutes`` stops training after that
    wall-clock time (the model so far is still written; a run stopped so does not resume
    bit-identically). ``precision`` moved to ``trainer.precision``."""

    lr: Float = Field(1e-3, gt=0)
    weight_decay: Float = Field(0.0, ge=0)
    cosine_decay: Bool = False
    batch_size: Int = Field(8, ge=1)
    num_workers: Int = Field(2, ge=0)
    max_minutes: Float | None = Field(None, gt=0)


def _devices(value: Any) -> int | str:
    if value == "auto" or (type(value) is int and value >= 1):
        return value  # type: ignore[no-any-return]
    raise ValueError(f"expected a number of devices (>= 1) or 'auto', got {value!r}")


class TrainerConfig(Section):
    """Where a run executes: Lightning's ``accelerator`` ('cpu', 'gpu', 'auto'), ``devices`` per
    node (a count or 'auto'), ``num_nodes``, ``strategy`` ('auto', 'ddp': one process per device
    launched by torchrun or SLURM, 'ddp_spawn': processes spawned by the run itself) and
    ``precision`` ('32-true', 'bf16-mixed', '16-mixed': a CUDA GPU's float16 autocast).

    With several processes each takes a disjoint shard of every epoch (``posereg.training.shards``),
    the batch size stays global (each process takes ``batch_size / processes`` items), and the
    validation metrics are computed over the whole validation set on every process.
    ``sync_batchnorm``: batch statistics over the whole global batch (CUDA only; without it each
    process normalises its own share). ``deterministic``: torch's deterministic algorithms (GPU
    runs repeat exactly; slower; warns where an operation has none). CPU runs repeat exactly
    without it.
    """

    accelerator: Literal["cpu", "gpu", "auto"] = "cpu"
    devices: Annotated[int | str, PlainValidator(_devices)] = 1
    num_nodes: Int = Field(1, ge=1)
    strategy: Literal["auto", "ddp", "ddp_spawn"] = "auto"
    precision: Literal["32-true", "bf16-mixed", "16-mixed"] = "32-true"
    sync_batchnorm: Bool = False
    deterministic: Bool = False

    @model_validator(mode="after")
    def _consistent(self) -> TrainerConfig:
        if self.precision == "16-mixed" and self.accelerator == "cpu":
            raise ConfigError("precision", "16-mixed is float16 autocast on a CUDA GPU; on the CPU use bf16-mixed or 32-true")
        if self.sync_batchnorm and self.accelerator == "cpu":
            raise ConfigError("sync_batchnorm", "needs CUDA GPUs (torch's SyncBatchNorm has no CPU kernel)")
        return self

    @property
    def processes(self) -> int | None:
        """``devices x num_nodes``, or None while ``devices`` is 'auto'."""
        return None if self.devices == "auto" else self.devices * self.num_nodes


class LossKind(enum.Enum):
    """The relocalisation loss (``loss.kind``; ``posereg.training.reloc.reloc_loss``)."""

    BETA = "beta"  # |p - p_hat|_g + beta |q - q_hat|_g (PoseNet, tuned beta)
    HOMOSCEDASTIC = "homoscedastic"  # learned s_p, s_q (Kendall & Cipolla 2017)
    REPROJECTION = "reprojection"  # L_g on the visible scene points (fine-tune; needs model.init_from)
    SE3 = "se3"  # squared SE(3) geodesic distance under W from the training poses (Hou et al. 2018)


def _six_weights(weights: tuple[float, ...]) -> tuple[float, ...]:
    if len(weights) != 6:
        raise ValueError(f"expected the 6 diagonal weights of W (3 rotation, 3 translation), got {len(weights)}")
    return weights


class RelocLossConfig(Section):
    """The loss switch. ``gamma``: norm of the position, quaternion and reprojection terms
    (Kendall & Cipolla: 1); ``beta`` for 'beta'; ``init`` = initial ``(s_p, s_q)`` for
    'homoscedastic'; ``clip`` (pixels) bounds reprojection residuals; ``metric_weights``: the
    6 positive diagonal weights of ``W`` for 'se3', or None to estimate them from the spread of
    the training poses (training data only); ``se3_squared``: Hou et al.'s ``d_W^2`` (True) or
    the distance ``d_W`` (False)."""

    kind: LossKind = LossKind.HOMOSCEDASTIC
    gamma: Annotated[Int, one_of(1, 2)] = 1
    beta: Float = Field(100.0, gt=0)
    init: tuple[Float, Float] = (0.0, -3.0)
    clip: Float | None = Field(100.0, gt=0)
    metric_weights: Annotated[tuple[Annotated[Float, Field(gt=0)], ...], AfterValidator(_six_weights)] | None = None
    se3_squared: Bool = True


class RelocOptimConfig(Section):
    """Adam settings and batching of PoseNet. ``decoupled_weight_decay``: AdamW (Loshchilov &
    Hutter 2019), whose decay does not grow relative to the loss gradient when a loss is small
    in scale (as the SE(3) loss under data-derived weights is); False: Adam with L2 decay."""

    epochs: Int = Field(40, ge=1)
    lr: Float = Field(1e-3, gt=0)
    weight_decay: Float = Field(1e-4, ge=0)
    decoupled_weight_decay: Bool = False
    cosine_decay: Bool = True
    batch_size: Int = Field(32, ge=1)
    num_workers: Int = Field(0, ge=0)


def _moved_precision(values: Any) -> Any:
    """Earlier configurations (and model files) set ``optim.precision``: it is ``trainer.precision`` now."""
    if not isinstance(values, Mapping) or not isinstance(values.get("optim"), Mapping) or "precision" not in values["optim"]:
        return values
    optim = dict(values["optim"])
    precision = optim.pop("precision")
    trainer = values.get("trainer") or {}
    if not isinstance(trainer, Mapping) or trainer.get("precision", precision) != precision:
        return values  # both set and different: validation names the stale key
    return {**values, "optim": optim, "trainer": {**trainer, "precision": precision}}


class TrainingConfig(Section):
    """What every trainer's configuration has: the one ``seed`` (a non-negative int) and the
    ``trainer`` section."""

    seed: Int = Field(0, ge=0)
    trainer: TrainerConfig = TrainerConfig()

    @model_validator(mode="before")
    @classmethod
    def _earlier_keys(cls, values: Any) -> Any:
        return _moved_precision(values)

    @model_validator(mode="after")
    def _global_batch_splits(self) -> TrainingConfig:
        processes = self.trainer.processes
        batch_size = getattr(getattr(self, "optim", None), "batch_size", None)
        if processes is not None and batch_size is not None and batch_size % processes:
            raise ConfigError("optim.batch_size", f"the global batch ({batch_size}) must split evenly over the "
                              f"{processes} processes of the trainer section (devices x num_nodes)")  # fmt: skip
        return self

    @classmethod
    def from_stored(cls: type[T], values: Mapping[str, Any]) -> T:
        """The configuration a model file stores (``model_dump(mode="json")``, or the dump of
        earlier posereg versions), validated.

        Earlier dumps of volume and slice runs carry ``data.seed``, the seed of their items from
        before one ``seed`` seeded everything: it is dropped (the run is over; the stored top-level
        ``seed`` is kept).

        Raises:
            ValueError: not a configuration of this trainer, naming the bad keys.
        """
        values = dict(values)
        data = values.get("data")
        if isinstance(data, Mapping) and "seed" in data:
            values["data"] = {k: v for k, v in data.items() if k != "seed"}
        return validate_config(cls, values, "stored config")



def _mse_needs_rotvec(schedule: ScheduleConfig, rotation_head: str) -> None:
    if schedule.mse_epochs > 0 and rotation_head != "rotvec":
        raise ConfigError("schedule.mse_epochs", "must be 0 unless model.rotation_head is rotvec "
                          "(the MSE stage regresses rotation vectors)")  # fmt: skip


class VolumeTrainingConfig(TrainingConfig):
    """Everything ``posereg train volume`` needs (the Pose-Net or the Correction-Net)."""

    network: NetworkKind = NetworkKind.POSE
    atlas: WorkingGrid = WorkingGrid()
    data: VolumeDataConfig = VolumeDataConfig()
    model: VolumeModelConfig = VolumeModelConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    optim: OptimConfig = OptimConfig()

    @model_validator(mode="after")
    def _across_sections(self) -> VolumeTrainingConfig:
        if self.network not in (NetworkKind.POSE, NetworkKind.CORRECTION):
            raise ConfigError("network", f"expected 'pose' or 'correction' for a volume network, got {self.network.value!r}")
        _mse_needs_rotvec(self.schedule, self.model.rotation_head)
        if self.atlas.shape < 2 ** len(self.model.pool_before):
            raise ConfigError("model.pool_before", f"{len(self.model.pool_before)} poolings halve the "
                              f"{self.atlas.shape}^3 atlas grid below one voxel")  # fmt: skip
        return self


class SliceTrainingConfig(TrainingConfig):
    """Everything ``posereg train slice`` needs (``schedule.translation_weight`` weighs the
    squared slice-index error against the rotation loss)."""

    network: Literal["slice"] = "slice"
    atlas: WorkingGrid = WorkingGrid()
    data: SliceDataConfig = SliceDataConfig()
    model: SliceModelConfig = SliceModelConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    optim: OptimConfig = OptimConfig()

    @model_validator(mode="after")
    def _across_sections(self) -> SliceTrainingConfig:
        _mse_needs_rotvec(self.schedule, self.model.rotation_head)
        return self


class RelocTrainingConfig(TrainingConfig):
    """Everything ``posereg train reloc`` needs: ``data`` (where the frames come from), ``model``
    (the ``PoseNet``), ``loss`` (one switch, ``loss.kind``) and ``optim``."""

    network: Literal["reloc"] = "reloc"
    data: RelocDataConfig = RelocDataConfig()
    model: RelocModelConfig = RelocModelConfig()
    loss: RelocLossConfig = RelocLossConfig()
    optim: RelocOptimConfig = RelocOptimConfig()

    @model_validator(mode="after")
    def _across_sections(self) -> RelocTrainingConfig:
        kind = self.loss.kind
        if kind in (LossKind.BETA, LossKind.HOMOSCEDASTIC) and self.model.rotation_head != "quaternion":
            raise ConfigError("model.rotation_head", f"must be quaternion for the {kind.value} loss (it compares quaternions)")
        if kind is LossKind.REPROJECTION and self.data.source == "seven_scenes":
            raise ConfigError("loss.kind", "reprojection needs scene points, which the 7-Scenes loader does not provide")
        if kind is LossKind.REPROJECTION and self.model.init_from is None:
            raise ConfigError("model.init_from", "loss.kind reprojection needs a model to fine-tune (it diverges from "
                              "random weights: fine-tune a homoscedastic model)")  # fmt: skip
        return self
