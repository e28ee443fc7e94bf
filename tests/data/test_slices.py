"""Slices at known poses: frames, labels and the on-the-fly slice dataset."""

from __future__ import annotations

import math

import pytest
import torch

from posereg import geometry as g
from posereg.data import Split, move_volume, subject_seed, synthesize_subject
from posereg.data.slices import (
    SliceGeometry,
    SlicePoseDataset,
    cut_slices,
    half_space_rotation,
    preprocess_slice,
    slice_plane,
    slice_points,
)

F64 = torch.float64


@pytest.fixture(scope="module")
def subject(small_atlas):
    return synthesize_subject(small_atlas, torch.Generator().manual_seed(subject_seed(Split.TRAIN, 0)))


def _geometry(volume) -> SliceGeometry:
    return SliceGeometry(volume.shape[0], float(volume.spacing[0]), volume.shape[2])


def test_slices_equal_the_axial_slices_of_the_rotated_volume(subject):
    R = g.rotvec_to_matrix(torch.tensor([0.7, -0.4, 2.5], dtype=F64))
    rotated = move_volume(subject, R, torch.zeros(3, dtype=F64))[0, 0]  # V(R^T (y - c) + c)
    geometry = _geometry(subject)
    for k in (8, 20, 31):
        ours = cut_slices(subject, R, torch.tensor(float(k)), geometry)
        torch.testing.assert_close(ours, rotated[:, :, k], atol=1e-5, rtol=0)


def test_slice_points_lie_on_the_labelled_plane(subject):
    R = g.random_rotation(4, generator=torch.Generator().manual_seed(1), dtype=F64)
    index = torch.tensor([3.0, 10.5, 20.0, 37.0], dtype=F64)
    geometry = _geometry(subject)
    points = slice_points(R, index, subject.centre, geometry)
    n, p = slice_plane(R, index, subject.centre, geometry)
    distance = torch.einsum("nhwk,nk->nhw", points - p[:, None, None, :], n)
    assert float(distance.abs().max()) < 1e-9
    torch.testing.assert_close(points.mean(dim=(1, 2)), p)  # the slice centre
    assert geometry.index_of(geometry.offset_mm(index)).tolist() == index.tolist()


def test_half_space_rotations_keep_their_euler_ranges():
    gen = torch.Generator().manual_seed(0)
    R = torch.stack([half_space_rotation(gen, (-30, 30), (-60, 10), (-180, 180)) for _ in range(300)])
    angles = torch.rad2deg(g.matrix_to_euler(R, "xyz"))
    assert float(angles[:, 0].abs().max()) <= 30 + 1e-6 and float(angles[:, 1].min()) >= -60 - 1e-6
    assert float(angles[:, 1].max()) <= 10 + 1e-6 and float(angles[:, 2].abs().max()) > 170  # full circle in z
    default = torch.stack([half_space_rotation(gen) for _ in range(300)])
    normals = default[:, 2, :]  # the slice normals R^T e_z: one half space (z >= 0) about the +z pole
    assert float(normals[:, 2].min()) >= -1e-9 and float(normals[:, 2].max()) > 0.99


def test_the_dataset_labels_its_slices(subject, small_atlas):
    geometry = _geometry(subject)
    data = SlicePoseDataset([subject], length=24, seed=3, geometry=geometry, slices_per_volume=8, noise=0.0)
    items = [data[i] for i in range(24)]
    low, high = data.index_range
    assert (low, high) == (7, 33)  # the middle 66% of 40 slices
    for group in range(3):
        members = items[8 * group : 8 * group + 8]
        assert all(torch.equal(m["rotation"], members[0]["rotation"]) for m in members)
        indices = [int(m["slice_index"]) for m in members]
        assert len(set(indices)) == 8 and all(low <= k < high for k in indices)
    item = items[5]
    expected = preprocess_slice(cut_slices(subject, item["rotation"].double(), item["slice_index"].double(), geometry))
    torch.testing.assert_close(item["image"][0], expected.float(), atol=1e-5, rtol=0)
    torch.testing.assert_close(g.rotvec_to_matrix(item["rotvec"].double()), item["rotation"].double(), atol=1e-5, rtol=0)
    assert item["image"].shape == (1, 40, 40) and 0.0 <= float(item["image"].min()) and float(item["image"].max()) <= 1.0
    again = SlicePoseDataset([subject], length=24, seed=3, geometry=geometry, slices_per_volume=8, noise=0.0)
    assert torch.equal(again[5]["image"], item["image"])
    data.set_epoch(1)
    assert not torch.equal(data[5]["rotation"], item["rotation"])


