"""The training configurations: bad values refused at load naming their key, round trips, the
shipped files, configurations stored in model files (today's and earlier ones), one seed."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
import yaml

from posereg.data.atlas import Contrast
from posereg.models.artifact import NetworkKind
from posereg.registration import pretrained_pipeline_path
from posereg.training.config import (
    LossKind,
    RelocTrainingConfig,
    SliceTrainingConfig,
    TrainingConfig,
    VolumeTrainingConfig,
    load_config,
)

V, S, R = VolumeTrainingConfig, SliceTrainingConfig, RelocTrainingConfig
TRAINERS = {"volume": V, "slice": S, "reloc": R}
CONFIGS = sorted(Path("configs").glob("*.yaml"))

BAD = [
    # top level: the one seed, the network, unknown keys
    (V, {"seed": [1]}, r"^seed: Input should be a valid integer \(got \[1\]\)$"),
    (V, {"seed": 1.5}, r"^seed: Input should be a valid integer"),
    (V, {"seed": True}, r"^seed: Input should be a valid integer"),
    (S, {"seed": -1}, r"^seed: Input should be greater than or equal to 0"),
    (R, {"seed": "0"}, r"^seed: Input should be a valid integer"),
    (V, {"netwrok": "pose"}, r"^netwrok: unknown key; expected one of \['atlas', 'data', 'model', 'network'"),
    (V, {"network": "slice"}, r"^network: expected 'pose' or 'correction' for a volume network, got 'slice'"),
    (S, {"network": "pose"}, r"^network: Input should be 'slice'"),
    (R, {"network": "slice"}, r"^network: Input should be 'reloc'"),
    (V, {"data": {"seed": 3}}, r"^data\.seed: unknown key; .*one top-level `seed` seeds everything"),
    (S, {"data": {"seed": 0}}, r"^data\.seed: unknown key"),
    (V, {"model": [1, 2]}, r"^model: Input should be a valid dictionary"),
    # atlas and data sections (posereg.data.config, posereg.data.reloc.config)
    (V, {"atlas": {"contrast": "flair"}}, r"^atlas\.contrast: Input should be 't1' or 't2'"),
    (S, {"atlas": {"resolution_mm": 3}}, r"^atlas\.resolution_mm: must be one of \[1, 2\], got 3"),
    (V, {"atlas": {"spacing": 0}}, r"^atlas\.spacing: Input should be greater than 0"),
    (V, {"data": {"item_per_epoch": 3}}, r"^data\.item_per_epoch: unknown key"),
    (V, {"data": {"noise": -0.1}}, r"^data\.noise: Input should be greater than or equal to 0 \(got -0\.1\)"),
    (V, {"data": {"noise": [0.1]}}, r"^data\.noise: Input should be a valid number"),
    (V, {"data": {"crop": 0.7}}, r"^data\.crop: Input should be less than 0\.5"),
    (V, {"data": {"train_subjects": 0}}, r"^data\.train_subjects: Input should be greater than or equal to 1"),
    (V, {"data": {"max_rotation_angle_deg": 200.0}}, r"^data\.max_rotation_angle_deg: Input should be less than or equal to 180"),
    (V, {"data": {"max_rotation_deg": 45.0, "max_rotation_angle_deg": 30.0}}, r"^data\.max_rotation_angle_deg: set at most one"),
    (V, {"data": {"synthetic_heads": "yes"}}, r"^data\.synthetic_heads: Input should be a valid boolean"),
    (S, {"data": {"x_range_deg": [10, -10]}}, r"^data\.x_range_deg: expected \[low, high\] with low <= high"),
    (S, {"data": {"y_range_deg": [-200, 10]}}, r"^data\.y_range_deg\.0: Input should be greater than or equal to -180"),
    (S, {"data": {"z_range_deg": [0, 1, 2]}}, r"^data\.z_range_deg: Tuple should have at most 2 items"),
    (S, {"data": {"middle_fraction": 1.5}}, r"^data\.middle_fraction: Input should be less than or equal to 1"),
    (R, {"data": {"scene": "moon"}}, r"^data\.scene: must be one of \['room', 'street'\], got 'moon'"),
    (R, {"data": {"scene": 3}}, r"^data\.scene: Input should be a valid string"),
    (R, {"data": {"frmaes": 3}}, r"^data\.frmaes: unknown key; expected one of \['cache', 'crop', 'frames'"),
    (R, {"data": {"source": "kitti"}}, r"^data\.source: Input should be 'synthetic', 'cambridge' or 'seven_scenes'"),
    (R, {"data": {"source": "cambridge"}}, r"^data\.root: must name the cambridge scene folder"),
    (R, {"data": {"crop": 300}}, r"^data\.crop: must be <= resize \(256\), got 300"),
    (R, {"data": {"frames": 1}}, r"^data\.frames: Input should be greater than or equal to 2"),
    # networks (posereg.models.config): names from the one registry, buildable specs
    (V, {"model": {"rotation_head": "euler"}}, r"^model\.rotation_head: must be one of \['quaternion', 'rotvec', 'sixd', 'svd9d'\]"),
    (V, {"model": {"channels": []}}, r"^model\.channels: Tuple should have at least 1 item"),
    (V, {"model": {"fc": [512, 0]}}, r"^model\.fc\.1: Input should be greater than or equal to 1"),
    (V, {"model": {"pool_before": [5]}}, r"^model\.pool_before: indices \[5\] are not convolutions 0\.\.4"),
    (V, {"atlas": {"shape": 8}, "model": {"pool_before": [0, 1, 2, 3]}}, r"^model\.pool_before: 4 poolings halve the 8\^3"),
    (S, {"model": {"stem_stride": 3}}, r"^model\.stem_stride: must be one of \[1, 2\], got 3"),
    (S, {"model": {"stem_stride": True}}, r"^model\.stem_stride: Input should be a valid integer"),
    (S, {"model": {"depth": 34}}, r"^model\.depth: unknown key"),
    (R, {"model": {"dropout": 1.0}}, r"^model\.dropout: Input should be less than 1"),
    (R, {"model": {"width": -0.5}}, r"^model\.width: Input should be greater than 0"),
    # schedules, optimisers, losses and what spans sections (posereg.training.config)
    (V, {"schedule": {"mse_epochs": 0, "geodesic_epochs": 0}}, r"^schedule\.geodesic_epochs: expected at least one epoch"),
    (V, {"model": {"rotation_head": "sixd"}}, r"^schedule\.mse_epochs: must be 0 unless model\.rotation_head is rotvec"),
    (S, {"schedule": {"translation_weight": -0.1}}, r"^schedule\.translation_weight: Input should be greater than or equal to 0"),
    (V, {"optim": {"lr": math.nan}}, r"^optim\.lr: Input should be a finite number"),
    (V, {"optim": {"lr": math.inf}}, r"^optim\.lr: Input should be a finite number"),
    (V, {"optim": {"lr": -1.0}}, r"^optim\.lr: Input should be greater than 0"),
    (V, {"optim": {"weight_decay": -1e-4}}, r"^optim\.weight_decay: Input should be greater than or equal to 0"),
    (V, {"optim": {"precision": "64"}}, r"^trainer\.precision: Input should be '32-true', 'bf16-mixed' or '16-mixed'"),
    (V, {"optim": {"precision": "bf16-mixed"}, "trainer": {"precision": "32-true"}}, r"^optim\.precision: unknown key"),
    (V, {"optim": {"weight_decay": -0.1}}, r"^optim\.weight_decay: Input should be greater than or equal to 0"),
    (S, {"data": {"noise": -0.5}}, r"^data\.noise: Input should be greater than or equal to 0"),
    (V, {"data": {"crop": 5}}, r"^data\.crop: Input should be less than 0\.5"),
    (R, {"data": {"crop": 5}}, r"^data\.crop: Input should be greater than or equal to 16"),
    (R, {"data": {"val_sequences": 0}}, r"^data\.val_sequences: Input should be greater than or equal to 1"),
    (R, {"data": {"train_sequences": 2, "val_sequences": 2}}, r"^data\.val_sequences: must leave training sequences"),
    # the trainer section: where a run executes
    (V, {"trainer": {"accelerator": "tpu"}}, r"^trainer\.accelerator: Input should be 'cpu', 'gpu' or 'auto'"),
    (V, {"trainer": {"devices": 0}}, r"^trainer\.devices: expected a number of devices \(>= 1\) or 'auto', got 0"),
    (V, {"trainer": {"devices": 1.5}}, r"^trainer\.devices: expected a number of devices"),
    (V, {"trainer": {"devices": "all"}}, r"^trainer\.devices: expected a number of devices"),
    (S, {"trainer": {"num_nodes": 0}}, r"^trainer\.num_nodes: Input should be greater than or equal to 1"),
    (R, {"trainer": {"strategy": "horovod"}}, r"^trainer\.strategy: Input should be 'auto', 'ddp' or 'ddp_spawn'"),
    (V, {"trainer": {"precision": "16-mixed"}}, r"^trainer\.precision: 16-mixed is float16 autocast on a CUDA GPU"),
    (V, {"trainer": {"sync_batchnorm": True}}, r"^trainer\.sync_batchnorm: needs CUDA GPUs"),
    (V, {"trainer": {"devices": 3}}, r"^optim\.batch_size: the global batch \(8\) must split evenly over the 3 processes"),
    (R, {"trainer": {"accelerator": "gpu", "devices": 4, "num_nodes": 2}, "optim": {"batch_size": 12}},
     r"^optim\.batch_size: the global batch \(12\) must split evenly over the 8 processes"),
    (V, {"optim": {"max_minutes": 0.0}}, r"^optim\.max_minutes: Input should be greater than 0"),
    (S, {"optim": {"cosine_decay": "yes"}}, r"^optim\.cosine_decay: Input should be a valid boolean \(got 'yes'\)"),
    (R, {"optim": {"epochs": 2.5}}, r"^optim\.epochs: Input should be a valid integer"),
    (R, {"optim": {"epochs": True}}, r"^optim\.epochs: Input should be a valid integer"),
    (R, {"optim": {"lr": "fast"}}, r"^optim\.lr: Input should be a valid number"),
    (R, {"optim": {"num_workers": -1}}, r"^optim\.num_workers: Input should be greater than or equal to 0"),
    (R, {"loss": {"kind": "l2"}}, r"^loss\.kind: Input should be 'beta', 'homoscedastic', 'reprojection' or 'se3'"),
    (R, {"loss": {"gamma": 3}}, r"^loss\.gamma: must be one of \[1, 2\], got 3"),
    (R, {"loss": {"beta": 0}}, r"^loss\.beta: Input should be greater than 0"),
    (R, {"loss": {"clip": "x"}}, r"^loss\.clip: Input should be a valid number"),
    (R, {"loss": {"se3_squared": "no"}}, r"^loss\.se3_squared: Input should be a valid boolean \(got 'no'\)"),
    (R, {"loss": {"kind": "se3", "metric_weights": [1, 1, 1]}}, r"^loss\.metric_weights: expected the 6 diagonal weights of W \(3 rotation, 3 translation\), got 3$"),
    (R, {"loss": {"kind": "se3", "metric_weights": [1, 1, 1, 1, 1, -1]}}, r"^loss\.metric_weights\.5: Input should be greater than 0"),
    (R, {"loss": {"kind": "reprojection"}}, r"^model\.init_from: loss\.kind reprojection needs a model to fine-tune"),
    (R, {"loss": {"kind": "beta"}, "model": {"rotation_head": "rotvec"}}, r"^model\.rotation_head: must be quaternion for the beta loss"),
    (R, {"data": {"source": "seven_scenes", "root": "chess"}, "loss": {"kind": "reprojection"}, "model": {"init_from": "m.pt"}},
     r"^loss\.kind: reprojection needs scene points"),
]  # fmt: skip


@pytest.mark.parametrize(("cls", "values", "message"), BAD, ids=[f"{c.__name__}-{json.dumps(v)}" for c, v, _ in BAD])
def test_bad_values_are_refused_naming_the_key(cls, values, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError) as caught:
        cls.from_dict(values)
    header, *lines = str(caught.value).split("\n")
    assert header == "config: 1 bad value:" and len(lines) == 1
    assert lines[0].startswith("  ") and re.search(message, lines[0].strip()), lines[0]


def test_every_bad_value_gets_a_line() -> None:
    with pytest.raises(ValueError) as caught:
        V.from_dict({"seed": [1], "data": {"noise": -1.0, "nosie": 0.1}, "optim": {"lr": math.nan}})
    lines = str(caught.value).split("\n")
    assert lines[0] == "config: 4 bad values:"
    assert sorted(line.strip().split(":")[0] for line in lines[1:]) == ["data.noise", "data.nosie", "optim.lr", "seed"]


def test_replace_validates_as_loading_does() -> None:
    config = R()
    with pytest.raises(ValueError, match=r"^RelocTrainingConfig\.replace: 1 bad value:\n  seed: Input should be a valid"):
        config.replace(seed=[1])
    with pytest.raises(ValueError, match=r"^RelocOptimConfig\.replace: 1 bad value:\n  lr: Input should be a finite"):
        config.replace(optim=config.optim.replace(lr=math.nan))
    with pytest.raises(ValueError, match=r"\n  optim\.lr: Input should be a finite number"):
        config.replace(optim={"lr": math.nan})
    with pytest.raises(ValueError, match=r"model\.init_from: loss\.kind reprojection needs"):
        config.replace(loss=config.loss.replace(kind=LossKind.REPROJECTION))
    tuned = config.replace(seed=3, optim=config.optim.replace(epochs=2))
    assert (tuned.seed, tuned.optim.epochs, config.optim.epochs) == (3, 2, 40)
    with pytest.raises(Exception):  # frozen: no assignment around validation
        config.seed = 1  # type: ignore[misc]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads_and_round_trips(path: Path, tmp_path: Path) -> None:
    cls = TRAINERS[path.name.split("_")[0]]
    config = load_config(path, cls)
    assert cls.from_yaml(path) == config
    dumped = config.model_dump(mode="json")
    assert cls.from_dict(dumped) == config and cls.from_dict(dumped).model_dump(mode="json") == dumped
    assert json.loads(json.dumps(dumped)) == dumped  # plain data: what config.json and model.pt store
    again = tmp_path / "again.yaml"
    again.write_text(yaml.safe_dump(dumped))
    assert load_config(again, cls) == config
    assert dumped["network"] in ({"pose", "correction"} if cls is V else {path.name.split("_")[0]})


def test_shipped_configs_cover_every_trainer() -> None:
    assert {p.name.split("_")[0] for p in CONFIGS} == set(TRAINERS)


def test_defaults_round_trip_and_validate() -> None:
    for cls in (V, S, R):
        dumped = cls().model_dump(mode="json")
        assert cls.from_dict(dumped) == cls() and cls.from_dict({}) == cls()
    assert V().atlas.contrast is Contrast.T1 and V().network is NetworkKind.POSE


def test_yaml_numbers_seeds_and_empty_sections(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("seed: 2\ndata:\noptim: {lr: 1e-3, weight_decay: 5e-5}\n")  # PyYAML alone reads 1e-3 as a string
    config = load_config(path, R)
    assert (config.seed, config.optim.lr, config.optim.weight_decay, config.data) == (2, 0.001, 5e-5, R().data)
    path.write_text("optim: {lr: .nan}\n")
    with pytest.raises(ValueError, match=rf"^{path}: 1 bad value:\n  optim\.lr: Input should be a finite number"):
        load_config(path, V)
    path.write_text("seed: [1]\n")
    with pytest.raises(ValueError, match=r"\n  seed: Input should be a valid integer \(got \[1\]\)"):
        load_config(path, S)
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="expected a YAML mapping"):
        load_config(path, S)
    with pytest.raises(FileNotFoundError, match="no such configuration file"):
        load_config(tmp_path / "nope.yaml", S)
    path.write_text("model: {rotation_head: euler\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_config(path, S)


def test_the_bundled_models_stored_configs_still_parse() -> None:
    payload = torch.load(pretrained_pipeline_path(), map_location="cpu", weights_only=True)
    pose = V.from_stored(payload["pose"]["config"])
    correction = V.from_stored(payload["correction"]["config"])
    assert pose.network is NetworkKind.POSE and correction.network is NetworkKind.CORRECTION
    assert (pose.atlas.shape, pose.atlas.spacing, pose.atlas.contrast) == (64, 3.0, Contrast.T1)
    # the Correction-Net: fine-tuned from the first one on a CPU (session 12), a current config
    assert correction.seed == 3 and correction.data.synthetic_heads and correction.data.compile_synthesis
    assert correction.model.init_from == "runs/heads/correction_model.pt" and correction.optim.max_minutes == 60.0
    assert correction.trainer.precision == "32-true" and correction.schedule.mse_epochs == 0
    # the Pose-Net: written before the trainer section (optim.precision is read as trainer.precision)
    # and before one seed (data.seed is dropped when read)
    assert payload["pose"]["config"]["optim"]["precision"] == "bf16-mixed" and "trainer" not in payload["pose"]["config"]
    assert pose.trainer.precision == "bf16-mixed"
    assert pose.trainer.accelerator == "cpu" and pose.trainer.devices == 1
    assert "seed" in payload["pose"]["config"]["data"]
    stored = payload["pose"]["config"]["data"]
    added_since = {"compile_synthesis": False}  # fields added after the file was written: their defaults
    assert pose.model_dump(mode="json")["data"] == {**{k: v for k, v in stored.items() if k != "seed"}, **added_since}
    stored_optim = {k: v for k, v in payload["pose"]["config"]["optim"].items() if k != "precision"}
    assert pose.model_dump(mode="json")["optim"] == stored_optim


OLD_SLICE = {"network": "slice", "seed": 0, "atlas": {"contrast": "t1", "shape": 64, "spacing": 3.0, "resolution_mm": 1},
             "data": {"train_subjects": 16, "val_subjects": 2, "items_per_epoch": 3000, "val_items": 300,
                      "slices_per_volume": 30, "middle_fraction": 0.66, "x_range_deg": [-90.0, 90.0],
                      "y_range_deg": [-90.0, 90.0], "z_range_deg": [-180.0, 180.0], "noise": 0.03,
                      "subject_base_seed": 0, "seed": 0},
             "model": {"width": 1.0, "stem_stride": 1, "rotation_head": "rotvec"},
             "schedule": {"mse_epochs": 10, "geodesic_epochs": 10, "translation_weight": 0.01},
             "optim": {"lr": 0.001, "weight_decay": 0.0, "cosine_decay": False, "batch_size": 8, "num_workers": 2,
                       "precision": "32-true", "max_minutes": None}}  # fmt: skip
OLD_RELOC = {"network": "reloc", "seed": 0,
             "data": {"source": "synthetic", "scene": "room", "root": None, "train_sequences": 8, "test_sequences": 3,
                      "frames": 250, "size": 64, "points_per_image": 64, "cache": "runs/scenes", "resize": 256,
                      "crop": 224, "max_abs_position": 10000.0},
             "model": {"width": 0.5, "stem_stride": 2, "dropout": 0.5, "fc_features": 512, "rotation_head": "quaternion",
                       "init_from": None},
             "loss": {"kind": "se3", "gamma": 1, "beta": 100.0, "init": [0.0, -3.0], "clip": 100.0,
                      "metric_weights": [0.1, 0.1, 0.1, 0.9, 0.9, 0.9], "se3_squared": True},
             "optim": {"epochs": 40, "lr": 0.001, "weight_decay": 0.0001, "decoupled_weight_decay": False,
                       "cosine_decay": True, "batch_size": 32, "num_workers": 0}}  # fmt: skip


def test_configs_stored_by_earlier_versions_still_parse() -> None:
    """The ``to_dict()`` of the slice and reloc configurations before this schema (verbatim)."""
    assert S.from_stored(OLD_SLICE) == S()  # its optim.precision, 32-true, is trainer.precision now
    reloc = R.from_stored(OLD_RELOC)
    assert reloc.loss.kind is LossKind.SE3 and reloc.loss.metric_weights == (0.1, 0.1, 0.1, 0.9, 0.9, 0.9)
    # reloc dumps gain the trainer section and data.val_sequences, with their defaults
    dumped = reloc.model_dump(mode="json")
    assert dumped["trainer"] == R().trainer.model_dump(mode="json") and dumped["data"].pop("val_sequences") == 1
    assert {k: v for k, v in dumped.items() if k != "trainer"} == OLD_RELOC
    assert S.from_stored({**OLD_SLICE, "optim": {**OLD_SLICE["optim"], "precision": "bf16-mixed"}}).trainer.precision == "bf16-mixed"
    with pytest.raises(ValueError, match=r"^stored config: 15 bad values:\n  network: Input should be 'reloc'"):
        R.from_stored(OLD_SLICE)
    with pytest.raises(ValueError, match=r"data\.scene: must be one of"):
        R.from_stored({**OLD_RELOC, "data": {**OLD_RELOC["data"], "scene": "moon"}})
    assert issubclass(R, TrainingConfig) and OLD_SLICE["data"]["seed"] == 0  # the input is not modified
