"""The rotation group SO(3): exp/log, hat/vee, geodesic distance, projection and means.

Conventions: rotation matrices ``(..., 3, 3)`` act on column vectors (``y = R x``);
rotation vectors ``(..., 3)`` are axis times angle in radians (the Lie algebra
coordinates ``v`` with ``R = exp([v]x)``). All functions accept any leading batch
dimensions, float32 and float64 (float16 and bfloat16 are computed in float32 and returned
in their own dtype), CPU and CUDA, and are differentiable with finite values and gradients
at angle 0 and pi. Functions that take rotation matrices check them
(``check_rotation_matrix``: ``R^T R = I`` within 1e-3, ``det R = +1``) unless given
``check_rotation=False``.

Formulas (Rodrigues; Markley 2008; Huynh 2009 for the distance): Rodrigues' exp in half-angle form; log through
the largest-diagonal quaternion (Markley 2008); the geodesic (bi-invariant) distance
``d(R1, R2) = |log(R1^T R2)|`` (Salehi et al. 2018 eq. 7-10; Huynh 2009 Phi_6) computed as
``atan2(|vee(M - M^T)|, tr M - 1)``, accurate at 0 and pi.
"""

from __future__ import annotations

import torch
from torch import Tensor

from posereg.geometry._checks import check_compatible, check_finite_by_product, check_tensor, upcast
from posereg.geometry._layout import join, split
from posereg.geometry._rotation_check import check_rotation_arg
from posereg.geometry.quaternion import (
    _matrix_to_quaternion,
    _quaternion_to_rotvec,
    half_angle_terms,
    quaternion_matrix_entries,
)

__all__ = [
    "chordal_mean",
    "geodesic_distance",
    "hat",
    "karcher_mean",
    "matrix_to_rotvec",
    "project_to_so3",
    "rotvec_to_matrix",
    "vee",
]


def hat(v: Tensor) -> Tensor:
    """Skew-symmetric matrix ``[v]x`` with ``[v]x w = v x w``.

    Args:
        v: ``(..., 3)`` vectors.

    Returns:
        ``(..., 3, 3)`` matrices ``[[0, -z, y], [z, 0, -x], [-y, x, 0]]``.
    """
    check_tensor(v, (3,), "v")
    x, y, z = split(v)
    o = torch.zeros_like(x)
    return join((o, -z, y, z, o, -x, -y, x, o), (3, 3))


def vee(S: Tensor) -> Tensor:
    """Inverse of ``hat``: the vector ``(S21, S02, S10)`` of a skew-symmetric matrix.

    Only those three entries are read; use ``vee(0.5 * (S - S.mT))`` to take the skew part
    of a general matrix first.

    Args:
        S: ``(..., 3, 3)`` skew-symmetric matrices.

    Returns:
        ``(..., 3)`` vectors.
    """
    check_tensor(S, (3, 3), "S")
    return torch.stack((S[..., 2, 1], S[..., 0, 2], S[..., 1, 0]), dim=-1)


def rotvec_to_matrix(rotvec: Tensor) -> Tensor:
    """Exponential map ``so(3) -> SO(3)``: the rotation matrix of a rotation vector.

    Rodrigues' formula ``R = I + sin(t)/t [v]x + (1 - cos t)/t^2 [v]x^2`` evaluated through
    the half-angle quaternion ``(cos(t/2), sin(t/2)/t v)``: it needs one ``cos`` and one
    ``sinc``, and never forms ``1 - cos t`` (which loses all float32 digits for t < 3e-4).

    Args:
        rotvec: ``(..., 3)`` rotation vectors, radians (any norm).

    Returns:
        ``(..., 3, 3)`` rotation matrices.
    """
    check_tensor(rotvec, (3,), "rotvec")
    return _rotvec_to_matrix(upcast(rotvec)).to(rotvec.dtype)


