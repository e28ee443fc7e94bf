"""Deprecated: the relocalisation configuration is ``posereg.training.config.RelocTrainingConfig``.

Only ``posereg.cli`` still imports ``load_reloc_config`` from here; it goes when the CLI loads
configurations with ``load_config(path, RelocTrainingConfig)``.
"""

from __future__ import annotations

from pathlib import Path

from posereg.training.config import RelocTrainingConfig, load_config

__all__ = ["load_reloc_config"]


def load_reloc_config(path: str | Path) -> RelocTrainingConfig:
    """Deprecated alias of ``load_config(path, RelocTrainingConfig)``."""
    return load_config(path, RelocTrainingConfig)
