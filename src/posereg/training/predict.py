"""A batch of registrations spread over processes, devices and nodes by Lightning's predict loop.

``posereg predict`` is ``posereg register SCAN... --out-dir DIR`` for more scans than one process
handles: the same per-scan work (``registration.batch.register_files``: read, register with the
quality check and fallback, write the transform and image together or not at all, a failed
scan gives a row and the batch goes on), with Lightning's engine (the one training uses) giving
each process a disjoint share of the scans (``DistributedSampler``). Every process builds its own
pipeline once; the rows of all processes are gathered (``all_gather_object``) so that each
returns the whole table in the input order, and the caller writes it once.

Launch as training is launched: ``--devices N`` spawns N processes on one machine; ``torchrun``
or SLURM start one process per device on each node with ``--strategy ddp``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from posereg.evaluation.registration_report import batch_record
from posereg.registration.batch import check_batch, register_files
from posereg.registration.pipeline import DeepRegistration
from posereg.registration.transform_files import TransformFormat
from posereg.training.config import TrainerConfig

__all__ = ["register_files_distributed"]


class _Scans(Dataset):
    """``(index, path)`` of each scan: the index puts the gathered rows back in input order."""

    def __init__(self, scans: Sequence[str | Path]) -> None:
        self.scans = [str(s) for s in scans]

    def __len__(self) -> int:
        return len(self.scans)

    def __getitem__(self, index: int) -> tuple[int, str]:
        return index, self.scans[index]


def _as_list(items: list[tuple[int, str]]) -> list[tuple[int, str]]:
    return items


class _BatchRegistration(L.LightningModule):
    """Registers the scans of each predict batch with a pipeline built once per process."""

    def __init__(self, build_pipeline: Callable[[torch.device], DeepRegistration], out_dir: Path,
                 options: dict[str, Any]) -> None:  # fmt: skip
        super().__init__()
        self.build_pipeline, self.out_dir, self.options = build_pipeline, out_dir, options
        self.pipeline: DeepRegistration | None = None

    def setup(self, stage: str) -> None:
        # The networks go to this process's device (its GPU under --accelerator gpu).
        self.pipeline = self.build_pipeline(self.trainer.strategy.root_device)

    def predict_step(self, batch: list[tuple[int, str]], batch_idx: int) -> list[tuple[int, dict[str, Any]]]:
        assert self.pipeline is not None
        paths = [path for _, path in batch]
        rows = register_files(self.pipeline, paths, self.out_dir, **self.options)
        return [(index, {**batch_record(row), "process": self.global_rank}) for (index, _), row in zip(batch, rows, strict=True)]


def register_files_distributed(
    build_pipeline: Callable[[torch.device], DeepRegistration],
    scans: Sequence[str | Path],
    out_dir: str | Path,
    trainer: TrainerConfig = TrainerConfig(),
    *,
    progress: bool = True,
    **options: Any,
) -> list[dict[str, Any]] | None:
    """Register every scan on the processes ``trainer`` describes; the records of all, in input order.

    Args:
        build_pipeline: makes the pipeline with its networks on a device (called once in every
            process, with that process's device).
        scans: image paths (or DICOM folders) with distinct ``output_stem`` names.
        out_dir: the output folder (see ``register_files``).
        trainer: ``accelerator``, ``devices``, ``num_nodes`` and ``strategy`` (precision and the
            rest are training settings and are not used). Each process runs the networks on its
            own device (its GPU with ``accelerator: gpu``); reading, resampling and the
            refinement stay on its CPU.
        progress: Lightning's progress bar.
        options: ``register_files``'s keyword arguments (``fmt``, ``reference``, ``interpolation``,
            ``fallback``).

    Returns:
        ``evaluation.registration_report.batch_record`` of each scan, plus the global rank of the
        ``process`` that registered it, in the order of ``scans``, on the first process (global
        rank 0); None on the others.

    Raises:
        ValueError: before any work, FSL or two scans with the same output name (``check_batch``).
    """
    check_batch(scans, options.get("fmt", TransformFormat.ITK))
    module = _BatchRegistration(build_pipeline, Path(out_dir), options)
    runner = L.Trainer(accelerator=trainer.accelerator, devices=trainer.devices, num_nodes=trainer.num_nodes,
                       strategy=trainer.strategy, logger=False, enable_checkpointing=False,
                       enable_progress_bar=progress, enable_model_summary=False,
                       inference_mode=False)  # the refinement differentiates its objective (no_grad is lifted there)  # fmt: skip
    loader = DataLoader(_Scans(scans), batch_size=1, shuffle=False, collate_fn=_as_list)
    batches = runner.predict(module, loader, return_predictions=True) or []
    local = [item for batch in batches for item in batch]  # type: ignore[union-attr]
    if runner.world_size > 1:
        gathered: list[Any] = [None] * runner.world_size
        torch.distributed.all_gather_object(gathered, local)
        local = [item for part in gathered for item in part]
    # The sampler pads the last shares with repeated scans (equal shares): keep one row per index.
    records = dict(local)
    return [records[i] for i in range(len(scans))] if runner.is_global_zero else None