def _rotvec_to_matrix(rotvec: Tensor) -> Tensor:
    theta = torch.linalg.vector_norm(rotvec, dim=-1)  # gradient 0 (not NaN) at 0
    return join(rotvec_matrix_entries(*split(rotvec), theta), (3, 3))


def rotvec_matrix_entries(x: Tensor, y: Tensor, z: Tensor, theta: Tensor) -> list[Tensor]:
    """The nine entries (row-major) of ``exp([v]x)`` for ``v = (x, y, z)``, ``theta = |v|``."""
    w, k = half_angle_terms(theta)
    return quaternion_matrix_entries(w, k * x, k * y, k * z, 2.0)


def matrix_to_rotvec(R: Tensor, *, check_rotation: bool = True) -> Tensor:
    """Logarithm map ``SO(3) -> so(3)``: the rotation vector with angle in ``[0, pi]``.

    Goes through the unit quaternion of the largest-diagonal branch (as scipy does), then
    ``theta = 2 atan2(|xyz|, w)``; both steps are well conditioned at 0 and at pi, where
    the textbook ``theta / (2 sin theta) (R - R^T)`` is 0/0 or ill-conditioned. At exactly
    pi the sign of the axis is arbitrary (both vectors are logarithms).

    Args:
        R: ``(..., 3, 3)`` rotation matrices.
        check_rotation: check that ``R`` holds rotations (``check_rotation_matrix``); with
            False, other matrices give meaningless results.

    Returns:
        ``(..., 3)`` rotation vectors, radians, norm in ``[0, pi]``.

    Raises:
        ValueError: wrong shape, NaN/inf, or (``check_rotation``) a matrix that is not a rotation.
    """
    check_rotation_arg(R, "R", check_rotation)
    return _matrix_to_rotvec(upcast(R)).to(R.dtype)


def _matrix_to_rotvec(R: Tensor) -> Tensor:
    return _quaternion_to_rotvec(_matrix_to_quaternion(R))


def geodesic_distance(R1: Tensor, R2: Tensor, *, check_rotation: bool = True) -> Tensor:
    """Geodesic (bi-invariant) distance ``|log(R1^T R2)|`` between rotations, in ``[0, pi]``.

    Computed as ``atan2(|u|, <R1, R2>_F - 1)`` with ``u = sum_k R1[k] x R2[k]`` (rows
    ``k``), which equals ``atan2(|vee(M - M^T)|, tr M - 1)`` for ``M = R1^T R2``, i.e.
    ``atan2(2 sin t, 2 cos t)``. The sine comes from the antisymmetric part, so precision is
    kept at 0 and pi, where ``acos((tr M - 1)/2)`` loses about 5e-4 rad in float32 and the
    chordal ``2 asin(|R1 - R2|_F / sqrt(8))`` loses sqrt(eps). Symmetric in its arguments.
    Gradients are finite everywhere: ``torch.linalg.vector_norm`` has gradient 0 at
    ``u = 0``, the subgradient at exactly 0 and pi where the distance is not differentiable.

    Args:
        R1: ``(..., 3, 3)`` rotation matrices.
        R2: ``(..., 3, 3)`` rotation matrices, broadcastable with ``R1``, same dtype and device.
        check_rotation: check that both hold rotations (``check_rotation_matrix``); with
            False, other matrices give meaningless results (``d(I, diag(1, 1, -1)) = 0``).

    Returns:
        ``(...)`` angles in radians.

    Raises:
        ValueError: wrong shapes, NaN/inf, different dtypes or devices, batch shapes that do
            not broadcast, or (``check_rotation``) a matrix that is not a rotation.
    """
    check_tensor(R1, (3, 3), "R1", finite=False)
    check_tensor(R2, (3, 3), "R2", finite=False)
    check_compatible("R1, R2", (R1, R2), (2, 2))
    if check_rotation:  # also rejects NaN and inf
        check_rotation_arg(R1, "R1", True)
        check_rotation_arg(R2, "R2", True)
    A, B = upcast(R1), upcast(R2)
    trace = torch.linalg.vecdot(A.flatten(-2), B.flatten(-2))  # tr M = 1 + 2 cos t
    if not check_rotation:
        # Any NaN/inf entry of R1 or R2 makes its row of trace non-finite: one cheap check.
        check_finite_by_product(trace, {"R1": R1, "R2": R2}, (3, 3))
    if A.shape != B.shape:
        A, B = torch.broadcast_tensors(A, B)  # views; linalg.cross needs equal ndim
    u = torch.linalg.cross(A, B, dim=-1).sum(-2)
    return torch.atan2(torch.linalg.vector_norm(u, dim=-1), trace - 1).to(R1.dtype)


