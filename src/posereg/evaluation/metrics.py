"""Registration errors with their units, and their summary statistics."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from posereg.geometry import geodesic_distance

__all__ = ["ErrorSummary", "position_error_m", "rotation_error_deg", "summarise", "translation_error_mm"]


def rotation_error_deg(R_estimate: Tensor, R_true: Tensor) -> Tensor:
    """Geodesic angle between rotations, in degrees: ``|log(R_estimate^T R_true)|``.

    Args:
        R_estimate, R_true: ``(..., 3, 3)`` rotations (broadcast).

    Returns:
        ``(...)`` angles in ``[0, 180]`` degrees.
    """
    return torch.rad2deg(geodesic_distance(R_estimate, R_true))


def translation_error_mm(t_estimate: Tensor, t_true: Tensor) -> Tensor:
    """Euclidean distance of translations in mm (both about the same centre).

    Args:
        t_estimate, t_true: ``(..., 3)`` translations, mm.

    Returns:
        ``(...)`` distances, mm.
    """
    return torch.linalg.vector_norm(t_estimate - t_true, dim=-1)


def position_error_m(c_estimate: Tensor, c_true: Tensor) -> Tensor:
    """Distance between camera centres in metres (the relocalisation position error).

    Args:
        c_estimate, c_true: ``(..., 3)`` camera centres, world frame, metres.

    Returns:
        ``(...)`` distances, metres.
    """
    return torch.linalg.vector_norm(c_estimate - c_true, dim=-1)


@dataclass(frozen=True)
class ErrorSummary:
    """Summary of a set of errors (one unit throughout, e.g. degrees).

    Attributes:
        count: number of errors.
        mean, std, median, maximum: statistics (population std); NaN when ``count`` is 0.
        success_rate: fraction in ``[0, 1]`` below ``threshold``.
        threshold: the success threshold.
    """

    count: int
    mean: float
    std: float
    median: float
    maximum: float
    success_rate: float
    threshold: float

    def cell(self) -> str:
        """``'mean +- std (median)'`` with one decimal, or ``'-'`` when empty."""
        if self.count == 0:
            return "-"
        return f"{self.mean:.1f} +- {self.std:.1f} ({self.median:.1f})"


def summarise(errors: Sequence[float], threshold: float = 10.0) -> ErrorSummary:
    """Mean, std, median, maximum and success rate (``error < threshold``) of ``errors``."""
    values = [float(e) for e in errors]
    if any(not math.isfinite(v) for v in values):
        raise ValueError("errors: expected finite values")
    if not values:
        nan = float("nan")
        return ErrorSummary(0, nan, nan, nan, nan, nan, threshold)
    return ErrorSummary(
        count=len(values),
        mean=statistics.fmean(values),
        std=statistics.pstdev(values),
        median=statistics.median(values),
        maximum=max(values),
        success_rate=sum(v < threshold for v in values) / len(values),
        threshold=threshold,
    )
