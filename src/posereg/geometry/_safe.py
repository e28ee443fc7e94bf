"""Elementary functions with finite values and gradients at their singular points.

The double-``where`` pattern: the masked branch sees a harmless argument, so neither
branch produces inf or NaN in the backward pass (``torch.where`` multiplies the unused
branch's gradient by 0, and 0 * inf is NaN).
"""

from __future__ import annotations

import torch
from torch import Tensor


def safe_sqrt(x: Tensor) -> Tensor:
    """``sqrt(x)`` for ``x >= 0``, with gradient 0 (not inf/NaN) where ``x == 0``."""
    pos = x > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, x, 1.0)), 0.0)


def safe_atan2(y: Tensor, x: Tensor) -> Tensor:
    """``atan2(y, x)`` with value 0 and gradient 0 (not NaN) at the origin."""
    origin = (x == 0) & (y == 0)
    return torch.where(origin, 0.0, torch.atan2(torch.where(origin, 0.0, y), torch.where(origin, 1.0, x)))


def safe_hypot(a: Tensor, b: Tensor) -> Tensor:
    """``hypot(a, b)`` with gradient 0 (not NaN) at the origin."""
    origin = (a == 0) & (b == 0)
    return torch.where(origin, 0.0, torch.hypot(torch.where(origin, 1.0, a), b))
