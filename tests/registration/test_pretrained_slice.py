"""The bundled slice model: it loads, describes its grid, and locates atlas slices roughly.

A loose bound (docs/benchmarks/real_slices.md measures it on real slices): a broken or mismatched
weights file, a preprocessing change the network was not trained for, or a frame error would put
the median error near 90 degrees; this model's is 9 on these 24 atlas slices (S5: 15).
"""

from __future__ import annotations

import statistics

import nibabel as nib
import numpy as np
import torch

from posereg.cli import main
from posereg.data import Contrast
from posereg.data.slices import cut_slices, half_space_rotation, preprocess_slice
from posereg.evaluation import rotation_error_deg
from posereg.registration.slice_model import load_slice_model, pretrained_slice_path


def test_the_bundled_slice_model_is_small_and_locates_atlas_slices():
    assert pretrained_slice_path().stat().st_size < 6 * 2**20  # float16 weights: 5.4 MiB
    model = load_slice_model(pretrained_slice_path())
    assert (model.grid.contrast, model.grid.shape, model.grid.spacing) == (Contrast.T1, 64, 3.0)
    assert model.middle_fraction == 0.66 and next(model.net.parameters()).dtype == torch.float32
    atlas = model.atlas()
    locate = model.locator(atlas)
    gen = torch.Generator().manual_seed(0)
    low, high = model.geometry.middle_indices(model.middle_fraction)
    errors = []
    for _ in range(24):
        R, k = half_space_rotation(gen), float(torch.randint(low, high, (), generator=gen))
        found = locate(preprocess_slice(cut_slices(atlas.image, R, torch.tensor(k), model.geometry)))
        errors.append(float(rotation_error_deg(found.R, R)))
    assert statistics.median(errors) < 30.0, errors


def test_locate_slice_takes_the_bundled_model_by_default(tmp_path, capsys):
    model = load_slice_model(pretrained_slice_path())
    R = half_space_rotation(torch.Generator().manual_seed(1))
    image = cut_slices(model.atlas().image, R, torch.tensor(32.0), model.geometry)
    nib.save(nib.Nifti1Image(image.numpy(), np.diag([3.0, 3.0, 1.0, 1.0])), str(tmp_path / "slice.nii.gz"))
    assert main(["locate-slice", str(tmp_path / "slice.nii.gz"), "--out-transform", str(tmp_path / "T.tfm")]) in (0, 3)
    assert "plane normal" in capsys.readouterr().out and (tmp_path / "T.tfm").is_file()
