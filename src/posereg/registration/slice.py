"""Slice-to-volume registration with SimpleITK: SVR-GC and SVR-Deep of Salehi et al. (2018).

The slice is registered as a one-voxel-thick 3D image (the fixed image) to the atlas volume
(moving). Its own frame puts pixel ``(i, j)`` at ``p = (u_i, v_j, 0)`` (mm, centred; see
``posereg.data.slices``); a slice pose ``(R, k)`` says that ``p`` is the atlas point
``x = c + R^T p + d_k n`` with ``n = R^T e_z``. That is a rigid map ``T(p) = A p + b`` with
``A = R^T`` and ``b = c + d_k n``, which is what the intensity registration refines (with an
in-plane shift as well, which the network's labels do not have). Back from ``T``:
``R = A^T``, ``n = A e_z`` and ``d = n . (b - c)``.

- SVR-GC: started from the geometric centre (``A = I``, ``b = c``: an axial slice through the
  atlas centre).
- SVR-Deep: started from the slice Pose-Net's ``(R, k)``.
- Stack search (``search_stack``, optional before SVR-Deep): keep the network's rotation and
  replace its slice index by the index whose atlas slice at that rotation correlates best with
  the input (NCC over a range of the stack). The index head is the network's weaker output
  (tens of millimetres off on some slices), and SVR does not recover from a start that far
  along the normal; cutting ~40 atlas slices and correlating them takes a few milliseconds.

Settings (``slice_settings``): normalised cross-correlation on every pixel, a 3-level
pyramid (shrink 4/2/1; ITK leaves the one-voxel axis at one voxel), regular-step gradient
descent. The pyramid levels are not smoothed: ITK smooths them with a recursive Gaussian,
which refuses an axis of fewer than four voxels, as the slice's third axis is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import Tensor

from posereg.data import Atlas, Volume
from posereg.data.slices import SliceGeometry, cut_slices
from posereg.models import inference_copy
from posereg.registration._similarity import ncc_rows
from posereg.registration.intensity import IntensitySettings, Metric, register_rigid
from posereg.registration.slice_check import quarter_turns, slice_consensus

__all__ = [
    "SliceLocation", "SliceLocator", "SliceRegistrationResult", "StackSearch", "register_slice", "search_stack", "slice_as_volume",
    "slice_in_atlas", "slice_to_atlas",
    "slice_settings",
]  # fmt: skip


def slice_settings() -> IntensitySettings:
    """SVR's settings: NCC on every slice pixel, 3 levels (shrink 4/2/1, no smoothing: see the module doc)."""
    return IntensitySettings(metric=Metric.NCC, sampling=1.0, smoothing_mm=(0.0, 0.0, 0.0))


def slice_as_volume(image: Tensor, spacing: float) -> Volume:
    """A 2D slice ``(H, W)`` as an ``(H, W, 1)`` volume in its own frame (pixel ``(i, j)`` at ``(u_i, v_j, 0)`` mm)."""
    if image.dim() != 2:
        raise ValueError(f"image: expected a 2D slice of shape (H, W), got {tuple(image.shape)}")
    affine = torch.eye(4, dtype=torch.float64)
    affine[:3, :3] *= spacing
    affine[0, 3] = -spacing * (image.shape[0] - 1) / 2
    affine[1, 3] = -spacing * (image.shape[1] - 1) / 2
    return Volume(image[..., None].to(torch.float32), affine)


@dataclass(frozen=True)
class SliceRegistrationResult:
    """A slice pose found by intensity registration.

    Attributes:
        R: ``(3, 3)`` rotation of the slice's volume (the Pose-Net's label).
        offset_mm: height ``d`` of the slice above the atlas centre along its normal, mm.
        index: ``offset_mm`` as a (fractional) slice index of ``geometry``.
        in_plane_mm: ``(2,)`` the in-plane shift the registration added (mm, along the slice's ``u, v``).
        metric_value: the final NCC (SimpleITK's sign: lower is better).
        seconds: wall-clock time.
    """

    R: Tensor
    offset_mm: float
    index: float
    in_plane_mm: Tensor
    metric_value: float
    seconds: float


