"""Deprecated: the slice configuration is ``posereg.training.config.SliceTrainingConfig``.

Only ``posereg.cli`` still imports ``load_slice_config`` from here; it goes when the CLI loads
configurations with ``load_config(path, SliceTrainingConfig)``.
"""

from __future__ import annotations

from pathlib import Path

from posereg.training.config import SliceTrainingConfig, load_config

__all__ = ["load_slice_config"]


def load_slice_config(path: str | Path) -> SliceTrainingConfig:
    """Deprecated alias of ``load_config(path, SliceTrainingConfig)``."""
    return load_config(path, SliceTrainingConfig)
