"""Learned homoscedastic-uncertainty weighting of several losses (Kendall & Cipolla 2017).

``L = sum_i L_i exp(-s_i) + s_i`` with trainable ``s_i = log sigma_i^2``. For fixed
``L_i`` the minimum over ``s_i`` is at ``s_i = log L_i``: when ``L_i`` is a mean squared
residual, ``s_i`` converges to the log of the residual variance, and each task is weighted
by the inverse of its own noise level, without a hand-tuned ``beta``. Optimising ``s``
instead of ``sigma^2`` keeps the weight positive and the problem unconstrained.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from posereg.geometry._checks import check_tensor
from posereg.losses._reduction import check_reduction, reduce_loss

__all__ = ["HomoscedasticWeighting", "homoscedastic_weighted_sum"]


def homoscedastic_weighted_sum(losses: Tensor, log_variances: Tensor, reduction: str = "mean") -> Tensor:
    """``sum_i losses[..., i] exp(-s_i) + s_i`` (Kendall & Cipolla 2017, "L_sigma").

    Args:
        losses: ``(..., T)`` the ``T`` task losses, per sample or already reduced (``(T,)``).
        log_variances: ``(T,)`` the ``s_i = log sigma_i^2``.
        reduction: 'mean' | 'sum' over the leading dimensions, or 'none'.

    Returns:
        The reduced loss, or ``(...)`` per-sample weighted sums.

    Raises:
        ValueError: wrong shapes or NaN/inf.
    """
    check_reduction(reduction)
    if not isinstance(log_variances, Tensor) or log_variances.dim() != 1:
        got = tuple(log_variances.shape) if isinstance(log_variances, Tensor) else type(log_variances).__name__
        raise ValueError(f"log_variances: expected a floating-point tensor of shape (T,), got {got}")
    check_tensor(log_variances, tuple(log_variances.shape), "log_variances")
    check_tensor(losses, tuple(log_variances.shape), "losses")
    weighted = (losses * torch.exp(-log_variances) + log_variances).sum(-1)
    return reduce_loss(weighted, reduction)


class HomoscedasticWeighting(nn.Module):
    """Trainable ``s = log sigma^2`` per task, combining ``T`` losses as ``L_sigma``.

    Args:
        init: the initial ``s_i``, one per task. The default is Kendall & Cipolla's for
            pose, ``(s_position, s_rotation) = (0.0, -3.0)``.
        reduction: applied over the leading dimensions of the stacked losses.

    Example:
        >>> weighting = HomoscedasticWeighting()        # s_p = 0, s_q = -3
        >>> total = weighting(torch.stack((position_loss, rotation_loss), dim=-1))
    """

    def __init__(self, init: Sequence[float] = (0.0, -3.0), reduction: str = "mean") -> None:
        super().__init__()
        check_reduction(reduction)
        values = [float(v) for v in init]
        if not values:
            raise ValueError("init: expected at least one initial log-variance, got an empty sequence")
        if not all(abs(v) < float("inf") for v in values):
            raise ValueError(f"init: expected finite log-variances, got {values}")
        self.log_variances = nn.Parameter(torch.tensor(values, dtype=torch.get_default_dtype()))
        self.reduction = reduction

    @property
    def num_tasks(self) -> int:
        """The number of tasks ``T``."""
        return self.log_variances.numel()

    def forward(self, losses: Tensor) -> Tensor:
        """Combine ``(..., T)`` task losses, reduced by ``self.reduction``; see ``homoscedastic_weighted_sum``."""
        return homoscedastic_weighted_sum(losses, self.log_variances.to(losses.dtype), self.reduction)

    def per_sample(self, losses: Tensor) -> Tensor:
        """``(..., T)`` task losses -> ``(...)`` weighted sums, whatever ``self.reduction`` is."""
        return homoscedastic_weighted_sum(losses, self.log_variances.to(losses.dtype), "none")

    def extra_repr(self) -> str:
        values = ", ".join(f"{v:.3g}" for v in self.log_variances.detach().tolist())
        return f"log_variances=({values}), reduction={self.reduction!r}"
