"""NIfTI loading (with its errors), reorientation, normalisation and brain masks."""

from __future__ import annotations

import gzip
import itertools

import nibabel as nib
import numpy as np
import pytest
import torch

from posereg.data import Volume, brain_mask, load_nifti, normalize_intensity, save_nifti

F64 = torch.float64


def _write(path, data, affine=None):
    affine = np.diag([2.0, 2.0, 2.0, 1.0]) if affine is None else affine
    nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.float32), affine), str(path))
    return path


def test_reorients_to_canonical_ras_without_moving_anything(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.random((5, 6, 7)).astype(np.float32) + 0.1
    # LPI-ordered storage: i runs to the Left, j Posterior, k Inferior; oblique origin.
    affine = np.array([[-2.0, 0, 0, 50], [0, -3.0, 0, 40], [0, 0, -1.5, 30], [0, 0, 0, 1]])
    volume = load_nifti(_write(tmp_path / "lpi.nii.gz", data, affine))
    assert volume.shape == (5, 6, 7)
    assert bool((torch.diagonal(volume.affine)[:3] > 0).all())  # RAS+ axes
    # Every voxel keeps its world position and value.
    for index in [(0, 0, 0), (4, 5, 6), (1, 2, 3)]:
        world = affine @ np.array([*index, 1.0])
        new_index = np.linalg.solve(volume.affine.numpy(), world)[:3].round().astype(int)
        assert volume.data[tuple(new_index)].item() == pytest.approx(data[index])


def test_round_trip_through_save(tmp_path):
    data = torch.rand(4, 5, 6) + 0.5
    affine = torch.tensor([[1.0, 0.2, 0, -3], [0, 1.1, 0, 2], [0, 0, 0.9, 1], [0, 0, 0, 1]], dtype=F64)
    save_nifti(Volume(data, affine), tmp_path / "v.nii.gz")
    back = load_nifti(tmp_path / "v.nii.gz")
    torch.testing.assert_close(back.data, data)
    torch.testing.assert_close(back.affine, affine, atol=1e-5, rtol=0)


def test_a_4d_file_with_one_volume_is_accepted(tmp_path):
    volume = load_nifti(_write(tmp_path / "one.nii", np.ones((3, 4, 5, 1))))
    assert volume.shape == (3, 4, 5)


@pytest.mark.parametrize("kind", [nib.Nifti1Image, nib.Nifti2Image])
@pytest.mark.parametrize("shape", [(6, 7, 5), (6, 7, 5, 1)])
def test_compressed_files_read_as_the_uncompressed_ones(tmp_path, kind, shape):
    # .nii.gz is decompressed in one ISA-L call (load_nifti's fast path), .nii through nibabel's
    # own reader: same voxels (scaled int16 here: slope and intercept applied) and same affine.
    rng = np.random.default_rng(1)
    affine = np.array([[0.0, -1.2, 0, 30], [1.0, 0, 0.1, -20], [0, 0, -0.9, 10], [0, 0, 0, 1]])
    image = kind(rng.integers(1, 3000, shape).astype(np.int16), affine)
    image.header.set_slope_inter(0.25, -3.0)
    nib.save(image, str(tmp_path / "a.nii"))
    nib.save(image, str(tmp_path / "a.nii.gz"))
    plain, packed = load_nifti(tmp_path / "a.nii"), load_nifti(tmp_path / "a.nii.gz")
    assert packed.shape == plain.shape == (7, 6, 5)  # reoriented: the first stored axis runs A-P
    torch.testing.assert_close(packed.data, plain.data, rtol=0, atol=0)
    torch.testing.assert_close(packed.affine, plain.affine, rtol=0, atol=0)
    expected = nib.as_closest_canonical(nib.load(str(tmp_path / "a.nii"))).get_fdata(dtype=np.float32)
    np.testing.assert_array_equal(packed.data.numpy(), expected.reshape(packed.shape))


_AXES = [(perm, signs) for perm in itertools.permutations(range(3)) for signs in itertools.product((1, -1), repeat=3)]


@pytest.mark.parametrize("perm, signs", _AXES, ids=[f"{p}{''.join('+-'[s < 0] for s in q)}" for p, q in _AXES])
def test_every_stored_orientation_reads_as_nibabels_canonical_image(tmp_path, perm, signs):
    # All 48 axis orders and directions a file can store; the voxels come without a transposing
    # copy (strided in the file's order) but must be nibabel's canonical ones, grid_only's grid too.
    rng = np.random.default_rng(sum(perm) * 8 + sum(s > 0 for s in signs))
    affine = np.zeros((4, 4))
    for stored_axis, (world_axis, sign) in enumerate(zip(perm, signs)):
        affine[world_axis, stored_axis] = sign * (0.9 + 0.2 * stored_axis)
    affine[:3, :3] += rng.normal(scale=0.05, size=(3, 3))  # slightly oblique
    affine[:, 3] = [10.0, -20.0, 30.0, 1.0]
    data = rng.random((5, 6, 7)).astype(np.float32)
    path = _write(tmp_path / "o.nii.gz", data, affine)
    volume = load_nifti(path)
    expected = nib.as_closest_canonical(nib.load(str(path)))
    np.testing.assert_array_equal(volume.data.numpy(), expected.get_fdata(dtype=np.float32))
    np.testing.assert_array_equal(volume.affine.numpy(), expected.affine)
    assert volume.data.dtype == torch.float32
    grid = load_nifti(path, grid_only=True)
    assert grid.shape == volume.shape and torch.equal(grid.affine, volume.affine) and not grid.data.any()


@pytest.mark.parametrize("dtype", ["u1", "i1", "<i2", ">i2", "<u2", "<i4", ">f4", "<f8", "<i8", "<u4"])
@pytest.mark.parametrize("scaled", [False, True])
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_stored_types_and_scaling_read_as_nibabel_reads_them(tmp_path, dtype, scaled, suffix):
    # Types torch reads in place and those converted by NumPy (unsigned 16/32-bit, big-endian),
    # with and without the header's slope and intercept (applied in float64, rounded once).
    rng = np.random.default_rng(3)
    stored = rng.integers(1, 100, (6, 5, 4)).astype(np.dtype(dtype))
    header = nib.Nifti1Header(endianness=">" if dtype[0] == ">" else "<")
    header.set_data_dtype(np.dtype(dtype))
    image = nib.Nifti1Image(stored, np.diag([-1.0, 1.0, 1.2, 1.0]), header=header)
    if scaled:
        image.header.set_slope_inter(0.37, -1.1)
    path = tmp_path / f"t{suffix}"
    nib.save(image, str(path))
    assert nib.load(str(path)).dataobj.dtype == np.dtype(dtype)  # stored as asked (byte order too)
    volume = load_nifti(path)
    expected = nib.as_closest_canonical(nib.load(str(path))).get_fdata(dtype=np.float32)
    np.testing.assert_array_equal(volume.data.numpy(), expected)


@pytest.mark.parametrize("cut", ["stream", "payload"])
def test_truncated_compressed_files_are_refused(tmp_path, cut):
    image = nib.Nifti1Image(np.random.default_rng(2).random((8, 9, 10), dtype=np.float32), np.eye(4))
    raw = image.to_bytes()
    # 'stream': the gzip file itself cut short; 'payload': a whole gzip file of half the image.
    packed = gzip.compress(raw)
    data = packed[: len(packed) // 2] if cut == "stream" else gzip.compress(raw[: len(raw) // 2])
    (tmp_path / "cut.nii.gz").write_bytes(data)
    with pytest.raises(ValueError, match="cut.nii.gz: the image data cannot be read"):
        load_nifti(tmp_path / "cut.nii.gz")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "missing.nii.gz", "no such NIfTI file"),
        (lambda p: _gz(p / "corrupt.nii.gz", b"this is not a nifti file" * 20), "not a readable NIfTI"),
        (lambda p: _write(p / "series.nii.gz", np.ones((3, 4, 5, 2))), r"expected a 3D volume, got shape \(3, 4, 5, 2\)"),
        (lambda p: _write(p / "zero.nii.gz", np.zeros((3, 4, 5))), "all zero"),
        (lambda p: _singular(p / "flat.nii.gz"), "not invertible"),
        (lambda p: _write(p / "nan.nii.gz", np.full((3, 4, 5), np.nan)), "NaN or inf"),
        (lambda p: _write(p / "inf.nii.gz", np.pad([[[np.inf]]], ((1, 1), (2, 1), (0, 3)), constant_values=1.0)), "NaN or inf"),
        (lambda p: _write(p / "one-nan.nii", np.pad([[[np.nan]]], ((2, 0), (1, 2), (3, 1)))), "NaN or inf"),
    ],
    ids=["missing", "corrupt", "4d", "all-zero", "singular-affine", "nan", "one-inf", "one-nan"],
)
def test_bad_files_give_clear_errors(tmp_path, make, message):
    path = make(tmp_path)
    error = FileNotFoundError if "missing" in str(path) else ValueError
    with pytest.raises(error, match=message):
        load_nifti(path)


