"""Volume training: configuration parsing, the Lightning run end to end on a tiny problem."""

from __future__ import annotations

import csv

import pytest
import torch
import yaml

from posereg.cli import main
from posereg.models import CorrectionNet, VolumePoseNet
from posereg.models.artifact import NetworkKind
from posereg.training.config import VolumeTrainingConfig, load_config
from posereg.training.volume import load_volume_model

TINY = {
    "atlas": {"shape": 16, "spacing": 12.0, "resolution_mm": 2},
    "data": {"train_subjects": 2, "val_subjects": 1, "items_per_epoch": 8, "val_items": 4},
    "model": {"channels": [4, 8], "pool_before": [1], "fc": [16], "pooled_size": 2},
    "schedule": {"mse_epochs": 1, "geodesic_epochs": 1},
    "optim": {"batch_size": 4, "num_workers": 0, "lr": 0.01, "cosine_decay": True},
}


def test_shipped_configs_parse():
    pose = load_config("configs/volume_pose.yaml", VolumeTrainingConfig)
    correction = load_config("configs/volume_correction.yaml", VolumeTrainingConfig)
    assert pose.network is NetworkKind.POSE and pose.data.max_rotation_deg is None
    assert correction.network is NetworkKind.CORRECTION and correction.data.max_rotation_angle_deg == 50.0
    assert pose.model.channels == (16, 32, 64, 64, 64) and pose.atlas.shape == 64


def test_cli_reports_a_missing_config(tmp_path, capsys):
    assert main(["train", "volume", "--config", str(tmp_path / "nope.yaml"), "--output", str(tmp_path)]) == 2
    assert "no such configuration file" in capsys.readouterr().err


