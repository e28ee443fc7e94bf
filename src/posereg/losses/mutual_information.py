"""Mutual information of two images' intensities, differentiable in one of them (Mattes et al. 2003).

The similarity of intensity-based multi-modal registration: it rewards a consistent mapping
between the two intensity scales, whatever that mapping is, so a T2 scan can be aligned to a
T1 atlas. Following Mattes, Haynor, Vesselle, Lewellen & Eubank (IEEE TMI 22(1), 2003,
eq. 3-5), the joint histogram is a Parzen estimate: each fixed sample falls in one bin (a
zero-order B-spline window, so fixed bins are integer labels computed once), each moving
sample spreads over four bins with a cubic B-spline window, which makes the histogram, and
so the mutual information, differentiable in the moving intensities:

    p(a, b) = 1/N sum_i [a = a_i] beta3(b - u_i),      u_i = 2 + (B - 5) m_i,
    MI = sum_{a,b} p(a, b) log(p(a, b) / (p_f(a) p_m(b))),

with ``m_i`` the moving intensity clipped to [0, 1] and two padding bins on each side so
that every window lies inside the ``B`` bins. Cost ``O(N)`` (four bins per sample), not the
``O(N B)`` of a dense Parzen window (MONAI's ``GlobalMutualInformationLoss`` costs ten times
more on the 80 000 samples of a brain on a 3 mm grid, which matters inside an optimiser loop).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["cubic_bspline", "intensity_bins", "parzen_mutual_information"]

# Two bins of padding on each side keep every cubic window (support 4 bins) inside the histogram.
_PADDING = 2


def cubic_bspline(x: Tensor) -> Tensor:
    """The centred cubic B-spline ``beta3(x)``: ``(4 - 6x^2 + 3|x|^3) / 6`` on ``|x| < 1``,
    ``(2 - |x|)^3 / 6`` on ``1 <= |x| < 2``, 0 beyond. Integrates to 1; ``C^2`` everywhere."""
    a = x.abs()
    inner = (4 - 6 * a**2 + 3 * a**3) / 6
    outer = (2 - a).clamp_min(0) ** 3 / 6
    return torch.where(a < 1, inner, outer)


def intensity_bins(values: Tensor, bins: int) -> Tensor:
    """Integer bin labels ``(...)`` in ``[0, bins)`` of intensities in [0, 1] (clipped): the fixed side."""
    if bins < 1:
        raise ValueError(f"bins: expected at least 1, got {bins}")
    return (values.clamp(0, 1) * bins).long().clamp(max=bins - 1)


def parzen_mutual_information(moving: Tensor, fixed_bin: Tensor, bins: int, fixed_bins: int) -> Tensor:
    """Mutual information (nats) of moving intensities and fixed bin labels, Mattes et al. eq. 3-5.

    Args:
        moving: ``(N,)`` moving intensities, expected in [0, 1] (clipped there); the gradient
            flows to them (zero where clipped).
        fixed_bin: ``(N,)`` integer labels in ``[0, fixed_bins)`` of the fixed intensities at
            the same samples (``intensity_bins``).
        bins: moving histogram bins, at least 6 (two padding bins on each side).
        fixed_bins: fixed histogram bins.

    Returns:
        A scalar ``>= 0`` (0 for independent intensities), dtype of ``moving``.
    """
    if moving.dim() != 1 or fixed_bin.shape != moving.shape or moving.shape[0] < 1:
        raise ValueError(f"moving, fixed_bin: expected two (N >= 1,) tensors, got {tuple(moving.shape)} "
                         f"and {tuple(fixed_bin.shape)}")  # fmt: skip
    if bins < 2 * _PADDING + 2 or fixed_bins < 1:
        raise ValueError(f"bins, fixed_bins: expected at least {2 * _PADDING + 2} and 1, got {bins}, {fixed_bins}")
    if fixed_bin.dtype.is_floating_point or int(fixed_bin.min()) < 0 or int(fixed_bin.max()) >= fixed_bins:
        raise ValueError(f"fixed_bin: expected integer labels in [0, {fixed_bins}) (see intensity_bins)")
    u = moving.clamp(0, 1) * (bins - 2 * _PADDING - 1) + _PADDING  # in [2, bins - 3]
    first = torch.floor(u).detach() - 1  # the window covers bins first .. first + 3
    window = first[:, None] + torch.arange(4, dtype=u.dtype, device=u.device)
    weights = cubic_bspline(u[:, None] - window)  # (N, 4), each row sums to 1
    flat = (fixed_bin[:, None] * bins + window.long()).reshape(-1)
    joint = torch.zeros(fixed_bins * bins, dtype=u.dtype, device=u.device).index_add(0, flat, weights.reshape(-1))
    joint = joint.reshape(fixed_bins, bins) / moving.shape[0]
    p_fixed, p_moving = joint.sum(1, keepdim=True), joint.sum(0, keepdim=True)
    # 0 log 0 = 0: empty cells contribute nothing (and no NaN gradient through the log).
    tiny = torch.finfo(u.dtype).tiny
    ratio = joint / (p_fixed * p_moving).clamp_min(tiny)
    return torch.where(joint > 0, joint * torch.log(ratio.clamp_min(tiny)), torch.zeros_like(joint)).sum()
