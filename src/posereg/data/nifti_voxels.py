"""The voxels of a NIfTI file in RAS+ axis order, without a transposing copy.

NIfTI stores voxels with ``i`` varying fastest (Fortran order). A C-contiguous RAS+ copy of them
is a transposition of every voxel: for a 256^3 head 0.13-0.18 s on this machine (NumPy's
``ascontiguousarray`` or a torch copy alike), more than the ISA-L decompression before it. Here the
tensor keeps the file's memory order instead: its axes are RAS+ (``data[i, j, k]`` is the voxel that
``nibabel.as_closest_canonical`` puts there), its strides are the file's order permuted (for a file
stored RAS, ``(1, I, I J)``), as nibabel's own arrays are. The flips of the reorientation, the
conversion to float32 and the header's scaling are passes in memory order.

Every torch operation accepts such a tensor; a reduction over all voxels is fastest over
``memory_order`` (one contiguous sweep; ``torch.aminmax`` over the strided view is 30x slower).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from torch import Tensor

__all__ = ["canonical_grid", "canonical_voxels", "memory_order", "reoriented"]

# Stored types torch reads in place (native byte order); others (uint16, uint32, big-endian
# files) are converted to float32 by NumPy, also in memory order.
_TORCH_READS = {np.dtype(t) for t in (np.uint8, np.int8, np.int16, np.int32, np.int64, np.float32, np.float64)}


def canonical_voxels(contents: bytes, image) -> tuple[Tensor, np.ndarray]:  # type: ignore[no-untyped-def]
    """The voxels of a NIfTI file reoriented to the closest canonical (RAS+) axis order, as float32.

    Args:
        contents: the whole (decompressed) file.
        image: nibabel's image of ``contents`` (``Nifti1Image.from_bytes``): its data type,
            offset, scaling and affine are read, its data are not.

    Returns:
        ``(data, affine)``: ``(I, J, K)`` float32 in RAS+ axis order, dense in the file's memory
        order (see the module docstring); the ``(4, 4)`` float64 affine of that grid. The values
        equal ``nibabel.as_closest_canonical(image).get_fdata(dtype=np.float32)``: scaled
        integers are computed in float64 and rounded once, as nibabel does.

    Raises:
        ValueError: ``contents`` is shorter than its header says (a truncated file).
    """
    proxy = image.dataobj
    shape = tuple(int(n) for n in image.shape[:3])  # a 4D file of one volume: its only volume
    dtype = np.dtype(proxy.dtype)
    stored = np.frombuffer(contents, dtype=dtype, count=math.prod(shape), offset=int(proxy.offset))
    stored = stored.reshape(shape, order=proxy.order)
    in_place = dtype.isnative and dtype in _TORCH_READS
    if in_place:
        with warnings.catch_warnings():  # read-only memory: the copies below are what is kept
            warnings.simplefilter("ignore", UserWarning)
            raw = torch.from_numpy(stored)
    else:
        raw = torch.from_numpy(stored.astype(np.float32, order="K"))
    slope, inter = float(proxy.slope), float(proxy.inter)
    x, affine = reoriented(raw, np.asarray(image.affine))
    if slope != 1.0 or inter != 0.0:
        x = (x.to(torch.float64) * slope + inter).to(torch.float32)
    elif x.dtype != torch.float32 or (in_place and x.untyped_storage().data_ptr() == raw.untyped_storage().data_ptr()):
        x = x.to(torch.float32, copy=True)  # never a view of ``contents`` (the flips, if any, copied)
    return x, affine


def reoriented(data: Tensor, affine: np.ndarray) -> tuple[Tensor, np.ndarray]:
    """``data`` on the grid of ``affine`` with its axes permuted and flipped to the closest canonical
    (RAS+) order, as ``nibabel.as_closest_canonical`` orders them; no resampling.

    Args:
        data: ``(I, J, K)`` voxels, any dtype and memory order.
        affine: ``(4, 4)`` voxel -> RAS mm of ``data``'s grid.

    Returns:
        ``(data, affine)`` of the canonical grid. A permutation alone is a view of ``data``; flips
        are one copy in ``data``'s memory order (torch has no negative strides), never a transposition.
    """
    ornt, canonical = _orientation(affine, tuple(data.shape))
    x = data.permute(*(int(d) for d in np.argsort(ornt[:, 0])))
    flips = [int(ornt[d, 0]) for d in range(3) if ornt[d, 1] < 0]
    return (x.flip(flips) if flips else x), canonical


def canonical_grid(affine: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, tuple[int, int, int]]:
    """The ``(affine, shape)`` that ``reoriented`` gives a grid of ``shape`` voxels and ``affine``, from the
    header alone."""
    ornt, canonical = _orientation(affine, shape)
    return canonical, tuple(int(shape[int(d)]) for d in np.argsort(ornt[:, 0]))  # type: ignore[return-value]


def _orientation(affine: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """nibabel's axis orientation of ``affine`` (``io_orientation``) and the affine of the reoriented grid."""
    from nibabel import orientations

    ornt = orientations.io_orientation(affine)
    return ornt, np.asarray(affine, dtype=np.float64) @ orientations.inv_ornt_aff(ornt, shape[:3])


def memory_order(x: Tensor) -> Tensor:
    """``x`` with its axes permuted so that its strides decrease: contiguous when ``x`` is dense in
    any axis order, so ``memory_order(x).reshape(-1)`` is a view. For reductions whose result does
    not depend on the order of the values."""
    return x.permute(*sorted(range(x.dim()), key=lambda d: x.stride(d), reverse=True))
