"""Rotation losses of Salehi et al. (2018): rotation-vector MSE, then the SO(3) geodesic.

Stage 1 trains with ``|v_hat - v|^2`` on rotation vectors (smooth and convex in the network
output, but blind to the wrap-around at pi: ``v`` and ``v (1 - 2 pi / |v|)`` are the same
rotation yet far apart). Stage 2 fine-tunes with the geodesic distance
``theta(R_hat^T R) = |log(R_hat^T R)|`` (Salehi eq. 7-10), which measures the rotation
error itself, in any representation.
"""

from __future__ import annotations

from torch import Tensor, nn

from posereg.geometry import MATRIX, ROTVEC, RotationRepresentation
from posereg.losses._checks import check_pair
from posereg.losses._reduction import check_reduction, reduce_loss

__all__ = ["RotvecMSELoss", "SO3GeodesicLoss", "rotvec_mse_loss", "so3_geodesic_loss"]


def so3_geodesic_loss(
    pred: Tensor,
    target: Tensor,
    representation: RotationRepresentation = MATRIX,
    *,
    squared: bool = False,
    reduction: str = "mean",
) -> Tensor:
    """Geodesic angle between predicted and true rotations, ``theta(R_hat^T R)`` in ``[0, pi]``.

    Salehi et al. (2018) eq. 7-10. Symmetric; quaternion inputs are sign invariant. The
    gradient is finite everywhere, including 0 and pi; the squared form is smooth at 0
    (the plain angle has a kink there, like an L1 loss).

    Args:
        pred: ``(..., *representation.trailing)`` predicted rotations.
        target: the true rotations, same shape.
        representation: how both are parameterised (``posereg.geometry.ROTVEC``,
            ``QUATERNION``, ``MATRIX``, ``SIXD``, ``SVD9D``).
        squared: return ``theta^2`` (rad^2) instead of ``theta`` (rad).
        reduction: 'mean' | 'sum', or 'none' for ``(...)`` per-sample losses.

    Raises:
        ValueError: bad shapes, NaN/inf, zero quaternions, or a bad ``reduction``.
    """
    check_reduction(reduction)
    check_pair(pred, target, representation.trailing, ("pred", "target"))
    angle = representation.relative_angle(pred, target)
    return reduce_loss(angle * angle if squared else angle, reduction)


def rotvec_mse_loss(pred: Tensor, target: Tensor, *, reduction: str = "mean") -> Tensor:
    """Squared Euclidean distance of rotation vectors, ``|v_hat - v|^2`` (rad^2); stage 1 of Salehi.

    Per sample this sums the three components (``nn.MSELoss`` would average them, a factor
    of 3 smaller), so that it matches the squared geodesic angle for small errors.

    Args:
        pred: ``(..., 3)`` predicted rotation vectors, radians.
        target: ``(..., 3)`` true rotation vectors.
        reduction: 'mean' | 'sum', or 'none' for ``(...)`` per-sample losses.
    """
    check_reduction(reduction)
    check_pair(pred, target, (3,), ("pred", "target"))
    diff = pred - target
    return reduce_loss((diff * diff).sum(-1), reduction)


class SO3GeodesicLoss(nn.Module):
    """Module form of ``so3_geodesic_loss``."""

    def __init__(
        self, representation: RotationRepresentation = MATRIX, *, squared: bool = False, reduction: str = "mean"
    ) -> None:
        super().__init__()
        check_reduction(reduction)
        self.representation, self.squared, self.reduction = representation, squared, reduction

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """See ``so3_geodesic_loss``."""
        return so3_geodesic_loss(
            pred, target, self.representation, squared=self.squared, reduction=self.reduction
        )

    def extra_repr(self) -> str:
        return f"representation={self.representation.name}, squared={self.squared}, reduction={self.reduction!r}"


class RotvecMSELoss(nn.Module):
    """Module form of ``rotvec_mse_loss``."""

    representation = ROTVEC

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        check_reduction(reduction)
        self.reduction = reduction

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """See ``rotvec_mse_loss``."""
        return rotvec_mse_loss(pred, target, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"
