"""The run folder: one run per folder, refused, replaced or resumed, never mixed.

``check_run_folder`` (read only, on every process, before anything is written) decides what a
run does with its output folder: a new run needs an absent or empty folder; ``overwrite`` removes
an earlier run's files (``RUN_FILES``) first; ``resume`` continues from
``checkpoints/last.ckpt`` when the stored ``config.json`` describes the same training (the
``trainer`` section, ``optim.num_workers`` and ``optim.max_minutes`` may differ: they say where
and how long it runs, not what it learns), and starts from the beginning when the folder holds no
checkpoint yet. ``prepare_run_folder`` then writes on the first process only, after every process
has checked: it clears and writes ``config.json``; on resume the loggers cut the logs back to the
resumed checkpoint (``ResumableCSVLogger`` keeps the rows of the finished epochs; the TensorBoard logger
purges later steps).
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from posereg._files import atomic_path

__all__ = ["RUN_FILES", "ResumableCSVLogger", "RunFolder", "check_run_folder", "prepare_run_folder", "resumed_epoch"]

RUN_FILES = ("checkpoints", "logs", "tensorboard", "config.json", "summary.json", "model.pt", "model_after_*.pt")
"""What a run writes in its folder (``--overwrite`` removes these and nothing else)."""

_WHERE_NOT_WHAT = ({"trainer"}, {"num_workers", "max_minutes"})  # top-level sections, optim keys


@dataclass(frozen=True)
class RunFolder:
    """What a run does with its folder: ``resume_from`` (``last.ckpt``, or None for a run from
    the beginning) and ``clear`` (remove an earlier run's files before writing)."""

    output: Path
    resume_from: Path | None
    clear: bool

    @property
    def checkpoints(self) -> Path:
        """``output / 'checkpoints'``."""
        return self.output / "checkpoints"


def _run_entries(output: Path) -> list[Path]:
    return sorted({p for pattern in RUN_FILES for p in output.glob(pattern)})


def _what_is_trained(config: Mapping[str, Any]) -> dict[str, Any]:
    sections, optim_keys = _WHERE_NOT_WHAT
    kept = {k: v for k, v in config.items() if k not in sections}
    if isinstance(kept.get("optim"), Mapping):
        kept["optim"] = {k: v for k, v in kept["optim"].items() if k not in optim_keys}
    return kept


def _differences(stored: Any, current: Any, prefix: str = "") -> list[str]:
    if isinstance(stored, Mapping) and isinstance(current, Mapping):
        return [d for k in sorted(set(stored) | set(current), key=str)
                for d in _differences(stored.get(k), current.get(k), f"{prefix}{k}.")]  # fmt: skip
    return [] if stored == current else [f"{prefix[:-1]} ({stored!r} -> {current!r})"]


def check_run_folder(output: str | Path, config: Mapping[str, Any], *, resume: bool = False,
                     overwrite: bool = False) -> RunFolder:  # fmt: skip
    """Decide, reading only, what a run does with ``output`` (see the module doc).

    Args:
        output: the run folder.
        config: the run's configuration as plain data (``model_dump(mode="json")``).
        resume: continue the run in ``output``.
        overwrite: replace the run in ``output``.

    Raises:
        ValueError: both flags; a non-empty folder without either; a resume whose stored
            configuration trains something else, naming the differing keys; a file at ``output``.
    """
    output = Path(output)
    if resume and overwrite:
        raise ValueError("--resume and --overwrite: pass at most one")
    if output.exists() and not output.is_dir():
        raise ValueError(f"{output}: not a folder")
    entries = sorted(output.iterdir()) if output.is_dir() else []
    if not entries:
        return RunFolder(output, None, clear=False)
    if overwrite:
        return RunFolder(output, None, clear=True)
    if not resume:
        names = ", ".join(p.name for p in entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise ValueError(f"{output}: not empty ({names}); pass --resume to continue the run in it "
                         "or --overwrite to replace it")  # fmt: skip
    stored_path = output / "config.json"
    if stored_path.is_file():
        stored = json.loads(stored_path.read_text())
        changed = _differences(_what_is_trained(stored), _what_is_trained(config))
        if changed:
            raise ValueError(f"{output}: --resume with a configuration that trains something else than the stored "
                             f"config.json: {'; '.join(changed)} (use another --output, or --overwrite)")  # fmt: skip
    last = output / "checkpoints" / "last.ckpt"
    if last.is_file():
        return RunFolder(output, last, clear=False)
    if not stored_path.is_file():
        raise ValueError(f"{output}: --resume: no run to resume here (no config.json, no checkpoints/last.ckpt)")
    return RunFolder(output, None, clear=True)  # stopped before its first checkpoint: start again


def resumed_epoch(checkpoint: Path) -> tuple[int, int]:
    """``(epoch, global_step)`` a Lightning checkpoint was saved at (0-based epoch)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    return int(state["epoch"]), int(state["global_step"])


class _KeepingWriter(ExperimentWriter):
    """Lightning's CSV writer, keeping the rows of epochs ``<= keep_epochs`` of an earlier
    ``metrics.csv`` (Lightning's deletes the file) and appending after them."""

    def __init__(self, log_dir: str, keep_epochs: int | None) -> None:
        self._keep_epochs = keep_epochs
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        if self._keep_epochs is None or not path.is_file():
            return super()._check_log_dir_exists()
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            keys, rows = list(reader.fieldnames or []), list(reader)
        rows = [r for r in rows if r.get("epoch") not in (None, "") and int(float(r["epoch"])) <= self._keep_epochs]
        with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
        self.metrics_keys = sorted(keys)
        if keys != self.metrics_keys:  # keep the header Lightning will append with
            self._rewrite_with_new_header(self.metrics_keys)
        return None


class ResumableCSVLogger(CSVLogger):
    """``CSVLogger`` that, resuming after epoch ``keep_epochs``, keeps the earlier rows up to it."""

    def __init__(self, save_dir: str | Path, name: str, keep_epochs: int | None = None) -> None:
        super().__init__(save_dir, name=name, version="")
        self._keep_epochs = keep_epochs

    @property
    def experiment(self) -> ExperimentWriter:  # type: ignore[override]
        if self._experiment is None and rank_zero_only.rank == 0:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _KeepingWriter(self.log_dir, self._keep_epochs)
        return super().experiment


def prepare_run_folder(folder: RunFolder, config: Mapping[str, Any]) -> None:
    """Remove an earlier run's files (``folder.clear``) and write ``config.json``: on the first
    process only, once every process has checked the folder (Lightning's ``prepare_data`` of a
    data module with ``prepare_data_per_node = False`` runs there, between barriers, before any
    logger or checkpoint writes)."""
    output = folder.output
    if folder.clear:
        for entry in _run_entries(output):
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    output.mkdir(parents=True, exist_ok=True)
    with atomic_path(output / "config.json") as tmp:
        tmp.write_text(json.dumps(dict(config), indent=2))
