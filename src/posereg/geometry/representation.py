"""Rotation representations as values: what a network head outputs and how to read it.

A ``RotationRepresentation`` names a parameterisation of SO(3) and carries its conversions,
so that losses and heads take the representation as an argument instead of dispatching on
strings or on trailing shapes (a batch of three rotation vectors has shape ``(3, 3)``, like
one matrix). Configuration files name representations; ``REPRESENTATIONS`` turns the name
into the value once, at the edge.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from posereg.geometry._checks import check_tensor
from posereg.geometry.continuous import matrix_to_sixd, sixd_to_matrix, svd9d_to_matrix
from posereg.geometry.quaternion import matrix_to_quaternion, quaternion_angle, quaternion_to_matrix
from posereg.geometry.so3 import geodesic_distance, matrix_to_rotvec, rotvec_to_matrix

__all__ = [
    "MATRIX",
    "QUATERNION",
    "REPRESENTATIONS",
    "ROTVEC",
    "SIXD",
    "SVD9D",
    "RotationRepresentation",
]


@dataclass(frozen=True)
class RotationRepresentation:
    """A parameterisation of rotations with trailing shape ``trailing``.

    Attributes:
        name: the name used in configuration files.
        trailing: the trailing shape of one rotation, e.g. ``(3,)`` or ``(3, 3)``.
        to_matrix: ``(..., *trailing) -> (..., 3, 3)``.
        from_matrix: ``(..., 3, 3) -> (..., *trailing)``, a right inverse of ``to_matrix``.
        relative_angle: ``(a, b) -> (...)`` the geodesic angle between the rotations, in
            ``[0, pi]`` radians; through matrices unless the representation has a cheaper,
            equally accurate form. For ``MATRIX`` the inputs are checked to be rotations
            (``check_rotation_matrix``); the other representations build rotations themselves.
    """

    name: str
    trailing: tuple[int, ...]
    to_matrix: Callable[[Tensor], Tensor]
    from_matrix: Callable[[Tensor], Tensor]
    relative_angle: Callable[[Tensor, Tensor], Tensor]

    def check(self, x: Tensor, name: str) -> Tensor:
        """Raise ValueError unless ``x`` has shape ``(..., *trailing)`` and finite values."""
        return check_tensor(x, self.trailing, name)


def _angle_through_matrices(to_matrix: Callable[[Tensor], Tensor]) -> Callable[[Tensor, Tensor], Tensor]:
    def angle(a: Tensor, b: Tensor) -> Tensor:
        # to_matrix built rotations (to rounding): no need to check them again
        return geodesic_distance(to_matrix(a), to_matrix(b), check_rotation=False)

    return angle


def _identity(R: Tensor) -> Tensor:
    return check_tensor(R, (3, 3), "R")


def _flatten_matrix(R: Tensor) -> Tensor:
    return check_tensor(R, (3, 3), "R").flatten(-2)


ROTVEC = RotationRepresentation(
    "rotvec", (3,), rotvec_to_matrix, matrix_to_rotvec, _angle_through_matrices(rotvec_to_matrix)
)
"""Rotation vectors (axis times angle, radians): Salehi et al.'s ``pi * tanh`` head."""

QUATERNION = RotationRepresentation(
    "quaternion", (4,), quaternion_to_matrix, matrix_to_quaternion, quaternion_angle
)
"""Unit quaternions ``(w, x, y, z)``, hemisphere ``w >= 0``: Kendall & Cipolla's head."""

MATRIX = RotationRepresentation("matrix", (3, 3), _identity, _identity, geodesic_distance)
"""Rotation matrices themselves."""

SIXD = RotationRepresentation(
    "sixd", (6,), sixd_to_matrix, matrix_to_sixd, _angle_through_matrices(sixd_to_matrix)
)
"""The continuous 6D representation (first two columns; Zhou et al. 2019)."""

SVD9D = RotationRepresentation(
    "svd9d", (9,), svd9d_to_matrix, _flatten_matrix, _angle_through_matrices(svd9d_to_matrix)
)
"""Nine numbers projected to SO(3) by SVD (Levinson et al. 2020)."""

REPRESENTATIONS: dict[str, RotationRepresentation] = {
    r.name: r for r in (ROTVEC, QUATERNION, MATRIX, SIXD, SVD9D)
}
"""Representations by configuration name."""
