"""The MNI152 grid without its voxels."""

from __future__ import annotations

import torch

from posereg.data import load_mni152, mni152_grid


def test_the_mni152_grid_is_the_1mm_template_grid_read_from_its_header():
    grid, template = mni152_grid(), load_mni152(resolution_mm=1).image
    assert grid.shape == template.shape == (197, 233, 189)
    torch.testing.assert_close(grid.affine, template.affine)
    assert float(grid.data.abs().max()) == 0.0
