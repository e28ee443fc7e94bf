"""Is a located slice to be trusted? The slice Pose-Net's answers for four in-plane turns of the slice.

``posereg register`` shows its Pose-Net the scan re-posed by the 24 rotations of a cube
(``registration.consensus``); a slice has the 2D counterpart. Turning the slice in its own plane
by ``q`` quarter turns (``torch.rot90``: a pixel permutation, nothing resampled) shows the slice
the atlas gives under ``Z_q R`` at the same index, with ``Z_q`` the rotation by ``q pi / 2`` about
the slice normal's axis ``e_z`` (``data.slices.cut_slices``; the identity is tested pixel for
pixel). So the network's answer ``P_q`` for the turned slice estimates ``R = Z_q^T P_q``. The
slice Pose-Net is trained on every in-plane angle, so the four inputs are equally in its
distribution. Where it is right the four estimates agree; where it guesses they scatter.
``rotation_consensus`` takes the largest group within 20 degrees; its share of the four is the
*agreement*, and the group's chordal mean the answer.

A second measure was tried and left out: the normalised mutual information of the slice with the
atlas cut at the answer, over the atlas brain (the ``brain_nmi`` of volumes, in 2D). On 512
synthetic head slices it did not separate right from wrong answers at all (median 1.046 for
errors under 10 degrees, 1.050 for errors over 90; ``benchmarks/slice_quality.py``); likely a 64 x 64
slice of 3 mm in an arbitrary contrast holds too few brain pixels for a joint histogram (not tested further).

The threshold (``SliceThresholds``) is set on synthetic head slices only
(``benchmarks/slice_quality.py``), never on the real slices it is then measured on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from posereg.geometry import geodesic_distance
from posereg.registration.consensus import rotation_consensus

__all__ = [
    "QUARTER_TURNS", "SliceConsensus", "SliceThresholds", "quarter_turn_rotations", "quarter_turns", "slice_consensus",
    "slice_doubts",
]  # fmt: skip

QUARTER_TURNS = 4


def quarter_turns(image: Tensor) -> Tensor:
    """``(4, H, W)``: ``image (H, W)`` turned by 0, 1, 2 and 3 quarter turns (``torch.rot90`` on
    dims ``(0, 1)``; square images keep their shape)."""
    if image.dim() != 2 or image.shape[0] != image.shape[1]:
        raise ValueError(f"image: expected a square (H, H) slice, got {tuple(image.shape)}")
    return torch.stack([torch.rot90(image, q, (0, 1)) for q in range(QUARTER_TURNS)])


def quarter_turn_rotations(dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> Tensor:
    """``(4, 3, 3)``: ``Z_q``, the rotation by ``q pi / 2`` about ``e_z`` (exact entries): the slice
    of ``quarter_turns(image)[q]`` is cut under ``Z_q R`` where ``image`` is cut under ``R``."""
    Z = torch.zeros(QUARTER_TURNS, 3, 3, dtype=dtype, device=device)
    for q in range(QUARTER_TURNS):
        c, s = round(math.cos(q * math.pi / 2)), round(math.sin(q * math.pi / 2))
        Z[q] = torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=dtype)
    return Z


@dataclass(frozen=True)
class SliceConsensus:
    """The agreed pose of the four turned passes.

    Attributes:
        R: ``(3, 3)`` chordal mean of the largest group of estimates within the tolerance.
        index: mean slice index of that group's passes.
        agreement: the group's share of the four passes: 0.25, 0.5, 0.75 or 1.
        spread_deg: median angle of the group's estimates from ``R`` (degrees).
        estimates: ``(4, 3, 3)`` the passes' estimates ``Z_q^T P_q`` of ``R``.
    """

    R: Tensor
    index: float
    agreement: float
    spread_deg: float
    estimates: Tensor


def slice_consensus(turned: Tensor, indices: Tensor, tolerance_deg: float = 20.0) -> SliceConsensus:
    """The consensus of the network's answers ``turned (4, 3, 3)`` (rotations) and ``indices (4,)``
    for ``quarter_turns`` of one slice (module doc)."""
    if turned.shape != (QUARTER_TURNS, 3, 3) or indices.shape != (QUARTER_TURNS,):
        raise ValueError(f"turned, indices: expected (4, 3, 3) and (4,), got {tuple(turned.shape)} and {tuple(indices.shape)}")
    estimates = quarter_turn_rotations(turned.dtype, turned.device).mT @ turned
    found = rotation_consensus(estimates, tolerance_deg)
    members = torch.rad2deg(geodesic_distance(estimates, found.R.expand_as(estimates))) <= tolerance_deg
    if not bool(members.any()):  # a chordal mean can lie beyond the tolerance of every member
        members = torch.ones_like(members)
    index = float(indices.to(torch.float64)[members].mean())
    return SliceConsensus(found.R, index, found.agreement, found.spread_deg, estimates)


@dataclass(frozen=True)
class SliceThresholds:
    """Below this a located slice is doubtful.

    Attributes:
        min_agreement: share of the four turned passes that agree. 1.0 (all four): on 512
            synthetic head slices no lower threshold kept the worst answers out (``benchmarks/
            slice_quality.py``: the 1/4 group errs by 80 degrees on average, the 4/4 group by 23).
    """

    min_agreement: float = 1.0


def slice_doubts(quality: dict[str, float], thresholds: SliceThresholds = SliceThresholds()) -> list[str]:
    """Why a slice located with these ``quality`` measures (``agreement``) is doubtful (empty: it is
    not, or nothing was measured: one pass)."""
    if "agreement" in quality and quality["agreement"] < thresholds.min_agreement:
        return [f"the Pose-Net passes on the slice turned in its plane disagree (agreement "
                f"{quality['agreement']:.2f} < {thresholds.min_agreement:.2f})"]  # fmt: skip
    return []
