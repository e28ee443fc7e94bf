"""Image similarity shared by the registration methods."""

from __future__ import annotations

from torch import Tensor


def ncc_rows(a: Tensor, b: Tensor) -> Tensor:
    """Normalised cross-correlation of ``a`` (M,) with each row of ``b`` (N, M), in [-1, 1]."""
    a = (a - a.mean()) / a.std().clamp_min(1e-12)
    b = (b - b.mean(-1, keepdim=True)) / b.std(-1, keepdim=True).clamp_min(1e-12)
    return (a * b).mean(-1)


def nmi_rows(a: Tensor, b: Tensor, bins: int = 32) -> Tensor:
    """``normalised_mutual_information`` of ``a`` (M,) with each row of ``b`` (N, M), batched: ``(N,)``."""
    import torch

    if a.dim() != 1 or b.dim() != 2 or b.shape[-1] != a.shape[0] or a.numel() == 0:
        raise ValueError(f"a, b: expected (M,) and (N, M) with M > 0, got {tuple(a.shape)} and {tuple(b.shape)}")
    ia = (a.clamp(0, 1) * (bins - 1)).round().long()
    ib = (b.clamp(0, 1) * (bins - 1)).round().long()
    index = ia[None] * bins + ib  # (N, M)
    joint = torch.zeros(b.shape[0], bins * bins, dtype=torch.float64, device=b.device)
    joint.scatter_add_(1, index, torch.ones_like(index, dtype=torch.float64))
    p = joint / a.shape[0]

    def entropy(q: Tensor) -> Tensor:
        return -(q * torch.where(q > 0, q, 1.0).log()).sum(-1)

    p2 = p.reshape(-1, bins, bins)
    return (entropy(p2.sum(2)) + entropy(p2.sum(1))) / entropy(p).clamp_min(1e-12)


def normalised_mutual_information(a: Tensor, b: Tensor, bins: int = 32) -> Tensor:
    """Studholme's normalised mutual information ``(H(a) + H(b)) / H(a, b)`` of two samples.

    Contrast-agnostic (any monotone or non-monotone intensity mapping between ``a`` and ``b``
    scores high), so a T2 scan can be compared with the T1 atlas. Values lie in ``[1, 2]``:
    1 for independent intensities, 2 for a one-to-one mapping.

    Args:
        a, b: ``(M,)`` intensities in ``[0, 1]`` (values outside are clipped), same length.
        bins: histogram bins per image.
    """
    if a.shape != b.shape or a.dim() != 1 or a.numel() == 0:
        raise ValueError(f"a, b: expected two non-empty (M,) samples, got {tuple(a.shape)} and {tuple(b.shape)}")
    return nmi_rows(a, b[None], bins)[0]
