"""Slice Pose-Net training: configuration, a tiny run end to end, and a loss that falls."""

from __future__ import annotations

import csv

import torch
import yaml

from posereg.cli import main
from posereg.training.config import SliceTrainingConfig, load_config
from posereg.training.loop import SLICE_INDEX, RigidPoseModule, training_loader
from posereg.training.schedules import salehi_schedule
from posereg.training.slice import build_slice_network, load_slice_model, slice_datasets

TINY = {
    "atlas": {"shape": 16, "spacing": 12.0, "resolution_mm": 2},
    "data": {"train_subjects": 2, "val_subjects": 1, "items_per_epoch": 16, "val_items": 8, "slices_per_volume": 4},
    "model": {"width": 0.125, "stem_stride": 2},
    "schedule": {"mse_epochs": 1, "geodesic_epochs": 1, "translation_weight": 0.01},
    "optim": {"batch_size": 8, "num_workers": 0, "lr": 0.01, "cosine_decay": True},
}


def test_the_shipped_config_parses():
    config = load_config("configs/slice_pose.yaml", SliceTrainingConfig)
    assert config.data.slices_per_volume == 30 and config.data.middle_fraction == 0.66
    assert config.data.x_range_deg == (-90, 90) and config.data.z_range_deg == (-180, 180)


def test_train_slice_end_to_end(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "run"
    assert main(["train", "slice", "--config", str(config), "--output", str(out), "--quiet"]) == 0
    with open(out / "logs" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert any(r.get("val/slice_index_error") for r in rows) and any(r.get("val/rotation_error_deg") for r in rows)
    assert (out / "model_after_mse.pt").is_file() and (out / "summary.json").is_file()
    net, loaded = load_slice_model(out / "model.pt")
    assert loaded.model.width == 0.125 and not net.training
    with torch.no_grad():
        rotation, index = net(torch.rand(2, 1, 16, 16))
    assert rotation.shape == (2, 3) and index.shape == (2,)


def test_the_loss_falls_on_a_tiny_problem():
    config = SliceTrainingConfig.from_dict(TINY)
    train, _ = slice_datasets(config)
    batch = {k: torch.stack([train[i][k] for i in range(16)]) for k in ("image", "rotation", "slice_index")}
    torch.manual_seed(0)
    module = RigidPoseModule(build_slice_network(config), salehi_schedule(1, 0, translation_weight=0.01),
                             auxiliary=SLICE_INDEX)  # fmt: skip
    optimiser = torch.optim.Adam(module.net.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):  # fit one fixed batch
        loss, _, _ = module._step(batch, module.schedule.loss_at(0))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss))
    assert losses[-1] < 0.3 * losses[0], losses[::8]


def test_cli_reports_a_missing_slice_config(tmp_path, capsys):
    assert main(["train", "slice", "--config", str(tmp_path / "nope.yaml"), "--output", str(tmp_path)]) == 2
    assert "no such configuration file" in capsys.readouterr().err


def test_training_batches_mix_rotated_subjects():
    """Slices come in groups of one rotated subject; the training loader must mix the groups,
    or a batch holds a single rotation (the bug that kept session 3's network from learning)."""
    config = SliceTrainingConfig.from_dict({**TINY, "data": {**TINY["data"], "items_per_epoch": 64, "slices_per_volume": 8}})
    train, _ = slice_datasets(config)
    ordered = next(iter(training_loader(train, 8, 0, shuffle=False)))
    assert len(torch.unique(ordered["rotation"], dim=0)) == 1  # one group: what shuffling must avoid
    epochs = []
    for epoch in (0, 1):
        loader = training_loader(train, 8, 0)
        loader.batch_sampler.sampler.set_epoch(epoch)  # what Lightning calls
        batch = next(iter(loader))
        assert len(torch.unique(batch["rotation"], dim=0)) >= 4
        epochs.append(batch["rotation"])
    assert not torch.equal(epochs[0], epochs[1])  # a new order (and new items) each epoch


def test_one_seed_seeds_the_slices():
    train, val = slice_datasets(SliceTrainingConfig.from_dict({**TINY, "seed": 4}))
    assert (train.seed, val.seed) == (4, 5)
