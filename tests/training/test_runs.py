"""Runs you can trust: exact resume, last and best checkpoints, one run per folder, one seed, any item count."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml

from posereg.cli import main
from posereg.models.artifact import load_artifact
from posereg.training.config import RelocTrainingConfig, SliceTrainingConfig, VolumeTrainingConfig
from posereg.training.volume import train_volume

TINY = {
    "atlas": {"shape": 16, "spacing": 12.0, "resolution_mm": 2},
    "data": {"train_subjects": 2, "val_subjects": 1, "items_per_epoch": 9, "val_items": 5},  # batches 4, 5
    "model": {"channels": [4, 8], "pool_before": [1], "fc": [16], "pooled_size": 2},
    "schedule": {"mse_epochs": 1, "geodesic_epochs": 2},
    "optim": {"batch_size": 4, "num_workers": 0, "lr": 0.01, "cosine_decay": True},
}


class Killed(RuntimeError):
    """The stand-in for a killed process."""


class KillAfter(L.Callback):
    """Raises after ``steps`` optimiser steps (mid-epoch when ``steps`` is not a multiple of the epoch's)."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def on_train_batch_end(self, trainer, *args) -> None:  # type: ignore[no-untyped-def]
        if trainer.global_step >= self.steps:
            raise Killed(f"killed after step {trainer.global_step}")


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_artifact(path, None).state_dict


def _rows(run: Path) -> list[dict[str, str]]:
    with open(run / "logs" / "metrics.csv") as f:
        return list(csv.DictReader(f))


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("runs")
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    assert main(["train", "volume", "--config", str(path), "--output", str(tmp / "a"), "--quiet"]) == 0
    return tmp, path, tmp / "a"


def test_resume_after_a_kill_mid_epoch_is_bit_identical(uninterrupted, capsys) -> None:  # type: ignore[no-untyped-def]
    tmp, path, a = uninterrupted
    b = tmp / "b"
    config = VolumeTrainingConfig.from_yaml(path)
    with pytest.raises(Killed):  # after step 3 of 6: the first of the second epoch (2 steps an epoch)
        train_volume(config, b, progress=False, callbacks=[KillAfter(3)])
    assert torch.load(b / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 0 and not (b / "model.pt").exists()
    assert main(["train", "volume", "--config", str(path), "--output", str(b), "--quiet"]) == 2  # not empty
    assert "pass --resume to continue the run in it or --overwrite" in capsys.readouterr().err
    assert main(["train", "volume", "--config", str(path), "--output", str(b), "--quiet", "--resume"]) == 0
    assert f"resuming from {b / 'checkpoints' / 'last.ckpt'}" in capsys.readouterr().out
    assert _same_weights(a / "model.pt", b / "model.pt")  # bit for bit
    assert _rows(a) == _rows(b)  # the logs too: the killed epoch's rows are replaced, not repeated
    assert sorted(p.name for p in (b / "checkpoints").iterdir()) == sorted(p.name for p in (a / "checkpoints").iterdir())
    summary = json.loads((b / "summary.json").read_text())
    assert summary["resumed_from"].endswith("last.ckpt") and summary["final"] == json.loads((a / "summary.json").read_text())["final"]


def test_last_is_the_last_epoch_and_best_the_best_validation_epoch(uninterrupted) -> None:  # type: ignore[no-untyped-def]
    _, _, a = uninterrupted
    assert torch.load(a / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 2  # the last of 3 epochs
    val = [(float(r["val/rotation_error_deg"]), int(r["epoch"])) for r in _rows(a) if r.get("val/rotation_error_deg")]
    assert len(val) == 3
    best = [p.name for p in (a / "checkpoints").glob("best-*.ckpt")]
    assert best == [f"best-epoch={min(val)[1]}.ckpt"]
    stored = torch.load(a / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert all(torch.equal(stored[f"net.{k}"], v) for k, v in _weights(a / "model.pt").items())  # model.pt: last epoch


def test_one_run_per_folder(uninterrupted, capsys) -> None:  # type: ignore[no-untyped-def]
    tmp, path, a = uninterrupted
    run = tmp / "c"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    assert main(["train", "volume", "--config", str(path), "--output", str(run), "--quiet"]) == 2
    assert "not empty (notes.txt)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["train", "volume", "--config", str(path), "--output", str(run), "--resume", "--overwrite"])
    assert exited.value.code == 2 and "not allowed with argument --resume" in capsys.readouterr().err
    # a changed configuration does not resume another's run
    changed = tmp / "changed.yaml"
    changed.write_text(yaml.safe_dump({**TINY, "optim": {**TINY["optim"], "lr": 0.02}}))
    assert main(["train", "volume", "--config", str(changed), "--output", str(a), "--resume", "--quiet"]) == 2
    assert "optim.lr (0.01 -> 0.02)" in capsys.readouterr().err
    # a bad configuration is refused before anything is written
    bad = tmp / "bad.yaml"
    bad.write_text(yaml.safe_dump({**TINY, "optim": {**TINY["optim"], "lr": float("nan")}}))
    assert main(["train", "volume", "--config", str(bad), "--output", str(tmp / "never"), "--quiet"]) == 2
    assert "optim.lr: Input should be a finite number" in capsys.readouterr().err and not (tmp / "never").exists()
    # --overwrite replaces an earlier run's files (and only those): no last-v1.ckpt, one event file
    (run / "model_after_old.pt").write_text("stale")
    assert main(["train", "volume", "--config", str(path), "--output", str(run), "--overwrite", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("# effective configuration") and "trainer:\n  accelerator: cpu" in printed
    assert yaml.safe_load(printed.split("\ntrained")[0]) == json.loads((run / "config.json").read_text())
    assert main(["train", "volume", "--config", str(path), "--output", str(run), "--overwrite", "--quiet"]) == 0
    assert (run / "notes.txt").read_text() == "mine" and not (run / "model_after_old.pt").exists()
    assert [len(list((run / "checkpoints").glob(p))) for p in ("last*.ckpt", "best-*.ckpt", "*")] == [1, 1, 2]
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert _same_weights(a / "model.pt", run / "model.pt") and _rows(a) == _rows(run)  # one seed, one run
    # --resume on a folder with nothing yet starts the run
    assert main(["train", "volume", "--config", str(path), "--output", str(tmp / "d"), "--resume", "--quiet"]) == 0
    assert "nothing to resume: starting the run" in capsys.readouterr().out


@pytest.mark.parametrize("items, batch_size, steps", [(1, 16, 1), (1, 1, 1), (5, 2, 2), (3, 1, 3)])
def test_any_item_count_and_batch_size_trains(tmp_path, items, batch_size, steps) -> None:  # type: ignore[no-untyped-def]
    config = VolumeTrainingConfig.from_dict({**TINY, "schedule": {"mse_epochs": 1, "geodesic_epochs": 0},
                                             "data": {**TINY["data"], "items_per_epoch": items, "val_items": 1},
                                             "optim": {**TINY["optim"], "batch_size": batch_size}})  # fmt: skip
    result = train_volume(config, tmp_path / "run", progress=False)
    losses = [float(r["train/loss"]) for r in _rows(tmp_path / "run") if r.get("train/loss")]
    assert len(losses) == steps and all(map(torch.isfinite, torch.tensor(losses)))  # 5 in 2s: batches 2, 3
    assert result.model_path.is_file()


def test_relocalisation_resumes_bit_identically_dropout_and_all(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from posereg.training.reloc import train_reloc

    config = RelocTrainingConfig.from_dict({
        "data": {"train_sequences": 2, "test_sequences": 1, "frames": 9, "size": 24, "points_per_image": 4,
                 "cache": str(tmp_path / "cache")},
        "model": {"width": 0.125, "fc_features": 16, "dropout": 0.5},
        "optim": {"epochs": 3, "batch_size": 4, "num_workers": 0}})  # 9 training frames: batches 4, 5  # fmt: skip
    whole = train_reloc(config, tmp_path / "whole", progress=False).output
    with pytest.raises(Killed):
        train_reloc(config, tmp_path / "cut", progress=False, callbacks=[KillAfter(5)])  # mid third epoch
    resumed = train_reloc(config, tmp_path / "cut", progress=False, resume=True)
    assert resumed.resumed_from == tmp_path / "cut" / "checkpoints" / "last.ckpt"
    assert _same_weights(whole / "model.pt", resumed.model_path) and _rows(whole) == _rows(resumed.output)


def _metrics(run: Path) -> list[dict[str, str]]:
    return _rows(run)


def test_repeated_runs_are_identical_for_every_trainer(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """One seed, one result, in one process: volume (above), slice and relocalisation (dropout,
    shuffled frames, uneven batches); another seed differs; the caller's RNG is untouched."""
    from posereg.training.reloc import train_reloc
    from posereg.training.slice import train_slice

    slice_config = SliceTrainingConfig.from_dict({
        "atlas": TINY["atlas"], "model": {"width": 0.125, "stem_stride": 2},
        "data": {"train_subjects": 2, "val_subjects": 1, "items_per_epoch": 7, "val_items": 4, "slices_per_volume": 2},
        "schedule": {"mse_epochs": 1, "geodesic_epochs": 0}, "optim": {"batch_size": 3, "num_workers": 0}})  # fmt: skip
    reloc_config = RelocTrainingConfig.from_dict({
        "data": {"train_sequences": 2, "test_sequences": 1, "frames": 11, "size": 24, "points_per_image": 4,
                 "cache": str(tmp_path / "cache")},
        "model": {"width": 0.125, "fc_features": 16, "dropout": 0.5},
        "optim": {"epochs": 2, "batch_size": 5, "num_workers": 0}})  # fmt: skip
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    for name, train, config in (("slice", train_slice, slice_config), ("reloc", train_reloc, reloc_config)):
        runs = [train(config, tmp_path / f"{name}{i}", progress=False).output for i in range(2)]
        assert _metrics(runs[0]) == _metrics(runs[1]), name
        assert _same_weights(runs[0] / "model.pt", runs[1] / "model.pt"), name
    other = train_reloc(reloc_config.replace(seed=1), tmp_path / "reloc_seed1", progress=False).output
    assert _metrics(runs[0]) != _metrics(other) and not _same_weights(runs[0] / "model.pt", other / "model.pt")
    assert torch.equal(torch.rand(3), expected)  # no run drew from, or reseeded, the caller's generator
    # relocalisation validates on the held-out training path, never on the test path
    from posereg.data.reloc import relocalisation_data
    from posereg.evaluation.relocalisation import predict_camera_poses
    from posereg.training.reloc_model import load_reloc_model

    net, _ = load_reloc_model(runs[0] / "model.pt")  # the last epoch, whose validation was logged last
    logged = float([r for r in _metrics(runs[0]) if r.get("val/position_median_m")][-1]["val/position_median_m"])
    data = relocalisation_data(reloc_config.data)
    median = {name: float((predict_camera_poses(net, frames)[1] - poses.positions.float()).norm(dim=-1).median())
              for name, frames, poses in (("val", data.val, data.val_poses), ("test", data.test, data.test_poses))}  # fmt: skip
    assert logged == pytest.approx(median["val"], rel=1e-5) and logged != pytest.approx(median["test"], rel=1e-3)
