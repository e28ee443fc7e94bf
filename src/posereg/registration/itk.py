"""posereg <-> SimpleITK/ITK: images, rigid transforms and ``.tfm`` files, RAS <-> LPS explicit.

posereg works in RAS millimetres (NIfTI's world); ITK works in LPS, ``x_LPS = F x_RAS`` with
``F = diag(-1, -1, 1)``. A posereg registration result is ``T(x) = R (x - c) + c + t``
mapping fixed (atlas) points to moving points, which is ITK's direction for a transform
used to resample the moving image onto the fixed grid. In LPS the same map is
``T_LPS(y) = F R F (y - F c) + F c + F t``: an ``Euler3DTransform`` with matrix ``F R F``,
centre ``F c`` and translation ``F t``. ``.tfm`` files written here are read by SimpleITK,
ITK-SNAP and 3D Slicer (Slicer shows ITK transforms as "from parent"/resampling transforms).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from posereg.geometry import project_to_so3

__all__ = ["TRANSFORM_SUFFIXES", "read_rigid_transform", "rigid_from_sitk", "rigid_to_sitk", "write_rigid_transform"]

_F = np.diag([-1.0, -1.0, 1.0])


def rigid_to_sitk(R: Tensor, t: Tensor, centre: Tensor):  # type: ignore[no-untyped-def]
    """``sitk.Euler3DTransform`` of ``T(x) = R (x - c) + c + t`` given in RAS (fixed -> moving)."""
    import SimpleITK as sitk

    R64 = project_to_so3(R.detach().cpu().to(torch.float64)).numpy()  # exactly orthogonal for ITK
    transform = sitk.Euler3DTransform()
    transform.SetCenter((_F @ centre.detach().cpu().to(torch.float64).numpy()).tolist())
    transform.SetMatrix((_F @ R64 @ _F).flatten().tolist(), 1e-6)
    transform.SetTranslation((_F @ t.detach().cpu().to(torch.float64).numpy()).tolist())
    return transform


def rigid_from_sitk(transform) -> tuple[Tensor, Tensor, Tensor]:  # type: ignore[no-untyped-def]
    """``(R, t, c)`` in RAS of an ITK rigid/affine transform with a centre (fixed -> moving).

    Raises:
        ValueError: the transform is not rigid (its matrix is not a rotation).
    """
    import SimpleITK as sitk

    if transform.GetName() == "CompositeTransform":
        composite = sitk.CompositeTransform(transform)
        if composite.GetNumberOfTransforms() != 1:
            raise ValueError("transform: expected one rigid transform, got a composite of several")
        transform = composite.GetNthTransform(0)
    matrix = np.asarray(transform.GetMatrix(), dtype=np.float64).reshape(3, 3)
    if not np.allclose(matrix @ matrix.T, np.eye(3), atol=1e-5) or np.linalg.det(matrix) < 0:
        raise ValueError(f"transform: expected a rigid transform, got matrix {matrix.round(4).tolist()}")
    centre = np.asarray(transform.GetCenter(), dtype=np.float64)
    translation = np.asarray(transform.GetTranslation(), dtype=np.float64)
    R = torch.from_numpy(_F @ matrix @ _F)
    return R, torch.from_numpy(_F @ translation), torch.from_numpy(_F @ centre)


TRANSFORM_SUFFIXES = (".tfm", ".txt", ".h5", ".mat")  # ITK text, ITK text, ITK HDF5, ANTs/ITK MATLAB


def write_rigid_transform(path: str | Path, R: Tensor, t: Tensor, centre: Tensor) -> None:
    """Write ``T(x) = R (x - c) + c + t`` (RAS, fixed -> moving) as an ITK transform file, atomically.

    The format follows the extension (``TRANSFORM_SUFFIXES``): ``.tfm``/``.txt`` ITK text,
    ``.h5`` ITK HDF5, ``.mat`` the MATLAB format ANTs reads.

    Raises:
        ValueError: another extension.
    """
    import SimpleITK as sitk

    from posereg._files import atomic_path

    if not str(path).lower().endswith(TRANSFORM_SUFFIXES):
        raise ValueError(f"{path}: expected a transform file ending in {', '.join(TRANSFORM_SUFFIXES)}")
    with atomic_path(path) as tmp:
        sitk.WriteTransform(rigid_to_sitk(R, t, centre), str(tmp))


def read_rigid_transform(path: str | Path) -> tuple[Tensor, Tensor, Tensor]:
    """Read a rigid ITK transform file back as ``(R, t, c)`` in RAS.

    Raises:
        FileNotFoundError: no such file. ValueError: not a rigid transform.
    """
    import SimpleITK as sitk

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such transform file")
    return rigid_from_sitk(sitk.ReadTransform(str(path)))
