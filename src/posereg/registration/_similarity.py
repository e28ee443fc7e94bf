"""Image similarity shared by the registration methods."""

from __future__ import annotations

from torch import Tensor


def ncc_rows(a: Tensor, b: Tensor) -> Tensor:
    """Normalised cross-correlation of ``a`` (M,) with each row of ``b`` (N, M), in [-1, 1]."""
    a = (a - a.mean()) / a.std().clamp_min(1e-12)
    b = (b - b.mean(-1, keepdim=True)) / b.std(-1, keepdim=True).clamp_min(1e-12)
    return (a * b).mean(-1)
