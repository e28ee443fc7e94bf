"""Rigid transforms SE(3): exp/log charts, composition and the left-invariant metric.

A pose is ``(R, t)`` with ``R`` ``(..., 3, 3)`` and ``t`` ``(..., 3)``, or the homogeneous
``(..., 4, 4)`` matrix ``[[R, t], [0, 1]]``; it maps points of a source frame into a
target frame, ``x_target = R x_source + t`` (for a camera-to-world pose: camera frame to
world frame, and ``t`` is the camera centre). Each function says which frames it maps.

Two charts from 6-vectors ``xi = (omega, rho)`` (rotation vector first, then translation):

- ``se3_exp`` / ``se3_log``: the true group exponential, ``t = V(omega) rho`` with
  ``V = I + (1 - cos t)/t^2 [w]x + (t - sin t)/t^3 [w]x^2`` (e.g. Barfoot, "State
  estimation for robotics", eq. 7.86). A geodesic of SE(3)'s one-parameter subgroups.
- ``so3r3_exp`` / ``so3r3_log``: the split chart of SO(3) x R^3, ``t = rho``. This is the
  chart Hou et al. (2018) parameterise network outputs with.

Left-invariant metric (Hou et al. 2018): a 6x6 symmetric positive definite ``W`` at the
identity, in the coordinates ``(omega, rho)``; at pose ``g`` the tangent vector
``g xi`` has squared norm ``xi^T W xi``. For block-isotropic ``W = diag(w_r I3, w_t I3)``
(with any off-diagonal blocks zero) the metric is the product of the bi-invariant SO(3)
metric and the Euclidean R^3 metric, so
``d^2 = w_r angle(R1^T R2)^2 + w_t |t2 - t1|^2`` exactly.
"""

from __future__ import annotations

import torch
from torch import Tensor

from posereg.geometry._checks import check_same_dtype_device, check_tensor
from posereg.geometry._safe import safe_sqrt
from posereg.geometry.so3 import hat, matrix_to_rotvec, rotvec_to_matrix

__all__ = [
    "compose",
    "from_homogeneous",
    "inverse",
    "is_block_isotropic",
    "metric_inner",
    "metric_norm",
    "riemannian_log",
    "se3_exp",
    "se3_log",
    "so3_right_jacobian",
    "so3_right_jacobian_inverse",
    "so3r3_exp",
    "so3r3_log",
    "squared_geodesic_distance",
    "to_homogeneous",
    "transform_points",
]


def _check_pose(R: Tensor, t: Tensor, names: str = "R, t") -> None:
    check_tensor(R, (3, 3), names.split(", ")[0])
    check_tensor(t, (3,), names.split(", ")[1])
    check_same_dtype_device(R, t, names)


def to_homogeneous(R: Tensor, t: Tensor) -> Tensor:
    """Homogeneous matrix ``[[R, t], [0, 0, 0, 1]]`` of a pose.

    Args:
        R: ``(..., 3, 3)`` rotations.
        t: ``(..., 3)`` translations (same units as the points the pose maps).

    Returns:
        ``(..., 4, 4)`` matrices, mapping the same frames as ``(R, t)``.
    """
    _check_pose(R, t)
    R, t = torch.broadcast_tensors(R, t.unsqueeze(-1))[0], t
    top = torch.cat((R, t.expand(*R.shape[:-2], 3).unsqueeze(-1)), dim=-1)
    bottom = torch.zeros_like(top[..., :1, :])
    bottom[..., 0, 3] = 1
    return torch.cat((top, bottom), dim=-2)


def from_homogeneous(T: Tensor) -> tuple[Tensor, Tensor]:
    """Split a homogeneous ``(..., 4, 4)`` matrix into ``(R, t)``.

    Args:
        T: ``(..., 4, 4)`` matrices with last row ``(0, 0, 0, 1)``.

    Returns:
        ``R`` ``(..., 3, 3)`` and ``t`` ``(..., 3)``.

    Raises:
        ValueError: wrong shape, NaN/inf, or a last row that is not ``(0, 0, 0, 1)``.
    """
    check_tensor(T, (4, 4), "T")
    last = T[..., 3, :]
    expected = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=T.dtype, device=T.device)
    if T.numel() and not bool(torch.allclose(last, expected.expand_as(last))):
        raise ValueError("T: expected (..., 4, 4) homogeneous matrices with last row (0, 0, 0, 1)")
    return T[..., :3, :3], T[..., :3, 3]


