"""Pose-Net consensus over re-posed inputs: a more robust rotation and a measure of trust.

A pose regressor is least reliable for some orientations of its input (a ``pi tanh``
rotation-vector head near 180 degrees, any network far from its training distribution).
Showing it the same scan re-posed by known rotations ``Q_k`` gives independent-looking
estimates of one unknown: if the view's content is the atlas rotated by ``R``, the view
rotated by ``Q_k`` shows ``Q_k R``, and the network's answer ``P_k`` gives ``R_k = Q_k^T P_k``.
Where the network is right the ``R_k`` agree; the largest group that agrees within
``tolerance`` is taken (its chordal mean), and the share of probes in it is the agreement.
A scan the network does not understand (not a head, another body part, an unusual field of
view) scatters the ``R_k``: low agreement is the pipeline's first warning sign.

The probes are the 24 rotations of the cube (the octahedral group): every rotation is
within 62.8 degrees of one of them, so some probes always see the content near the
orientations the network knows best.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import Tensor

from posereg.geometry import chordal_mean, geodesic_distance

__all__ = [
    "Consensus", "check_signed_permutations", "octahedral_rotations", "permuted_views", "rotation_clusters",
    "rotation_consensus",
]  # fmt: skip


def octahedral_rotations(dtype: torch.dtype = torch.float64) -> Tensor:
    """The 24 proper rotations of the cube ``(24, 3, 3)``: signed permutation matrices of det +1."""
    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            M = torch.zeros(3, 3, dtype=dtype)
            for row, (col, s) in enumerate(zip(perm, signs)):
                M[row, col] = s
            if torch.det(M) > 0:
                out.append(M)
    return torch.stack(out)


@dataclass(frozen=True)
class Consensus:
    """The agreed rotation of ``rotation_consensus``.

    Attributes:
        R: ``(3, 3)`` chordal mean of the largest agreeing group.
        agreement: share of the estimates in that group, in (0, 1].
        spread_deg: median angle (degrees) of the group's estimates from ``R``.
        estimates: ``(K, 3, 3)`` every estimate.
    """

    R: Tensor
    agreement: float
    spread_deg: float
    estimates: Tensor


def rotation_consensus(estimates: Tensor, tolerance_deg: float = 20.0) -> Consensus:
    """The largest group of ``estimates (K, 3, 3)`` within ``tolerance_deg`` of one of them.

    Each estimate is tried as a centre; the one with the most estimates within the tolerance
    wins (ties: the smaller sum of angles to them); ``R`` is the chordal mean of that group.
    """
    return rotation_clusters(estimates, tolerance_deg, 1)[0]


def rotation_clusters(estimates: Tensor, tolerance_deg: float = 20.0, max_clusters: int = 3) -> list[Consensus]:
    """Up to ``max_clusters`` disjoint agreeing groups, largest first (greedy).

    The first is ``rotation_consensus``'s; its members are removed and the search repeats on
    the rest. ``agreement`` is each group's share of all ``K`` estimates. The pipeline
    verifies each group's rotation against the image and keeps the best, so a wrong
    majority (a symmetric-looking view) does not decide alone.
    """
    if estimates.dim() != 3 or estimates.shape[-2:] != (3, 3) or estimates.shape[0] < 1:
        raise ValueError(f"estimates: expected shape (K >= 1, 3, 3), got {tuple(estimates.shape)}")
    if not tolerance_deg > 0 or max_clusters < 1:
        raise ValueError(f"tolerance_deg, max_clusters: expected > 0 and >= 1, got {tolerance_deg}, {max_clusters}")
    k = estimates.shape[0]
    angles = torch.rad2deg(geodesic_distance(estimates[:, None], estimates[None]))  # (K, K)
    left = torch.ones(k, dtype=torch.bool)
    out = []
    while len(out) < max_clusters and bool(left.any()):
        close = (angles <= tolerance_deg) & left[None] & left[:, None]
        counts = close.sum(1)
        cost = torch.where(close, angles, 0.0).sum(1)
        best = int(torch.argmax(counts.to(torch.float64) * 1e6 - cost))
        group = estimates[close[best]]
        R = chordal_mean(group)
        spread = torch.rad2deg(geodesic_distance(group, R.expand_as(group))).median()
        out.append(Consensus(R, float(counts[best]) / k, float(spread), estimates))
        left &= ~close[best]
    return out


def check_signed_permutations(rotations: Tensor, name: str = "rotations") -> None:
    """Raise ValueError unless ``rotations`` is ``(K >= 1, 3, 3)`` signed permutation matrices."""
    if (rotations.dim() != 3 or rotations.shape[-2:] != (3, 3) or rotations.shape[0] < 1
            or not bool(((rotations.abs() - rotations.abs().round()).abs() < 1e-9).all())):  # fmt: skip
        raise ValueError(f"{name}: expected signed permutation matrices (the cube's rotations) of shape (K, 3, 3), "
                         f"got {rotations.tolist()}")  # fmt: skip


def permuted_views(view: Tensor, rotations: Tensor) -> Tensor:
    """``view (n, n, n)`` re-posed about its centre by each signed permutation in ``rotations (K, 3, 3)``.

    ``out_k[u] = view[Q_k^T u]`` in voxel coordinates ``u`` centred on the grid centre: the
    content rotated by ``Q_k`` (for an axis-aligned isotropic grid, voxel and world axes agree).
    Exact, unlike a resampling: output axis ``b`` reads input axis ``a`` where ``Q[b, a] != 0``,
    reversed where that entry is -1 (a permute and a flip of strides; 3x faster than a gather
    through an index of ``K n^3`` entries).

    Raises:
        ValueError: a rotation that is not a signed permutation, or a non-cubic view.
    """
    n = view.shape[0]
    if view.shape != (n, n, n):
        raise ValueError(f"view: expected a cubic (n, n, n) grid, got {tuple(view.shape)}")
    check_signed_permutations(rotations)
    views = []
    for Q in rotations.reshape(-1, 3, 3).tolist():
        order = [next(a for a in range(3) if Q[b][a] != 0) for b in range(3)]
        flips = [b for b in range(3) if Q[b][order[b]] < 0]
        permuted = view.permute(order)
        views.append(permuted.flip(flips) if flips else permuted)
    return torch.stack(views)
