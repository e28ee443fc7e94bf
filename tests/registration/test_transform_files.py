"""Transform files for other tools: the RAS matrix maps like ITK's file, FSL's matches nitransforms."""

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from posereg.geometry import rotvec_to_matrix
from posereg.registration.transform_files import TransformFormat, fsl_matrix, ras_matrix, write_transform

F64 = torch.float64
R = rotvec_to_matrix(torch.tensor([0.4, -0.2, 1.1], dtype=F64))
T = torch.tensor([5.0, -7.0, 3.0], dtype=F64)
C = torch.tensor([1.0, -18.0, 12.0], dtype=F64)
FLIP = np.array([-1.0, -1.0, 1.0])


def test_the_ras_matrix_maps_points_like_the_itk_file(tmp_path):
    write_transform(tmp_path / "T.tfm", R, T, C, TransformFormat.ITK)
    write_transform(tmp_path / "T.txt", R, T, C, TransformFormat.RAS)
    M = np.loadtxt(tmp_path / "T.txt")
    itk = sitk.ReadTransform(str(tmp_path / "T.tfm"))
    for p in np.random.default_rng(0).normal(0, 60, size=(6, 3)):
        expected = np.asarray(itk.TransformPoint((p * FLIP).tolist())) * FLIP
        np.testing.assert_allclose((M @ np.append(p, 1.0))[:3], expected, atol=1e-6)
    np.testing.assert_allclose(M, ras_matrix(R, T, C), atol=1e-9)


@pytest.mark.parametrize("moving_det", [1, -1], ids=["RAS-stored", "LAS-stored"])
@pytest.mark.parametrize("reference_det", [1, -1], ids=["ref-RAS", "ref-LAS"])
def test_the_fsl_matrix_matches_nitransforms(tmp_path, moving_det, reference_det):
    nib = pytest.importorskip("nibabel")
    fsl = pytest.importorskip("nitransforms.io.fsl")
    moving_affine = np.array([[1.2 * moving_det, 0.1, 0, 90], [0, 0.0, 1.1, -100], [0.05, 1.3, 0, -60], [0, 0, 0, 1]])
    moving_shape = (150, 170, 140)
    reference_affine = np.diag([reference_det * 1.0, 1.0, 1.0, 1.0])
    reference_affine[:3, 3] = [98.0 if reference_det < 0 else -98.0, -134.0, -72.0]
    reference_shape = (197, 233, 189)
    ours = fsl_matrix(R, T, C, moving_affine, moving_shape, reference_affine, reference_shape)
    moving = nib.Nifti1Image(np.zeros(moving_shape, np.uint8), moving_affine)
    reference = nib.Nifti1Image(np.zeros(reference_shape, np.uint8), reference_affine)
    theirs = fsl.FSLLinearTransform.from_ras(ras_matrix(R, T, C), moving=moving, reference=reference)
    np.testing.assert_allclose(ours, np.asarray(theirs.structarr["parameters"]), atol=1e-8)


def test_fsl_needs_both_grids_and_endings_are_checked(tmp_path):
    with pytest.raises(ValueError, match="moving and reference image grids"):
        write_transform(tmp_path / "T.mat", R, T, C, TransformFormat.FSL)
    with pytest.raises(ValueError, match="ends in .txt or .mat"):
        write_transform(tmp_path / "T.tfm", R, T, C, TransformFormat.RAS)
    with pytest.raises(ValueError, match="ends in .tfm"):
        write_transform(tmp_path / "T.npy", R, T, C, TransformFormat.ITK)