def _singular(path):
    """A file whose sform squashes one axis (nibabel refuses to build a qform from it)."""
    image = nib.Nifti1Image(np.ones((3, 4, 5), dtype=np.float32), None)
    image.header.set_sform(np.diag([1.0, 0.0, 1.0, 1.0]), code=1)
    image.header.set_qform(None, code=0)
    nib.save(image, str(path))
    return path


def _gz(path, payload: bytes):
    with gzip.open(path, "wb") as f:
        f.write(payload)
    return path


def test_normalize_intensity_uses_the_foreground_range():
    data = torch.zeros(20, 20, 20)
    data[5:15, 5:15, 5:15] = torch.linspace(100, 200, 1000).reshape(10, 10, 10)
    data[10, 10, 10] = 1e6  # a hot voxel must not set the scale
    out = normalize_intensity(data)
    assert out.min().item() == 0.0 and out.max().item() == 1.0
    assert out[data == 0].abs().max().item() == 0.0
    assert 0.4 < out[5:15, 5:15, 5:15].median().item() < 0.6
    with pytest.raises(ValueError, match="foreground voxel"):
        normalize_intensity(torch.zeros(3, 3, 3))
    with pytest.raises(ValueError, match="constant"):
        normalize_intensity(torch.ones(3, 3, 3))


