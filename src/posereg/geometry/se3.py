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

Arguments of one call share dtype and device, and their batch shapes broadcast (ValueError
otherwise). Rotations are checked (``check_rotation_matrix``) unless ``check_rotation=False``.
float16 and bfloat16 are computed in float32 and returned in their own dtype. The right
Jacobian of SO(3) and the series of ``V`` are in ``posereg.geometry.jacobian``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from posereg.geometry._checks import broadcast_shapes, check_compatible, check_tensor, upcast
from posereg.geometry._rotation_check import check_rotation_arg
from posereg.geometry._safe import safe_sqrt
from posereg.geometry.jacobian import _coefficient_d, _coefficients_bc
from posereg.geometry.so3 import _matrix_to_rotvec, _rotvec_to_matrix

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
    "so3r3_exp",
    "so3r3_log",
    "squared_geodesic_distance",
    "to_homogeneous",
    "transform_points",
]


def _check_poses(names: str, poses: list[tuple[Tensor, Tensor]], check_rotation: bool) -> None:
    """Shapes of every ``(R, t)``, one dtype and device, broadcastable batches, then rotations."""
    labels = names.split(", ")
    tensors: list[Tensor] = []
    for k, (R, t) in enumerate(poses):
        check_tensor(R, (3, 3), labels[2 * k], finite=False)
        check_tensor(t, (3,), labels[2 * k + 1])
        tensors += [R, t]
    check_compatible(names, tensors, (2, 1) * len(poses))
    for k, (R, _) in enumerate(poses):
        check_rotation_arg(R, labels[2 * k], check_rotation)


def to_homogeneous(R: Tensor, t: Tensor, *, check_rotation: bool = True) -> Tensor:
    """Homogeneous matrix ``[[R, t], [0, 0, 0, 1]]`` of a pose.

    Args:
        R: ``(..., 3, 3)`` rotations.
        t: ``(..., 3)`` translations (same units as the points the pose maps), batch shape
            broadcastable with ``R``'s.
        check_rotation: check that ``R`` holds rotations (``check_rotation_matrix``).

    Returns:
        ``(..., 4, 4)`` matrices, mapping the same frames as ``(R, t)``.
    """
    _check_poses("R, t", [(R, t)], check_rotation)
    batch = broadcast_shapes(R.shape[:-2], t.shape[:-1])
    top = torch.cat((R.expand(*batch, 3, 3), t.expand(*batch, 3).unsqueeze(-1)), dim=-1)
    bottom = torch.zeros_like(top[..., :1, :])
    bottom[..., 0, 3] = 1
    return torch.cat((top, bottom), dim=-2)


def from_homogeneous(T: Tensor, *, check_rotation: bool = True) -> tuple[Tensor, Tensor]:
    """Split a homogeneous ``(..., 4, 4)`` matrix into ``(R, t)``.

    Args:
        T: ``(..., 4, 4)`` matrices with last row ``(0, 0, 0, 1)``.
        check_rotation: check that the ``R`` blocks are rotations (``check_rotation_matrix``).

    Returns:
        ``R`` ``(..., 3, 3)`` and ``t`` ``(..., 3)`` (views of ``T``).

    Raises:
        ValueError: wrong shape, NaN/inf, a last row that is not ``(0, 0, 0, 1)``, or
            (``check_rotation``) an ``R`` block that is not a rotation.
    """
    check_tensor(T, (4, 4), "T")
    last = T[..., 3, :]
    expected = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=T.dtype, device=T.device)
    if T.numel() and not bool(torch.allclose(last, expected.expand_as(last))):
        raise ValueError("T: expected (..., 4, 4) homogeneous matrices with last row (0, 0, 0, 1)")
    R = T[..., :3, :3]
    if check_rotation:
        check_rotation_arg(R, "T[..., :3, :3]", True)
    return R, T[..., :3, 3]


def compose(
    R1: Tensor, t1: Tensor, R2: Tensor, t2: Tensor, *, check_rotation: bool = True
) -> tuple[Tensor, Tensor]:
    """Composition ``g1 g2``: apply ``(R2, t2)`` first, then ``(R1, t1)``.

    If ``g2`` maps frame A to B and ``g1`` maps B to C, the result maps A to C:
    ``(R1 R2, R1 t2 + t1)``.

    Args:
        R1, t1: ``(..., 3, 3)``, ``(..., 3)``.
        R2, t2: ``(..., 3, 3)``, ``(..., 3)``, broadcastable with the first pose.
        check_rotation: check that ``R1`` and ``R2`` hold rotations.

    Returns:
        ``(R, t)`` of the composition.
    """
    _check_poses("R1, t1, R2, t2", [(R1, t1), (R2, t2)], check_rotation)
    A1, A2 = upcast(R1), upcast(R2)
    R = A1 @ A2
    t = (A1 @ upcast(t2).unsqueeze(-1)).squeeze(-1) + upcast(t1)
    return R.to(R1.dtype), t.to(R1.dtype)


