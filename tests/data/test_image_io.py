"""Image formats: NRRD, MetaImage and DICOM series read as the same volume as NIfTI; writing by extension."""

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from posereg.data import Volume, load_nifti
from posereg.data.image_io import canonical, load_image, save_image

# Stored LPI with anisotropic voxels and an oblique-free origin: reorientation must happen.
AFFINE = np.array([[-1.5, 0, 0, 60], [0, -1.2, 0, 80], [0, 0, -2.0, 70], [0, 0, 0, 1]])


@pytest.fixture(scope="module")
def nifti(tmp_path_factory):
    import nibabel as nib

    d = tmp_path_factory.mktemp("formats")
    g = np.random.default_rng(0)
    data = (100 * g.random((40, 36, 30))).astype(np.int16)
    nib.save(nib.Nifti1Image(data, AFFINE), str(d / "scan.nii.gz"))
    return d / "scan.nii.gz"


@pytest.mark.parametrize("suffix", [".nrrd", ".mha", ".mhd"])
def test_other_formats_read_as_the_same_volume(nifti, tmp_path, suffix):
    sitk.WriteImage(sitk.ReadImage(str(nifti)), str(tmp_path / f"scan{suffix}"))
    expected, ours = load_nifti(nifti), load_image(tmp_path / f"scan{suffix}")
    torch.testing.assert_close(ours.affine, expected.affine, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.data, expected.data)


def test_a_dicom_series_folder_reads_as_the_same_volume(nifti, tmp_path):
    image = sitk.ReadImage(str(nifti))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    d = image.GetDirection()
    orientation = "\\".join(str(v) for v in (d[0], d[3], d[6], d[1], d[4], d[7]))
    for k in range(image.GetDepth()):
        s = image[:, :, k]
        s.SetMetaData("0020|000e", "1.2.826.0.1.3680043.2.1125.1.42")  # one series
        s.SetMetaData("0020|0037", orientation)
        s.SetMetaData("0020|0032", "\\".join(str(v) for v in image.TransformIndexToPhysicalPoint((0, 0, k))))
        s.SetMetaData("0020|0013", str(k))
        writer.SetFileName(str(tmp_path / f"{k:03d}.dcm"))
        writer.Execute(s)
    expected, ours = load_nifti(nifti), load_image(tmp_path)
    torch.testing.assert_close(ours.affine, expected.affine, atol=1e-4, rtol=0)
    torch.testing.assert_close(ours.data, expected.data)


def test_writing_by_extension_round_trips(tmp_path):
    volume = Volume(torch.rand(20, 22, 24) + 0.1, torch.tensor(AFFINE, dtype=torch.float64))
    for name in ("v.nii.gz", "v.nrrd", "v.mha"):
        save_image(volume, tmp_path / name)
        back = load_image(tmp_path / name)
        torch.testing.assert_close(back.data, canonical(volume).data)
        torch.testing.assert_close(back.affine, canonical(volume).affine)
    labels = volume.with_data(torch.floor(volume.data * 5))
    save_image(labels, tmp_path / "labels.nrrd", data_dtype=np.uint8)
    assert sitk.ReadImage(str(tmp_path / "labels.nrrd")).GetPixelID() == sitk.sitkUInt8


@pytest.mark.parametrize(
    ("make", "message"),
    [(lambda d: (d / "x.png").write_bytes(b"png"), "unknown image format"),
     (lambda d: (d / "x.nrrd").write_text("not nrrd"), "not a readable image"),
     (lambda d: (d / "empty").mkdir(), "one DICOM series, found 0")],
)  # fmt: skip
def test_unreadable_inputs_are_refused_clearly(tmp_path, make, message):
    make(tmp_path)
    target = next(p for p in tmp_path.iterdir())
    with pytest.raises(ValueError, match=message):
        load_image(target)
    with pytest.raises(ValueError, match="written as"):
        save_image(Volume(torch.ones(4, 4, 4), torch.eye(4, dtype=torch.float64)), tmp_path / "x.png")


def test_vector_images_are_refused(tmp_path):
    vector = sitk.Compose([sitk.Image(8, 8, 8, sitk.sitkFloat32)] * 2)
    sitk.WriteImage(vector, str(tmp_path / "v.mha"))
    with pytest.raises(ValueError, match="2 components per voxel"):
        load_image(tmp_path / "v.mha")
