"""Two-process DDP on the CPU (gloo, launched by torchrun as on a cluster) for the volume trainer:
disjoint shards, identical joined validation metrics on both processes, and the one-process result.

The tolerance: with batch normalisation frozen (running statistics) a step's gradient does not
depend on how its batch is split, so the two-process run must match the one-process run up to
float32 rounding (weights within 1e-5 relative, metrics within 1e-4 relative). With batch
normalisation training, each process normalises its own half of the batch (torch's SyncBatchNorm,
``trainer.sync_batchnorm``, needs CUDA), so the runs differ as two batch splits do; that run is
checked for its shards and its joined metrics, not against the one-process weights.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import posereg
from posereg.geometry import geodesic_distance
from posereg.models.artifact import load_artifact
from posereg.training.config import VolumeTrainingConfig
from posereg.training.volume import train_volume
from tests.training.ddp_worker import callbacks
from tests.training.test_volume_training import TINY as VOLUME_TINY

# test_volume_training's tiny run with 10 + 5 items (two shards of 5, one partial validation share).
TINY = {**VOLUME_TINY, "data": {**VOLUME_TINY["data"], "items_per_epoch": 10, "val_items": 5}}


def _can_run_ddp() -> str | None:
    if sys.platform == "win32":
        return "torchrun with gloo is not set up on Windows here"
    if not (torch.distributed.is_available() and torch.distributed.is_gloo_available()):
        return "this torch has no gloo backend"
    return None


@pytest.fixture(scope="module")
def runs(tmp_path_factory):  # type: ignore[no-untyped-def]
    reason = _can_run_ddp()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("ddp")
    config = tmp / "ddp.yaml"
    config.write_text(yaml.safe_dump({**TINY, "trainer": {"devices": 2, "strategy": "ddp"}}))
    src = str(Path(posereg.__file__).parents[1])
    repo = str(Path(__file__).parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, repo, os.environ.get("PYTHONPATH", "")])}
    worker = Path(__file__).with_name("ddp_worker.py")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(worker),
               str(config), str(tmp / "two"), str(tmp / "record"), "frozen", "trained"]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, encoding="utf-8", errors="replace", timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    one = VolumeTrainingConfig.from_dict(TINY)
    train_volume(one, tmp / "one" / "frozen", progress=False, callbacks=callbacks("frozen", tmp / "record1" / "frozen"))
    return tmp


def _records(tmp: Path, mode: str) -> list[dict]:
    return [torch.load(tmp / "record" / mode / f"rank{r}.pt") for r in range(2)]


def _weights(path: Path) -> torch.Tensor:
    state = load_artifact(path).state_dict
    return torch.cat([v.flatten().double() for v in state.values() if v.is_floating_point()])


@pytest.mark.parametrize("mode", ["frozen", "trained"])
def test_disjoint_shards_and_identical_joined_metrics(runs, mode) -> None:  # type: ignore[no-untyped-def]
    ranks = _records(runs, mode)
    one = torch.load(runs / "record1" / "frozen" / "rank0.pt")  # the items do not depend on the mode
    assert [r["world"] for r in ranks] == [2, 2] and one["world"] == 1
    for epoch, items in one["train"].items():
        shards = [r["train"][epoch] for r in ranks]
        assert [len(s) for s in shards] == [5, 5]
        assert not (shards[0][:, None] == shards[1][None]).all(-1).any()  # disjoint
        both = torch.cat(shards)
        order = lambda x: x[torch.argsort(x[:, 0])]  # noqa: E731
        assert torch.equal(order(both), order(items))  # together: the one-process epoch
    assert ranks[0]["val"] == ranks[1]["val"] and len(ranks[0]["val"]) == 2  # identical on both processes


def test_joined_metrics_cover_the_whole_validation_set(runs) -> None:  # type: ignore[no-untyped-def]
    from posereg.data import WorkingGrid, load_atlas
    from posereg.training.volume import _datasets, load_volume_model

    config = VolumeTrainingConfig.from_dict(TINY)
    _, val = _datasets(config, load_atlas(WorkingGrid(**TINY["atlas"])))
    net, _ = load_volume_model(runs / "two" / "trained" / "model.pt")
    items = [val[i] for i in range(len(val))]
    with torch.no_grad():
        R = net.to_matrix(net(torch.stack([x["image"] for x in items])))
    angles = torch.rad2deg(geodesic_distance(R, torch.stack([x["rotation"] for x in items])))
    logged = _records(runs, "trained")[0]["val"][1]
    assert logged["val/rotation_error_deg"] == pytest.approx(float(angles.mean()), rel=1e-5)
    assert logged["val/rotation_median_deg"] == pytest.approx(float(angles.median()), rel=1e-5)


def test_two_processes_match_one_within_rounding(runs) -> None:  # type: ignore[no-untyped-def]
    two, one = _weights(runs / "two" / "frozen" / "model.pt"), _weights(runs / "one" / "frozen" / "model.pt")
    other = _weights(runs / "two" / "trained" / "model.pt")  # another run: the scale of a difference
    assert float((two - one).norm() / one.norm()) < 1e-5 < float((other - one).norm() / one.norm())
    ranks, single = _records(runs, "frozen"), torch.load(runs / "record1" / "frozen" / "rank0.pt")
    for epoch, metrics in single["val"].items():
        for key, value in metrics.items():
            assert ranks[0]["val"][epoch][key] == pytest.approx(value, rel=1e-4), (epoch, key)