def inverse(R: Tensor, t: Tensor, *, check_rotation: bool = True) -> tuple[Tensor, Tensor]:
    """Inverse pose ``(R^T, -R^T t)``: maps the target frame back to the source frame.

    Args:
        R: ``(..., 3, 3)`` rotations.
        t: ``(..., 3)`` translations, batch shape broadcastable with ``R``'s.
        check_rotation: check that ``R`` holds rotations (for other matrices ``R^T`` is not
            the inverse).

    Returns:
        ``(R^T, -R^T t)``.
    """
    _check_poses("R, t", [(R, t)], check_rotation)
    Rt = R.mT
    return Rt, -(upcast(Rt) @ upcast(t).unsqueeze(-1)).squeeze(-1).to(R.dtype)


def transform_points(R: Tensor, t: Tensor, points: Tensor, *, check_rotation: bool = True) -> Tensor:
    """Apply poses to point sets: ``x' = R x + t``.

    Args:
        R: ``(..., 3, 3)`` rotations.
        t: ``(..., 3)`` translations.
        points: ``(..., N, 3)`` points in the pose's source frame; the batch shapes of ``R``,
            ``t`` and ``points.shape[:-2]`` broadcast.
        check_rotation: check that ``R`` holds rotations.

    Returns:
        ``(..., N, 3)`` points in the pose's target frame.
    """
    check_tensor(points, (3,), "points")
    if points.dim() < 2:
        raise ValueError(f"points: expected a floating-point tensor of shape (..., N, 3), got shape {tuple(points.shape)}")
    check_tensor(R, (3, 3), "R", finite=False)
    check_tensor(t, (3,), "t")
    check_compatible("R, t, points", (R, t, points), (2, 1, 2))
    check_rotation_arg(R, "R", check_rotation)
    out = upcast(points) @ upcast(R).mT + upcast(t).unsqueeze(-2)
    return out.to(points.dtype)


def se3_exp(xi: Tensor) -> tuple[Tensor, Tensor]:
    """Group exponential of SE(3): ``exp([[w]x, rho], [0, 0]]) = (exp([w]x), V rho)``.

    Args:
        xi: ``(..., 6)`` twists ``(omega, rho)``: rotation vector (radians) then
            translational part (length units).

    Returns:
        ``(R, t)``, ``(..., 3, 3)`` and ``(..., 3)``.
    """
    check_tensor(xi, (6,), "xi")
    x = upcast(xi)
    w, rho = x[..., :3], x[..., 3:]
    b, c = _coefficients_bc((w * w).sum(-1))
    wxr = torch.linalg.cross(w, rho, dim=-1)
    wwxr = torch.linalg.cross(w, wxr, dim=-1)
    t = rho + b.unsqueeze(-1) * wxr + c.unsqueeze(-1) * wwxr
    return _rotvec_to_matrix(w).to(xi.dtype), t.to(xi.dtype)


def se3_log(R: Tensor, t: Tensor, *, check_rotation: bool = True) -> Tensor:
    """Group logarithm of SE(3), the inverse of ``se3_exp`` (rotation angle in ``[0, pi]``).

    ``rho = V^-1 t`` with ``V^-1 = I - [w]x / 2 + D [w]x^2``.

    Args:
        R: ``(..., 3, 3)`` rotations.
        t: ``(..., 3)`` translations, batch shape broadcastable with ``R``'s.
        check_rotation: check that ``R`` holds rotations.

    Returns:
        ``(..., 6)`` twists ``(omega, rho)``.
    """
    _check_poses("R, t", [(R, t)], check_rotation)
    w = _matrix_to_rotvec(upcast(R))
    w, x = torch.broadcast_tensors(w, upcast(t))
    d = _coefficient_d((w * w).sum(-1))
    wxt = torch.linalg.cross(w, x, dim=-1)
    rho = x - 0.5 * wxt + d.unsqueeze(-1) * torch.linalg.cross(w, wxt, dim=-1)
    return torch.cat((w, rho), dim=-1).to(R.dtype)


def so3r3_exp(xi: Tensor) -> tuple[Tensor, Tensor]:
    """Split chart SO(3) x R^3: ``(omega, rho) -> (exp([w]x), rho)``.

    Args:
        xi: ``(..., 6)``: rotation vector (radians) then translation.

    Returns:
        ``(R, t)``, ``(..., 3, 3)`` and ``(..., 3)``.
    """
    check_tensor(xi, (6,), "xi")
    return _rotvec_to_matrix(upcast(xi[..., :3])).to(xi.dtype), xi[..., 3:]


def so3r3_log(R: Tensor, t: Tensor, *, check_rotation: bool = True) -> Tensor:
    """Inverse of ``so3r3_exp``: ``(R, t) -> (log(R), t)``.

    Args:
        R: ``(..., 3, 3)`` rotations.
        t: ``(..., 3)`` translations, batch shape broadcastable with ``R``'s.
        check_rotation: check that ``R`` holds rotations.

    Returns:
        ``(..., 6)``: rotation vector (norm in ``[0, pi]``) then translation.
    """
    _check_poses("R, t", [(R, t)], check_rotation)
    w = _matrix_to_rotvec(upcast(R)).to(R.dtype)
    w, t = torch.broadcast_tensors(w, t)
    return torch.cat((w, t), dim=-1)


