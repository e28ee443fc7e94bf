"""Synthetic subjects: the atlas under seeded anatomical and scanner variation.

A subject differs from the atlas in anatomy and appearance (in the atlas frame):
a smooth random non-linear deformation, a global scale, an anisotropic stretch along random
axes, a smooth multiplicative bias field and a contrast (gamma) change. A scan of a subject
then adds what the scanner does, in the scanner frame, after the rigid motion: a cropped
field of view and Rician noise (``scanner_effects``). With these, principal-axes (moments)
alignment is no longer exact, as it would be on a rotated copy of the atlas.

Every random choice comes from an explicit ``torch.Generator``; ``subject_seed`` gives
training and test subjects disjoint seeds (even and odd), so the fixed test set can never
be drawn for training.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from posereg.data.atlas import Atlas
from posereg.data.resample import sample_at_points
from posereg.data.volume import Volume
from posereg.geometry import project_to_so3, random_rotation

__all__ = [
    "ScannerVariation", "Split", "SubjectVariation", "rician_noise", "scanner_effects", "subject_seed", "synthesize_subject",
]  # fmt: skip


class Split(enum.Enum):
    """Which disjoint family of subject seeds."""

    TRAIN = 0
    TEST = 1


def subject_seed(split: Split, index: int, base: int = 0) -> int:
    """Seed of subject ``index`` of a split: ``2 (base + index) + split`` (train even, test odd)."""
    if index < 0 or base < 0:
        raise ValueError(f"index, base: expected non-negative ints, got {index}, {base}")
    return 2 * (base + index) + split.value


@dataclass(frozen=True)
class SubjectVariation:
    """Ranges of anatomical and appearance variation (uniform draws within them).

    Attributes:
        deformation_mm: peak of each displacement component of the smooth non-linear
            deformation, mm (the vector can reach ``sqrt(3)`` times this).
        deformation_spacing_mm: spacing of its random control grid, mm (larger: smoother).
        scale: global isotropic scale range (head size).
        stretch: maximum relative stretch along each of three random orthogonal axes.
        bias: maximum amplitude of the log bias field (``exp(b)`` multiplies intensities).
        gamma: range of the contrast exponent ``x -> x^gamma``.
    """

    deformation_mm: float = 6.0
    deformation_spacing_mm: float = 40.0
    scale: tuple[float, float] = (0.95, 1.05)
    stretch: float = 0.05
    bias: float = 0.3
    gamma: tuple[float, float] = (0.7, 1.4)


@dataclass(frozen=True)
class ScannerVariation:
    """What a scan adds in the scanner frame.

    Attributes:
        crop: maximum fraction of the field of view cut off at each of up to two faces.
        noise: Rician noise level, relative to the [0, 1] intensity range.
    """

    crop: float = 0.15
    noise: float = 0.03


def _uniform(gen: torch.Generator, low: float, high: float, shape: tuple[int, ...] = ()) -> Tensor:
    return low + (high - low) * torch.rand(shape, generator=gen, dtype=torch.float64)


def _smooth_field(gen: torch.Generator, shape: tuple[int, ...], coarse: tuple[int, ...], channels: int) -> Tensor:
    """Random field ``(channels, *shape)`` in [-1, 1]: trilinear interpolation of a coarse random grid.

    Piecewise linear (kinks at the control points, which are ``deformation_spacing_mm`` apart
    and so far coarser than the voxels); each channel is scaled to peak at exactly 1.
    """
    grid = torch.rand((1, channels, *coarse), generator=gen, dtype=torch.float32) * 2 - 1
    field = F.interpolate(grid, size=shape, mode="trilinear", align_corners=True)[0]
    return field / field.abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)


def _remove_rigid_part(x: Tensor, points: Tensor, mask: Tensor, c: Tensor) -> Tensor:
    """Compose ``points = S(x)`` with the inverse of its best rigid fit over the brain.

    The random warp may rotate or shift the brain as a whole; that would make the subject's
    true pose differ from its label. The least-squares rigid fit ``Q (x - c) + c + d`` of
    ``S`` on the brain voxels (Kabsch: ``Q = proj_SO3(sum (p - p_bar)(x - x_bar)^T)``) is
    divided out, so that the best rigid alignment of subject and atlas is the identity.
    """
    xs, ps = x[mask], points[mask]
    x_bar, p_bar = xs.mean(0), ps.mean(0)
    Q = project_to_so3((ps - p_bar).T @ (xs - x_bar))
    d = p_bar - c - Q @ (x_bar - c)
    return (points - c - d) @ Q + c  # Q^T (p - c - d) + c, as row vectors


def synthesize_subject(atlas: Atlas, generator: torch.Generator, variation: SubjectVariation = SubjectVariation()) -> Volume:
    """A synthetic subject in the atlas frame and grid (no rigid motion, no scanner effects).

    ``subject(x) = bias(x) * atlas(S(x))^gamma`` with
    ``S(x) = c + A (x - c) + u(x)``: ``A = s Q diag(1 + e) Q^T`` (scale ``s``, stretches ``e``
    along random axes ``Q``), ``u`` a smooth random displacement, ``c`` the grid centre;
    then the rigid part of ``S`` over the brain is removed, so that the subject's pose is the
    atlas's and a label ``(R, t)`` of a moved scan is its true rigid pose.

    Args:
        atlas: the atlas (its image and grid).
        generator: the only source of randomness (e.g. seeded with ``subject_seed``).
        variation: the ranges.

    Returns:
        ``Volume`` on the atlas grid, intensities in [0, 1].
    """
    image = atlas.image
    gen = generator
    c = image.centre
    s = float(_uniform(gen, *variation.scale))
    e = _uniform(gen, -variation.stretch, variation.stretch, (3,))
    Q = random_rotation((), generator=gen, dtype=torch.float64)
    A = s * Q @ torch.diag(1 + e) @ Q.T
    extent = torch.tensor(image.shape, dtype=torch.float64) * image.spacing
    coarse = tuple(max(2, int(math.ceil(float(x) / variation.deformation_spacing_mm)) + 1) for x in extent)
    u = variation.deformation_mm * _smooth_field(gen, image.shape, coarse, 3).to(torch.float64)
    x = image.world_coordinates()
    points = c + (x - c) @ A.T + u.permute(1, 2, 3, 0)
    points = _remove_rigid_part(x, points, atlas.mask, c)
    warped = sample_at_points(image, points).clamp(0.0, 1.0)
    gamma = float(_uniform(gen, *variation.gamma))
    bias = torch.exp(variation.bias * _smooth_field(gen, image.shape, (3, 3, 3), 1)[0])
    return image.with_data((bias * warped.pow(gamma)).clamp(0.0, 1.0))


def scanner_effects(data: Tensor, generator: torch.Generator, variation: ScannerVariation = ScannerVariation()) -> Tensor:
    """Field-of-view cropping and Rician noise, applied to an ``(I, J, K)`` scan in its own frame.

    Up to two faces of the grid (chosen at random) are cut by a random fraction up to
    ``variation.crop`` of the extent; then ``|x + n1 + i n2|`` with Gaussian ``n1, n2`` of
    standard deviation ``variation.noise`` (magnitude MRI noise: positive, also in the
    background).
    """
    out = data.clone()
    faces = torch.randperm(6, generator=generator)[: int(torch.randint(0, 3, (), generator=generator))]
    for face in faces.tolist():
        axis, high = divmod(face, 2)
        n = out.shape[axis]
        cut = int(round(float(_uniform(generator, 0.0, variation.crop)) * n))
        if cut == 0:
            continue
        index = [slice(None)] * 3
        index[axis] = slice(n - cut, n) if high else slice(0, cut)
        out[tuple(index)] = 0.0
    return rician_noise(out, variation.noise, generator)


def rician_noise(data: Tensor, level: float, generator: torch.Generator) -> Tensor:
    """Magnitude-MRI noise ``|x + n1 + i n2|``, ``n1, n2`` Gaussian of std ``level`` (any shape).

    Args:
        data: intensities (``[0, 1]`` scale for ``level`` to be relative to it).
        level: the standard deviation of each Gaussian component.
        generator: draws ``n1`` then ``n2``.
    """
    n1 = level * torch.randn(data.shape, generator=generator, dtype=data.dtype)
    n2 = level * torch.randn(data.shape, generator=generator, dtype=data.dtype)
    return torch.sqrt((data + n1) ** 2 + n2**2)
