"""On-the-fly rigid-pose training data: subjects under random rotations and translations.

Item ``i`` of a ``RigidPoseDataset`` is a scan of one subject moved by a rigid transform
``T(x) = R (x - c) + c + t`` (RAS mm, ``c`` the grid centre): its content is the subject
rotated by ``R`` about ``c`` and shifted by ``t``, i.e. ``moving(y) = subject(T^-1 y)``.
``T`` maps atlas (fixed) points to moving points, ITK's direction for a registration
result, so registering the moving image back means estimating ``(R, t)``; ``R`` is the
Pose-Net's target. Scanner effects (cropping, noise) are applied after the motion, in the
scanner frame, and the intensities are then normalised as ``preprocess_intensity`` does for
real scans.

Following torchio's design, each item draws its randomness from a ``torch.Generator``
seeded by ``(seed, epoch, i)``: items are reproducible, independent of worker count and
order, new in every epoch (``set_epoch``), and nothing touches the global RNG.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from posereg.data.resample import rigid_resample
from posereg.data.synthetic import ScannerVariation, scanner_effects
from posereg.data.volume import Volume, normalize_intensity, robust_range, threshold_mask
from posereg.geometry import matrix_to_rotvec, random_rotation

__all__ = [
    "EpochDataset", "EpochSampler", "RigidPoseDataset", "item_generator", "move_volume", "preprocess_intensity", "scan_intensity_range",
]  # fmt: skip

RotationSampler = Callable[[torch.Generator], Tensor]


def item_generator(seed: int, index: int, epoch: int = 0) -> torch.Generator:
    """The generator of item ``index`` in ``epoch``.

    torch's CPU generator keeps only the low 32 bits of a seed (``seed * 2**32 + index``
    would give every seed the same items), so ``(seed, epoch, index)`` is hashed to 32 bits
    by NumPy's ``SeedSequence``: streams of different triples differ except for chance
    collisions (probability about ``n^2 / 2^33`` among ``n`` items).
    """
    if min(seed, index, epoch) < 0:
        raise ValueError(f"seed, index, epoch: expected non-negative ints, got {seed}, {index}, {epoch}")
    state = np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0]
    return torch.Generator().manual_seed(int(state))


def scan_intensity_range(data: Tensor) -> tuple[float, float]:
    """The 1st and 99th intensity percentiles of a scan's foreground (``threshold_mask``)."""
    return robust_range(data, threshold_mask(data))


def preprocess_intensity(data: Tensor, intensity_range: tuple[float, float] | None = None) -> Tensor:
    """Normalise a scan for the networks: [0, 1] over the robust range of its foreground.

    The foreground is ``threshold_mask`` (background noise excluded); the connected-component
    ``brain_mask`` gives nearly the same percentiles at ten times the cost, which would make
    on-the-fly training data and the deep pipeline's hot path slower for nothing.

    Args:
        data: ``(I, J, K)`` intensities.
        intensity_range: ``scan_intensity_range`` of the same scan seen on another grid, to
            skip recomputing it (the deep pipeline resamples one scan several times).
    """
    if intensity_range is None:
        intensity_range = scan_intensity_range(data)
    return normalize_intensity(data, intensity_range=intensity_range)


def move_volume(volume: Volume, R: Tensor, t: Tensor) -> Tensor:
    """The content of ``volume`` rotated by ``R`` about its grid centre and shifted by ``t`` (mm).

    ``moving(y) = volume(T^-1 y)``, ``T^-1(y) = R^T (y - c - t) + c``.

    Args:
        volume: the image to move.
        R: ``(3, 3)`` or ``(N, 3, 3)`` rotations (RAS).
        t: ``(3,)`` or ``(N, 3)`` translations (mm).

    Returns:
        ``(N, 1, I, J, K)`` moved images on the same grid.
    """
    R = R.to(torch.float64)
    t = t.to(torch.float64)
    Rt = R.mT
    return rigid_resample(volume.data, volume.affine, Rt, -(Rt @ t.unsqueeze(-1)).squeeze(-1), volume.centre)


