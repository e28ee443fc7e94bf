"""Principal-axes (moments) alignment: the VVR-PAA initialisation of Salehi et al. (2018).

Each image's intensity-weighted centroid and second-moment (inertia) matrix are computed in
RAS millimetres over its brain mask (background noise left in biases the moments and flips
the axes by 180 degrees, as measured on noisy copies of the MNI152 template). With ``moving(y) = fixed(T^-1 y)`` and ``T(x) = R (x - c) + c + t``,
the moments satisfy ``C_m = R C_f R^T``, so ``R = E_m D E_f^T`` for the eigenvector matrices
``E`` and a diagonal sign matrix ``D`` with ``det R = 1``. The four proper sign choices
cannot be told apart by third moments on brains (nearly left-right symmetric: the skewness
is ~0 along one axis and its sign is noise); they are scored instead by the normalised
cross-correlation of the fixed image with the moving image resampled by each candidate, and
the best is kept. On an exact rotated copy this recovers every rotation; what remains are the
errors of the axes themselves when the anatomy differs.
"""

from __future__ import annotations

import enum
import itertools

import torch
from torch import Tensor

from posereg.data import Volume, brain_mask, rigid_resample
from posereg.registration._similarity import ncc_rows

__all__ = ["SignChoice", "centre_of_gravity", "image_moments", "principal_axes_alignment"]


def centre_of_gravity(volume: Volume, mask: Tensor | None = None) -> Tensor:
    """Intensity-weighted centroid (RAS mm) over ``mask`` (default ``brain_mask(volume.data)``)."""
    return _weighted_coordinates(volume, mask)[2]


def _weighted_coordinates(volume: Volume, mask: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    mask = brain_mask(volume.data) if mask is None else mask
    w = torch.where(mask, volume.data, 0.0).to(torch.float64).reshape(-1)
    if not bool(w.sum() > 0):
        raise ValueError("volume: no foreground intensity under the mask; cannot compute moments")
    x = volume.world_coordinates().reshape(-1, 3)
    return x, w, (x * w[:, None]).sum(0) / w.sum()


def image_moments(volume: Volume, mask: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Centroid, principal axes and skewness of an image in RAS millimetres.

    Args:
        volume: the image.
        mask: ``(I, J, K)`` voxels to use; default ``brain_mask(volume.data)``.

    Returns:
        ``(centroid (3,), axes (3, 3), skew (3,))``: axes are eigenvector columns of the
        second-moment matrix, largest eigenvalue first; ``skew[k]`` is the third moment
        along ``axes[:, k]``.
    """
    x, w, centroid = _weighted_coordinates(volume, mask)
    d = x - centroid
    cov = (d * w[:, None]).T @ d / w.sum()
    eigenvalues, vectors = torch.linalg.eigh(cov)
    vectors = vectors.flip(-1)  # largest first
    projected = d @ vectors
    skew = (projected**3 * w[:, None]).sum(0) / w.sum()
    return centroid, vectors, skew


class SignChoice(enum.Enum):
    """How ``principal_axes_alignment`` picks among the axis sign flips."""

    NCC = "ncc"  # posereg's default: the candidate whose resampled image correlates best
    SKEWNESS = "skewness"  # the textbook rule: match the signs of the third moments


def principal_axes_alignment(
    fixed: Volume,
    moving: Volume,
    fixed_mask: Tensor | None = None,
    moving_mask: Tensor | None = None,
    signs: SignChoice = SignChoice.NCC,
) -> tuple[Tensor, Tensor]:
    """Rigid transform ``(R, t)`` about the fixed grid centre that aligns the principal axes.

    Returns ``R`` (3, 3) and ``t`` (3,) in posereg's convention ``T(x) = R (x - c) + c + t``
    (``c = fixed.centre``), mapping fixed points to moving points (ITK's direction), so that
    ``rigid_resample(moving, R, t, c)`` is the moving image aligned to the fixed one.
    ``signs=SignChoice.SKEWNESS`` gives the classic moments method (the paper's VVR-PAA start),
    which flips whenever an axis's skewness is near zero.
    """
    fixed_mask = brain_mask(fixed.data) if fixed_mask is None else fixed_mask
    c_f, E_f, skew_f = image_moments(fixed, fixed_mask)
    c_m, E_m, skew_m = image_moments(moving, moving_mask)
    c = fixed.centre
    if signs is SignChoice.SKEWNESS:
        d = torch.sign(skew_f) * torch.sign(skew_m)
        d = torch.where(d == 0, 1.0, d)
        R = E_m @ torch.diag(d) @ E_f.T
        if torch.linalg.det(R) < 0:  # the least reliable (smallest-variance) axis gives way
            d[2] = -d[2]
            R = E_m @ torch.diag(d) @ E_f.T
        return R, c_m - c - R @ (c_f - c)
    candidates = []
    for signs in itertools.product((1.0, -1.0), repeat=2):
        D = torch.diag(torch.tensor([*signs, signs[0] * signs[1]], dtype=torch.float64))
        R = E_m @ D @ E_f.T
        if torch.linalg.det(R) < 0:  # E_m, E_f may be improper: flip the third axis
            R = E_m @ D @ torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)) @ E_f.T
        candidates.append(R)
    R = torch.stack(candidates)
    t = c_m - c - (R @ (c_f - c).unsqueeze(-1)).squeeze(-1)  # T(c_f) = c_m
    warped = rigid_resample(moving.data, moving.affine, R, t, c, out_affine=fixed.affine, out_shape=fixed.shape)
    best = int(torch.argmax(ncc_rows(fixed.data[fixed_mask], warped[:, 0][:, fixed_mask])))
    return R[best], t[best]