def project_to_so3(M: Tensor) -> Tensor:
    """Nearest rotation in Frobenius norm: ``U diag(1, 1, det(U V^T)) V^T`` for ``M = U S V^T``.

    This is the special orthogonalisation of Levinson et al. (2020), "An analysis of SVD
    for deep rotation estimation" (the 9D representation), and the projection used by the
    chordal mean. Its backward pass is the closed form of the derivative of the polar
    factor (``_SpecialProcrustes``), finite when singular values repeat (e.g. ``M = I``),
    where differentiating through ``torch.linalg.svd`` gives NaN.

    Args:
        M: ``(..., 3, 3)`` matrices with ``rank >= 2`` (any matrices: this is the projection).

    Returns:
        ``(..., 3, 3)`` rotation matrices.
    """
    check_tensor(M, (3, 3), "M")
    return _SpecialProcrustes.apply(upcast(M)).to(M.dtype)


class _SpecialProcrustes(torch.autograd.Function):
    """``R = U' V^T`` for the signed SVD ``M = U' S' V^T`` (``U' = U D``, ``S' = D S``,
    ``D = diag(1, 1, det(U V^T))``), with the derivative of the polar factor.

    Writing ``M = R P`` with ``P = V S' V^T`` symmetric and ``Omega = U'^T dR V`` (skew),
    ``A = U'^T dM V = Omega S' + V^T dP V`` gives ``Omega_ij = (A_ij - A_ji) / (s'_i + s'_j)``
    and ``dR = U' Omega V^T``. Its adjoint is ``dL/dM = U' K V^T`` with
    ``K = (G - G^T) / (s'_i + s'_j)``, ``G = U'^T (dL/dR) V``. The denominators are sums of
    singular values, never differences, so repeated singular values are harmless; they
    vanish only when M has rank < 2.
    """

    @staticmethod
    def forward(M: Tensor) -> Tensor:  # type: ignore[override]
        R, _, _, _ = _procrustes(M)
        return R

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:  # type: ignore[no-untyped-def]
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        (M,) = ctx.saved_tensors
        _, U, s, V = _procrustes(M)  # s: signed singular values, U: det-corrected
        # R = U V^T with det-corrected U; dR = U Omega V^T, Omega skew with
        # Omega_ij = (A_ij - A_ji) / (s_i + s_j), A = U^T dM V (polar-factor derivative).
        G = U.mT @ grad @ V  # grad expressed in the (U, V) bases
        K = (G - G.mT) / (s.unsqueeze(-1) + s.unsqueeze(-2)).clamp_min(torch.finfo(M.dtype).eps)
        return U @ K @ V.mT


