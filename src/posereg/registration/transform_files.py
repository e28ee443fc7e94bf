"""Transform files for other tools: ITK/ANTs (``registration.itk``), a 4x4 RAS matrix, FSL FLIRT.

A posereg result ``T(x) = R (x - c) + c + t`` maps reference (atlas) points to moving (scan)
points in RAS millimetres. The formats:

- ``itk``: ITK's ``Euler3DTransform`` in LPS, the resampling direction (reference -> moving);
  ``.tfm``/``.txt`` text, ``.h5`` HDF5, ``.mat`` the MATLAB file ANTs reads.
- ``ras``: the 4x4 homogeneous matrix ``M`` of ``T`` in RAS mm, ``x_moving = M x_reference``,
  as text (NumPy ``savetxt``): what nibabel, nitransforms and most Python code take.
- ``fsl``: FLIRT's ``-omat`` matrix, which maps the moving image (``flirt -in``) to the
  reference (``-ref``) in FSL's scaled-voxel coordinates (voxel index times voxel size, the
  first axis flipped when the image's affine has a positive determinant):
  ``M_fsl = W_ref T^-1 W_mov^-1`` with ``W = S A^-1``, ``A`` the image's voxel-to-RAS affine as
  stored in its file and ``S`` the scaled-voxel map. It needs both images' stored grids, and
  equals what nitransforms (``nitransforms.io.fsl.FSLLinearTransform.from_ras``) writes.
"""

from __future__ import annotations

import enum
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from posereg._files import atomic_path
from posereg.data.resample import transform_matrix
from posereg.registration.itk import TRANSFORM_SUFFIXES, write_rigid_transform

__all__ = ["MATRIX_SUFFIXES", "TransformFormat", "fsl_matrix", "ras_matrix", "write_transform"]

MATRIX_SUFFIXES = (".txt", ".mat")


class TransformFormat(enum.Enum):
    """The file format of a written transform (see the module docstring)."""

    ITK = "itk"
    RAS = "ras"
    FSL = "fsl"

    @property
    def suffixes(self) -> tuple[str, ...]:
        """The file endings this format is written with."""
        return TRANSFORM_SUFFIXES if self is TransformFormat.ITK else MATRIX_SUFFIXES


def ras_matrix(R: Tensor, t: Tensor, centre: Tensor) -> np.ndarray:
    """``(4, 4)`` float64 matrix of ``T(x) = R (x - c) + c + t`` in RAS mm (reference -> moving)."""
    return transform_matrix(R.to(torch.float64), t.to(torch.float64), centre.to(torch.float64)).numpy()


def _scaled_voxels(affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """FSL's voxel-to-scaled-voxel map: ``diag(voxel sizes)``, the first axis flipped when
    ``det(affine) > 0`` (FSL keeps radiological order internally)."""
    zooms = np.linalg.norm(affine[:3, :3], axis=0)
    flip = np.eye(4)
    if np.linalg.det(affine[:3, :3]) > 0:
        flip[0, 0], flip[0, 3] = -1.0, (shape[0] - 1) * zooms[0]
    return flip @ np.diag([*zooms, 1.0])


def fsl_matrix(
    R: Tensor,
    t: Tensor,
    centre: Tensor,
    moving_affine: np.ndarray,
    moving_shape: tuple[int, ...],
    reference_affine: np.ndarray,
    reference_shape: tuple[int, ...],
) -> np.ndarray:
    """FLIRT's 4x4 matrix (moving -> reference, scaled voxels) of the posereg transform.

    Args:
        R, t, centre: the transform, reference -> moving, RAS mm.
        moving_affine, moving_shape: the moving image's voxel-to-RAS affine and grid as stored
            in its file (the file FSL users pass as ``-in``).
        reference_affine, reference_shape: the same for the reference (``-ref``).
    """
    w_ref = _scaled_voxels(reference_affine, reference_shape) @ np.linalg.inv(reference_affine)
    w_mov = _scaled_voxels(moving_affine, moving_shape) @ np.linalg.inv(moving_affine)
    return w_ref @ np.linalg.inv(ras_matrix(R, t, centre)) @ np.linalg.inv(w_mov)


def write_transform(
    path: str | Path,
    R: Tensor,
    t: Tensor,
    centre: Tensor,
    fmt: TransformFormat = TransformFormat.ITK,
    *,
    moving_grid: tuple[np.ndarray, tuple[int, ...]] | None = None,
    reference_grid: tuple[np.ndarray, tuple[int, ...]] | None = None,
) -> None:
    """Write the transform in ``fmt``, atomically.

    Args:
        path: the file; its ending must be one of ``fmt.suffixes``.
        R, t, centre: the transform, reference -> moving, RAS mm.
        fmt: the format.
        moving_grid, reference_grid: ``(affine, shape)`` of the images as stored in their files
            (FSL only).

    Raises:
        ValueError: a wrong ending, or FSL without both grids.
    """
    if not str(path).lower().endswith(fmt.suffixes):
        raise ValueError(f"{path}: a {fmt.value} transform file ends in {' or '.join(fmt.suffixes)}")
    if fmt is TransformFormat.ITK:
        write_rigid_transform(path, R, t, centre)
        return
    if fmt is TransformFormat.FSL:
        if moving_grid is None or reference_grid is None:
            raise ValueError("fsl: the moving and reference image grids are needed (FLIRT works in their voxels)")
        matrix = fsl_matrix(R, t, centre, *moving_grid, *reference_grid)
    else:
        matrix = ras_matrix(R, t, centre)
    with atomic_path(path) as tmp:
        np.savetxt(tmp, matrix, fmt="%.10f")