def slice_to_atlas(R: Tensor, offset_mm: float, centre: Tensor) -> tuple[Tensor, Tensor]:
    """The rigid map ``T(p) = A p + b`` from a slice's frame to the atlas (module docstring).

    Args:
        R: ``(3, 3)`` rotation of the slice's volume (plane normal ``n = R[2]``, atlas RAS).
        offset_mm: height ``d`` of the plane above ``centre`` along ``n``, mm.
        centre: ``(3,)`` the atlas grid centre ``c``, RAS mm.

    Returns:
        ``(A, b)`` float64: ``A = R^T``, ``b = c + d n``; slice pixel ``(i, j)`` at ``p = (u_i, v_j, 0)``
        mm is the atlas point ``A p + b``.
    """
    R = R.to(torch.float64)
    return R.mT, centre.to(torch.float64) + offset_mm * R[2, :]


def register_slice(
    atlas: Atlas,
    image: Tensor,
    geometry: SliceGeometry = SliceGeometry(),
    initial: tuple[Tensor, float] | None = None,
    settings: IntensitySettings | None = None,
) -> SliceRegistrationResult:
    """Register a 2D slice to the atlas volume (SVR-GC without ``initial``, SVR-Deep with it).

    Args:
        atlas: the atlas (its image is the moving volume).
        image: ``(H, W)`` the slice, intensities normalised like the atlas (``preprocess_slice``).
        geometry: the slice grid (its spacing is the pixel size).
        initial: ``(R, index)`` start, e.g. the slice Pose-Net's; default the geometric centre.
        settings: default ``slice_settings()``.
    """
    start = time.perf_counter()
    fixed = slice_as_volume(image, geometry.spacing)
    c = atlas.image.centre.to(torch.float64)
    if initial is None:
        A0, b0 = torch.eye(3, dtype=torch.float64), c.clone()
    else:
        A0, b0 = slice_to_atlas(initial[0], float(geometry.offset_mm(float(initial[1]))), c)
    # register_rigid's transforms are about the fixed centre c_f: T(p) = A (p - c_f) + c_f + t.
    c_f = fixed.centre
    t0 = b0 - c_f + A0 @ c_f
    result = register_rigid(fixed, atlas.image, initial=(A0, t0), settings=settings or slice_settings())
    A = result.R
    b = result.t + c_f - A @ c_f  # back to T(p) = A p + b
    R = A.mT
    n = R[2, :]
    shift = b - c
    d = float(n @ shift)
    in_plane = torch.stack((R[0, :] @ shift, R[1, :] @ shift))
    return SliceRegistrationResult(R, d, float(geometry.index_of(d)), in_plane, result.metric_value,
                                   time.perf_counter() - start)  # fmt: skip


@dataclass(frozen=True)
class StackSearch:
    """The result of ``search_stack``.

    Attributes:
        index: the slice index with the highest NCC.
        indices: ``(K,)`` the indices searched; ncc: ``(K,)`` their normalised cross-correlation
            with the input slice, in ``[-1, 1]`` (0 for a constant atlas slice).
    """

    index: float
    indices: Tensor
    ncc: Tensor


