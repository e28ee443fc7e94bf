"""Rigid resampling in world coordinates, against SimpleITK."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from posereg import geometry as g
from posereg.data.resample import (
    gaussian_smooth,
    resample_to_grid,
    rigid_resample,
    sample_at_points,
    transform_matrix,
)
from posereg.data.volume import Volume

F64 = torch.float64
FLIP = np.diag([-1.0, -1.0, 1.0])  # RAS <-> LPS


def _blob_volume(shape=(30, 36, 26), seed=0) -> Volume:
    """A smooth random image with a zero border, on an anisotropic, oblique, flipped grid."""
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(shape, generator=gen, dtype=torch.float32)
    data = gaussian_smooth(noise, (2.0, 2.0, 2.0))
    idx = torch.stack(torch.meshgrid(*[torch.linspace(-1, 1, n) for n in shape], indexing="ij"))
    envelope = torch.clamp(1 - (idx**2).sum(0) / 0.7, min=0) ** 2
    data = (data - data.min()) * envelope
    direction = g.rotvec_to_matrix(torch.tensor([0.2, -0.3, 0.4], dtype=F64)) @ torch.diag(
        torch.tensor([-1.0, 1.0, 1.0], dtype=F64)
    )
    affine = torch.eye(4, dtype=F64)
    affine[:3, :3] = direction @ torch.diag(torch.tensor([1.5, 1.2, 2.0], dtype=F64))
    affine[:3, 3] = torch.tensor([-20.0, 15.0, 8.0], dtype=F64)
    return Volume(data, affine)


def _to_sitk(volume: Volume) -> sitk.Image:
    """SimpleITK image (LPS) of a Volume (RAS); SimpleITK arrays are indexed (k, j, i)."""
    image = sitk.GetImageFromArray(volume.data.numpy().transpose(2, 1, 0).astype(np.float64))
    A = FLIP @ volume.affine[:3, :3].numpy()
    spacing = np.linalg.norm(A, axis=0)
    image.SetSpacing(spacing.tolist())
    image.SetDirection((A / spacing).flatten().tolist())
    image.SetOrigin((FLIP @ volume.affine[:3, 3].numpy()).tolist())
    return image


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_simpleitk_resampling_of_the_same_transform(seed):
    volume = _blob_volume(seed=seed)
    gen = torch.Generator().manual_seed(10 + seed)
    R = g.random_rotation((), generator=gen, dtype=F64)
    t = 5 * torch.randn(3, generator=gen, dtype=F64)
    c = volume.centre + torch.tensor([3.0, -2.0, 1.0], dtype=F64)
    ours = rigid_resample(volume.data.double(), volume.affine, R, t, c)[0, 0].numpy()

    transform = sitk.Euler3DTransform()
    transform.SetCenter((FLIP @ c.numpy()).tolist())
    transform.SetMatrix((FLIP @ R.numpy() @ FLIP).flatten().tolist())
    transform.SetTranslation((FLIP @ t.numpy()).tolist())
    image = _to_sitk(volume)
    theirs = sitk.GetArrayFromImage(sitk.Resample(image, image, transform, sitk.sitkLinear, 0.0)).transpose(2, 1, 0)
    scale = np.abs(theirs).max()
    assert np.abs(ours - theirs).max() <= 1e-6 * scale
    assert np.abs(theirs).sum() > 0.3 * np.abs(volume.data.numpy()).sum()  # not trivially empty


def test_identity_is_exact_and_rotation_round_trips_in_world_coordinates():
    volume = _blob_volume()
    c = volume.centre
    out = rigid_resample(volume.data, volume.affine, torch.eye(3, dtype=F64), torch.zeros(3, dtype=F64), c)
    torch.testing.assert_close(out[0, 0], volume.data)
    # Rotating a point-like feature moves it where R says, in millimetres (not grid units).
    data = torch.zeros(volume.shape)
    data[20, 18, 13] = 1.0
    data = gaussian_smooth(data, (1.0, 1.0, 1.0))
    R = g.rotvec_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2], dtype=F64))
    moved = rigid_resample(data, volume.affine, R.mT, torch.zeros(3, dtype=F64), c)[0, 0]  # content rotated by R
    def centroid(x: torch.Tensor) -> torch.Tensor:
        idx = torch.stack(torch.meshgrid(*[torch.arange(n, dtype=F64) for n in x.shape], indexing="ij")).reshape(3, -1)
        w = x.double().reshape(-1)
        p = (idx * w).sum(1) / w.sum()
        return (volume.affine @ torch.cat((p, torch.ones(1, dtype=F64))))[:3]
    expected = R @ (centroid(data) - c) + c
    torch.testing.assert_close(centroid(moved), expected, atol=0.05, rtol=0)


def test_batched_transforms_and_output_grids():
    volume = _blob_volume()
    gen = torch.Generator().manual_seed(3)
    R = g.random_rotation(4, generator=gen, dtype=F64)
    t = torch.randn(4, 3, generator=gen, dtype=F64)
    out = rigid_resample(volume.data, volume.affine, R, t, volume.centre)
    assert out.shape == (4, 1, *volume.shape)
    for i in range(4):
        single = rigid_resample(volume.data, volume.affine, R[i], t[i], volume.centre)
        torch.testing.assert_close(out[i : i + 1], single)
    slab = rigid_resample(volume.data, volume.affine, R[:1], t[:1], volume.centre,
                          out_affine=volume.affine, out_shape=(30, 36, 1))
    torch.testing.assert_close(slab[0, 0, :, :, 0], out[0, 0, :, :, 0], atol=1e-5, rtol=0)


def test_transform_matrix_maps_the_centre_to_centre_plus_t():
    R = g.rotvec_to_matrix(torch.tensor([0.3, 0.2, -0.1], dtype=F64))
    t = torch.tensor([1.0, 2.0, 3.0], dtype=F64)
    c = torch.tensor([10.0, -4.0, 2.0], dtype=F64)
    T = transform_matrix(R, t, c)
    torch.testing.assert_close(T[:3, :3] @ c + T[:3, 3], c + t)


def test_resample_to_grid_is_isotropic_centred_and_antialiased():
    volume = _blob_volume()
    out = resample_to_grid(volume, (16, 16, 16), spacing=4.0)
    assert out.shape == (16, 16, 16)
    torch.testing.assert_close(out.spacing, torch.full((3,), 4.0, dtype=F64))
    torch.testing.assert_close(out.centre, volume.centre)
    assert out.data.abs().sum() > 0


def test_bad_inputs():
    volume = _blob_volume()
    eye, zero = torch.eye(3, dtype=F64), torch.zeros(3, dtype=F64)
    with pytest.raises(ValueError, match="data: expected"):
        rigid_resample(volume.data[0], volume.affine, eye, zero, zero)
    with pytest.raises(ValueError, match="affine: the 3x3 part is not invertible"):
        rigid_resample(volume.data, torch.diag(torch.tensor([1.0, 0.0, 1.0, 1.0], dtype=F64)), eye, zero, zero)
    with pytest.raises(ValueError, match="at least 2 voxels"):
        rigid_resample(volume.data[:, :, :1], volume.affine, eye, zero, zero)
    with pytest.raises(ValueError, match="do not broadcast"):
        rigid_resample(volume.data.expand(2, 1, *volume.shape), volume.affine,
                       eye.expand(3, 3, 3), zero.expand(3, 3), zero)


def test_sample_at_points_reads_voxel_centres_and_zero_outside():
    volume = _blob_volume()
    world = volume.world_coordinates()
    torch.testing.assert_close(sample_at_points(volume, world), volume.data, atol=1e-5, rtol=0)
    far = volume.centre + 1e4
    assert sample_at_points(volume, far[None]).item() == 0.0
    # Agrees with rigid_resample, which composes the same index normalisation differently.
    R = g.rotvec_to_matrix(torch.tensor([0.3, -0.2, 0.5], dtype=F64))
    t = torch.tensor([2.0, -1.0, 3.0], dtype=F64)
    c = volume.centre
    points = (world - c) @ R.T + c + t
    torch.testing.assert_close(
        sample_at_points(volume, points), rigid_resample(volume.data, volume.affine, R, t, c)[0, 0], atol=1e-5, rtol=0
    )
    with pytest.raises(ValueError, match=r"points: expected .*\(\.\.\., 3\)"):
        sample_at_points(volume, world[..., :2])


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_slab_parallel_resampling_equals_one_batch(threads):
    from posereg.data import rigid_resample

    gen = torch.Generator().manual_seed(0)
    data = torch.rand(12, 10, 8, generator=gen)
    affine = torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0], dtype=torch.float64))
    R = g.rotvec_to_matrix(torch.tensor([0.2, -0.1, 0.3], dtype=torch.float64))
    t = torch.tensor([1.0, 0.5, -2.0], dtype=torch.float64)
    centre = torch.tensor([11.0, 9.0, 7.0], dtype=torch.float64)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        reference = rigid_resample(data, affine, R, t, centre)
        torch.set_num_threads(threads)  # 2 and 3: slabs of 6 and 4 along the 12-voxel axis
        torch.testing.assert_close(rigid_resample(data, affine, R, t, centre), reference, atol=1e-6, rtol=0)
        batch = rigid_resample(data, affine, torch.stack((R, R.mT)), torch.stack((t, -t)), centre)
        torch.testing.assert_close(batch[:1], reference, atol=1e-6, rtol=0)
        # Three outputs (on 2 threads: each cut into slabs), each equal to its own single resampling.
        Rs, ts = torch.stack((R, R.mT, R @ R)), torch.stack((t, -t, 2 * t))
        three = rigid_resample(data, affine, Rs, ts, centre)
        torch.set_num_threads(1)
        for k in range(3):
            torch.testing.assert_close(three[k : k + 1], rigid_resample(data, affine, Rs[k], ts[k], centre), atol=1e-6, rtol=0)
    finally:
        torch.set_num_threads(before)


def test_block_reduction_keeps_every_voxel_in_place_and_averages_blocks():
    from posereg.data import Volume, block_reduced

    g = torch.Generator().manual_seed(0)
    affine = torch.tensor([[0.0, -1.0, 0, 30], [1.0, 0, 0, -20], [0, 0, 1.2, 5], [0, 0, 0, 1]], dtype=torch.float64)
    volume = Volume(torch.rand(9, 8, 7, generator=g), affine)
    small = block_reduced(volume, 3.0)  # 1 mm axes reduce by 2, the 1.2 mm axis by 1
    assert small.shape == (4, 4, 7)
    assert torch.allclose(small.spacing, torch.tensor([2.0, 2.0, 1.2], dtype=torch.float64))
    # Block (1, 2, 3) is the mean of voxels i in {2, 3}, j in {4, 5}, k = 3, and sits at their mean centre.
    torch.testing.assert_close(small.data[1, 2, 3], volume.data[2:4, 4:6, 3].mean())
    centres = torch.tensor([[i, j, 3.0, 1.0] for i in (2, 3) for j in (4, 5)], dtype=torch.float64) @ affine.T
    torch.testing.assert_close((small.affine @ torch.tensor([1.0, 2.0, 3.0, 1.0], dtype=torch.float64))[:3],
                               centres[:, :3].mean(0))  # fmt: skip
    assert block_reduced(volume, 1.0) is volume  # nothing to reduce


@settings(max_examples=25, deadline=None)
@given(
    sigma=st.tuples(*[st.sampled_from([0.0, 0.3, 0.75, 1.3, 2.6])] * 3),
    shape=st.tuples(*[st.integers(1, 9)] * 3),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_gaussian_smooth_matches_scipy(sigma, shape, dtype):
    # The same truncated, normalised kernel as scipy.ndimage.correlate1d along each axis, zero
    # outside; volumes thinner than the kernel included.
    from scipy import ndimage

    data = torch.rand(shape, generator=torch.Generator().manual_seed(sum(shape)), dtype=dtype)
    expected = data.numpy().astype(np.float64)
    for axis, s in enumerate(sigma):
        if s > 0:
            radius = max(1, math.ceil(3 * s))
            x = np.arange(-radius, radius + 1, dtype=np.float64)
            kernel = np.exp(-0.5 * (x / s) ** 2)
            expected = ndimage.correlate1d(expected, kernel / kernel.sum(), axis=axis, mode="constant")
    out = gaussian_smooth(data, sigma)
    assert out.dtype == dtype and out.shape == data.shape
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=tol)
    assert out.data_ptr() != data.data_ptr()  # a new tensor even when nothing is smoothed


def test_gaussian_smooth_gradient():
    x = torch.rand(5, 6, 4, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: gaussian_smooth(a, (0.8, 0.0, 1.3)), (x,))


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(1, 11), min_size=3, max_size=3),
       spacings=st.lists(st.sampled_from([0.5, 0.9, 1.0, 1.5, 3.0]), min_size=3, max_size=3), seed=st.integers(0, 2**16))  # fmt: skip
def test_block_reduction_equals_average_pooling_of_the_cropped_blocks(sizes, spacings, seed):
    from posereg.data import Volume, block_reduced

    affine = torch.diag(torch.tensor([*spacings, 1.0], dtype=torch.float64))
    volume = Volume(torch.rand(*sizes, generator=torch.Generator().manual_seed(seed)), affine)
    factors = [max(1, math.floor(3.0 / (1.5 * s))) for s in spacings]
    assume(all(n >= k for n, k in zip(sizes, factors)))  # an axis shorter than one block has no block
    small = block_reduced(volume, 3.0)
    cropped = volume.data[tuple(slice(0, n // k * k) for n, k in zip(sizes, factors))]
    expected = torch.nn.functional.avg_pool3d(cropped[None, None], factors, factors)[0, 0]
    torch.testing.assert_close(small.data, expected, atol=1e-6, rtol=1e-6)


def test_reduced_for_spacing_is_block_reduction_then_antialiasing_in_c_order():
    """The composition, made C-contiguous from a Fortran-ordered input (``load_nifti`` keeps a file's
    order); and a linear ramp survives it: block means and a Gaussian keep a linear field, so the
    reduced grid samples the same ramp at its own voxel centres."""
    from posereg.data.resample import antialiased, block_reduced, reduced_for_spacing

    affine = torch.diag(torch.tensor([1.0, 1.0, 1.0, 1.0], dtype=F64))
    affine[:3, 3] = torch.tensor([-20.0, 5.0, 3.0], dtype=F64)
    i, j, k = torch.meshgrid(*[torch.arange(n, dtype=torch.float32) for n in (30, 24, 18)], indexing="ij")
    ramp = (0.5 * i - 0.25 * j + 0.1 * k).permute(2, 1, 0).contiguous().permute(2, 1, 0)  # Fortran order
    volume = Volume(ramp, affine)
    out = reduced_for_spacing(volume, 3.0)
    reduced = block_reduced(volume, 3.0)
    torch.testing.assert_close(out.data, antialiased(reduced, 3.0), rtol=0, atol=0)
    torch.testing.assert_close(out.affine, reduced.affine)
    assert out.data.is_contiguous() and not volume.data.is_contiguous() and out.shape == (15, 12, 9)
    ijk = torch.stack(torch.meshgrid(*[torch.arange(n, dtype=F64) for n in out.shape], indexing="ij"), -1)
    world = ijk @ out.affine[:3, :3].T + out.affine[:3, 3]
    voxel = world - affine[:3, 3]  # the input's index coordinates (unit voxels, no rotation)
    expected = 0.5 * voxel[..., 0] - 0.25 * voxel[..., 1] + 0.1 * voxel[..., 2]
    inner = (slice(3, -3),) * 3  # the Gaussian's edge handling (3 sigma) bends the ramp at the borders
    torch.testing.assert_close(out.data[inner].double(), expected[inner], rtol=0, atol=1e-4)