def test_dataset_arguments_are_checked(subject):
    geometry = _geometry(subject)
    with pytest.raises(ValueError, match="slices_per_volume"):
        SlicePoseDataset([subject], 10, 0, geometry=geometry, slices_per_volume=50)
    with pytest.raises(ValueError, match="middle_fraction"):
        SlicePoseDataset([subject], 10, 0, geometry=geometry, middle_fraction=0.0)
    with pytest.raises(ValueError, match="subjects"):
        SlicePoseDataset([], 10, 0)
    with pytest.raises(ValueError, match="SliceGeometry"):
        SliceGeometry(size=1)
    with pytest.raises(IndexError):
        SlicePoseDataset([subject], 10, 0, geometry=geometry, slices_per_volume=5)[10]


def test_an_empty_slice_is_normalised_without_failing():
    assert float(preprocess_slice(torch.zeros(8, 8)).abs().max()) == 0.0
    assert math.isclose(float(preprocess_slice(torch.full((8, 8), 3.0)).max()), 1.0)


def test_slice_files_load_and_resample_to_the_network_grid(tmp_path, small_atlas):
    import nibabel as nib
    import numpy as np

    from posereg.data.slices import load_slice_nifti, slice_to_grid

    R = g.rotvec_to_matrix(torch.tensor([0.3, 0.2, -0.4], dtype=F64))
    fine = SliceGeometry(160, 1.2, 160)  # the same 192 mm field of view at 1.2 mm
    coarse = SliceGeometry(40, 4.8, 40)
    image = cut_slices(small_atlas.image, R, torch.tensor(fine.index_of(6.0)), fine)
    nib.save(nib.Nifti1Image(image.numpy()[:, :, None], np.diag([1.2, 1.2, 5.0, 1.0])), str(tmp_path / "s.nii.gz"))
    loaded, spacing = load_slice_nifti(tmp_path / "s.nii.gz")
    assert loaded.shape == (160, 160) and spacing == pytest.approx((1.2, 1.2))
    resampled = slice_to_grid(loaded, spacing, coarse)
    direct = cut_slices(small_atlas.image, R, torch.tensor(coarse.index_of(6.0)), coarse)
    assert resampled.shape == (40, 40)
    assert float((resampled - direct).abs().mean()) < 0.02 * float(direct.abs().mean() + 1e-6) + 0.01
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 3), np.float32), np.eye(4)), str(tmp_path / "v.nii.gz"))
    with pytest.raises(ValueError, match="single 2D slice"):
        load_slice_nifti(tmp_path / "v.nii.gz")
    with pytest.raises(FileNotFoundError):
        load_slice_nifti(tmp_path / "none.nii.gz")


def test_one_physical_slice_stored_in_any_in_plane_order_reads_as_one_image(tmp_path):
    import nibabel as nib
    import numpy as np

    from posereg.data.slices import load_slice_nifti

    g = np.random.default_rng(0)
    image = g.random((30, 24)).astype(np.float32)  # rows along R, columns along A: asymmetric content
    ras = np.diag([2.0, 1.5, 3.0, 1.0])
    flip_j = np.array([[1, 0, 0, 0], [0, -1, 0, 23], [0, 0, 1, 0], [0, 0, 0, 1.0]])  # column j -> 23 - j
    flip_i = np.array([[-1, 0, 0, 29], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    swap = np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    stored = {
        "RAS": (image, ras),
        "RPS": (image[:, ::-1], ras @ flip_j),
        "LAS": (image[::-1, :], ras @ flip_i),
        "ARS": (image.T, ras @ swap),
    }
    results = []
    for name, (data, affine) in stored.items():
        nib.save(nib.Nifti1Image(np.ascontiguousarray(data)[..., None], affine), str(tmp_path / f"{name}.nii.gz"))
        results.append(load_slice_nifti(tmp_path / f"{name}.nii.gz"))
    for pixels, spacing in results:
        torch.testing.assert_close(pixels, torch.from_numpy(image))
        assert spacing == (2.0, 1.5)