def search_stack(
    atlas: Atlas, image: Tensor, R: Tensor, geometry: SliceGeometry, indices: tuple[int, int] | None = None
) -> StackSearch:
    """The slice index along the normal of ``R`` whose atlas slice matches ``image`` best (NCC).

    Cuts the atlas, rotated by ``R`` about its centre, at every integer index of
    ``indices = [low, high)`` (default the whole stack; e.g. ``geometry.middle_indices(0.66)``
    for slices known to come from the middle of the stack) and correlates each slice with
    ``image`` over all pixels.

    Args:
        atlas: the atlas. image: ``(size, size)`` the slice. R: ``(3, 3)`` rotation (the
        network's). geometry: the slice grid. indices: the range of slice indices to search.

    Raises:
        ValueError: a wrongly shaped image or rotation, or an empty or out-of-stack range.
    """
    expected = (geometry.size, geometry.size)
    if tuple(image.shape) != expected or tuple(R.shape) != (3, 3):
        raise ValueError(f"image, R: expected shapes {expected} and (3, 3), got {tuple(image.shape)} and {tuple(R.shape)}")
    low, high = _checked_range(indices if indices is not None else (0, geometry.stack), geometry, "indices")
    ks = torch.arange(low, high, dtype=torch.float64)
    stack = cut_slices(atlas.image, R.to(torch.float64), ks, geometry).flatten(1).to(torch.float64)
    ncc = ncc_rows(image.flatten().to(torch.float64), stack)  # a constant atlas slice scores 0
    return StackSearch(float(ks[ncc.argmax()]), ks, ncc)


def _checked_range(indices: tuple[int, int], geometry: SliceGeometry, name: str) -> tuple[int, int]:
    """``indices = (low, high)`` if it is a non-empty range of slices of the stack."""
    low, high = indices
    if not 0 <= low < high <= geometry.stack:
        raise ValueError(f"{name}: expected slice indices 0 <= low < high <= {geometry.stack}, got {indices}")
    return low, high


@dataclass(frozen=True)
class SliceLocation:
    """Where a slice lies in the atlas: the slice Pose-Net's answer, optionally refined by SVR.

    Attributes:
        R: ``(3, 3)`` rotation of the slice's volume; the plane normal is ``R[2]`` (atlas RAS).
        index: (fractional) slice index of the geometry; offset_mm: its height ``d`` above the
            atlas centre along the normal.
        stages: ``{name: (R, index)}`` after 'pose-net', then (when enabled) 'stack search' and 'svr'.
        seconds: ``{name: seconds}`` of each stage.
        quality: ``agreement`` of the four turned passes (when the locator turns the slice;
            ``registration.slice_check``, judged by ``slice_doubts``); empty for one pass.
    """

    R: Tensor
    index: float
    offset_mm: float
    stages: dict[str, tuple[Tensor, float]]
    seconds: dict[str, float]
    quality: dict[str, float] = field(default_factory=dict)

    @property
    def normal(self) -> Tensor:
        """``(3,)`` unit normal of the slice plane in the atlas frame (RAS)."""
        return self.R[2, :]

    def to_atlas(self, centre: Tensor) -> tuple[Tensor, Tensor]:
        """``slice_to_atlas`` of this location: ``(A, b)`` mapping the slice frame into the atlas."""
        return slice_to_atlas(self.R, self.offset_mm, centre)


