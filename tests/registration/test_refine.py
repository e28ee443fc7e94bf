"""Working-grid refinement (masked Mattes MI + L-BFGS): recovery, any contrast, exact equivariance, bad input."""

from __future__ import annotations

import math

import pytest
import torch

from posereg import geometry as g
from posereg.data import Volume
from posereg.registration import IntensitySettings, RefineLevel, RefineSettings, refine_rigid, register_rigid
from tests.registration.test_intensity import case  # noqa: F401  (the same moved test subject)

F64 = torch.float64


def _deg(A: torch.Tensor, B: torch.Tensor) -> float:
    return math.degrees(float(g.geodesic_distance(A, B)))


def _near(R: torch.Tensor, t: torch.Tensor, degrees: float) -> tuple[torch.Tensor, torch.Tensor]:
    """A start ``degrees`` away from ``R`` about a fixed oblique axis, 5 mm away from ``t``."""
    axis = torch.tensor([1.0, -2.0, 0.5], dtype=F64)
    return R @ g.rotvec_to_matrix(axis / axis.norm() * math.radians(degrees)), t + torch.tensor([5.0, 0.0, 0.0], dtype=F64)


@pytest.mark.parametrize("contrast", ["t1", "inverted"])
def test_recovers_the_motion_from_a_start_15_degrees_away_in_any_contrast(case, contrast):
    atlas, moving, R, t = case
    if contrast == "inverted":  # a T2-like ordering: mutual information does not care
        moving = moving.with_data(torch.where(moving.data > 0.02, 1.0 - moving.data, moving.data))
    start = _near(R, t, 15.0)
    result = refine_rigid(atlas.image, moving, start, atlas.mask)
    assert _deg(result.R, R) < 1.5 < 15.0 - 1 < _deg(start[0], R)
    assert float((result.t - t).norm()) < 2.0
    assert result.iterations > 3 and result.seconds > 0 and result.metric_value < 0
    torch.testing.assert_close(result.centre, atlas.image.centre)


def test_follows_a_known_motion_of_the_scan_exactly(case):
    # Moving the scan through its header by M must move the answer by M (no reference needed).
    atlas, moving, R, t = case
    M = g.rotvec_to_matrix(torch.tensor([0.9, 0.4, -1.2], dtype=F64))
    affine = torch.eye(4, dtype=F64)
    affine[:3, :3], affine[:3, 3] = M, torch.tensor([10.0, -5.0, 3.0], dtype=F64)
    moved = Volume(moving.data, affine @ moving.affine)
    c = atlas.image.centre
    start = _near(R, t, 8.0)
    plain = refine_rigid(atlas.image, moving, start, atlas.mask)
    # the start and the answer moved by M: y -> M y + m, so (R, t) -> (M R, M (c + t) + m - c)
    move = lambda R_, t_: (M @ R_, M @ (c + t_) + affine[:3, 3] - c)  # noqa: E731
    moved_result = refine_rigid(atlas.image, moved, move(*start), atlas.mask)
    expected = move(plain.R, plain.t)
    assert _deg(moved_result.R, expected[0]) < 0.1
    assert float((moved_result.t - expected[1]).norm()) < 0.2


def test_agrees_with_simpleitk_from_the_same_start(case):
    atlas, moving, R, t = case
    start = _near(R, t, 6.0)
    ours = refine_rigid(atlas.image, moving, start, atlas.mask)
    itk = register_rigid(atlas.image, moving, initial=start, fixed_mask=atlas.mask,
                         settings=IntensitySettings(sampling=1.0, shrink_factors=(2, 1), smoothing_mm=(4.8, 0.0)))  # fmt: skip
    assert _deg(ours.R, itk.R) < 1.5 and _deg(ours.R, R) <= _deg(itk.R, R) + 0.5


def test_bad_inputs(case):
    atlas, moving, R, t = case
    with pytest.raises(ValueError, match="fixed_mask"):
        refine_rigid(atlas.image, moving, (R, t), atlas.mask[:-1])
    with pytest.raises(ValueError, match="fixed_mask"):
        refine_rigid(atlas.image, moving, (R, t), atlas.mask.float())
    with pytest.raises(ValueError, match="no voxel"):
        refine_rigid(atlas.image, moving, (R, t), torch.zeros_like(atlas.mask))
    with pytest.raises(ValueError, match="RefineLevel"):
        RefineLevel(1.0, 0, 10)
    with pytest.raises(ValueError, match="RefineSettings"):
        RefineSettings(levels=())
    with pytest.raises(ValueError, match="RefineSettings"):
        RefineSettings(bins=4)


def test_runs_under_no_grad_and_inference_mode(case):
    atlas, moving, R, t = case
    start = _near(R, t, 8.0)
    with torch.no_grad():
        quiet = refine_rigid(atlas.image, moving, start, atlas.mask)
    with torch.inference_mode():  # inputs made here are inference tensors, which autograd cannot save
        inference = refine_rigid(atlas.image.with_data(atlas.image.data * 1), moving.with_data(moving.data * 1), start,
                                 atlas.mask.clone())  # fmt: skip
    plain = refine_rigid(atlas.image, moving, start, atlas.mask)
    torch.testing.assert_close(quiet.R, plain.R)
    torch.testing.assert_close(inference.R, plain.R)
    assert not quiet.R.requires_grad and _deg(quiet.R, R) < 1.5
