"""Right Jacobian of SO(3) and the series coefficients shared with the SE(3) exp/log.

``J_r(v)`` maps a change of the rotation vector ``v`` to the body (left-trivialised) angular
velocity: ``exp([v + dv]x) = exp([v]x) exp([J_r(v) dv]x) + O(|dv|^2)`` (Barfoot, "State
estimation for robotics", eq. 7.77-7.78). Its coefficients ``B = (1 - cos t)/t^2``,
``C = (t - sin t)/t^3`` and ``D = (1 - h cot h)/t^2`` also build ``V`` and ``V^-1`` of
``posereg.geometry.se3``. float16 and bfloat16 inputs are computed in float32 and returned in
their own dtype.
"""

from __future__ import annotations

import torch
from torch import Tensor

from posereg.geometry._checks import check_tensor, upcast
from posereg.geometry.so3 import hat

__all__ = ["so3_right_jacobian", "so3_right_jacobian_inverse"]


# Taylor coefficients in t^2 (sympy series), used below t = 0.5: there the closed forms lose
# up to 6 eps / t^2 of relative precision to cancellation, the series (7 terms) less than 1e-16.
_SERIES_B = (1 / 2, -1 / 24, 1 / 720, -1 / 40320, 1 / 3628800, -1 / 479001600, 1 / 87178291200)
_SERIES_C = (1 / 6, -1 / 120, 1 / 5040, -1 / 362880, 1 / 39916800, -1 / 6227020800, 1 / 1307674368000)
_SERIES_D = (1 / 12, 1 / 720, 1 / 30240, 1 / 1209600, 1 / 47900160, 691 / 1307674368000, 1 / 74724249600)
_SERIES_BELOW = 0.25  # t^2


def _series(coefficients: tuple[float, ...], theta2: Tensor) -> Tensor:
    out = torch.full_like(theta2, coefficients[-1])
    for a in reversed(coefficients[:-1]):
        out = out * theta2 + a
    return out


def _coefficients_bc(theta2: Tensor) -> tuple[Tensor, Tensor]:
    """``B = (1 - cos t)/t^2`` and ``C = (t - sin t)/t^3``, with Taylor series for small t.

    ``theta2`` is ``t^2``. The closed-form branch sees ``t^2 = 1`` where the series is
    taken, so neither branch produces inf or NaN values or gradients.
    """
    small = theta2 < _SERIES_BELOW
    t2 = torch.where(small, 1.0, theta2)
    t = torch.sqrt(t2)
    b = torch.where(small, _series(_SERIES_B, theta2), 0.5 * torch.sinc(t * (0.5 / torch.pi)) ** 2)
    c = torch.where(small, _series(_SERIES_C, theta2), (t - torch.sin(t)) / (t2 * t))
    return b, c


def _coefficient_d(theta2: Tensor) -> Tensor:
    """``D = (1 - h cot h) / t^2`` with ``h = t/2``, the ``[w]x^2`` coefficient of ``V^-1``."""
    small = theta2 < _SERIES_BELOW
    h = 0.5 * torch.sqrt(torch.where(small, 1.0, theta2))
    return torch.where(small, _series(_SERIES_D, theta2), (1 - h * torch.cos(h) / torch.sin(h)) / (4 * h * h))


def so3_right_jacobian(rotvec: Tensor) -> Tensor:
    """Right Jacobian of SO(3) in rotation-vector coordinates.

    ``exp([v + dv]x) = exp([v]x) exp([J_r(v) dv]x) + O(|dv|^2)``: it maps a change of the
    rotation vector to the body (left-trivialised) angular velocity.
    ``J_r(v) = I - (1 - cos t)/t^2 [v]x + (t - sin t)/t^3 [v]x^2``, ``t = |v|``
    (Barfoot, "State estimation for robotics", eq. 7.77 with ``J_r(v) = J_l(-v)``);
    Taylor series near 0. Hou et al. (2018) use it in ``G = J^-T W J^-1``.

    Args:
        rotvec: ``(..., 3)`` rotation vectors, radians.

    Returns:
        ``(..., 3, 3)`` Jacobians (singular only at ``t = 2 pi k``, ``k >= 1``).
    """
    check_tensor(rotvec, (3,), "rotvec")
    v = upcast(rotvec)
    b, c = _coefficients_bc((v * v).sum(-1))
    K = hat(v)
    eye = torch.eye(3, dtype=v.dtype, device=v.device)
    return (eye - b[..., None, None] * K + c[..., None, None] * (K @ K)).to(rotvec.dtype)


def so3_right_jacobian_inverse(rotvec: Tensor) -> Tensor:
    """Inverse of ``so3_right_jacobian``: body angular velocity -> rotation-vector change.

    ``J_r(v)^-1 = I + [v]x / 2 + (1 - h cot h)/t^2 [v]x^2`` with ``h = t/2`` (Barfoot eq.
    7.78 with ``v -> -v``); finite up to and including ``t = pi``.

    Args:
        rotvec: ``(..., 3)`` rotation vectors, radians, norm below ``2 pi``.

    Returns:
        ``(..., 3, 3)`` matrices.
    """
    check_tensor(rotvec, (3,), "rotvec")
    v = upcast(rotvec)
    d = _coefficient_d((v * v).sum(-1))
    K = hat(v)
    eye = torch.eye(3, dtype=v.dtype, device=v.device)
    return (eye + 0.5 * K + d[..., None, None] * (K @ K)).to(rotvec.dtype)
