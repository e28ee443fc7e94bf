"""``PoseLoss``: one module for a rotation loss and a translation loss and how they are weighted.

Three weightings, the three papers' answers to "how many metres is a radian worth":

- ``FixedWeighting(beta)``: ``L_t + beta L_r`` (PoseNet's tuned ``beta``; Salehi's ``lambda``
  is ``1 / beta`` up to an overall scale).
- ``HomoscedasticWeighting``: ``L_t exp(-s_t) + s_t + L_r exp(-s_r) + s_r`` with learned ``s``
  (Kendall & Cipolla 2017).
- ``MetricWeighting(W)``: no separate terms; the squared SE(3) geodesic distance under the
  metric ``W`` (Hou et al. 2018), with ``W`` from ``estimate_metric_weights``.

Configuration files choose a loss by name through one switch, ``loss.kind`` of ``posereg
train reloc`` (``posereg.training.reloc.reloc_loss``); Python code passes the component
modules. Terms are ordered ``(translation, rotation)``, as Kendall & Cipolla's
``(s_p, s_q)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from posereg.geometry import (
    QUATERNION,
    ROTVEC,
    RotationRepresentation,
    squared_geodesic_distance,
)
from posereg.geometry._safe import safe_sqrt
from posereg.geometry.se3 import _check_metric
from posereg.losses._checks import check_pair
from posereg.losses._norms import check_gamma, gamma_norm
from posereg.losses._reduction import check_reduction, reduce_loss
from posereg.losses.homoscedastic import HomoscedasticWeighting
from posereg.losses.posenet import quaternion_distance

__all__ = [
    "FixedWeighting",
    "MetricWeighting",
    "PoseLoss",
    "QuaternionDistance",
    "TranslationDistance",
]


class TranslationDistance(nn.Module):
    """Per-sample ``|t_hat - t|_gamma``, or its square (``squared=True``: the MSE term)."""

    def __init__(self, gamma: int = 2, *, squared: bool = False) -> None:
        super().__init__()
        check_gamma(gamma)
        self.gamma, self.squared = gamma, squared

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """``(..., 3)`` predicted and true translations -> ``(...)`` distances (length units)."""
        check_pair(pred, target, (3,), ("translation_pred", "translation_target"))
        if self.squared:
            diff = pred - target
            return (diff * diff).sum(-1)
        return gamma_norm(pred - target, self.gamma)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, squared={self.squared}"


class QuaternionDistance(nn.Module):
    """Per-sample sign-invariant ``|q - q_hat/|q_hat| |_gamma`` (PoseNet's rotation term)."""

    representation = QUATERNION

    def __init__(self, gamma: int = 2) -> None:
        super().__init__()
        check_gamma(gamma)
        self.gamma = gamma

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """See ``posereg.losses.posenet.quaternion_distance``."""
        return quaternion_distance(pred, target, self.gamma)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}"


class FixedWeighting(nn.Module):
    """``translation_weight L_t + beta L_r`` with fixed weights.

    PoseNet's ``L_beta`` is ``FixedWeighting(beta)``; Salehi et al.'s ``L_rot + lambda L_trans``
    is ``FixedWeighting(1.0, translation_weight=lambda)``.
    """

    def __init__(self, beta: float, translation_weight: float = 1.0) -> None:
        super().__init__()
        for name, value in (("beta", beta), ("translation_weight", translation_weight)):
            if not value >= 0:
                raise ValueError(f"{name}: expected a non-negative weight, got {value!r}")
        self.beta, self.translation_weight = float(beta), float(translation_weight)

    def forward(self, terms: Tensor) -> Tensor:
        """``(..., 2)`` terms ``(translation, rotation)`` -> ``(...)``."""
        return self.translation_weight * terms[..., 0] + self.beta * terms[..., 1]

    def extra_repr(self) -> str:
        return f"beta={self.beta}, translation_weight={self.translation_weight}"


class MetricWeighting(nn.Module):
    """The SE(3) geodesic distance under ``W`` (Hou et al. 2018) on poses, squared by default.

    Args:
        W: ``(6, 6)`` SPD metric at the identity, coordinates ``(omega, t)``.
        representation: how the predicted and true rotations are parameterised.
        squared: ``d_W^2`` (Hou et al.'s loss) if True; the distance ``d_W`` itself if False,
            whose gradient keeps a constant size as the error shrinks, like the unsquared
            norms of Kendall & Cipolla's losses (gradient 0 at ``d_W = 0``).
    """

    def __init__(self, W: Tensor, representation: RotationRepresentation = ROTVEC, squared: bool = True) -> None:
        super().__init__()
        _check_metric(W)
        self.register_buffer("W", W.detach().clone())
        self.representation = representation
        self.squared = squared

    def forward(self, rotation_pred: Tensor, translation_pred: Tensor, rotation_target: Tensor, translation_target: Tensor) -> Tensor:
        """Per-sample ``d_W^2`` (or ``d_W``) between ``(R_hat, t_hat)`` and ``(R, t)``."""
        to_matrix = self.representation.to_matrix
        d2 = squared_geodesic_distance(
            to_matrix(rotation_pred), translation_pred, to_matrix(rotation_target), translation_target,
            self.W.to(translation_pred.dtype),
        )  # fmt: skip
        return d2 if self.squared else safe_sqrt(d2)

    def extra_repr(self) -> str:
        diag = [round(v, 4) for v in torch.diagonal(self.W).tolist()]
        return f"diag(W)={diag}, representation={self.representation.name}, squared={self.squared}"


