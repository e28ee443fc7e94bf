"""The ``|x|_gamma`` norms of Kendall & Cipolla (2017): gamma = 1 (L1) or 2 (Euclidean)."""

from __future__ import annotations

import torch
from torch import Tensor

GAMMAS = (1, 2)


def check_gamma(gamma: int) -> None:
    """Raise ValueError unless ``gamma`` is 1 or 2."""
    if gamma not in GAMMAS:
        raise ValueError(f"gamma: expected 1 (L1) or 2 (Euclidean norm), got {gamma!r}")


def gamma_norm(x: Tensor, gamma: int) -> Tensor:
    """``|x|_gamma`` over the last dimension; its gradient is 0 (not NaN) at ``x = 0``.

    torch's ``vector_norm`` already has a zero (sub)gradient at the origin for both orders.
    """
    check_gamma(gamma)
    return torch.linalg.vector_norm(x, ord=gamma, dim=-1)
