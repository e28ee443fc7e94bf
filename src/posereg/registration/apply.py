"""Applying a rigid transform to an image: the moving scan (or its labels) on a reference grid.

A posereg transform ``T(x) = R (x - c) + c + t`` maps reference (atlas) points to moving points
(RAS mm), the direction resampling needs: the output at reference voxel ``x`` is the moving
image at ``T(x)``. Resampling is SimpleITK's ``Resample(moving, reference, T)`` itself, at the
full resolution of the reference grid, so that the output equals what ITK-based tools give with
the written transform file. ``--inverse`` maps the other way: the reference image onto the
moving grid, or any image from the atlas side onto the scan.
"""

from __future__ import annotations

import enum

import torch
from torch import Tensor

from posereg.data import Volume
from posereg.data.image_io import from_sitk_image, to_sitk_image
from posereg.registration.itk import rigid_to_sitk

__all__ = ["Interpolation", "invert_rigid", "resample_rigid"]


class Interpolation(enum.Enum):
    """How intensities between voxels are read."""

    NEAREST = "nearest"  # label maps: values are kept, never mixed
    LINEAR = "linear"  # scans: trilinear
    BSPLINE = "bspline"  # scans, sharper: cubic B-spline (may overshoot near edges)


def _sitk_interpolator(interpolation: Interpolation) -> int:
    import SimpleITK as sitk

    return {Interpolation.NEAREST: sitk.sitkNearestNeighbor, Interpolation.LINEAR: sitk.sitkLinear,
            Interpolation.BSPLINE: sitk.sitkBSpline}[interpolation]  # fmt: skip


def invert_rigid(R: Tensor, t: Tensor, centre: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The inverse of ``T(x) = R (x - c) + c + t`` about the same centre.

    ``T^-1(y) = R^T (y - c) + c - R^T t``: returns ``(R^T, -R^T t, c)`` (float64, RAS mm).
    """
    R64, t64 = R.to(torch.float64), t.to(torch.float64)
    return R64.mT, -(R64.mT @ t64), centre.to(torch.float64)


def resample_rigid(
    moving: Volume,
    reference: Volume,
    R: Tensor,
    t: Tensor,
    centre: Tensor,
    interpolation: Interpolation = Interpolation.LINEAR,
    *,
    inverse: bool = False,
    default_value: float = 0.0,
) -> Volume:
    """``moving`` resampled onto ``reference``'s grid through ``T`` (or ``T^-1`` with ``inverse``).

    Args:
        moving: the image to resample (any grid, RAS).
        reference: the output grid (its intensities are not used).
        R, t, centre: ``(3, 3)``, ``(3,)``, ``(3,)`` the transform, reference -> moving, RAS mm.
        interpolation: see ``Interpolation``.
        inverse: resample through ``T^-1`` (moving -> reference points): for images that live
            on the reference side, e.g. an atlas label map brought onto the scan.
        default_value: the value outside the moving image.

    Returns:
        ``Volume`` on ``reference``'s grid, float32: exactly SimpleITK's
        ``Resample(moving, reference, T, interpolator, default_value)``.
    """
    import SimpleITK as sitk

    if inverse:
        R, t, centre = invert_rigid(R, t, centre)
    out = sitk.Resample(to_sitk_image(moving), to_sitk_image(reference), rigid_to_sitk(R, t, centre),
                        _sitk_interpolator(interpolation), float(default_value), sitk.sitkFloat32)  # fmt: skip
    return from_sitk_image(out)
