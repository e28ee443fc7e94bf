"""Random MRI appearance of synthetic heads: per-label intensities and scanner artefacts.

SynthSeg's recipe (Billot et al. 2023): every sample draws a fresh mean (and texture level)
for every label, so that a network trained on the samples cannot rely on one contrast. posereg
draws the means from one of five families per sample: T1-, T2-, PD- and FLAIR-like orderings
(ranges below, relative to the brightest tissue) and arbitrary ones (every label uniform),
then adds a bias field, a gamma change, blur, thick slices along one axis and Rician noise.

All functions are batched over a leading sample dimension ``N``, take an explicit
``torch.Generator`` on the samples' device, and never touch the global RNG.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["CONTRAST_FAMILIES", "LABELS", "batched_blur", "draw_label_means", "normalise_batch", "rician_noise_batch"]

# Labels of a synthetic head (probability channels of ``head_synthesis``), in this order.
LABELS = ("air", "white_matter", "cortical_gm", "deep_gm", "sulcal_csf", "ventricle",
          "bone", "marrow", "fat", "soft_tissue", "eye")  # fmt: skip

# Mean-intensity ranges (low, high) per label, in LABELS order, for each contrast family.
# Relative values from typical 1.5-3 T spin-echo / gradient-echo brain MRI: T1: fat and WM
# bright, CSF dark; T2: CSF and vitreous bright, WM darker than GM; PD: little contrast, GM
# above WM; FLAIR: T2-like with CSF suppressed. Cortical bone and air are dark in all.
CONTRAST_FAMILIES: dict[str, tuple[tuple[float, float], ...]] = {
    "t1": ((0.0, 0.02), (0.75, 1.0), (0.45, 0.65), (0.55, 0.75), (0.08, 0.3), (0.06, 0.3),
           (0.02, 0.15), (0.5, 0.95), (0.7, 1.0), (0.3, 0.55), (0.08, 0.3)),
    "t2": ((0.0, 0.02), (0.25, 0.45), (0.45, 0.65), (0.35, 0.55), (0.8, 1.0), (0.8, 1.0),
           (0.02, 0.12), (0.3, 0.7), (0.5, 0.9), (0.12, 0.35), (0.8, 1.0)),
    "pd": ((0.0, 0.02), (0.5, 0.65), (0.65, 0.85), (0.6, 0.8), (0.6, 0.9), (0.6, 0.9),
           (0.02, 0.15), (0.5, 0.9), (0.6, 1.0), (0.35, 0.6), (0.6, 0.9)),
    "flair": ((0.0, 0.02), (0.4, 0.6), (0.6, 0.8), (0.5, 0.7), (0.0, 0.15), (0.0, 0.12),
              (0.02, 0.12), (0.3, 0.7), (0.4, 0.9), (0.2, 0.45), (0.0, 0.2)),
    "arbitrary": ((0.0, 0.02),) + ((0.0, 1.0),) * (len(LABELS) - 1),
}  # fmt: skip
_FAMILY_WEIGHTS = (0.3, 0.2, 0.1, 0.1, 0.3)  # t1, t2, pd, flair, arbitrary


def draw_label_means(n: int, generator: torch.Generator, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """Per-sample label means ``(N, L)`` in [0, 1] and the family index ``(N,)`` of each sample.

    A family is drawn per sample (t1 30 %, t2 20 %, pd 10 %, flair 10 %, arbitrary 30 %), then
    every label's mean uniformly within that family's range; the tissue means are then
    scaled so that the brightest is 1. Air keeps its own range (at most 2 % of the brightest
    tissue): no MRI contrast makes air bright, and the pipeline finds the head by thresholding
    at 10 % of the bright end.
    """
    ranges = torch.tensor(list(CONTRAST_FAMILIES.values()), dtype=torch.float32, device=device)  # (F, L, 2)
    weights = torch.tensor(_FAMILY_WEIGHTS, device=device)
    family = torch.multinomial(weights.expand(n, -1), 1, generator=generator)[:, 0]
    low, high = ranges[family, :, 0], ranges[family, :, 1]
    u = torch.rand(low.shape, generator=generator, device=device)
    means = low + (high - low) * u
    tissue = means[:, 1:] / means[:, 1:].amax(1, keepdim=True).clamp_min(1e-6)
    return torch.cat((means[:, :1], tissue), 1), family


def _gaussian_kernels(sigma: Tensor, radius: int) -> Tensor:
    """``(M, 2 radius + 1)`` normalised Gaussian kernels; ``sigma <= 0`` gives a delta."""
    x = torch.arange(-radius, radius + 1, device=sigma.device, dtype=torch.float32)
    s = sigma.clamp_min(1e-3)[:, None]
    k = torch.exp(-0.5 * (x / s) ** 2)
    return k / k.sum(-1, keepdim=True)


def batched_blur(images: Tensor, sigma_voxels: Tensor, radius: int = 4) -> Tensor:
    """Separable Gaussian blur with a different sigma per sample and axis.

    Args:
        images: ``(N, D, H, W)``.
        sigma_voxels: ``(N, 3)`` standard deviations along D, H, W, in voxels (0: none);
            kernels are truncated at ``radius`` voxels (``radius >= 2.5 sigma`` is exact
            to about 1 %).

    Returns:
        ``(N, D, H, W)``, same dtype.
    """
    if images.dim() != 4 or sigma_voxels.shape != (images.shape[0], 3):
        raise ValueError(f"images, sigma_voxels: expected (N, D, H, W) and (N, 3), got {tuple(images.shape)}, "
                         f"{tuple(sigma_voxels.shape)}")  # fmt: skip
    n = images.shape[0]
    out = images[None].float()  # (1, N, D, H, W): one group per sample
    for axis in range(3):
        k = _gaussian_kernels(sigma_voxels[:, axis].float(), radius)  # (N, 2r + 1)
        shape = [n, 1, 1, 1, 1]
        shape[2 + axis] = 2 * radius + 1
        pad = [0, 0, 0, 0, 0, 0]
        pad[2 * (2 - axis)] = pad[2 * (2 - axis) + 1] = radius
        out = F.conv3d(F.pad(out, pad, mode="replicate"), k.reshape(shape), groups=n)
    return out[0].to(images.dtype)


def rician_noise_batch(images: Tensor, level: Tensor, generator: torch.Generator) -> Tensor:
    """``|x + n1 + i n2|`` with Gaussian ``n1, n2`` of per-sample std ``level`` ``(N,)``."""
    s = level.reshape(-1, *([1] * (images.dim() - 1))).to(images.dtype)
    n1 = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    n2 = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    return torch.sqrt((images + s * n1) ** 2 + (s * n2) ** 2)


def normalise_batch(images: Tensor, fraction: float = 0.1, max_values: int = 65536) -> Tensor:
    """What ``preprocess_intensity`` does to a real scan, per sample of a batch.

    The foreground is every voxel brighter than ``fraction`` of the 99th percentile of the
    non-zero voxels (``threshold_mask``); its 1st and 99th percentiles map to 0 and 1, and the
    result is clipped. Percentiles come from at most ``max_values`` regularly strided voxels
    (the percentiles of an image move far less than its noise).

    Args:
        images: ``(N, ...)`` non-negative intensities.

    Returns:
        Same shape, in [0, 1]; a sample with a constant foreground becomes all zeros.
    """
    flat = images.reshape(images.shape[0], -1)
    stride = max(1, math.ceil(flat.shape[1] / max_values))
    out = torch.empty_like(flat)
    for i in range(flat.shape[0]):
        v = flat[i, ::stride].float()
        nonzero = v[v > 0]
        if nonzero.numel() == 0:
            out[i] = 0.0
            continue
        high = torch.quantile(nonzero, 0.99)
        fg = v[v > fraction * high]
        lo, hi = torch.quantile(fg, torch.tensor([0.01, 0.99], device=v.device)).unbind()
        if not bool(hi > lo):
            out[i] = 0.0
            continue
        out[i] = ((flat[i] - lo) / (hi - lo)).clamp(0.0, 1.0)
    return out.reshape(images.shape)
