"""Fused CPU kernels for the hottest conversions and the geodesic distance (optional).

``rotvec_to_matrix``, ``quaternion_to_matrix``, ``matrix_to_rotvec`` and
``geodesic_distance`` here take the same arguments and give the same values and gradients
as their namesakes in ``posereg.geometry`` (same formulas, branch for branch; tested to
agree to a few ulp), but each runs as one compact C loop over the batch
(``_kernels.c``): one pass over memory instead of 10-40 tensor kernels with temporaries,
with vectorised ``sin``/``atan2``, split over ``torch.get_num_threads()`` threads of torch's
own OpenMP pool for large batches where the build has OpenMP (see ``_native``).
See docs/benchmarks/geometry.md for the numbers.

When the kernels do not apply, each function calls the eager version, so callers can use
this module unconditionally: CUDA tensors, dtypes other than float32/float64, a machine
without a C compiler or with an unsafe kernel cache (one warning), ``POSEREG_NO_NATIVE=1``
(no warning), and inputs with NaN or inf (the eager function then raises its
``ValueError``). The first call builds the kernels (about a second; cached on disk in a
private directory, see ``posereg.accel._native``). Argument checks are the eager ones, run
here before the kernels: shapes, dtype/device/batch mismatches, and the rotation check of
matrix inputs (``posereg.geometry.check_rotation_matrix``, ``check_rotation=False`` skips
it, as in eager; it is a separate pass, not fused into the kernels). A quaternion whose
``|q|^2`` is below half the smallest normal number (``|q|`` below about 1e-19 in float32)
makes the checksum ``sum 2 / |q|^2`` overflow, so the eager function takes over: it rescales
such quaternions exactly, or raises for those it refuses.

Gradients: the geodesic distance has a fused backward kernel (the derivative of
``atan2(|u|, c)`` in closed form, see ``_kernels.c``); the three conversions compute their
backward pass with the eager formula (one extra forward), so only their forward is fused.
All are differentiable once (``torch.autograd.function.once_differentiable``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from posereg.accel import _native
from posereg.accel._native import Kernels, kernels
from posereg.geometry import quaternion, so3
from posereg.geometry._checks import check_compatible, check_tensor
from posereg.geometry._rotation_check import check_rotation_arg

__all__ = ["available", "geodesic_distance", "matrix_to_rotvec", "quaternion_to_matrix", "reset", "rotvec_to_matrix"]

_DTYPES = (torch.float32, torch.float64)


def available() -> bool:
    """Whether the C kernels are built and loaded (CPU float32/float64 inputs use them);
    False under ``POSEREG_NO_NATIVE=1``. Builds them on the first call."""
    return kernels() is not None


def reset() -> None:
    """Forget whether the kernels were loaded: the next call reads ``POSEREG_NO_NATIVE`` and
    ``POSEREG_CACHE_DIR`` again and re-checks the cache (``posereg.accel._native.reset``)."""
    _native.reset()


def _kernels_for(*tensors: Tensor) -> Kernels | None:
    x = tensors[0]
    if x.device.type != "cpu" or x.dtype not in _DTYPES or any(t.dtype != x.dtype for t in tensors):
        return None
    return kernels()


def _launch(fn: Callable[..., float | None], operands: list[Tensor | None], n: int) -> float:
    """Run kernel ``fn`` over ``n`` batch elements; its checksum (0 for none).

    ``operands``: the kernel's array arguments in order, as contiguous tensors (each batch
    element's entries together: ``(N, 3, 3)``, ``(N,)``...); None for an output the kernel
    may skip (a NULL pointer). The kernel uses up to
    ``torch.get_num_threads()`` threads of torch's OpenMP pool (one without an OpenMP build).
    It is not split over Python threads: with 2 torch threads that was slower than one
    thread (rotvec -> matrix at 1e5: 1.9 ms against 0.24 ms), because torch's OpenMP workers
    keep spinning on the cores after each parallel region and the extra threads competed.
    """
    return fn(*(None if t is None else t.data_ptr() for t in operands), n, torch.get_num_threads()) or 0.0


def _map(k: Kernels, name: str, x: Tensor, trailing_in: tuple[int, ...], trailing_out: tuple[int, ...],
         eager: Callable[[Tensor], Tensor]) -> Tensor:  # fmt: skip
    """The element-wise kernel ``name`` on ``x``; ``eager(x)`` when its checksum is not finite
    (the eager function then validates the input and raises, or handles an overflow)."""
    batch = x.shape[: x.dim() - len(trailing_in)]
    out = torch.empty((*batch, *trailing_out), dtype=x.dtype)
    check = _launch(k.fn(name, x.dtype), [x.contiguous(), out], math.prod(batch))
    return out if math.isfinite(check) else eager(x)


class _FusedMap(torch.autograd.Function):
    """A fused conversion whose backward pass differentiates the eager formula."""

    @staticmethod
    def forward(ctx, x: Tensor, k: Kernels, name: str, trailing_in: tuple[int, ...],  # type: ignore[override]
                trailing_out: tuple[int, ...], eager: Callable[[Tensor], Tensor]) -> Tensor:  # fmt: skip
        ctx.save_for_backward(x)
        ctx.eager = eager
        return _map(k, name, x, trailing_in, trailing_out, eager)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        with torch.enable_grad():
            x = x.detach().requires_grad_()
            (grad_x,) = torch.autograd.grad(ctx.eager(x), x, grad)
        return grad_x, None, None, None, None, None


def _convert(x: Tensor, name: str, arg: str, trailing_in: tuple[int, ...], trailing_out: tuple[int, ...],
             eager: Callable[[Tensor], Tensor]) -> Tensor:  # fmt: skip
    check_tensor(x, trailing_in, arg, finite=False)
    k = _kernels_for(x)
    if k is None:
        return eager(x)
    if torch.is_grad_enabled() and x.requires_grad:
        return _FusedMap.apply(x, k, name, trailing_in, trailing_out, eager)
    return _map(k, name, x, trailing_in, trailing_out, eager)


def rotvec_to_matrix(rotvec: Tensor) -> Tensor:
    """Fused ``posereg.geometry.rotvec_to_matrix`` (Rodrigues through the half-angle quaternion).

    Args:
        rotvec: ``(..., 3)`` rotation vectors, radians.

    Returns:
        ``(..., 3, 3)`` rotation matrices.
    """
    return _convert(rotvec, "rotvec_to_matrix", "rotvec", (3,), (3, 3), so3.rotvec_to_matrix)


def quaternion_to_matrix(q: Tensor) -> Tensor:
    """Fused ``posereg.geometry.quaternion_to_matrix``.

    Args:
        q: ``(..., 4)`` non-zero quaternions ``(w, x, y, z)`` (normalised inside).

    Returns:
        ``(..., 3, 3)`` rotation matrices.
    """
    return _convert(q, "quaternion_to_matrix", "q", (4,), (3, 3), quaternion.quaternion_to_matrix)


def matrix_to_rotvec(R: Tensor, *, check_rotation: bool = True) -> Tensor:
    """Fused ``posereg.geometry.matrix_to_rotvec`` (log map through the Markley quaternion).

    Args:
        R: ``(..., 3, 3)`` rotation matrices.
        check_rotation: check that ``R`` holds rotations (``check_rotation_matrix``).

    Returns:
        ``(..., 3)`` rotation vectors, radians, norm in ``[0, pi]``.
    """
    if check_rotation:
        check_rotation_arg(R, "R", True)
    return _convert(R, "matrix_to_rotvec", "R", (3, 3), (3,), _matrix_to_rotvec_unchecked)


def _matrix_to_rotvec_unchecked(R: Tensor) -> Tensor:
    return so3.matrix_to_rotvec(R, check_rotation=False)


def _geodesic(k: Kernels, R1: Tensor, R2: Tensor) -> Tensor:
    """The distance kernel on contiguous, equally shaped ``R1``, ``R2``; the eager function
    when its checksum is not finite."""
    out = torch.empty(R1.shape[:-2], dtype=R1.dtype)
    check = _launch(k.fn("geodesic_distance", R1.dtype), [R1, R2, out], out.numel())
    return out if math.isfinite(check) else so3.geodesic_distance(R1, R2, check_rotation=False)


class _FusedGeodesic(torch.autograd.Function):
    """The geodesic distance with the fused backward kernel."""

    @staticmethod
    def forward(ctx, R1: Tensor, R2: Tensor, k: Kernels) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(R1, R2)
        ctx.kernels = k
        return _geodesic(k, R1, R2)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        R1, R2 = ctx.saved_tensors
        grad = grad.contiguous()
        # Only the gradients asked for are allocated and written (a loss against a fixed target
        # needs one of the two: half the backward's memory traffic).
        g1 = torch.empty_like(R1) if ctx.needs_input_grad[0] else None
        g2 = torch.empty_like(R2) if ctx.needs_input_grad[1] else None
        fn = ctx.kernels.fn("geodesic_distance_backward", R1.dtype)
        _launch(fn, [R1, R2, grad, g1, g2], grad.numel())
        return g1, g2, None


def geodesic_distance(R1: Tensor, R2: Tensor, *, check_rotation: bool = True) -> Tensor:
    """Fused ``posereg.geometry.geodesic_distance``: ``atan2(|sum_k R1[k] x R2[k]|, <R1, R2>_F - 1)``.

    Args:
        R1: ``(..., 3, 3)`` rotation matrices.
        R2: ``(..., 3, 3)`` rotation matrices, broadcastable with ``R1``, same dtype and device.
        check_rotation: check that both hold rotations (``check_rotation_matrix``).

    Returns:
        ``(...)`` angles in radians, in ``[0, pi]``.
    """
    check_tensor(R1, (3, 3), "R1", finite=False)
    check_tensor(R2, (3, 3), "R2", finite=False)
    check_compatible("R1, R2", (R1, R2), (2, 2))
    if check_rotation:
        check_rotation_arg(R1, "R1", True)
        check_rotation_arg(R2, "R2", True)
    k = _kernels_for(R1, R2)
    if k is None:
        return so3.geodesic_distance(R1, R2, check_rotation=False)
    if R1.shape != R2.shape:
        R1, R2 = torch.broadcast_tensors(R1, R2)  # differentiable: gradients are summed back
    R1, R2 = R1.contiguous(), R2.contiguous()
    if torch.is_grad_enabled() and (R1.requires_grad or R2.requires_grad):
        return _FusedGeodesic.apply(R1, R2, k)
    return _geodesic(k, R1, R2)