@pytest.mark.parametrize("network, head", [("pose", "rotvec"), ("correction", "rotvec"), ("pose", "sixd")])
def test_train_volume_end_to_end(tmp_path, network, head):
    config = tmp_path / "tiny.yaml"
    values = {**TINY, "network": network, "model": {**TINY["model"], "rotation_head": head}}
    if head != "rotvec":
        values["schedule"] = {"mse_epochs": 0, "geodesic_epochs": 2}
    config.write_text(yaml.safe_dump(values))
    out = tmp_path / "run"
    assert main(["train", "volume", "--config", str(config), "--output", str(out), "--quiet"]) == 0
    assert (out / "checkpoints" / "last.ckpt").is_file() and (out / "config.json").is_file()
    assert any((out / "tensorboard").glob("events.out.tfevents.*"))
    with open(out / "logs" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    stages = {float(r["stage"]) for r in rows if r.get("stage")}
    assert stages == ({0.0, 1.0} if head == "rotvec" else {0.0})  # MSE epoch, then geodesic epoch
    assert any(r.get("val/rotation_error_deg") for r in rows)
    assert (out / "model_after_mse.pt").is_file() == (head == "rotvec")  # the end of a non-final stage
    import json

    summary = json.loads((out / "summary.json").read_text())
    assert summary["seconds"] > 0 and summary["epochs"] == 2 and "val/rotation_error_deg" in summary["final"]
    net, loaded = load_volume_model(out / "model.pt")
    assert isinstance(net, VolumePoseNet if network == "pose" else CorrectionNet)
    assert loaded.model.channels == (4, 8) and not net.training
    channels = 1 if network == "pose" else 2
    with torch.no_grad():
        out_rot = net(torch.rand(1, channels, 16, 16, 16))
    assert (out_rot if network == "pose" else out_rot[0]).shape == (1, 3 if head == "rotvec" else 6)
    assert net.spec["rotation_head"] == head


def test_load_volume_model_rejects_other_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_volume_model(tmp_path / "missing.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a posereg model file"):
        load_volume_model(tmp_path / "other.pt")


def test_cosine_decay_anneals_the_learning_rate():
    from posereg.models import VolumePoseNet
    from posereg.training.schedules import salehi_schedule
    from posereg.training.volume import RigidPoseModule

    net = VolumePoseNet(channels=(4,), pool_before=(), fc=(8,), pooled_size=1)
    module = RigidPoseModule(net, salehi_schedule(2, 2), lr=0.01, cosine_decay=True)
    config = module.configure_optimizers()
    optimiser, decay = config["optimizer"], config["lr_scheduler"]["scheduler"]
    rates = []
    for _ in range(4):
        rates.append(optimiser.param_groups[0]["lr"])
        optimiser.step()
        decay.step()
    assert rates[0] == pytest.approx(0.01) and rates == sorted(rates, reverse=True)
    assert optimiser.param_groups[0]["lr"] == pytest.approx(1e-4)
    assert isinstance(RigidPoseModule(net, salehi_schedule(1, 1)).configure_optimizers(), torch.optim.Adam)


@pytest.mark.parametrize("key, bound", [("max_rotation_deg", 20.0), ("max_rotation_angle_deg", 20.0)])
def test_restricted_rotation_ranges_reach_the_dataset(key, bound):
    from posereg.data import WorkingGrid, load_atlas
    from posereg.geometry import geodesic_distance, matrix_to_euler
    from posereg.training.volume import _datasets

    config = VolumeTrainingConfig.from_dict({**TINY, "data": {**TINY["data"], "items_per_epoch": 64, key: bound}})
    atlas = load_atlas(WorkingGrid(shape=16, spacing=12.0, resolution_mm=2))
    train, _ = _datasets(config, atlas)
    R = torch.stack([train.rotation_sampler(torch.Generator().manual_seed(i)) for i in range(200)])
    if key == "max_rotation_deg":  # each xyz Euler angle within the bound, and some near it
        euler = torch.rad2deg(matrix_to_euler(R, "xyz")).abs()
        assert float(euler.max()) <= bound + 1e-6 and float(euler.max()) > 0.9 * bound
    else:  # the angle about a uniform axis: uniform in [0, bound]
        angle = torch.rad2deg(geodesic_distance(R, torch.eye(3, dtype=R.dtype)))
        assert float(angle.max()) <= bound + 1e-6 and abs(float(angle.mean()) - bound / 2) < 0.1 * bound


def test_one_seed_seeds_the_motions_and_the_weights(small_atlas):  # type: ignore[no-untyped-def]
    from posereg.training.loop import seeded_network
    from posereg.training.volume import _datasets, build_network

    config = VolumeTrainingConfig.from_dict({**TINY, "seed": 5})
    train, val = _datasets(config, small_atlas)
    assert (train.seed, val.seed) == (5, 6)
    again, _ = _datasets(config.replace(seed=7), small_atlas)
    assert not torch.equal(train[0]["rotation"], again[0]["rotation"])
    a, b = (seeded_network(s, lambda: build_network(config)) for s in (5, 7))
    assert not torch.equal(next(a.parameters()), next(b.parameters()))


def test_init_from_starts_a_run_from_a_trained_model(tmp_path):
    """``model.init_from``: the fine-tune starts from the file's weights (not the seed's), and refuses another network."""
    from posereg.training.volume import build_network, train_volume

    base = VolumeTrainingConfig.model_validate({**TINY, "schedule": {"mse_epochs": 0, "geodesic_epochs": 1}})
    first = train_volume(base, tmp_path / "first", progress=False)
    trained, _ = load_volume_model(first.model_path)
    # a learning rate too small to move a weight: the fine-tuned model is the trained one, not the seed's
    tune = base.replace(seed=5, model=base.model.replace(init_from=str(first.model_path)),
                        optim=base.optim.replace(lr=1e-30))  # fmt: skip
    tuned, loaded = load_volume_model(train_volume(tune, tmp_path / "tuned", progress=False).model_path)
    assert loaded.model.init_from == str(first.model_path)
    tuned_parameters = dict(tuned.named_parameters())  # (batch-norm statistics move whatever the rate)
    for name, value in trained.named_parameters():
        torch.testing.assert_close(tuned_parameters[name], value, msg=name)
    seeded = dict(build_network(tune).named_parameters())
    assert not all(torch.equal(seeded[k], v) for k, v in trained.named_parameters())
    other = tune.replace(model=tune.model.replace(fc=(8,)))
    with pytest.raises(ValueError, match="model.init_from: .* is a different network"):
        train_volume(other, tmp_path / "other", progress=False)
    with pytest.raises(FileNotFoundError):
        train_volume(tune.replace(model=tune.model.replace(init_from=str(tmp_path / "none.pt"))), tmp_path / "x",
                     progress=False)  # fmt: skip
