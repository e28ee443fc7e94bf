"""SimpleITK rigid registration (the VVR baselines' local optimiser) on a small case."""

from __future__ import annotations

import math

import pytest
import torch

from posereg import geometry as g
from posereg.data import (
    Split,
    move_volume,
    preprocess_intensity,
    scanner_effects,
    subject_seed,
    synthesize_subject,
)
from posereg.registration import IntensitySettings, Metric, register_rigid

F64 = torch.float64


@pytest.fixture(scope="module")
def case(small_atlas):
    subject = synthesize_subject(small_atlas, torch.Generator().manual_seed(subject_seed(Split.TEST, 2)))
    R = g.rotvec_to_matrix(torch.tensor([0.1, -0.15, math.radians(12.0)], dtype=F64))
    t = torch.tensor([4.0, -3.0, 2.0], dtype=F64)
    moving = scanner_effects(move_volume(subject, R, t)[0, 0], torch.Generator().manual_seed(0))
    return small_atlas, subject.with_data(preprocess_intensity(moving)), R, t


@pytest.mark.parametrize("metric", [Metric.MATTES_MI, Metric.NCC])
def test_recovers_a_moderate_rotation_from_the_geometric_centre(case, metric):
    atlas, moving, R, t = case
    start_error = math.degrees(g.geodesic_distance(torch.eye(3, dtype=F64), R))
    result = register_rigid(atlas.image, moving, settings=IntensitySettings(metric=metric, shrink_factors=(2, 1),
                                                                            smoothing_mm=(2.0, 0.0)))
    error = math.degrees(g.geodesic_distance(result.R, R))
    assert error < 4.0 < start_error, (error, start_error)
    assert float((result.t - t).norm()) < 6.0
    assert result.seconds > 0 and result.iterations > 0
    torch.testing.assert_close(result.centre, atlas.image.centre)


def test_a_good_start_stays_good_and_settings_are_checked(case):
    atlas, moving, R, t = case
    result = register_rigid(atlas.image, moving, initial=(R, t), fixed_mask=atlas.mask,
                            settings=IntensitySettings(shrink_factors=(1,), smoothing_mm=(0.0,)))
    assert math.degrees(g.geodesic_distance(result.R, R)) < 3.0
    with pytest.raises(ValueError, match="one entry per level"):
        register_rigid(atlas.image, moving, settings=IntensitySettings(shrink_factors=(2, 1), smoothing_mm=(1.0,)))


@pytest.mark.parametrize("sampling", [0.25, 1.0])
def test_runs_are_reproducible_and_seeds_are_checked(case, sampling):
    # SimpleITK reads seed 0 as the wall clock: with it, two identical calls differed by degrees.
    atlas, moving, R, t = case
    settings = IntensitySettings(sampling=sampling, shrink_factors=(2,), smoothing_mm=(1.0,), iterations=30)
    start = (g.rotvec_to_matrix(torch.tensor([0.05, 0.1, -0.05], dtype=F64)) @ R, t + 2.0)
    first = register_rigid(atlas.image, moving, initial=start, settings=settings)
    second = register_rigid(atlas.image, moving, initial=start, settings=settings)
    # Equal up to the order of ITK's multithreaded sums (a wall-clock seed moved them by 1e-1).
    torch.testing.assert_close(first.R, second.R, atol=1e-6, rtol=0)
    torch.testing.assert_close(first.t, second.t, atol=1e-4, rtol=0)
    for bad in ({"seed": 0}, {"seed": 1.5}, {"sampling": 0.0}, {"sampling": 1.5}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            IntensitySettings(**bad)
