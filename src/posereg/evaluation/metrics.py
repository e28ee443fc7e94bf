"""Registration errors with their units, and their summary statistics."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from posereg.geometry import geodesic_distance

__all__ = [
    "ErrorSummary", "VerdictCounts", "position_error_m", "rotation_error_deg", "summarise", "translation_error_mm",
    "verdict_counts",
]  # fmt: skip


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


@dataclass(frozen=True)
class VerdictCounts:
    """How a quality check's verdicts (accepted or flagged doubtful) meet the errors, in degrees.

    Attributes:
        cases: number of results.
        accepted: results the check accepted.
        false_accepts: accepted results more than ``bad_deg`` off.
        good: results within ``good_deg`` (accepted or not).
        false_rejects: results within ``good_deg`` that the check flagged.
    """

    cases: int
    accepted: int
    false_accepts: int
    good: int
    false_rejects: int


def verdict_counts(
    errors_deg: Sequence[float], accepted: Sequence[bool], bad_deg: float = 20.0, good_deg: float = 10.0
) -> VerdictCounts:
    """Count a quality check's false accepts (``error > bad_deg``, accepted) and false rejects
    (``error <= good_deg``, flagged) over results with rotation errors ``errors_deg`` (degrees) and
    verdicts ``accepted`` (one per result, True: not doubtful).

    Raises:
        ValueError: the two sequences differ in length, an error is not finite, or
            ``good_deg > bad_deg``.
    """
    errors = [float(e) for e in errors_deg]
    verdicts = [bool(a) for a in accepted]
    if len(errors) != len(verdicts):
        raise ValueError(f"errors_deg, accepted: expected one verdict per error, got {len(errors)} and {len(verdicts)}")
    if any(not math.isfinite(e) for e in errors):
        raise ValueError("errors_deg: expected finite values")
    if good_deg > bad_deg:
        raise ValueError(f"good_deg, bad_deg: expected good_deg <= bad_deg, got {good_deg} and {bad_deg}")
    pairs = list(zip(errors, verdicts, strict=True))
    return VerdictCounts(
        cases=len(pairs),
        accepted=sum(verdicts),
        false_accepts=sum(ok and e > bad_deg for e, ok in pairs),
        good=sum(e <= good_deg for e in errors),
        false_rejects=sum(not ok and e <= good_deg for e, ok in pairs),
    )
