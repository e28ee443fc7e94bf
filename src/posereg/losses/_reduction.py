"""The ``reduction`` argument shared by every loss: 'mean' | 'sum' | 'none'."""

from __future__ import annotations

from typing import Literal

from torch import Tensor

Reduction = Literal["mean", "sum", "none"]
REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: str) -> None:
    """Raise ValueError unless ``reduction`` is one of 'mean', 'sum', 'none'."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction: expected one of {REDUCTIONS}, got {reduction!r}")


def reduce_loss(per_sample: Tensor, reduction: str) -> Tensor:
    """Reduce per-sample losses ``(...)`` to a scalar ('mean', 'sum') or keep them ('none')."""
    check_reduction(reduction)
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    return per_sample