def test_brain_mask_drops_background_noise_and_fills_holes():
    gen = torch.Generator().manual_seed(0)
    data = 0.02 * torch.rand(30, 30, 30, generator=gen)
    data[8:22, 8:22, 8:22] = 1.0
    data[14, 14, 14] = 0.0  # a hole inside
    data[1, 1, 1] = 0.9  # a bright speck outside
    mask = brain_mask(data)
    assert mask[8:22, 8:22, 8:22].all() and mask.sum().item() == 14**3


def test_volume_validation():
    with pytest.raises(ValueError, match=r"data: expected .*\(I, J, K\)"):
        Volume(torch.zeros(3, 3), torch.eye(4, dtype=F64))
    with pytest.raises(ValueError, match=r"affine: expected a \(4, 4\)"):
        Volume(torch.zeros(3, 3, 3), torch.eye(3, dtype=F64))
    v = Volume(torch.zeros(3, 5, 7), torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0], dtype=F64)))
    torch.testing.assert_close(v.centre, torch.tensor([2.0, 4.0, 6.0], dtype=F64))
    torch.testing.assert_close(v.spacing, torch.full((3,), 2.0, dtype=F64))


@pytest.mark.parametrize("perm, signs", _AXES[::5])
def test_reoriented_equals_nibabels_orientation_of_any_tensor(perm, signs):
    from nibabel import orientations

    from posereg.data.nifti_voxels import canonical_grid, reoriented

    affine = np.zeros((4, 4))
    for stored_axis, (world_axis, sign) in enumerate(zip(perm, signs)):
        affine[world_axis, stored_axis] = sign * (1.0 + 0.5 * stored_axis)
    affine[3, 3] = 1.0
    data = torch.arange(60, dtype=torch.float32).reshape(3, 4, 5)
    for layout in (data, data.permute(2, 1, 0).contiguous().permute(2, 1, 0)):  # C and Fortran order
        out, out_affine = reoriented(layout, affine)
        ornt = orientations.io_orientation(affine)
        np.testing.assert_array_equal(out.numpy(), orientations.apply_orientation(data.numpy(), ornt))
        np.testing.assert_array_equal(out_affine, affine @ orientations.inv_ornt_aff(ornt, (3, 4, 5)))
        grid_affine, shape = canonical_grid(affine, (3, 4, 5))
        assert shape == tuple(out.shape) and np.array_equal(grid_affine, out_affine)
