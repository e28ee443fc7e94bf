"""PoseNet's beta-weighted loss (Kendall & Cipolla 2017, eq. 3: ``|p - p_hat|_gamma + beta |q - q_hat / |q_hat||_gamma``).

``L_beta = |p - p_hat|_gamma + beta |q - q_hat / |q_hat| |_gamma``: ``p`` is the camera
position (centre) and ``q`` the unit quaternion ``(w, x, y, z)`` of the orientation, in
whatever frame the dataset uses (the loss only compares prediction with target). The
rotation term is made sign invariant, ``min(|q - q_n|, |q + q_n|)`` with
``q_n = q_hat / |q_hat|``: ``q`` and ``-q`` are one rotation, and targets are not always
on the ``w >= 0`` hemisphere that Kendall & Cipolla restrict them to.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from posereg.losses._checks import check_pair
from posereg.losses._norms import check_gamma, gamma_norm
from posereg.losses._reduction import check_reduction, reduce_loss

__all__ = ["PoseNetLoss", "normalize_quaternion", "posenet_loss", "quaternion_distance"]


def normalize_quaternion(q: Tensor, name: str = "quaternion_pred") -> Tensor:
    """``q / |q|`` for network outputs, raising ValueError where ``|q|`` underflows.

    Args:
        q: ``(..., 4)`` quaternions ``(w, x, y, z)``.
        name: the argument name used in errors.

    Returns:
        ``(..., 4)`` unit quaternions.

    Raises:
        ValueError: where ``|q|`` is below the dtype's smallest normal number (it cannot be
            normalised: the direction, and the gradient, are meaningless).
    """
    norm = torch.linalg.vector_norm(q, dim=-1, keepdim=True)
    if q.numel() > 0 and bool((norm < torch.finfo(q.dtype).tiny).any()):
        raise ValueError(f"{name}: expected non-zero quaternions of shape (..., 4), found |q| = 0")
    return q / norm


def quaternion_distance(quaternion_pred: Tensor, quaternion_target: Tensor, gamma: int = 2) -> Tensor:
    """Sign-invariant ``min(|q - q_n|_gamma, |q + q_n|_gamma)``, ``q_n = q_hat / |q_hat|``.

    Args:
        quaternion_pred: ``(..., 4)`` predicted quaternions ``q_hat`` (any non-zero norm).
        quaternion_target: ``(..., 4)`` unit target quaternions ``q`` (``||q| - 1| <= 1e-3``).
        gamma: 1 (L1) or 2 (Euclidean norm).

    Returns:
        ``(...)`` distances (unitless; at most ``sqrt(2)`` for gamma = 2).

    Raises:
        ValueError: shapes differ, a zero prediction, or non-unit targets.
    """
    check_gamma(gamma)
    check_pair(quaternion_pred, quaternion_target, (4,), ("quaternion_pred", "quaternion_target"))
    norm = torch.linalg.vector_norm(quaternion_target, dim=-1)
    if quaternion_target.numel() > 0 and bool(((norm - 1).abs() > 1e-3).any()):
        raise ValueError("quaternion_target: expected unit quaternions of shape (..., 4), found |q| != 1 (normalise the labels)")
    q_n = normalize_quaternion(quaternion_pred)
    return torch.minimum(
        gamma_norm(quaternion_target - q_n, gamma), gamma_norm(quaternion_target + q_n, gamma)
    )


def posenet_loss(
    position_pred: Tensor,
    quaternion_pred: Tensor,
    position_target: Tensor,
    quaternion_target: Tensor,
    *,
    beta: float,
    gamma: int = 2,
    reduction: str = "mean",
) -> Tensor:
    """PoseNet loss ``|p - p_hat|_gamma + beta min(|q -+ q_hat/|q_hat| |_gamma)``.

    Kendall & Cipolla (2017), eq. 3 (their numbering): ``beta`` balances metres against the
    unitless quaternion distance; they tuned it per scene (about 120-750 indoors, 250-2000
    outdoors).

    Args:
        position_pred: ``(..., 3)`` predicted positions (length units of the dataset).
        quaternion_pred: ``(..., 4)`` predicted quaternions ``(w, x, y, z)``, any non-zero norm.
        position_target: ``(..., 3)`` true positions.
        quaternion_target: ``(..., 4)`` true unit quaternions.
        beta: the weight of the rotation term, ``>= 0``.
        gamma: 1 (L1) or 2 (Euclidean norm).
        reduction: 'mean' | 'sum' over the batch, or 'none' for ``(...)`` per-sample losses.

    Returns:
        The reduced loss, or ``(...)`` per-sample losses.

    Raises:
        ValueError: bad shapes, NaN/inf, a zero predicted quaternion, ``beta < 0``, or a bad
            ``gamma`` / ``reduction``.
    """
    check_reduction(reduction)
    if not beta >= 0:
        raise ValueError(f"beta: expected a non-negative weight, got {beta!r}")
    check_pair(position_pred, position_target, (3,), ("position_pred", "position_target"))
    if position_pred.shape[:-1] != quaternion_pred.shape[:-1]:
        raise ValueError(
            f"position_pred, quaternion_pred: expected the same batch shape, got "
            f"{tuple(position_pred.shape)} and {tuple(quaternion_pred.shape)}"
        )
    position = gamma_norm(position_pred - position_target, gamma)
    rotation = quaternion_distance(quaternion_pred, quaternion_target, gamma)
    return reduce_loss(position + beta * rotation, reduction)


class PoseNetLoss(nn.Module):
    """Module form of ``posenet_loss`` with fixed ``beta``, ``gamma`` and ``reduction``."""

    def __init__(self, beta: float, gamma: int = 2, reduction: str = "mean") -> None:
        super().__init__()
        check_gamma(gamma)
        check_reduction(reduction)
        if not beta >= 0:
            raise ValueError(f"beta: expected a non-negative weight, got {beta!r}")
        self.beta, self.gamma, self.reduction = float(beta), gamma, reduction

    def forward(
        self, position_pred: Tensor, quaternion_pred: Tensor, position_target: Tensor, quaternion_target: Tensor
    ) -> Tensor:
        """See ``posenet_loss``."""
        return posenet_loss(
            position_pred, quaternion_pred, position_target, quaternion_target,
            beta=self.beta, gamma=self.gamma, reduction=self.reduction,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return f"beta={self.beta}, gamma={self.gamma}, reduction={self.reduction!r}"