class PoseLoss(nn.Module):
    """A pose loss: rotation and translation terms, and their weighting.

    Args:
        weighting: ``FixedWeighting``, ``HomoscedasticWeighting`` (two tasks) or
            ``MetricWeighting``.
        rotation: per-sample rotation loss ``(pred, target) -> (...)`` with a
            ``representation`` attribute (``SO3GeodesicLoss(..., reduction='none')``,
            ``RotvecMSELoss('none')``, ``QuaternionDistance``); ``None`` with ``MetricWeighting``.
        translation: per-sample translation loss, e.g. ``TranslationDistance``; ``None`` with
            ``MetricWeighting``.
        reduction: 'mean' | 'sum' over the batch, or 'none'.

    Attributes:
        representation: the rotation representation the predictions and targets must use
            (compare it with the network head's).

    Example:
        >>> loss = PoseLoss(HomoscedasticWeighting(), rotation=QuaternionDistance(),
        ...                 translation=TranslationDistance())
        >>> value = loss(q_hat, p_hat, q, p)
    """

    def __init__(
        self,
        weighting: nn.Module,
        rotation: nn.Module | None = None,
        translation: nn.Module | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        check_reduction(reduction)
        self.weighting, self.rotation, self.translation, self.reduction = weighting, rotation, translation, reduction
        self._per_sample: Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]
        if isinstance(weighting, MetricWeighting):
            if rotation is not None or translation is not None:
                raise ValueError("rotation, translation: MetricWeighting defines its own terms; pass None for both")
            self.representation: RotationRepresentation = weighting.representation
            self._per_sample = self._joint
            return
        if rotation is None or translation is None:
            raise ValueError("rotation, translation: expected both loss modules with this weighting, got None")
        if isinstance(weighting, HomoscedasticWeighting) and weighting.num_tasks != 2:
            raise ValueError(f"weighting: expected 2 tasks (translation, rotation), got {weighting.num_tasks}")
        self.representation = rotation.representation
        self._per_sample = self._separable

    def _joint(self, rotation_pred: Tensor, translation_pred: Tensor, rotation_target: Tensor, translation_target: Tensor) -> Tensor:
        return self.weighting(rotation_pred, translation_pred, rotation_target, translation_target)

    def _separable(self, rotation_pred: Tensor, translation_pred: Tensor, rotation_target: Tensor, translation_target: Tensor) -> Tensor:
        assert self.rotation is not None and self.translation is not None
        batch = translation_pred.shape[:-1]
        t_term = self.translation(translation_pred, translation_target)
        r_term = self.rotation(rotation_pred, rotation_target)
        if t_term.shape != batch or r_term.shape != batch:
            raise ValueError(
                f"rotation, translation: expected per-sample losses of shape {tuple(batch)} (use reduction='none'), "
                f"got {tuple(r_term.shape)} and {tuple(t_term.shape)}"
            )
        terms = torch.stack((t_term, r_term), dim=-1)
        if isinstance(self.weighting, HomoscedasticWeighting):
            return self.weighting.per_sample(terms)  # PoseLoss reduces once, itself, whatever the module's reduction
        return self.weighting(terms)

    def forward(self, rotation_pred: Tensor, translation_pred: Tensor, rotation_target: Tensor, translation_target: Tensor) -> Tensor:
        """Loss of predicted ``(rotation, translation)`` against the targets.

        Args:
            rotation_pred, rotation_target: ``(..., *representation.trailing)``.
            translation_pred, translation_target: ``(..., 3)`` (length units of the data).

        Returns:
            The reduced loss, or ``(...)`` per-sample losses for ``reduction='none'``.

        Raises:
            ValueError: predictions and targets of different shapes, or different batch shapes
                for rotation and translation.
        """
        check_pair(rotation_pred, rotation_target, self.representation.trailing, ("rotation_pred", "rotation_target"))
        check_pair(translation_pred, translation_target, (3,), ("translation_pred", "translation_target"))
        batch = rotation_pred.shape[: rotation_pred.dim() - len(self.representation.trailing)]
        if batch != translation_pred.shape[:-1]:
            raise ValueError(
                f"rotation_pred, translation_pred: expected the same batch shape, got {tuple(rotation_pred.shape)} "
                f"and {tuple(translation_pred.shape)}"
            )
        return reduce_loss(
            self._per_sample(rotation_pred, translation_pred, rotation_target, translation_target), self.reduction
        )