def compose(R1: Tensor, t1: Tensor, R2: Tensor, t2: Tensor) -> tuple[Tensor, Tensor]:
    """Composition ``g1 g2``: apply ``(R2, t2)`` first, then ``(R1, t1)``.

    If ``g2`` maps frame A to B and ``g1`` maps B to C, the result maps A to C:
    ``(R1 R2, R1 t2 + t1)``.

    Args:
        R1, t1: ``(..., 3, 3)``, ``(..., 3)``.
        R2, t2: ``(..., 3, 3)``, ``(..., 3)``, broadcastable with the first pose.

    Returns:
        ``(R, t)`` of the composition.
    """
    _check_pose(R1, t1, "R1, t1")
    _check_pose(R2, t2, "R2, t2")
    return R1 @ R2, (R1 @ t2.unsqueeze(-1)).squeeze(-1) + t1


def inverse(R: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """Inverse pose ``(R^T, -R^T t)``: maps the target frame back to the source frame.

    Args:
        R: ``(..., 3, 3)`` rotations.
        t: ``(..., 3)`` translations.

    Returns:
        ``(R^T, -R^T t)``.
    """
    _check_pose(R, t)
    Rt = R.mT
    return Rt, -(Rt @ t.unsqueeze(-1)).squeeze(-1)


def transform_points(R: Tensor, t: Tensor, points: Tensor) -> Tensor:
    """Apply poses to point sets: ``x' = R x + t``.

    Args:
        R: ``(..., 3, 3)`` rotations.
        t: ``(..., 3)`` translations.
        points: ``(..., N, 3)`` points in the pose's source frame.

    Returns:
        ``(..., N, 3)`` points in the pose's target frame.
    """
    _check_pose(R, t)
    check_tensor(points, (3,), "points")
    if points.dim() < 2:
        raise ValueError(f"points: expected a floating-point tensor of shape (..., N, 3), got shape {tuple(points.shape)}")
    return points @ R.mT + t.unsqueeze(-2)


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
    b, c = _coefficients_bc((rotvec * rotvec).sum(-1))
    K = hat(rotvec)
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device)
    return eye - b[..., None, None] * K + c[..., None, None] * (K @ K)


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
    d = _coefficient_d((rotvec * rotvec).sum(-1))
    K = hat(rotvec)
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device)
    return eye + 0.5 * K + d[..., None, None] * (K @ K)


def se3_exp(xi: Tensor) -> tuple[Tensor, Tensor]:
    """Group exponential of SE(3): ``exp([[w]x, rho], [0, 0]]) = (exp([w]x), V rho)``.

    Args:
        xi: ``(..., 6)`` twists ``(omega, rho)``: rotation vector (radians) then
            translational part (length units).

    Returns:
        ``(R, t)``, ``(..., 3, 3)`` and ``(..., 3)``.
    """
    check_tensor(xi, (6,), "xi")
    w, rho = xi[..., :3], xi[..., 3:]
    b, c = _coefficients_bc((w * w).sum(-1))
    wxr = torch.linalg.cross(w, rho, dim=-1)
    wwxr = torch.linalg.cross(w, wxr, dim=-1)
    t = rho + b.unsqueeze(-1) * wxr + c.unsqueeze(-1) * wwxr
    return rotvec_to_matrix(w), t


def se3_log(R: Tensor, t: Tensor) -> Tensor:
    """Group logarithm of SE(3), the inverse of ``se3_exp`` (rotation angle in ``[0, pi]``).

    ``rho = V^-1 t`` with ``V^-1 = I - [w]x / 2 + D [w]x^2``.

    Args:
        R: ``(..., 3, 3)`` rotations.
        t: ``(..., 3)`` translations.

    Returns:
        ``(..., 6)`` twists ``(omega, rho)``.
    """
    _check_pose(R, t)
    w = matrix_to_rotvec(R)
    w, t = torch.broadcast_tensors(w, t)
    d = _coefficient_d((w * w).sum(-1))
    wxt = torch.linalg.cross(w, t, dim=-1)
    rho = t - 0.5 * wxt + d.unsqueeze(-1) * torch.linalg.cross(w, wxt, dim=-1)
    return torch.cat((w, rho), dim=-1)


def so3r3_exp(xi: Tensor) -> tuple[Tensor, Tensor]:
    """Split chart SO(3) x R^3: ``(omega, rho) -> (exp([w]x), rho)``.

    Args:
        xi: ``(..., 6)``: rotation vector (radians) then translation.

    Returns:
        ``(R, t)``, ``(..., 3, 3)`` and ``(..., 3)``.
    """
    check_tensor(xi, (6,), "xi")
    return rotvec_to_matrix(xi[..., :3]), xi[..., 3:]


def so3r3_log(R: Tensor, t: Tensor) -> Tensor:
    """Inverse of ``so3r3_exp``: ``(R, t) -> (log(R), t)``.

    Args:
        R: ``(..., 3, 3)`` rotations.
        t: ``(..., 3)`` translations.

    Returns:
        ``(..., 6)``: rotation vector (norm in ``[0, pi]``) then translation.
    """
    _check_pose(R, t)
    w = matrix_to_rotvec(R)
    w, t = torch.broadcast_tensors(w, t)
    return torch.cat((w, t), dim=-1)


