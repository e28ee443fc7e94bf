"""The processes of the 2-process DDP test (``test_ddp.py``), launched by ``torchrun``.

``python ddp_worker.py CONFIG OUTPUT RECORD [MODE ...]`` trains the volume network of a YAML
configuration with ``train_volume`` once per mode, into ``OUTPUT/<mode>``, and records per process
what it trained on and which validation metrics it computed (``Recorder``). Modes: 'trained'
(batch normalisation as in any run) and 'frozen' (batch normalisation from its running statistics
throughout, so that a step's gradient does not depend on how its batch is split between
processes: the DDP run must then match the one-process run up to rounding).
"""

from __future__ import annotations

import sys
from pathlib import Path

import lightning as L
import torch
from torch import nn

from posereg.training.config import VolumeTrainingConfig
from posereg.training.volume import train_volume


class Recorder(L.Callback):
    """Saves ``RECORD/rank<r>.pt``: ``train`` (per epoch, the ``rotvec`` of every training item of
    this process's shard), ``val`` (per epoch, this process's ``val/*`` metrics), ``world``."""

    def __init__(self, record: Path) -> None:
        self.record, self.train, self.val = record, {}, {}  # type: ignore[var-annotated]

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        self.train.setdefault(trainer.current_epoch, []).append(batch["rotvec"].detach().cpu())

    def on_train_epoch_end(self, trainer, module) -> None:  # type: ignore[no-untyped-def]
        self.val[trainer.current_epoch] = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}

    def on_fit_end(self, trainer, module) -> None:  # type: ignore[no-untyped-def]
        self.record.mkdir(parents=True, exist_ok=True)
        train = {epoch: torch.cat(parts) for epoch, parts in self.train.items()}
        torch.save({"world": trainer.world_size, "train": train, "val": self.val}, self.record / f"rank{trainer.global_rank}.pt")


class FrozenBatchNorm(L.Callback):
    """Batch normalisation from the running statistics in every training step."""

    def on_train_epoch_start(self, trainer, module) -> None:  # type: ignore[no-untyped-def]
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


def callbacks(mode: str, record: Path) -> list[L.Callback]:
    """The callbacks of a run in ``mode`` recording to ``record``."""
    return [Recorder(record), *([FrozenBatchNorm()] if mode == "frozen" else [])]


if __name__ == "__main__":
    config_path, output, record, *modes = sys.argv[1:]
    config = VolumeTrainingConfig.from_yaml(config_path)
    for mode in modes or ["trained"]:
        train_volume(config, Path(output) / mode, progress=False, callbacks=callbacks(mode, Path(record) / mode))