def _check_metric(W: Tensor) -> Tensor:
    check_tensor(W, (6, 6), "W")
    if W.dim() != 2:
        raise ValueError(f"W: expected one (6, 6) matrix, got shape {tuple(W.shape)}")
    V = upcast(W)  # cholesky has no half-precision kernel
    if not bool(torch.allclose(V, V.mT)):
        raise ValueError("W: expected a symmetric (6, 6) matrix")
    if torch.linalg.cholesky_ex(V).info.item() != 0:
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
    V = upcast(W)
    d = torch.diagonal(V)
    diagonal = bool(torch.allclose(V, torch.diag(d)))
    return diagonal and bool(torch.allclose(d[:3], d[0])) and bool(torch.allclose(d[3:], d[3]))


def metric_inner(W: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Left-invariant inner product ``a^T W b`` of tangent vectors in Lie algebra coordinates.

    Args:
        W: ``(6, 6)`` symmetric positive definite metric at the identity.
        a, b: ``(..., 6)`` left-trivialised tangent vectors ``(omega, rho)``, broadcastable,
            same dtype and device as ``W``.

    Returns:
        ``(...)`` inner products.
    """
    _check_metric(W)
    check_tensor(a, (6,), "a")
    check_tensor(b, (6,), "b")
    check_compatible("W, a, b", (W, a, b), (2, 1, 1))
    return ((upcast(a) @ upcast(W)) * upcast(b)).sum(-1).to(a.dtype)


def metric_norm(W: Tensor, xi: Tensor) -> Tensor:
    """Norm ``sqrt(xi^T W xi)`` of left-trivialised tangent vectors.

    Args:
        W: ``(6, 6)`` symmetric positive definite metric.
        xi: ``(..., 6)`` tangent vectors, same dtype and device as ``W``.

    Returns:
        ``(...)`` norms (gradient 0 at ``xi = 0``).
    """
    _check_metric(W)
    check_tensor(xi, (6,), "xi")
    check_compatible("W, xi", (W, xi), (2, 1))
    x = upcast(xi)
    return safe_sqrt(((x @ upcast(W)) * x).sum(-1)).to(xi.dtype)


def riemannian_log(
    R1: Tensor, t1: Tensor, R2: Tensor, t2: Tensor, *, check_rotation: bool = True
) -> Tensor:
    """Riemannian logarithm ``Log_{g1}(g2)`` of the product metric, left-trivialised at ``g1``.

    ``(log(R1^T R2), R1^T (t2 - t1))``: the initial velocity, in body coordinates of
    ``g1``, of the geodesic from ``g1`` to ``g2`` for block-isotropic ``W``. For other
    ``W`` the true geodesics differ; this vector then agrees with the true logarithm to
    first order (both equal the group logarithm of ``g1^-1 g2`` up to second-order terms).

    Args:
        R1, t1: ``(..., 3, 3)``, ``(..., 3)`` base pose (e.g. the prediction).
        R2, t2: ``(..., 3, 3)``, ``(..., 3)`` target pose (e.g. the ground truth); all four
            of one dtype and device, batch shapes broadcastable.
        check_rotation: check that ``R1`` and ``R2`` hold rotations.

    Returns:
        ``(..., 6)`` tangent vectors ``(omega, rho)``.
    """
    _check_poses("R1, t1, R2, t2", [(R1, t1), (R2, t2)], check_rotation)
    return _riemannian_log(upcast(R1), upcast(t1), upcast(R2), upcast(t2)).to(R1.dtype)


def _riemannian_log(R1: Tensor, t1: Tensor, R2: Tensor, t2: Tensor) -> Tensor:
    w = _matrix_to_rotvec(R1.mT @ R2)
    rho = (R1.mT @ (t2 - t1).unsqueeze(-1)).squeeze(-1)
    w, rho = torch.broadcast_tensors(w, rho)
    return torch.cat((w, rho), dim=-1)


def squared_geodesic_distance(
    R1: Tensor, t1: Tensor, R2: Tensor, t2: Tensor, W: Tensor, *, check_rotation: bool = True
) -> Tensor:
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
        W: ``(6, 6)`` symmetric positive definite metric at the identity, same dtype and
            device as the poses.
        check_rotation: check that ``R1`` and ``R2`` hold rotations.

    Returns:
        ``(...)`` squared distances (rad^2 times w_r plus length^2 times w_t).
    """
    _check_poses("R1, t1, R2, t2", [(R1, t1), (R2, t2)], check_rotation)
    _check_metric(W)
    check_compatible("R1, W", (R1, W), (2, 2))
    v = _riemannian_log(upcast(R1), upcast(t1), upcast(R2), upcast(t2))
    return ((v @ upcast(W)) * v).sum(-1).to(R1.dtype)
