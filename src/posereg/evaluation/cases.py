"""Seeded synthetic registration cases: unseen subjects under known rigid motions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from posereg.data import (
    Atlas,
    ScannerVariation,
    Split,
    Volume,
    move_volume,
    preprocess_intensity,
    rician_noise,
    scanner_effects,
    subject_seed,
    synthesize_subject,
)
from posereg.data.slices import SliceGeometry, cut_slices, half_space_rotation, preprocess_slice
from posereg.geometry import random_rotation, random_rotation_with_angle

__all__ = ["RegistrationCase", "SliceCase", "synthetic_cases", "synthetic_slice_cases"]


@dataclass(frozen=True)
class RegistrationCase:
    """A moving scan and the rigid motion that made it from a test subject.

    ``moving(y) = subject(T^-1 y)`` with ``T(x) = R (x - c) + c + t`` (RAS mm, ``c`` the grid
    centre): ``T`` maps atlas-frame points to moving points, what a registration estimates.

    Attributes:
        moving: the scan (intensity-normalised, on the subject's grid).
        R: ``(3, 3)`` true rotation; t: ``(3,)`` true translation, mm.
        subject: index of the test subject.
    """

    moving: Volume
    R: Tensor
    t: Tensor
    subject: int


def synthetic_cases(
    atlas: Atlas,
    subjects: int,
    rotations: int,
    seed: int = 0,
    *,
    angles_deg: Sequence[float] | None = None,
    max_translation_mm: float = 10.0,
    scanner: ScannerVariation = ScannerVariation(),
) -> list[RegistrationCase]:
    """``subjects x rotations`` cases from the test seed family (never used in training).

    Args:
        atlas: the atlas the subjects are synthesised from.
        subjects: number of test subjects.
        rotations: motions per subject.
        seed: seed of the motions and scanner effects.
        angles_deg: if given (length ``rotations``), motion ``k`` has this rotation angle about
            a random axis; otherwise rotations are Haar-uniform.
        max_translation_mm: translations uniform in ``[-m, m]`` per axis.
        scanner: field-of-view cropping and noise.
    """
    if subjects < 1 or rotations < 1:
        raise ValueError(f"subjects, rotations: expected positive counts, got {subjects}, {rotations}")
    if angles_deg is not None and len(angles_deg) != rotations:
        raise ValueError(f"angles_deg: expected {rotations} angles (one per rotation), got {len(angles_deg)}")
    if angles_deg is not None and any(not 0.0 <= a <= 180.0 for a in angles_deg):
        raise ValueError(f"angles_deg: expected angles within [0, 180] degrees, got {list(angles_deg)}")
    cases = []
    for s in range(subjects):
        subject = synthesize_subject(atlas, torch.Generator().manual_seed(subject_seed(Split.TEST, s)))
        for k in range(rotations):
            gen = torch.Generator().manual_seed(seed * 100_003 + s * 1_000 + k)
            if angles_deg is None:
                R = random_rotation((), generator=gen, dtype=torch.float64)
            else:
                a = min(math.radians(float(angles_deg[k])), math.pi)
                R = random_rotation_with_angle((), a, a, generator=gen, dtype=torch.float64)
            t = (2 * torch.rand(3, generator=gen, dtype=torch.float64) - 1) * max_translation_mm
            moving = scanner_effects(move_volume(subject, R, t)[0, 0], gen, scanner)
            cases.append(RegistrationCase(subject.with_data(preprocess_intensity(moving)), R, t, s))
    return cases


@dataclass(frozen=True)
class SliceCase:
    """A slice cut from a test subject at a known pose (``posereg.data.slices`` frames).

    Attributes:
        image: ``(size, size)`` the slice, normalised by ``preprocess_slice``.
        R: ``(3, 3)`` true rotation; index: true slice index; subject: test subject index.
    """

    image: Tensor
    R: Tensor
    index: float
    subject: int


def synthetic_slice_cases(
    atlas: Atlas,
    subjects: int,
    rotations: int,
    seed: int = 0,
    *,
    geometry: SliceGeometry | None = None,
    middle_fraction: float = 0.66,
    noise: float = 0.03,
) -> list[SliceCase]:
    """``subjects x rotations`` single slices of unseen test subjects (never used in training).

    Each case rotates a test subject by a half-space rotation (``half_space_rotation``) and
    cuts one slice at a random index in the middle ``middle_fraction`` of its stack, with
    Rician noise, seeded by ``(seed, subject, k)``.
    """
    if subjects < 1 or rotations < 1:
        raise ValueError(f"subjects, rotations: expected positive counts, got {subjects}, {rotations}")
    geometry = geometry or SliceGeometry(atlas.image.shape[0], float(atlas.image.spacing[0]), atlas.image.shape[2])
    low, high = geometry.middle_indices(middle_fraction)
    cases = []
    for s in range(subjects):
        subject = synthesize_subject(atlas, torch.Generator().manual_seed(subject_seed(Split.TEST, s)))
        for k in range(rotations):
            gen = torch.Generator().manual_seed(seed * 100_003 + s * 1_000 + k)
            R = half_space_rotation(gen)
            index = float(torch.randint(low, high, (), generator=gen))
            image = rician_noise(cut_slices(subject, R, torch.tensor(index), geometry), noise, gen)
            cases.append(SliceCase(preprocess_slice(image), R, index, s))
    return cases
