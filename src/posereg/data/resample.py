"""Rigid resampling of volumes in physical (world, millimetre) coordinates with ``grid_sample``.

Convention (ITK's): a resampling transform maps points of the *output* grid to the points
of the *input* image they take their value from,

    ``out(x) = in(T(x))``,  ``T(x) = R (x - c) + c + t``  (RAS millimetres),

with rotation ``R`` about the centre ``c`` and translation ``t``. An image whose content is
the input's rotated by ``R`` about ``c`` and shifted by ``t`` is therefore
``rigid_resample(..., R^T, -R^T t)``: the inverse transform (see ``posereg.data.dataset``).

``torch.nn.functional.affine_grid`` would work in normalised coordinates ``[-1, 1]`` per axis,
which are not physical on non-cubic or anisotropic grids (a "rotation" there shears). The
sampling grid is therefore composed in millimetres, between the two grids' affines:
output index -> ``N_in A_in^-1 T A_out`` -> normalised input coordinates (``N``: voxel index
-> ``[-1, 1]`` with ``align_corners=True``, so voxel centres sit at integer indices as in
NIfTI and ITK), computed in float64 and applied by ``grid_sample``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from posereg.data.volume import Volume, check_affine, isotropic_affine
from posereg.geometry._checks import broadcast_shapes, check_tensor

__all__ = [
    "antialiased", "block_reduced", "gaussian_smooth", "reduced_for_spacing", "resample_to_grid", "rigid_resample",
    "sample_at_points", "transform_matrix",
]  # fmt: skip


def transform_matrix(R: Tensor, t: Tensor, centre: Tensor) -> Tensor:
    """``(..., 4, 4)`` homogeneous matrix of ``T(x) = R (x - c) + c + t``.

    Args:
        R: ``(..., 3, 3)`` rotations; t: ``(..., 3)`` translations (mm); centre: ``(3,)`` (mm).
    """
    check_tensor(R, (3, 3), "R")
    check_tensor(t, (3,), "t")
    R, t = R.to(torch.float64), t.to(torch.float64)
    c = centre.to(torch.float64)
    batch = broadcast_shapes(R.shape[:-2], t.shape[:-1])
    T = torch.zeros(*batch, 4, 4, dtype=torch.float64, device=R.device)
    T[..., :3, :3] = R
    T[..., :3, 3] = c + t - (R @ c.unsqueeze(-1)).squeeze(-1)
    T[..., 3, 3] = 1.0
    return T


def _index_to_normalized(shape: tuple[int, ...]) -> Tensor:
    """(4, 4): voxel index ``(i, j, k)`` -> grid_sample's ``(x, y, z) = (k, j, i)`` normalised."""
    if min(shape) < 2:
        raise ValueError(f"input grid: expected at least 2 voxels along every axis, got {tuple(shape)}")
    N = torch.zeros(4, 4, dtype=torch.float64)
    for row, axis in enumerate((2, 1, 0)):
        N[row, axis] = 2.0 / (shape[axis] - 1)
        N[row, 3] = -1.0
    N[3, 3] = 1.0
    return N


