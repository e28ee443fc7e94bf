"""Principal-axes (moments) alignment."""

from __future__ import annotations

import math

import pytest
import torch

from posereg import geometry as g
from posereg.data import Volume
from posereg.data.dataset import move_volume
from posereg.registration import image_moments, principal_axes_alignment

F64 = torch.float64


def _ellipsoid(axes_mm=(40.0, 25.0, 15.0), shape=(48, 48, 48), spacing=2.5) -> Volume:
    affine = torch.diag(torch.tensor([spacing, spacing, spacing, 1.0], dtype=F64))
    affine[:3, 3] = -spacing * (torch.tensor(shape, dtype=F64) - 1) / 2
    idx = torch.stack(torch.meshgrid(*[torch.arange(n, dtype=F64) for n in shape], indexing="ij"), -1)
    x = idx @ affine[:3, :3].T + affine[:3, 3]
    r = ((x / torch.tensor(axes_mm, dtype=F64)) ** 2).sum(-1)
    # An asymmetric intensity ramp along x and y breaks the sign symmetry of the shape.
    data = ((r < 1) * (1.0 + 0.3 * x[..., 0] / axes_mm[0] + 0.2 * x[..., 1] / axes_mm[1])).float()
    return Volume(data, affine)


def test_moments_of_an_ellipsoid():
    centroid, axes, _ = image_moments(_ellipsoid(), torch.ones(48, 48, 48, dtype=torch.bool))
    torch.testing.assert_close(axes.abs(), torch.eye(3, dtype=F64), atol=0.02, rtol=0)
    assert float(centroid.norm()) < 5.0


@pytest.mark.parametrize("seed", range(4))
def test_recovers_rotation_and_translation_of_a_moved_copy(seed):
    fixed = _ellipsoid()
    gen = torch.Generator().manual_seed(seed)
    R = g.random_rotation((), generator=gen, dtype=F64)
    t = 4 * torch.randn(3, generator=gen, dtype=F64)
    moving = fixed.with_data(move_volume(fixed, R, t)[0, 0])
    R_hat, t_hat = principal_axes_alignment(fixed, moving)
    assert math.degrees(g.geodesic_distance(R_hat, R)) < 2.0
    assert float((t_hat - t).norm()) < 1.5  # mm


def test_empty_foreground_raises():
    v = _ellipsoid()
    with pytest.raises(ValueError, match="no foreground"):
        image_moments(v, torch.zeros(v.shape, dtype=torch.bool))


def test_skewness_rule_is_exact_on_asymmetric_shapes_and_flips_on_brains(small_atlas):
    from posereg.registration import SignChoice

    fixed = _ellipsoid()
    R = g.rotvec_to_matrix(torch.tensor([0.4, 1.1, -0.6], dtype=F64))
    moving = fixed.with_data(move_volume(fixed, R, torch.zeros(3, dtype=F64))[0, 0])
    R_hat, _ = principal_axes_alignment(fixed, moving, signs=SignChoice.SKEWNESS)
    assert math.degrees(g.geodesic_distance(R_hat, R)) < 2.0
    # A brain is nearly left-right symmetric: the skewness signs are unreliable.
    errors = []
    for i in range(6):
        Ri = g.random_rotation((), generator=torch.Generator().manual_seed(70 + i), dtype=F64)
        copy = small_atlas.image.with_data(move_volume(small_atlas.image, Ri, torch.zeros(3, dtype=F64))[0, 0])
        R_hat, _ = principal_axes_alignment(small_atlas.image, copy, signs=SignChoice.SKEWNESS)
        errors.append(math.degrees(g.geodesic_distance(R_hat, Ri)))
    assert max(errors) > 90.0, errors