def _check_metric(W: Tensor) -> Tensor:
    check_tensor(W, (6, 6), "W")
    if W.dim() != 2:
        raise ValueError(f"W: expected one (6, 6) matrix, got shape {tuple(W.shape)}")
    if not bool(torch.allclose(W, W.mT)):
        raise ValueError("W: expected a symmetric (6, 6) matrix")
    if torch.linalg.cholesky_ex(W).info.item() != 0:
        raise ValueError("W: expected a positive definite (6, 6) matrix")
    return W


def is_block_isotropic(W: Tensor) -> bool:
    """Whether ``W = diag(w_r I3, w_t I3)``, the case where the distance is exact.

    Args:
        W: ``(6, 6)`` metric matrix.

    Returns:
        True when W is diagonal with equal rotation and equal translation entries.
    """
    _check_metric(W)
    d = torch.diagonal(W)
    diagonal = bool(torch.allclose(W, torch.diag(d)))
    return diagonal and bool(torch.allclose(d[:3], d[0])) and bool(torch.allclose(d[3:], d[3]))


def metric_inner(W: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Left-invariant inner product ``a^T W b`` of tangent vectors in Lie algebra coordinates.

    Args:
        W: ``(6, 6)`` symmetric positive definite metric at the identity.
        a, b: ``(..., 6)`` left-trivialised tangent vectors ``(omega, rho)``.

    Returns:
        ``(...)`` inner products.
    """
    _check_metric(W)
    check_tensor(a, (6,), "a")
    check_tensor(b, (6,), "b")
    return ((a @ W) * b).sum(-1)


def metric_norm(W: Tensor, xi: Tensor) -> Tensor:
    """Norm ``sqrt(xi^T W xi)`` of left-trivialised tangent vectors.

    Args:
        W: ``(6, 6)`` symmetric positive definite metric.
        xi: ``(..., 6)`` tangent vectors.

    Returns:
        ``(...)`` norms (gradient 0 at ``xi = 0``).
    """
    return safe_sqrt(metric_inner(W, xi, xi))


def riemannian_log(R1: Tensor, t1: Tensor, R2: Tensor, t2: Tensor) -> Tensor:
    """Riemannian logarithm ``Log_{g1}(g2)`` of the product metric, left-trivialised at ``g1``.

    ``(log(R1^T R2), R1^T (t2 - t1))``: the initial velocity, in body coordinates of
    ``g1``, of the geodesic from ``g1`` to ``g2`` for block-isotropic ``W``. For other
    ``W`` the true geodesics differ; this vector then agrees with the true logarithm to
    first order (both equal the group logarithm of ``g1^-1 g2`` up to second-order terms).

    Args:
        R1, t1: ``(..., 3, 3)``, ``(..., 3)`` base pose (e.g. the prediction).
        R2, t2: ``(..., 3, 3)``, ``(..., 3)`` target pose (e.g. the ground truth).

    Returns:
        ``(..., 6)`` tangent vectors ``(omega, rho)``.
    """
    _check_pose(R1, t1, "R1, t1")
    _check_pose(R2, t2, "R2, t2")
    w = matrix_to_rotvec(R1.mT @ R2)
    rho = (R1.mT @ (t2 - t1).unsqueeze(-1)).squeeze(-1)
    w, rho = torch.broadcast_tensors(w, rho)
    return torch.cat((w, rho), dim=-1)


def squared_geodesic_distance(R1: Tensor, t1: Tensor, R2: Tensor, t2: Tensor, W: Tensor) -> Tensor:
    """Squared geodesic distance under the left-invariant metric ``W`` (Hou et al. 2018).

    ``d^2 = v^T W v`` with ``v = riemannian_log(g1, g2)``. Exact for block-isotropic ``W``
    (then ``d^2 = w_r angle(R1^T R2)^2 + w_t |t2 - t1|^2``). For any other SPD ``W`` the
    geodesics of SE(3) have no closed form; the value returned is then the W-norm of the
    product-metric logarithm, which equals the true squared distance up to third-order
    terms in the residual (both are ``v^T W v + O(|v|^3)``) and is a smooth, symmetric-
    in-practice surrogate far from it.

    Args:
        R1, t1: ``(..., 3, 3)``, ``(..., 3)`` first pose (e.g. the prediction).
        R2, t2: ``(..., 3, 3)``, ``(..., 3)`` second pose.
        W: ``(6, 6)`` symmetric positive definite metric at the identity.

    Returns:
        ``(...)`` squared distances (rad^2 times w_r plus length^2 times w_t).
    """
    v = riemannian_log(R1, t1, R2, t2)
    return metric_inner(W, v, v)