class EpochSampler(Sampler):
    """Yields ``(epoch, i)`` for ``i`` in ``range(length)``: new items every epoch, with workers.

    Lightning (and any loop that calls ``set_epoch``) advances the epoch in the main process;
    the pairs carry it to the dataset copies in worker processes.
    """

    def __init__(self, length: int, shuffle: bool = False, seed: int = 0) -> None:
        self.length, self.shuffle, self.seed, self.epoch = length, shuffle, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose items are yielded next."""
        self.epoch = int(epoch)

    def __iter__(self):  # type: ignore[no-untyped-def]
        order = range(self.length)
        if self.shuffle:
            order = torch.randperm(self.length, generator=item_generator(self.seed, 0, self.epoch)).tolist()
        return iter([(self.epoch, i) for i in order])

    def __len__(self) -> int:
        return self.length


class EpochDataset(Dataset):
    """Base of posereg's on-the-fly datasets: ``length`` items per epoch, new items each epoch.

    Subclasses draw item ``i`` of epoch ``e`` from generators seeded by ``(seed, i, e)``
    (``item_generator``) and index with ``resolve`` (a plain index, or the ``(epoch, index)``
    pairs of ``EpochSampler``).
    """

    def __init__(self, length: int, seed: int) -> None:
        if length < 1:
            raise ValueError(f"length: expected a positive number of items, got {length}")
        self.length, self.seed, self.epoch = length, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Draw the items of ``epoch`` (epoch 0 by default)."""
        if epoch < 0:
            raise ValueError(f"epoch: expected a non-negative int, got {epoch}")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def resolve(self, index: int | tuple[int, int]) -> tuple[int, int]:
        """``(epoch, index)`` of an item request; IndexError outside ``range(length)``."""
        epoch, index = index if isinstance(index, tuple) else (self.epoch, index)
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for a dataset of {self.length} items")
        return epoch, index


class RigidPoseDataset(EpochDataset):
    """Random rigid motions of subjects, generated on the fly.

    Args:
        subjects: subject volumes on one grid (e.g. ``synthesize_subject`` outputs).
        length: the number of items (an epoch).
        seed: base seed; item ``i`` uses ``item_generator(seed, i, epoch)``.
        max_translation_mm: translations are uniform in ``[-m, m]`` per axis.
        rotation_sampler: ``generator -> (3, 3)`` rotation; default Haar-uniform (Arvo).
        scanner: cropping and noise after the motion; ``None`` for none.
        reference: if given (the atlas, on the subjects' grid), appended as a second image
            channel: the Correction-Net's input.

    Items are dicts: ``image`` ``(C, I, J, K)`` float32 in [0, 1] (``C`` = 1, or 2 with a
    reference), ``rotation`` ``(3, 3)``,
    ``rotvec`` ``(3,)`` (radians, the ``pi * tanh`` head's target), ``translation`` ``(3,)``
    (mm), all float32, and ``subject`` (int).
    """

    def __init__(
        self,
        subjects: Sequence[Volume],
        length: int,
        seed: int,
        *,
        max_translation_mm: float = 10.0,
        rotation_sampler: RotationSampler | None = None,
        scanner: ScannerVariation | None = ScannerVariation(),
        reference: Volume | None = None,
    ) -> None:
        if not subjects:
            raise ValueError("subjects: expected at least one subject volume")
        shapes = {s.shape for s in subjects}
        if len(shapes) != 1 or any(not torch.equal(s.affine, subjects[0].affine) for s in subjects):
            raise ValueError(f"subjects: expected volumes on one grid, got shapes {sorted(shapes)}")
        super().__init__(length, seed)
        if not max_translation_mm >= 0:
            raise ValueError(f"max_translation_mm: expected >= 0, got {max_translation_mm}")
        self.subjects = list(subjects)
        self.max_translation_mm = float(max_translation_mm)
        self.rotation_sampler = rotation_sampler or (lambda gen: random_rotation((), generator=gen, dtype=torch.float64))
        self.scanner = scanner
        if reference is not None and (reference.shape != subjects[0].shape or not torch.equal(reference.affine, subjects[0].affine)):
            raise ValueError("reference: expected a volume on the subjects' grid")
        self.reference = reference

    def __getitem__(self, index: int | tuple[int, int]) -> dict[str, Tensor | int]:
        """Item ``index`` of the current epoch, or ``(epoch, index)`` (what ``EpochSampler`` yields)."""
        epoch, index = self.resolve(index)
        gen = item_generator(self.seed, index, epoch)
        subject = int(torch.randint(len(self.subjects), (), generator=gen))
        R = self.rotation_sampler(gen).to(torch.float64)
        m = self.max_translation_mm
        t = (2 * torch.rand(3, generator=gen, dtype=torch.float64) - 1) * m
        moving = move_volume(self.subjects[subject], R, t)[0, 0]
        if self.scanner is not None:
            moving = scanner_effects(moving, gen, self.scanner)
        image = preprocess_intensity(moving).unsqueeze(0)
        if self.reference is not None:
            image = torch.cat((image, self.reference.data.unsqueeze(0).to(image.dtype)))
        return {
            "image": image.to(torch.float32),
            "rotation": R.to(torch.float32),
            "rotvec": matrix_to_rotvec(R).to(torch.float32),
            "translation": t.to(torch.float32),
            "subject": subject,
        }