def rigid_resample(
    data: Tensor,
    affine: Tensor,
    R: Tensor,
    t: Tensor,
    centre: Tensor,
    *,
    out_affine: Tensor | None = None,
    out_shape: tuple[int, int, int] | None = None,
    mode: str = "bilinear",
) -> Tensor:
    """``out(x) = in(R (x - c) + c + t)`` on an output grid, batched over transforms.

    Linear (``mode='bilinear'``, trilinear in 3D) or ``'nearest'`` interpolation; points
    outside the input grid read 0. Within half a voxel outside the outermost voxel centres
    the value fades linearly to 0, where ITK would still return the border value: results
    match SimpleITK exactly when the image is zero at its border (as brain scans are).
    Differentiable in ``data`` (and in the grid).

    Args:
        data: ``(I, J, K)``, or ``(N, C, I, J, K)`` with ``N`` 1 or the batch size.
        affine: ``(4, 4)`` input voxel -> RAS mm.
        R: ``(N, 3, 3)`` or ``(3, 3)`` rotations (output-to-input, RAS).
        t: ``(N, 3)`` or ``(3,)`` translations, mm.
        centre: ``(3,)`` centre of rotation, RAS mm (e.g. ``Volume.centre``).
        out_affine: ``(4, 4)`` output voxel -> RAS mm; default the input's.
        out_shape: output grid size; default the input's. Size-1 axes give slices.
        mode: ``'bilinear'`` or ``'nearest'``.

    Returns:
        ``(N, C, I', J', K')`` resampled images (``C = 1`` for 3D input), dtype of ``data``.

    Raises:
        ValueError: bad shapes, a non-invertible affine, or an input axis of size 1.
    """
    if data.dim() == 3:
        data = data[None, None]
    if data.dim() != 5 or not data.dtype.is_floating_point:
        raise ValueError(f"data: expected a floating-point tensor of shape (I, J, K) or (N, C, I, J, K), got {tuple(data.shape)}")
    A_in = check_affine(affine)
    A_out = A_in if out_affine is None else check_affine(out_affine, "out_affine")
    shape_in = tuple(data.shape[2:])
    shape_out = shape_in if out_shape is None else tuple(int(n) for n in out_shape)
    if len(shape_out) != 3 or min(shape_out) < 1:
        raise ValueError(f"out_shape: expected three positive sizes, got {out_shape!r}")
    T = transform_matrix(R.reshape(-1, 3, 3), t.reshape(-1, 3), centre)
    n = max(T.shape[0], data.shape[0])
    if data.shape[0] not in (1, n) or T.shape[0] not in (1, n):
        raise ValueError(f"data, R, t: batch sizes {data.shape[0]} and {T.shape[0]} do not broadcast")
    device = data.device
    # Output voxel index -> normalised input coordinates, composed in float64.
    M = (_index_to_normalized(shape_in) @ torch.linalg.inv(A_in) @ T.cpu() @ A_out).expand(n, 4, 4)
    M = M.to(device=device, dtype=data.dtype)
    # grid[n, i, j, k] = M_n (i, j, k, 1): a sum of one term per axis, broadcast (half the time of a
    # matrix product of every index with M, whose inner dimension is 3).
    i, j, k = (torch.arange(size, dtype=data.dtype, device=device)[None, :, None] * M[:, None, :3, axis]
               for axis, size in enumerate(shape_out))  # fmt: skip
    grid = ((i + M[:, None, :3, 3])[:, :, None, None] + j[:, None, :, None]) + k[:, None, None, :]
    slabs = _slab_count(n, shape_out[0]) if data.shape[0] == 1 else 1
    # grid_sample's CPU kernel parallelises over batch entries only: when they do not share out
    # evenly between the threads (one output; three on two threads), each output is cut into slabs
    # along its first axis, sampled as one batch (the input is shared, not copied).
    grid = grid.reshape(n * slabs, shape_out[0] // slabs, *shape_out[1:], 3)
    out = F.grid_sample(data.expand(n * slabs, *data.shape[1:]), grid, mode=mode, padding_mode="zeros",
                        align_corners=True)  # fmt: skip
    if slabs > 1:  # (n slabs, C, I / slabs, J, K) -> (n, C, I, J, K)
        out = out.unflatten(0, (n, slabs)).movedim(1, 2).reshape(n, data.shape[1], *shape_out)
    return out


def _slab_count(batch: int, first_axis: int) -> int:
    """How many slabs to cut each output of a CPU resampling of ``batch`` outputs into: one per thread
    when the outputs do not share out evenly between the threads and the threads divide the axis."""
    threads = torch.get_num_threads()
    if threads < 2 or batch % threads == 0 or first_axis % threads != 0:
        return 1
    return threads


def gaussian_smooth(data: Tensor, sigma_voxels: tuple[float, float, float]) -> Tensor:
    """Separable Gaussian filter of an ``(I, J, K)`` volume; ``sigma`` per axis in voxels (0: none).

    The kernel is truncated at ``ceil(3 sigma)`` voxels and normalised; outside the volume is 0
    (``scipy.ndimage.correlate1d`` with ``mode='constant'``). Each axis is a weighted sum of
    shifted views: 4-5x faster on a CPU than a one-channel ``conv3d``, whose im2col path it takes
    (0.23 -> 0.06 s for 128^3 on one core), and differentiable like it.
    """
    out = data
    for axis, sigma in enumerate(sigma_voxels):
        if sigma <= 0:
            continue
        radius = max(1, math.ceil(3 * sigma))
        x = torch.arange(-radius, radius + 1, dtype=torch.float64)
        kernel = torch.exp(-0.5 * (x / sigma) ** 2)
        weights = (kernel / kernel.sum()).tolist()
        pad = [0] * 6  # F.pad lists the last axis first
        pad[2 * (2 - axis)] = pad[2 * (2 - axis) + 1] = radius
        padded = F.pad(out, pad)
        n = out.shape[axis]
        acc = padded.narrow(axis, 0, n) * weights[0]
        for shift, weight in enumerate(weights[1:], start=1):
            acc = acc.add_(padded.narrow(axis, shift, n), alpha=weight)
        out = acc
    return out.clone() if out is data else out


def block_reduced(volume: Volume, spacing: float) -> Volume:
    """``volume`` averaged over blocks of whole voxels, as coarse as resampling at ``spacing`` mm allows.

    Each axis of voxel size ``s`` is reduced by ``k = floor(spacing / (1.5 s))`` (at least 1):
    a 1 mm scan headed for a 3 mm grid becomes a 2 mm one, 8 times fewer voxels for the
    anti-aliasing filter and every resampling after it. A box of ``k`` voxels is itself a
    low-pass filter (variance ``(k^2 - 1) / 12`` voxels^2); with ``antialiased`` at ``spacing``
    after it the total blur is within 6% of ``antialiased`` alone (1 mm -> 3 mm: 1.58 against
    1.5 mm). Trailing voxels that do not fill a block are dropped (less than ``k`` voxels at
    the edge of the field of view). The affine follows: block ``b`` sits at the mean of its
    voxels' centres, ``A diag(k) b + A (k - 1) / 2 + o``.

    Returns:
        The reduced volume (the same object when no axis reduces).
    """
    factors = [max(1, math.floor(spacing / (1.5 * float(s)))) for s in volume.spacing]
    if factors == [1, 1, 1]:
        return volume
    data = volume.data
    # Axis by axis (last first), the sum of the k strided views of each block's voxels: the block
    # means of ``F.avg_pool3d`` (to float rounding) in a quarter of its time (a 1 mm head: 16 -> 4 ms).
    for axis in (2, 1, 0):
        k = factors[axis]
        if k > 1:
            end = data.shape[axis] // k * k
            views = [data[(slice(None),) * axis + (slice(o, end, k),)] for o in range(k)]
            data = torch.stack(views).sum(0) if k > 2 else views[0] + views[1]
    data = data / math.prod(factors)
    k = torch.tensor(factors, dtype=torch.float64)
    affine = volume.affine.clone()
    affine[:3, 3] = volume.affine[:3, :3] @ ((k - 1) / 2) + volume.affine[:3, 3]
    affine[:3, :3] = volume.affine[:3, :3] * k
    return Volume(data, affine)


def antialiased(volume: Volume, spacing: float) -> Tensor:
    """``volume.data`` smoothed before resampling at ``spacing`` mm.

    A Gaussian of ``sigma = 0.5 * (spacing / old spacing)`` voxels along each axis that
    shrinks (none along the others), so that fine detail does not alias.
    """
    ratio = (spacing / volume.spacing).tolist()
    return gaussian_smooth(volume.data, tuple(0.5 * r if r > 1 else 0.0 for r in ratio))  # type: ignore[arg-type]


def reduced_for_spacing(volume: Volume, spacing: float) -> Volume:
    """``volume`` block-reduced (``block_reduced``) and anti-aliased (``antialiased``) for resampling at
    ``spacing`` mm, C-contiguous: what a resampling onto a ``spacing`` grid should read (a 1 mm head for a
    3 mm grid: 8x fewer voxels to smooth and to gather from; ``grid_sample`` gathers from C order
    fastest, while ``load_nifti`` keeps a file's memory order).

    Args:
        volume: the image (any grid).
        spacing: the voxel size (mm) of the grid it will be resampled onto.
    """
    reduced = block_reduced(volume, spacing)
    return reduced.with_data(antialiased(reduced, spacing).contiguous())


def sample_at_points(volume: Volume, points: Tensor) -> Tensor:
    """Trilinear samples of ``volume`` at RAS points (0 outside the grid, as ``rigid_resample``).

    Args:
        volume: the image.
        points: ``(..., 3)`` RAS positions, mm.

    Returns:
        ``(...)`` values, dtype of ``volume.data``.
    """
    check_tensor(points, (3,), "points")
    M = _index_to_normalized(volume.shape) @ torch.linalg.inv(check_affine(volume.affine))
    M = M.to(device=points.device)
    grid = points.to(torch.float64) @ M[:3, :3].T + M[:3, 3]
    out = F.grid_sample(volume.data[None, None], grid.reshape(1, 1, 1, -1, 3).to(volume.data.dtype), align_corners=True)
    return out.reshape(points.shape[:-1])


def resample_to_grid(
    volume: Volume,
    shape: tuple[int, int, int] = (64, 64, 64),
    spacing: float = 3.0,
    centre: Tensor | None = None,
    *,
    antialias: bool = True,
) -> Volume:
    """Resample onto an isotropic, RAS-aligned grid (default 64^3 at 3 mm) centred on ``centre``.

    Downsampling first smooths the input (``antialiased``).

    Args:
        volume: the input.
        shape: output grid size.
        spacing: output voxel size, mm.
        centre: RAS mm position of the output grid centre; default the input grid's centre.
        antialias: smooth before downsampling.
    """
    centre = volume.centre if centre is None else centre
    out_affine = isotropic_affine(shape, spacing, centre)
    data = antialiased(volume, spacing) if antialias else volume.data
    eye = torch.eye(3, dtype=torch.float64)
    out = rigid_resample(data, volume.affine, eye, torch.zeros(3, dtype=torch.float64), centre,
                         out_affine=out_affine, out_shape=shape)
    return Volume(out[0, 0], out_affine)
