"""Training on synthetic heads drawn on the training device: configs, a tiny run, reproducibility."""

from __future__ import annotations

import csv

import pytest
import yaml

from posereg.cli import main
from posereg.data.head_model import save_head_model
from posereg.models.artifact import NetworkKind
from posereg.training.config import VolumeTrainingConfig, load_config
from posereg.training.volume import load_volume_model


def test_shipped_head_configs_parse():
    pose = load_config("configs/volume_pose_heads.yaml", VolumeTrainingConfig)
    correction = load_config("configs/volume_correction_heads.yaml", VolumeTrainingConfig)
    assert pose.data.synthetic_heads and correction.data.synthetic_heads
    assert pose.network is NetworkKind.POSE and correction.network is NetworkKind.CORRECTION
    assert pose.trainer.precision == "bf16-mixed" and correction.data.max_rotation_angle_deg == 50.0


def _tiny(tmp_path, small_head, network: str) -> dict:
    save_head_model(small_head, tmp_path / "head.pt")
    config = {
        "network": network,
        "atlas": {"shape": 40, "spacing": 4.8, "resolution_mm": 2},
        "data": {"synthetic_heads": True, "head_model": str(tmp_path / "head.pt"), "items_per_epoch": 4,
                 "val_items": 2, "max_rotation_angle_deg": 40.0 if network == "correction" else None},
        "model": {"channels": [4, 8], "pool_before": [0, 1], "fc": [16], "pooled_size": 2},
        "schedule": {"mse_epochs": 1, "geodesic_epochs": 1},
        "optim": {"batch_size": 2, "num_workers": 0, "lr": 0.01},
    }  # fmt: skip
    path = tmp_path / f"{network}.yaml"
    path.write_text(yaml.safe_dump(config))
    return {"path": path, "config": config}


def _val_errors(run) -> list[float]:  # noqa: ANN001
    with open(run / "logs" / "metrics.csv") as f:
        return [float(r["val/rotation_error_deg"]) for r in csv.DictReader(f) if r.get("val/rotation_error_deg")]


@pytest.mark.parametrize("network", ["pose", "correction"])
def test_train_on_synthetic_heads_end_to_end_and_reproducibly(tmp_path, small_head, network):
    tiny = _tiny(tmp_path, small_head, network)
    runs = [tmp_path / "a", tmp_path / "b"]
    for run in runs:
        assert main(["train", "volume", "--config", str(tiny["path"]), "--output", str(run), "--quiet"]) == 0
    net, config = load_volume_model(runs[0] / "model.pt")
    assert config.data.synthetic_heads and config.network.value == network
    first, second = _val_errors(runs[0]), _val_errors(runs[1])
    assert len(first) == 2 and first == second  # same seed: the same batches, the same metrics


def test_shipped_slice_head_config_parses():
    from posereg.training.config import SliceTrainingConfig

    config = load_config("configs/slice_pose_heads.yaml", SliceTrainingConfig)
    assert config.data.synthetic_heads and config.model.rotation_head == "sixd" and config.schedule.mse_epochs == 0


def _tiny_slice(tmp_path, small_head, *, items: int, val_items: int, batch: int, epochs: int) -> dict:  # noqa: ANN001
    """A slice configuration on the small head model (saved beside it), geodesic stage only."""
    save_head_model(small_head, tmp_path / "head.pt")
    return {
        "network": "slice",
        "atlas": {"shape": 40, "spacing": 4.8, "resolution_mm": 2},
        "data": {"synthetic_heads": True, "head_model": str(tmp_path / "head.pt"), "items_per_epoch": items,
                 "val_items": val_items, "middle_fraction": 0.5},
        "model": {"width": 0.125, "stem_stride": 2, "rotation_head": "sixd"},
        "schedule": {"mse_epochs": 0, "geodesic_epochs": epochs},
        "optim": {"batch_size": batch, "num_workers": 0, "lr": 0.01},
    }  # fmt: skip


def test_slice_network_trains_on_synthetic_head_slices_reproducibly(tmp_path, small_head):
    """``posereg train slice`` with ``data.synthetic_heads``: a model locate-slice reads, the same metrics twice."""
    from posereg.registration.slice_model import load_slice_model

    config = _tiny_slice(tmp_path, small_head, items=8, val_items=4, batch=4, epochs=2)
    path = tmp_path / "slice.yaml"
    path.write_text(yaml.safe_dump(config))
    runs = [tmp_path / "a", tmp_path / "b"]
    for run in runs:
        assert main(["train", "slice", "--config", str(path), "--output", str(run), "--quiet"]) == 0
    model = load_slice_model(runs[0] / "model.pt")
    assert model.grid.shape == 40 and model.middle_fraction == 0.5
    first, second = _val_errors(runs[0]), _val_errors(runs[1])
    assert len(first) == 2 and first == second
    with open(runs[0] / "logs" / "metrics.csv") as f:
        assert any(r.get("val/slice_index_error") for r in csv.DictReader(f))  # the slice index is trained too


@pytest.mark.parametrize("network", ["pose", "slice"])
def test_mixed_precision_training_runs_with_float32_targets_and_losses(tmp_path, small_head, network):
    """``trainer.precision: bf16-mixed`` (the GPU configs'; CPU autocast here): the forward pass in
    bfloat16, the target conversions and losses in float32 (``training.loop.full_precision``).
    Before, the targets' rotation check ran on bfloat16 products and stopped every slice run at
    its first step."""
    if network == "slice":
        config = _tiny_slice(tmp_path, small_head, items=16, val_items=16, batch=16, epochs=1)
    else:
        config = _tiny(tmp_path, small_head, network)["config"]
    config["trainer"] = {"precision": "bf16-mixed"}
    path = tmp_path / "bf16.yaml"
    path.write_text(yaml.safe_dump(config))
    kind = "slice" if network == "slice" else "volume"
    assert main(["train", kind, "--config", str(path), "--output", str(tmp_path / "run"), "--quiet"]) == 0
    errors = _val_errors(tmp_path / "run")
    assert errors and all(0.0 <= e <= 180.0 for e in errors)
