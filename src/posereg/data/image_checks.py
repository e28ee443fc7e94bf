"""Is this input a head or brain MRI posereg can work with? Checks before and after reading.

Two stages, both cheap:

- ``check_header``, from the header alone (before any voxel is read or any memory is given
  to it): the number of voxels, the voxel size and the field of view must be those of an MRI
  volume (``ImageLimits``). A 367 KB ``.nii.gz`` can declare a 10000^3 grid; a header with
  1e-4 mm voxels makes every resampling to a 3 mm grid need billions of samples.
- ``brain_image_problems``, from the intensities: not constant, a foreground of plausible
  size (a brain is about 1.2 l, a tight crop of a small brain still more than 0.1 l), and
  spatial structure. Structure is measured as the correlation of each voxel with its
  neighbour along each axis, over the whole (subsampled) image: real head and brain scans
  that packages ship give 0.83-0.96 (docs/benchmarks/real_scans.md lists them), white noise
  about 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from posereg.data.nifti_voxels import memory_order
from posereg.data.volume import Volume, threshold_mask

__all__ = ["ImageLimits", "brain_image_problems", "check_brain_image", "check_header", "neighbour_correlation"]


@dataclass(frozen=True)
class ImageLimits:
    """What a readable head or brain MRI volume may declare in its header.

    Attributes:
        max_voxels: voxels in the grid (default 512^3: 0.5 GiB as float32).
        min_spacing_mm, max_spacing_mm: voxel sizes (thick slices included).
        min_extent_mm, max_extent_mm: field of view along each axis (no minimum by default: tiny
            images are refused by their content, ``brain_image_problems``).
        min_foreground_ml: foreground volume below which the image is "nearly empty".
        min_correlation: neighbour correlation below which the image has no spatial structure.
    """

    max_voxels: int = 512**3
    min_spacing_mm: float = 0.1
    max_spacing_mm: float = 20.0
    min_extent_mm: float = 0.0
    max_extent_mm: float = 1000.0
    min_foreground_ml: float = 100.0
    min_correlation: float = 0.3


def check_header(shape: Sequence[int], spacing: Sequence[float], where: str, limits: ImageLimits = ImageLimits()) -> None:
    """Raise ValueError unless a grid of ``shape`` voxels of ``spacing`` mm is a plausible MRI volume.

    Args:
        shape: voxels along each of the three axes.
        spacing: voxel sizes in mm along the same axes.
        where: names the input in messages (e.g. the file).
        limits: the bounds.
    """
    voxels = math.prod(int(n) for n in shape)
    if voxels > limits.max_voxels:
        raise ValueError(f"{where}: {' x '.join(str(int(n)) for n in shape)} voxels is more than posereg reads "
                         f"({limits.max_voxels:,} voxels; a 1 mm head needs about 256^3)")  # fmt: skip
    for axis, (n, s) in enumerate(zip(shape, spacing, strict=True)):
        if not (limits.min_spacing_mm <= s <= limits.max_spacing_mm):
            raise ValueError(f"{where}: voxel size {s:.4g} mm along axis {axis} is outside "
                             f"[{limits.min_spacing_mm:g}, {limits.max_spacing_mm:g}] mm; is the header's "
                             "unit or affine wrong?")  # fmt: skip
        extent = n * s
        if not (limits.min_extent_mm <= extent <= limits.max_extent_mm):
            raise ValueError(f"{where}: a field of view of {extent:.4g} mm along axis {axis} is not a head or brain "
                             f"volume ([{limits.min_extent_mm:g}, {limits.max_extent_mm:g}] mm per axis)")  # fmt: skip


def neighbour_correlation(data: Tensor, mask: Tensor | None = None) -> float:
    """Mean over the three axes of the Pearson correlation of voxel pairs one voxel apart, both in ``mask``.

    Args:
        data: ``(I, J, K)`` intensities. mask: ``(I, J, K)`` booleans (default: every voxel).

    Returns:
        A correlation in [-1, 1]; 0 when no axis has two neighbouring masked voxels.
    """
    values = []
    for axis in range(3):
        n = data.shape[axis]
        if n < 2:
            continue
        a, b = data.narrow(axis, 0, n - 1), data.narrow(axis, 1, n - 1)
        if mask is None:  # every pair (no boolean indexing: 64^3 in 2 ms instead of 20)
            x, y = a.double(), b.double()
            if x.numel() < 2:
                continue
        else:
            both = mask.narrow(axis, 0, n - 1) & mask.narrow(axis, 1, n - 1)
            if int(both.sum()) < 2:
                continue
            x, y = a[both].double(), b[both].double()
        x, y = x - x.mean(), y - y.mean()
        denominator = float(x.norm() * y.norm())
        values.append(float((x * y).sum()) / denominator if denominator > 0 else 0.0)
    return sum(values) / len(values) if values else 0.0


def brain_image_problems(volume: Volume, limits: ImageLimits = ImageLimits()) -> list[str]:
    """Why ``volume`` does not look like a head or brain MRI (empty list: it does).

    Checks, in order: constant intensities; no positive intensity; a foreground (``threshold_mask``) smaller than
    ``limits.min_foreground_ml``; neighbour correlation over the image below
    ``limits.min_correlation`` (noise). Volumes above 80^3 voxels are checked on a regular
    subsample of about 80^3 (neighbours then 2-4 mm apart on 1 mm scans: anatomy is still smooth).
    """
    data = volume.data
    low, high = (float(v) for v in torch.aminmax(memory_order(data).reshape(-1)))  # one sweep of memory
    if high <= low:
        return [f"the image is constant ({low:.6g} everywhere)"]
    if high <= 0:
        return ["the image has no positive intensities (MRI magnitude images are non-negative)"]
    step = max(1, math.ceil((data.numel() / 80**3) ** (1 / 3)))  # about 80^3 voxels looked at: ~10 ms
    view = data[::step, ::step, ::step].float()
    voxel_ml = float(volume.spacing.prod()) * step**3 / 1000.0
    mask = threshold_mask(view.clamp_min(0.0))
    foreground_ml = float(mask.sum()) * voxel_ml
    if foreground_ml < limits.min_foreground_ml:
        return [f"the image is nearly empty (foreground {foreground_ml:.3g} ml; a brain is about 1200 ml)"]
    correlation = neighbour_correlation(view)
    if correlation < limits.min_correlation:
        return [f"the image has no anatomical structure (neighbouring voxels correlate {correlation:.2f}, "
                f"anatomy > {limits.min_correlation:g}: noise?)"]  # fmt: skip
    return []


def check_brain_image(volume: Volume, where: str, limits: ImageLimits = ImageLimits()) -> None:
    """Raise ValueError with the reasons of ``brain_image_problems``, naming the input."""
    problems = brain_image_problems(volume, limits)
    if problems:
        raise ValueError(f"{where}: not a head or brain MRI posereg can register: " + "; ".join(problems))
