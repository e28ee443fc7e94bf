"""Output heads: features ``(..., C)`` -> a pose representation, each one linear layer.

Rotation heads share one interface: ``head(features)`` returns the representation named by
``head.representation`` (a ``posereg.geometry.RotationRepresentation``) and
``head.to_matrix(output)`` turns it into ``(..., 3, 3)`` rotation matrices, so that losses and
evaluation code need not know which head produced a prediction.

- ``RotvecHead``: ``pi * tanh`` of a linear layer (Salehi et al. 2018): each component in
  ``(-pi, pi)``, the principal range of rotation vectors on every axis.
- ``QuaternionHead``: four outputs normalised to a unit quaternion on the ``w >= 0``
  hemisphere (Kendall & Cipolla 2017 keep all quaternions there, as ``q`` and ``-q`` are
  one rotation).
- ``SixDHead`` and ``SVD9DHead``: continuous representations (Zhou et al. 2019; Levinson
  et al. 2020).
- ``TranslationHead``: three linear outputs; ``SliceIndexHead``: one ReLU output (Salehi's
  slice number, non-negative).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from posereg.geometry import QUATERNION, ROTVEC, SIXD, SVD9D, RotationRepresentation, canonicalize_quaternion
from posereg.geometry._checks import check_tensor

__all__ = ["ROTATION_HEADS", "QuaternionHead", "RotationHead", "RotvecHead", "SVD9DHead", "SixDHead", "SliceIndexHead", "TranslationHead"]


def _check_features(head: nn.Linear, features: Tensor) -> None:
    check_tensor(features, (head.in_features,), "features", finite=False)


class RotationHead(nn.Module):
    """Base class: a linear layer ``C -> representation`` plus an output map.

    Args:
        in_features: ``C``, the feature size.
    """

    representation: RotationRepresentation

    def __init__(self, in_features: int) -> None:
        super().__init__()
        if not isinstance(in_features, int) or in_features < 1:
            raise ValueError(f"in_features: expected a positive int, got {in_features!r}")
        self.linear = nn.Linear(in_features, math.prod(self.representation.trailing))

    def activate(self, raw: Tensor) -> Tensor:
        """Map the linear layer's output to the representation (identity by default)."""
        return raw

    def forward(self, features: Tensor) -> Tensor:
        """``(..., C)`` features -> ``(..., *representation.trailing)``."""
        _check_features(self.linear, features)
        return self.activate(self.linear(features))

    def to_matrix(self, output: Tensor) -> Tensor:
        """``(..., *representation.trailing)`` head output -> ``(..., 3, 3)`` rotation matrices."""
        return self.representation.to_matrix(output)


class RotvecHead(RotationHead):
    """Rotation vector ``pi * tanh(W f + b)`` (Salehi et al. 2018), radians."""

    representation = ROTVEC

    def activate(self, raw: Tensor) -> Tensor:
        return math.pi * torch.tanh(raw)


class QuaternionHead(RotationHead):
    """Unit quaternion ``(w, x, y, z)`` with ``w >= 0`` (Kendall & Cipolla 2017).

    The raw output is normalised with its norm clamped at ``eps`` (a zero output gives a
    finite, arbitrary quaternion instead of NaN), then flipped to the ``w >= 0`` hemisphere.

    Args:
        in_features: ``C``.
        eps: the smallest norm divided by.
    """

    representation = QUATERNION

    def __init__(self, in_features: int, eps: float = 1e-12) -> None:
        super().__init__(in_features)
        self.eps = eps

    def activate(self, raw: Tensor) -> Tensor:
        q = raw / torch.linalg.vector_norm(raw, dim=-1, keepdim=True).clamp_min(self.eps)
        return canonicalize_quaternion(q)


class SixDHead(RotationHead):
    """The 6D representation (Zhou et al. 2019): two unnormalised columns, Gram-Schmidt in ``to_matrix``."""

    representation = SIXD


class SVD9DHead(RotationHead):
    """Nine numbers, special-orthogonalised by SVD in ``to_matrix`` (Levinson et al. 2020)."""

    representation = SVD9D


class _ScaledLinearHead(nn.Module):
    """``scale * activation(W f + b)`` with ``out_features`` outputs and a fixed positive scale."""

    def __init__(self, in_features: int, out_features: int, scale: float) -> None:
        super().__init__()
        if not scale > 0:
            raise ValueError(f"scale: expected a positive scale, got {scale!r}")
        self.linear = nn.Linear(in_features, out_features)
        self.scale = float(scale)

    def _scaled(self, features: Tensor) -> Tensor:
        _check_features(self.linear, features)
        return self.scale * self.linear(features)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


class TranslationHead(_ScaledLinearHead):
    """Translation ``scale * (W f + b)``, ``(..., C) -> (..., 3)``.

    Args:
        in_features: ``C``.
        scale: a fixed output scale in length units (e.g. the spread of the training
            translations), so that the linear layer works on values of order 1.
    """

    def __init__(self, in_features: int, scale: float = 1.0) -> None:
        super().__init__(in_features, 3, scale)

    def forward(self, features: Tensor) -> Tensor:
        """``(..., C)`` features -> ``(..., 3)`` translations."""
        return self._scaled(features)


class SliceIndexHead(_ScaledLinearHead):
    """Slice position ``scale * relu(W f + b)`` (Salehi et al. 2018), ``(..., C) -> (...)``, non-negative.

    Args:
        in_features: ``C``.
        scale: output scale (e.g. the number of slices, or millimetres), so that the
            linear layer works on values of order 1.
    """

    def __init__(self, in_features: int, scale: float = 1.0) -> None:
        super().__init__(in_features, 1, scale)

    def forward(self, features: Tensor) -> Tensor:
        """``(..., C)`` features -> ``(...)`` slice positions (relu commutes with the positive scale)."""
        return torch.relu(self._scaled(features)).squeeze(-1)

ROTATION_HEADS: dict[str, type[RotationHead]] = {
    cls.representation.name: cls for cls in (RotvecHead, QuaternionHead, SixDHead, SVD9DHead)
}
"""Rotation heads by the name of their representation (for configuration files)."""
