"""Slice-to-volume intensity registration (SVR): frames, and improvement from a nearby start."""

from __future__ import annotations

import pytest
import torch

from posereg import geometry as g
from posereg.data.slices import SliceGeometry, cut_slices, preprocess_slice
from posereg.registration.slice import register_slice, slice_as_volume

F64 = torch.float64


def _ncc(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


@pytest.fixture(scope="module")
def setup(small_atlas):
    geometry = SliceGeometry(40, 4.8, 40)
    R = g.rotvec_to_matrix(torch.tensor([0.5, -0.3, 1.2], dtype=F64))
    index = 22.0
    image = preprocess_slice(cut_slices(small_atlas.image, R, torch.tensor(index), geometry))
    return small_atlas, geometry, R, index, image


def test_a_start_at_the_true_pose_stays_there(setup):
    atlas, geometry, R, index, image = setup
    result = register_slice(atlas, image, geometry, initial=(R, index))
    # Within the metric's precision on 40 x 40 pixels of 4.8 mm (a frame error would be tens of degrees).
    assert float(torch.rad2deg(g.geodesic_distance(result.R, R))) < 2.0
    assert abs(result.index - index) < 0.5 and float(result.in_plane_mm.norm()) < 3.0


def test_svr_improves_a_nearby_start(setup):
    atlas, geometry, R, index, image = setup
    error = g.rotvec_to_matrix(torch.tensor([0.12, -0.1, 0.08], dtype=F64))  # about 10 degrees
    start_R, start_index = error @ R, index + 2.0
    result = register_slice(atlas, image, geometry, initial=(start_R, start_index))
    before = float(torch.rad2deg(g.geodesic_distance(start_R, R)))
    after = float(torch.rad2deg(g.geodesic_distance(result.R, R)))
    assert after < 0.5 * before, (before, after)
    assert abs(result.index - index) < abs(start_index - index)
    resliced = cut_slices(atlas.image, result.R, torch.tensor(result.index), geometry)
    started = cut_slices(atlas.image, start_R, torch.tensor(start_index), geometry)
    assert _ncc(resliced, image) > _ncc(started, image)


def test_slice_volume_frame_and_bad_input():
    v = slice_as_volume(torch.rand(5, 7), 2.0)
    assert v.shape == (5, 7, 1)
    torch.testing.assert_close(v.centre, torch.zeros(3, dtype=F64))
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        slice_as_volume(torch.rand(5, 7, 2), 2.0)