class SliceLocator:
    """Slice Pose-Net (+ SVR refinement, SVR-Deep): a slice's plane in the atlas.

    Args:
        atlas: the atlas on the network's grid (its spacing is the slice pixel size).
        net: a ``SlicePoseNet`` (``forward`` -> ``(rotation, index)``, ``to_matrix``); the locator
            keeps an eval-mode copy for inference (``posereg.models.inference_copy``).
        geometry: the slice grid the network was trained on.
        refine: SVR settings (e.g. ``slice_settings()``), or None for the network alone.
        search: ``[low, high)`` slice indices for ``search_stack`` to replace the network's index
            (before SVR), or None to keep the network's index.
        turns: show the network the slice turned in its plane by 0-3 quarter turns, one batch,
            and take the consensus of the four answers (``slice_check.slice_consensus``: the
            agreement is a quality measure); False: one pass.
    """

    def __init__(
        self,
        atlas: Atlas,
        net: torch.nn.Module,
        geometry: SliceGeometry,
        refine: IntensitySettings | None = None,
        search: tuple[int, int] | None = None,
        turns: bool = True,
    ) -> None:
        if search is not None:
            _checked_range(search, geometry, "search")  # fail here, not on the first slice
        # Batch norms folded, weights channels-last: the same outputs, 3.3 -> 1.4 ms per slice on one core.
        self.atlas, self.net, self.geometry, self.refine = atlas, inference_copy(net), geometry, refine
        self.search, self.turns = search, turns

    def __call__(self, image: Tensor) -> SliceLocation:
        """Locate a ``(size, size)`` slice on the geometry's grid, normalised by ``preprocess_slice``."""
        expected = (self.geometry.size, self.geometry.size)
        if tuple(image.shape) != expected:
            raise ValueError(f"image: expected a slice of shape {expected} (the network's grid), got {tuple(image.shape)}")
        start = time.perf_counter()
        inputs = quarter_turns(image) if self.turns else image[None]
        with torch.no_grad():
            rotation, index = self.net(inputs[:, None].float())
        P, indices = self.net.to_matrix(rotation).to(torch.float64), index.reshape(-1).to(torch.float64)
        quality: dict[str, float] = {}
        if self.turns:
            consensus = slice_consensus(P, indices)
            R, k, quality["agreement"] = consensus.R, consensus.index, consensus.agreement
        else:
            R, k = P[0], float(indices[0])
        stages = {"pose-net": (R, k)}
        seconds = {"pose-net": time.perf_counter() - start}
        if self.search is not None:
            start = time.perf_counter()
            k = search_stack(self.atlas, image, R, self.geometry, self.search).index
            stages["stack search"] = (R, k)
            seconds["stack search"] = time.perf_counter() - start
        if self.refine is not None:
            start = time.perf_counter()
            result = register_slice(self.atlas, image, self.geometry, initial=(R, k), settings=self.refine)
            R, k = result.R, result.index
            stages["svr"] = (R, k)
            seconds["svr"] = time.perf_counter() - start
        return SliceLocation(R, k, float(self.geometry.offset_mm(k)), stages, seconds, quality)


def slice_in_atlas(image: Tensor, location: SliceLocation, geometry: SliceGeometry, atlas: Volume,
                   thickness_mm: float | None = None) -> Volume:  # fmt: skip
    """The slice drawn into the atlas grid at its located plane, for overlays in a viewer.

    Each atlas voxel ``x`` is taken into the slice frame, ``p = A^T (x - b)`` (``slice_to_atlas``);
    where ``|p_z|`` is within half the thickness, it takes the slice's bilinear value at
    ``(p_x, p_y)``, elsewhere 0.

    Args:
        image: ``(size, size)`` the slice on the geometry's grid (``preprocess_slice``).
        location: where it lies (``SliceLocator``).
        geometry: the slice grid.
        atlas: the atlas image (its grid is the output's).
        thickness_mm: the slab drawn (default: the atlas voxel size, one voxel thick).

    Returns:
        ``Volume`` on the atlas grid, float32.
    """
    import torch.nn.functional as F

    A, b = location.to_atlas(atlas.centre)
    p = (atlas.world_coordinates() - b) @ A  # row vectors: p = A^T (x - b), slice frame mm
    thickness = float(atlas.spacing.max()) if thickness_mm is None else thickness_mm
    half_extent = geometry.spacing * (geometry.size - 1) / 2
    # grid_sample's (x, y) = (column, row) = (v, u), normalised to [-1, 1] over the slice's pixel centres.
    grid = torch.stack((p[..., 1], p[..., 0]), dim=-1).reshape(1, 1, -1, 2) / half_extent
    values = F.grid_sample(image[None, None].float(), grid.float(), mode="bilinear", padding_mode="zeros",
                           align_corners=True).reshape(atlas.shape)  # fmt: skip
    return atlas.with_data(torch.where(p[..., 2].abs() <= thickness / 2, values, 0.0))
