"""ITK images and transform files: RAS/LPS handled explicitly, checked through SimpleITK itself."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from posereg import geometry as g
from posereg.data import Volume, rigid_resample
from posereg.data.image_io import from_sitk_image, to_sitk_image
from posereg.data.resample import gaussian_smooth
from posereg.registration.itk import read_rigid_transform, rigid_to_sitk, write_rigid_transform

F64 = torch.float64


def _pose(seed: int):
    gen = torch.Generator().manual_seed(seed)
    R = g.random_rotation((), generator=gen, dtype=F64)
    return R, 10 * torch.randn(3, generator=gen, dtype=F64), 20 * torch.randn(3, generator=gen, dtype=F64)


@pytest.mark.parametrize("seed", range(3))
def test_tfm_file_maps_points_like_posereg(tmp_path, seed):
    R, t, c = _pose(seed)
    path = tmp_path / "T.tfm"
    write_rigid_transform(path, R, t, c)
    transform = sitk.ReadTransform(str(path))
    points_ras = 50 * torch.randn(10, 3, generator=torch.Generator().manual_seed(9), dtype=F64)
    expected_ras = (points_ras - c) @ R.T + c + t
    flip = np.array([-1.0, -1.0, 1.0])
    for p, q in zip(points_ras.numpy(), expected_ras.numpy()):
        mapped_lps = np.asarray(transform.TransformPoint((p * flip).tolist()))
        np.testing.assert_allclose(mapped_lps * flip, q, atol=1e-9)
    R2, t2, c2 = read_rigid_transform(path)
    # The same map (centre and translation trade off): compare on points.
    torch.testing.assert_close((points_ras - c2) @ R2.T + c2 + t2, expected_ras, atol=1e-9, rtol=0)


def test_images_round_trip_and_resample_like_posereg():
    gen = torch.Generator().manual_seed(1)
    data = gaussian_smooth(torch.rand(20, 22, 18, generator=gen), (1.5, 1.5, 1.5))
    data[:4], data[-4:], data[:, :4], data[:, -4:], data[:, :, :4], data[:, :, -4:] = 0, 0, 0, 0, 0, 0  # zero border
    affine = torch.tensor([[0, -2.0, 0, 30], [1.5, 0, 0, -10], [0, 0, 2.5, 5], [0, 0, 0, 1]], dtype=F64)
    volume = Volume(data, affine)
    back = from_sitk_image(to_sitk_image(volume))
    torch.testing.assert_close(back.data, data)
    torch.testing.assert_close(back.affine, affine)
    R, t, _ = _pose(4)
    c = volume.centre
    ours = rigid_resample(data.double(), affine, R, 0.2 * t, c)[0, 0].float()
    image = to_sitk_image(volume)
    theirs = from_sitk_image(sitk.Resample(image, image, rigid_to_sitk(R, 0.2 * t, c), sitk.sitkLinear, 0.0)).data
    assert ours.abs().sum() > 0.3 * data.abs().sum()
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=0)


def test_bad_transform_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such transform file"):
        read_rigid_transform(tmp_path / "missing.tfm")
    affine = sitk.AffineTransform(3)
    affine.SetMatrix([2.0, 0, 0, 0, 1, 0, 0, 0, 1])
    sitk.WriteTransform(affine, str(tmp_path / "scale.tfm"))
    with pytest.raises(ValueError, match="expected a rigid transform"):
        read_rigid_transform(tmp_path / "scale.tfm")
