"""Continuous rotation representations for network outputs.

- 6D (Zhou et al., "On the continuity of rotation representations in neural networks",
  CVPR 2019): the first two columns of R, mapped back by Gram-Schmidt.
- 9D (Levinson et al., "An analysis of SVD for deep rotation estimation", NeurIPS 2020):
  any 3x3 matrix, mapped back by special orthogonalisation (``project_to_so3``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from posereg.geometry._checks import check_tensor, upcast
from posereg.geometry._rotation_check import check_rotation_arg
from posereg.geometry.so3 import project_to_so3

__all__ = ["matrix_to_sixd", "sixd_to_matrix", "svd9d_to_matrix"]


def sixd_to_matrix(x: Tensor) -> Tensor:
    """Rotation matrix of a 6D representation by Gram-Schmidt (Zhou et al. 2019, eq. 15).

    Args:
        x: ``(..., 6)``: two 3-vectors ``(a1, a2)``, the unnormalised first and second
            columns of the rotation.

    Returns:
        ``(..., 3, 3)`` rotations with columns ``b1 = a1/|a1|``, ``b2`` = the normalised
        part of ``a2`` orthogonal to ``b1``, ``b3 = b1 x b2``. Degenerate inputs (``a1 = 0``
        or ``a2`` parallel to ``a1``) give a finite but arbitrary matrix: norms are clamped
        at the dtype's ``eps``.

    ``b2`` is projected off ``b1`` twice (Kahan and Parlett's "twice is enough"): once
    leaves ``b1 . b2`` at ``eps |a2| / |a2 - (b1 . a2) b1|``, 6e-5 in float32 for a random
    batch of 1e5 and unbounded as ``a2`` nears ``a1``'s direction; twice leaves a few ``eps``,
    so the output passes ``check_rotation_matrix``. The second projection changes nothing in
    exact arithmetic, so values and gradients are those of Zhou et al.'s map.
    """
    check_tensor(x, (6,), "x")
    y = upcast(x)
    eps = torch.finfo(y.dtype).eps
    a1, a2 = y[..., :3], y[..., 3:]
    b1 = a1 / torch.linalg.vector_norm(a1, dim=-1, keepdim=True).clamp_min(eps)
    b2 = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    b2 = b2 - (b1 * b2).sum(-1, keepdim=True) * b1
    b2 = b2 / torch.linalg.vector_norm(b2, dim=-1, keepdim=True).clamp_min(eps)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack((b1, b2, b3), dim=-1).to(x.dtype)


def matrix_to_sixd(R: Tensor, *, check_rotation: bool = True) -> Tensor:
    """6D representation of rotation matrices: the first two columns, ``(R[:, 0], R[:, 1])``.

    Args:
        R: ``(..., 3, 3)`` rotation matrices.
        check_rotation: check that ``R`` holds rotations (``check_rotation_matrix``).

    Returns:
        ``(..., 6)``: column 0 followed by column 1.
    """
    check_rotation_arg(R, "R", check_rotation)
    return torch.cat((R[..., :, 0], R[..., :, 1]), dim=-1)


def svd9d_to_matrix(x: Tensor) -> Tensor:
    """Rotation matrix of a 9D representation by special orthogonalisation (Levinson 2020).

    Args:
        x: ``(..., 9)`` matrices in row-major order (``R.flatten(-2)`` is the inverse map).

    Returns:
        ``(..., 3, 3)`` rotations nearest to ``x`` in Frobenius norm.
    """
    check_tensor(x, (9,), "x")
    return project_to_so3(x.unflatten(-1, (3, 3)))