def _procrustes(M: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    U, s, Vh = torch.linalg.svd(M)
    V = Vh.mT
    det = torch.linalg.det(U @ Vh)
    flip = torch.ones_like(s)
    flip[..., 2] = det.sign()
    flip = torch.where(flip == 0, 1.0, flip)
    U = U * flip.unsqueeze(-2)  # negate the last column when det(U V^T) < 0
    s = s * flip
    return U @ V.mT, U, s, V


def chordal_mean(
    R: Tensor, weights: Tensor | None = None, dim: int = -3, *, check_rotation: bool = True
) -> Tensor:
    """Chordal L2 mean: the rotation closest in Frobenius norm to the weighted mean matrix.

    Hartley et al., "Rotation averaging" (IJCV 2013), section 5.3: ``proj_SO3(sum w_i R_i)``.

    Args:
        R: ``(..., N, ..., 3, 3)`` rotations; the mean is taken over dimension ``dim``
            (default: the one before the matrix dimensions).
        weights: optional non-negative weights broadcastable to ``R.shape[:-2]`` (converted
            to ``R``'s dtype and device).
        dim: the dimension to average over (must not be one of the last two).
        check_rotation: check that ``R`` holds rotations (``check_rotation_matrix``).

    Returns:
        ``R`` without dimension ``dim``: ``(..., 3, 3)`` mean rotations.

    Raises:
        ValueError: wrong shape, NaN/inf, a bad ``dim``, negative or non-finite weights,
            weights that do not broadcast, or (``check_rotation``) a matrix that is not a rotation.
    """
    check_rotation_arg(R, "R", check_rotation)
    d = _mean_dim(R, dim)
    return _chordal_mean(upcast(R), weights, d).to(R.dtype)


def _chordal_mean(R: Tensor, weights: Tensor | None, dim: int) -> Tensor:
    if weights is None:
        M = R.mean(dim=dim)
    else:
        w = torch.as_tensor(weights, dtype=R.dtype, device=R.device)
        if bool((w < 0).any()) or not bool(torch.isfinite(w).all()):
            raise ValueError("weights: expected finite non-negative weights")
        try:
            w = w.expand(R.shape[:-2]).unsqueeze(-1).unsqueeze(-1)
        except RuntimeError:
            raise ValueError(
                f"weights: expected a shape broadcastable to {tuple(R.shape[:-2])}, got {tuple(w.shape)}"
            ) from None
        M = (w * R).sum(dim=dim) / w.sum(dim=dim).clamp_min(torch.finfo(R.dtype).tiny)
    return _SpecialProcrustes.apply(M)


def karcher_mean(
    R: Tensor,
    dim: int = -3,
    *,
    max_iterations: int = 50,
    tolerance: float | None = None,
    check_rotation: bool = True,
) -> Tensor:
    """Geodesic L2 (Karcher) mean: the rotation minimising ``sum_i d(mu, R_i)^2``.

    Riemannian gradient descent from the chordal mean (Hartley et al. 2013, Algorithm 1):
    ``mu <- mu exp(mean_i log(mu^T R_i))`` until the step is below ``tolerance``. Unique
    when the rotations lie in a geodesic ball of radius < pi/2.

    Args:
        R: ``(..., N, ..., 3, 3)`` rotations; averaged over ``dim``.
        dim: the dimension to average over.
        max_iterations: at most this many steps.
        tolerance: stop when every step's angle is below this (radians); default
            ``100 * eps`` of the dtype the mean is computed in (float32 for half dtypes).
        check_rotation: check that ``R`` holds rotations (``check_rotation_matrix``).

    Returns:
        ``(..., 3, 3)`` mean rotations.

    Raises:
        ValueError: wrong shape, NaN/inf, a bad ``dim``, or (``check_rotation``) a matrix
            that is not a rotation.
    """
    check_rotation_arg(R, "R", check_rotation)
    d = _mean_dim(R, dim)
    X = upcast(R)
    tol = 100 * torch.finfo(X.dtype).eps if tolerance is None else tolerance
    mu = _chordal_mean(X, None, d)
    for _ in range(max_iterations):
        step = _matrix_to_rotvec(mu.unsqueeze(d).mT @ X).mean(dim=d)
        mu = mu @ _rotvec_to_matrix(step)
        if float(torch.linalg.vector_norm(step, dim=-1).max()) < tol:
            break
    return mu.to(R.dtype)


def _mean_dim(R: Tensor, dim: int) -> int:
    d = dim % R.dim()
    if d >= R.dim() - 2:
        raise ValueError(f"dim: expected a batch dimension of R with shape {tuple(R.shape)}, got {dim}")
    return d
