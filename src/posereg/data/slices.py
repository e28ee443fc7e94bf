"""Slices through a volume at a known pose: the 2D->3D data of Salehi et al. (2018).

Frames. A volume (RAS mm, grid centre ``c``) is rotated by ``R`` about ``c``; the rotated
volume is ``V_R(y) = V(R^T (y - c) + c)``. Its stack of axial slices (normal ``+z`` of the
grid, i.e. superior for a RAS-aligned grid) is what a scanner that sees the brain in that
orientation would acquire. Slice ``k`` of the stack (``0 <= k < K``, ``K`` the grid size
along ``z``) lies at height ``d_k = (k - (K - 1) / 2) * s`` mm above ``c`` (``s`` the
spacing), and its pixel ``(i, j)`` at in-plane offsets ``u = (i - (H - 1) / 2) s`` (along the
grid's ``x``) and ``v = (j - (W - 1) / 2) s`` (along ``y``). In the volume's own (atlas)
frame that pixel is the point ``x = c + R^T (u, v, d_k)``: the slice plane has unit normal
``n = R^T e_z`` (the third row of ``R``) and lies at signed distance ``d_k`` from ``c`` along
``n``. The labels of a slice are ``R`` and its index ``k`` (Salehi et al.'s slice number);
``slice_plane`` turns them into the plane in atlas millimetres.

Training rotations come from the half space of the paper (``half_space_rotation``: ``x`` and
``y`` Euler angles within +-90 degrees, ``z`` over the full circle), and each rotated volume
gives ``slices_per_volume`` slices from the middle of its stack (the outer slices hold
little or no brain).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from posereg.data.dataset import EpochDataset, item_generator, preprocess_intensity, scan_intensity_range
from posereg.data.resample import sample_at_points
from posereg.data.synthetic import rician_noise
from posereg.data.volume import Volume
from posereg.geometry import matrix_to_rotvec, random_euler_rotation

__all__ = [
    "SliceGeometry", "SlicePoseDataset", "cut_slices", "half_space_rotation", "load_slice_nifti", "preprocess_slice",
    "slice_plane", "slice_points", "slice_to_grid",
]  # fmt: skip


@dataclass(frozen=True)
class SliceGeometry:
    """The slice grid: ``size x size`` pixels of ``spacing`` mm, ``stack`` slices per volume.

    Defaults match the volume pipeline's 64^3 grid at 3 mm (a 192 mm field of view).
    """

    size: int = 64
    spacing: float = 3.0
    stack: int = 64

    def __post_init__(self) -> None:
        if self.size < 2 or self.stack < 2 or not (self.spacing > 0 and math.isfinite(self.spacing)):
            raise ValueError(f"SliceGeometry: expected size, stack >= 2 and spacing > 0 mm, got {self}")

    def offset_mm(self, index: Tensor | float) -> Tensor | float:
        """Height ``d_k`` (mm) of slice ``index`` above the centre, along the slice normal."""
        return (index - (self.stack - 1) / 2) * self.spacing

    def middle_indices(self, fraction: float) -> tuple[int, int]:
        """``[low, high)``: the slice indices of the central ``fraction`` of the stack."""
        if not 0 < fraction <= 1:
            raise ValueError(f"middle_fraction: expected a fraction in (0, 1], got {fraction}")
        margin = round(self.stack * (1 - fraction) / 2)
        return margin, self.stack - margin

    def index_of(self, offset_mm: Tensor | float) -> Tensor | float:
        """The (fractional) slice index at height ``offset_mm`` (the inverse of ``offset_mm``)."""
        return offset_mm / self.spacing + (self.stack - 1) / 2


def slice_points(R: Tensor, index: Tensor, centre: Tensor, geometry: SliceGeometry = SliceGeometry()) -> Tensor:
    """Atlas-frame positions (RAS mm) of every pixel of slices ``index`` of volumes rotated by ``R``.

    Args:
        R: ``(..., 3, 3)`` rotations (float64 recommended).
        index: ``(...)`` slice indices (may be fractional).
        centre: ``(3,)`` the rotation centre ``c``, mm.
        geometry: the slice grid.

    Returns:
        ``(..., size, size, 3)`` points ``c + R^T (u, v, d)``.
    """
    dtype = R.dtype
    half = (geometry.size - 1) / 2
    axis = (torch.arange(geometry.size, dtype=dtype, device=R.device) - half) * geometry.spacing
    u, v = torch.meshgrid(axis, axis, indexing="ij")
    d = geometry.offset_mm(index.to(dtype))
    local = torch.stack(torch.broadcast_tensors(u, v, torch.zeros_like(u)), dim=-1)  # (H, W, 3)
    local = local + torch.stack((torch.zeros_like(d), torch.zeros_like(d), d), dim=-1)[..., None, None, :]
    # Row vectors: x = c + local @ R, i.e. c + R^T local.
    return centre.to(dtype) + torch.einsum("...hwj,...jk->...hwk", local, R)


def cut_slices(volume: Volume, R: Tensor, index: Tensor, geometry: SliceGeometry = SliceGeometry()) -> Tensor:
    """Slices ``index`` of ``volume`` rotated by ``R`` about its grid centre (trilinear, 0 outside).

    Args:
        volume: the volume (atlas frame).
        R: ``(..., 3, 3)`` rotations; index: ``(...)`` slice indices.
        geometry: the slice grid.

    Returns:
        ``(..., size, size)`` images, dtype of ``volume.data``.
    """
    return sample_at_points(volume, slice_points(R.to(torch.float64), index, volume.centre, geometry))


def slice_plane(R: Tensor, index: Tensor, centre: Tensor, geometry: SliceGeometry = SliceGeometry()) -> tuple[Tensor, Tensor]:
    """The plane of slice ``index`` under ``R`` in the atlas frame: ``(unit normal n, point p)``.

    ``n = R^T e_z``; ``p = c + d_k n`` is the slice centre (mm), so the plane is
    ``{x : n . (x - c) = d_k}``.
    """
    n = R[..., 2, :]
    d = geometry.offset_mm(index.to(R.dtype))
    return n, centre.to(R.dtype) + d[..., None] * n


def half_space_rotation(
    generator: torch.Generator,
    x_range_deg: tuple[float, float] = (-90.0, 90.0),
    y_range_deg: tuple[float, float] = (-90.0, 90.0),
    z_range_deg: tuple[float, float] = (-180.0, 180.0),
) -> Tensor:
    """A rotation with extrinsic ``x, y, z`` Euler angles uniform in the ranges (degrees).

    The default is Salehi et al.'s training distribution for slices: tilts about ``x`` and
    ``y`` up to +-90 degrees (the slice normal stays in one half space) and any in-plane
    rotation about ``z``.

    Returns:
        ``(3, 3)`` float64 rotation.
    """
    low = [math.radians(r[0]) for r in (x_range_deg, y_range_deg, z_range_deg)]
    high = [math.radians(r[1]) for r in (x_range_deg, y_range_deg, z_range_deg)]
    return random_euler_rotation((), low, high, "xyz", generator=generator, dtype=torch.float64)


RotationSampler = Callable[[torch.Generator], Tensor]


class SlicePoseDataset(EpochDataset):
    """Slices of randomly rotated subjects with their rotation and slice index, on the fly.

    Items come in groups of ``slices_per_volume``: group ``g`` is one subject rotated by one
    rotation (drawn from ``item_generator(seed, g, epoch)``), and its items are distinct
    slices from the middle ``middle_fraction`` of the stack, in random order. Items are
    reproducible and independent of order and worker count; ``set_epoch`` draws new ones.

    Args:
        subjects: volumes on one grid (e.g. synthetic subjects).
        length: items per epoch.
        seed: base seed.
        geometry: the slice grid.
        rotation_sampler: ``generator -> (3, 3)``; default ``half_space_rotation``.
        slices_per_volume: slices kept per rotated volume (paper: 30).
        middle_fraction: the central part of the stack slices are drawn from (paper: 66%).
        noise: Rician noise level added to each slice (relative to [0, 1] intensities).

    Items are dicts: ``image`` ``(1, size, size)`` float32 in [0, 1], ``rotation`` ``(3, 3)``,
    ``rotvec`` ``(3,)`` (radians), ``slice_index`` ``()`` (float), ``subject`` (int).
    """

    def __init__(
        self,
        subjects: Sequence[Volume],
        length: int,
        seed: int,
        *,
        geometry: SliceGeometry = SliceGeometry(),
        rotation_sampler: RotationSampler | None = None,
        slices_per_volume: int = 30,
        middle_fraction: float = 0.66,
        noise: float = 0.03,
    ) -> None:
        if not subjects:
            raise ValueError("subjects: expected at least one subject volume")
        super().__init__(length, seed)
        low, high = geometry.middle_indices(middle_fraction)
        if not 1 <= slices_per_volume <= high - low:
            raise ValueError(f"slices_per_volume: expected 1..{high - low} (the middle of the stack), got {slices_per_volume}")
        if noise < 0:
            raise ValueError(f"noise: expected >= 0, got {noise}")
        self.subjects = list(subjects)
        self.geometry = geometry
        self.rotation_sampler = rotation_sampler or half_space_rotation
        self.slices_per_volume, self.noise = slices_per_volume, noise
        self.index_range = (low, high)

    def __getitem__(self, index: int | tuple[int, int]) -> dict[str, Tensor | int]:
        """Item ``index`` of the current epoch, or ``(epoch, index)`` (``EpochSampler``)."""
        epoch, index = self.resolve(index)
        group, member = divmod(index, self.slices_per_volume)
        gen = item_generator(self.seed, group, epoch)
        subject = int(torch.randint(len(self.subjects), (), generator=gen))
        R = self.rotation_sampler(gen).to(torch.float64)
        low, high = self.index_range
        k = low + int(torch.randperm(high - low, generator=gen)[member])
        volume = self.subjects[subject]
        image = cut_slices(volume, R, torch.tensor(float(k)), self.geometry)
        if self.noise > 0:
            image = rician_noise(image, self.noise, item_generator(self.seed, index, epoch))
        return {
            "image": preprocess_slice(image)[None].to(torch.float32),
            "rotation": R.to(torch.float32),
            "rotvec": matrix_to_rotvec(R).to(torch.float32),
            "slice_index": torch.tensor(float(k), dtype=torch.float32),
            "subject": subject,
        }


def preprocess_slice(image: Tensor) -> Tensor:
    """Normalise a 2D slice for the network: [0, 1] over its foreground's robust range.

    As ``preprocess_intensity`` for volumes; a slice with almost no foreground (its percentiles
    coincide) falls back to ``[0, max]`` instead of failing.
    """
    try:
        intensity_range = scan_intensity_range(image)
    except ValueError:
        high = float(image.max())
        intensity_range = (0.0, high if high > 0 else 1.0)
    return preprocess_intensity(image, intensity_range)


def load_slice_nifti(path: str | Path) -> tuple[Tensor, tuple[float, float]]:
    """Read a single 2D slice from NIfTI: ``(image (H, W) float32, pixel spacing (mm, mm))``.

    The slice's pose is what is unknown, but its storage order is not: the pixels are first put
    in the closest canonical (RAS+) order of the header's affine (axes permuted and flipped, as
    ``load_nifti`` does for volumes), so that one physical slice stored RAS, RPS, LAS or
    transposed gives the same image, and so the same located plane. A 3D file must have
    exactly one axis of size 1.

    Raises:
        FileNotFoundError: no such file. ValueError: unreadable, not a single slice, all zero
        or non-finite.
    """
    import nibabel as nib
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such NIfTI file")
    try:
        image = nib.load(str(path))
        data = np.asarray(image.get_fdata(dtype=np.float32))
    except Exception as exc:  # nibabel raises several types for truncated or foreign files
        raise ValueError(f"{path}: not a readable NIfTI image ({exc})") from exc
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim == 2:
        data = data[..., None]
    if data.ndim == 3:  # in-plane order from the header (the affine is 3D even for a 2D file)
        canonical = nib.as_closest_canonical(nib.Nifti1Image(data, image.affine))
        data = np.asarray(canonical.dataobj, dtype=np.float32)
        zooms = [float(z) for z in canonical.header.get_zooms()[:3]]
    else:
        zooms = [float(z) for z in image.header.get_zooms()[: data.ndim]]
    keep = [a for a in range(data.ndim) if data.shape[a] != 1]
    if len(keep) != 2 or data.ndim > 4:
        raise ValueError(f"{path}: expected a single 2D slice, got shape {data.shape}")
    if not np.isfinite(data).all() or not np.any(data):
        raise ValueError(f"{path}: the slice is all zero or contains NaN or inf")
    return torch.from_numpy(np.ascontiguousarray(data.squeeze())), (zooms[keep[0]], zooms[keep[1]])


def slice_to_grid(image: Tensor, spacing: tuple[float, float], geometry: SliceGeometry = SliceGeometry()) -> Tensor:
    """Resample a ``(H, W)`` slice of pixel ``spacing`` (mm) onto the geometry's grid about its centre.

    Bilinear, zero outside, with a Gaussian of ``0.5 * (new / old spacing)`` pixels first
    where the pixel grows (no aliasing).

    Returns:
        ``(size, size)`` image (a ``size * spacing`` mm field of view centred on the input's centre).
    """
    import torch.nn.functional as F

    from posereg.data.resample import gaussian_smooth

    if image.dim() != 2 or min(image.shape) < 2:
        raise ValueError(f"image: expected a 2D slice of at least 2 x 2 pixels, got {tuple(image.shape)}")
    if min(spacing) <= 0:
        raise ValueError(f"spacing: expected positive pixel sizes in mm, got {spacing}")
    ratio = [geometry.spacing / s for s in spacing]
    smooth = gaussian_smooth(image.float()[..., None], (0.5 * ratio[0] if ratio[0] > 1 else 0.0,
                                                        0.5 * ratio[1] if ratio[1] > 1 else 0.0, 0.0))[..., 0]  # fmt: skip
    half = (geometry.size - 1) / 2
    axis = (torch.arange(geometry.size, dtype=torch.float64) - half) * geometry.spacing  # mm from the centre
    # Output pixel (i, j) at (u_i, v_j) mm -> input pixel (u / s0 + (H - 1) / 2, ...) -> normalised [-1, 1].
    rows = (axis / spacing[0] + (image.shape[0] - 1) / 2) * 2 / (image.shape[0] - 1) - 1
    cols = (axis / spacing[1] + (image.shape[1] - 1) / 2) * 2 / (image.shape[1] - 1) - 1
    r, c = torch.meshgrid(rows, cols, indexing="ij")
    grid = torch.stack((c, r), dim=-1)[None].float()  # grid_sample's (x, y) = (column, row)
    return F.grid_sample(smooth[None, None], grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0, 0]
