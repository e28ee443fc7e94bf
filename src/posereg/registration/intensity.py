"""Intensity-based rigid registration with SimpleITK: the VVR baselines of Salehi et al. (2018).

One local optimiser, started from different places:

- VVR-GC: geometric-centre start (identity rotation, grid centres matched);
- VVR-PAA: principal-axes start (``posereg.registration.moments``);
- VVR-Deep: the networks' estimate as the start (``posereg.registration.pipeline``);
- VVR-Search: the best of a coarse search over start rotations (``search``).

Settings follow what worked on the MNI152 data in posereg's measurements (docs/benchmarks/): Mattes mutual information on 25%
of the voxels (seeded; with 10% the stochastic gradient kept the optimiser from settling
within 200 iterations per level and left 2-6 degrees of error at 15-degree starts), an ``Euler3DTransform`` about the fixed grid centre, regular-step
gradient descent with scales from physical shifts, a 3-level pyramid (shrink 4/2/1,
smoothing 2/1/0 mm). Its capture range is about 20-30 degrees: started further away it
falls into wrong local minima, which is why the starts matter.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field

import torch
from torch import Tensor

from posereg.data import Volume
from posereg.data.image_io import to_sitk_image
from posereg.registration.itk import rigid_from_sitk, rigid_to_sitk

__all__ = ["IntensitySettings", "Metric", "RigidResult", "register_rigid"]


class Metric(enum.Enum):
    """Similarity metric of the local registration."""

    MATTES_MI = "mattes_mi"  # multi-modal: Mattes mutual information
    NCC = "ncc"  # mono-modal: normalised cross-correlation (SimpleITK's "correlation")


@dataclass(frozen=True)
class IntensitySettings:
    """Settings of ``register_rigid`` (defaults: the VVR-GC configuration).

    Attributes:
        metric: the similarity metric.
        histogram_bins: Mattes MI histogram bins.
        sampling: fraction of fixed voxels sampled per iteration (random, seeded); 1 uses every
            voxel, in order (no sampling).
        shrink_factors: pyramid shrink factors, coarse to fine.
        smoothing_mm: Gaussian smoothing per level, mm.
        learning_rate: the optimiser's largest step (in the physical-shift scaling, ~mm).
        min_step: stop when the step falls below this.
        iterations: at most this many iterations per level.
        seed: the sampling seed, >= 1. SimpleITK reads 0 as "seed from the wall clock", which
            made runs with seed 0 differ from call to call; posereg refuses it.
    """

    metric: Metric = Metric.MATTES_MI
    histogram_bins: int = 50
    sampling: float = 0.25
    shrink_factors: tuple[int, ...] = (4, 2, 1)
    smoothing_mm: tuple[float, ...] = (2.0, 1.0, 0.0)
    learning_rate: float = 2.0
    min_step: float = 1e-3
    iterations: int = 200
    seed: int = 1

    def __post_init__(self) -> None:
        if not (isinstance(self.seed, int) and self.seed >= 1):
            raise ValueError(f"seed: expected an integer >= 1 (SimpleITK reads 0 as the wall clock), got {self.seed!r}")
        if not 0 < self.sampling <= 1:
            raise ValueError(f"sampling: expected a fraction in (0, 1], got {self.sampling}")


@dataclass(frozen=True)
class RigidResult:
    """A rigid registration result, ``T(x) = R (x - c) + c + t`` in RAS mm, fixed -> moving.

    Attributes:
        R: ``(3, 3)`` rotation. t: ``(3,)`` translation (mm). centre: ``(3,)`` (mm).
        metric_value: the final metric value (SimpleITK's sign: lower is better).
        iterations: iterations of the last level.
        seconds: wall-clock time.
        stop: the optimiser's stopping condition.
    """

    R: Tensor
    t: Tensor
    centre: Tensor
    metric_value: float
    iterations: int
    seconds: float
    stop: str = field(default="")


def register_rigid(
    fixed: Volume,
    moving: Volume,
    initial: tuple[Tensor, Tensor] | None = None,
    settings: IntensitySettings = IntensitySettings(),
    fixed_mask: Tensor | None = None,
) -> RigidResult:
    """Local intensity-based rigid registration of ``moving`` to ``fixed``.

    Args:
        fixed: the reference (e.g. the atlas).
        moving: the image to align.
        initial: ``(R, t)`` start about ``fixed.centre`` (fixed -> moving, RAS); default the
            geometric-centre start (identity rotation, grid centres matched).
        settings: metric, pyramid and optimiser settings.
        fixed_mask: ``(I, J, K)`` booleans restricting the metric to these fixed voxels.

    Returns:
        ``RigidResult`` with the transform about ``fixed.centre``.
    """
    import SimpleITK as sitk

    if len(settings.shrink_factors) != len(settings.smoothing_mm):
        raise ValueError("settings: shrink_factors and smoothing_mm need one entry per level")
    start = time.perf_counter()
    c = fixed.centre
    if initial is None:
        R0 = torch.eye(3, dtype=torch.float64)
        t0 = moving.centre - fixed.centre
    else:
        R0, t0 = (x.detach().to(torch.float64).cpu() for x in initial)
    method = sitk.ImageRegistrationMethod()
    if settings.metric is Metric.MATTES_MI:
        method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=settings.histogram_bins)
    else:
        method.SetMetricAsCorrelation()
    if settings.sampling < 1:
        method.SetMetricSamplingStrategy(method.RANDOM)
        method.SetMetricSamplingPercentage(settings.sampling, settings.seed)
    else:  # every voxel once (RANDOM at 100% would draw with replacement)
        method.SetMetricSamplingStrategy(method.NONE)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=settings.learning_rate, minStep=settings.min_step, numberOfIterations=settings.iterations,
        relaxationFactor=0.5, gradientMagnitudeTolerance=1e-6,
    )  # fmt: skip
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(list(settings.shrink_factors))
    method.SetSmoothingSigmasPerLevel(list(settings.smoothing_mm))
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    fixed_image = to_sitk_image(fixed)
    if fixed_mask is not None:
        mask = to_sitk_image(fixed.with_data(fixed_mask.to(torch.float32)))
        method.SetMetricFixedMask(sitk.Cast(mask, sitk.sitkUInt8))
    method.SetInitialTransform(rigid_to_sitk(R0, t0, c), inPlace=False)
    transform = method.Execute(fixed_image, to_sitk_image(moving))
    R, t, centre = rigid_from_sitk(transform)
    # Express about fixed.centre: R (x - c') + c' + t' = R (x - c) + c + [t' + (I - R)(c' - c)].
    t = t + (centre - c) - R @ (centre - c)
    return RigidResult(
        R, t, c, float(method.GetMetricValue()), int(method.GetOptimizerIteration()),
        time.perf_counter() - start, method.GetOptimizerStopConditionDescription(),
    )  # fmt: skip
