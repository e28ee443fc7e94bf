"""Every geometry function gives on a CUDA device what it gives on the CPU: values and gradients,
float32 and float64, finite at angle 0 and pi (the CPU runs the fused C kernels where they apply,
CUDA the eager formulas, so this compares two implementations). Skipped without CUDA; run by
``benchmarks/device_session.sh`` on a lent GPU."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from posereg import geometry as g

from .conftest import adversarial_rotvecs, random_rotvecs
from .test_mismatch import CASES, W, _args

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

F32, F64 = torch.float32, torch.float64
# Values and gradients of CUDA against the CPU: float64 to rounding, float32 to a few ulps of
# the quantities involved (angles up to pi, Jacobians with 1/theta terms).
TOL = {F64: 1e-9, F32: 2e-4}


def _rotvecs(dtype: torch.dtype, adversarial: bool) -> torch.Tensor:
    v = adversarial_rotvecs() if adversarial else random_rotvecs(64, seed=3, max_angle=0.95 * math.pi)
    return torch.as_tensor(v, dtype=dtype)


def _quaternions(dtype: torch.dtype, adversarial: bool) -> torch.Tensor:
    q = g.rotvec_to_quaternion(_rotvecs(F64, adversarial)) * 1.7  # not unit: the functions normalise
    return q.to(dtype)


def _rotations(dtype: torch.dtype, adversarial: bool) -> torch.Tensor:
    return g.rotvec_to_matrix(_rotvecs(F64, adversarial)).to(dtype)


def _near_rotations(dtype: torch.dtype, adversarial: bool) -> torch.Tensor:
    R = g.rotvec_to_matrix(_rotvecs(F64, adversarial))
    return (R + 0.05 * torch.randn(R.shape, generator=torch.Generator().manual_seed(4), dtype=F64)).to(dtype)


def _twists(dtype: torch.dtype, adversarial: bool) -> torch.Tensor:
    v = _rotvecs(F64, adversarial)
    return torch.cat((v, torch.linspace(-20.0, 20.0, v.numel(), dtype=F64).view_as(v)), -1).to(dtype)


def _sixd(dtype: torch.dtype, adversarial: bool) -> torch.Tensor:
    return (g.matrix_to_sixd(_rotations(F64, adversarial)) * 2.0 + 0.1).to(dtype)


def _nine(dtype: torch.dtype, adversarial: bool) -> torch.Tensor:
    return _near_rotations(dtype, adversarial).flatten(-2)


def _same_rotation(a: torch.Tensor, b: torch.Tensor, tol: float) -> None:
    """Rotation vectors (or quaternions) that may differ by the sign ambiguity at pi (or the
    double cover) are compared as matrices."""
    to_matrix = g.rotvec_to_matrix if a.shape[-1] == 3 else g.quaternion_to_matrix
    torch.testing.assert_close(to_matrix(a), to_matrix(b), atol=tol, rtol=0)


# name -> (function, input maker, outputs ambiguous at pi: compared as rotations there)
SINGLE: dict[str, tuple[Callable[..., object], Callable[[torch.dtype, bool], torch.Tensor], bool]] = {
    "rotvec_to_matrix": (g.rotvec_to_matrix, _rotvecs, False),
    "rotvec_to_quaternion": (g.rotvec_to_quaternion, _rotvecs, False),
    "hat": (g.hat, _rotvecs, False),
    "so3_right_jacobian": (g.so3_right_jacobian, _rotvecs, False),
    "so3_right_jacobian_inverse": (g.so3_right_jacobian_inverse, _rotvecs, False),
    "matrix_to_rotvec": (g.matrix_to_rotvec, _rotations, True),
    "matrix_to_quaternion": (g.matrix_to_quaternion, _rotations, True),
    "matrix_to_sixd": (g.matrix_to_sixd, _rotations, False),
    "quaternion_to_matrix": (g.quaternion_to_matrix, _quaternions, False),
    "quaternion_to_rotvec": (g.quaternion_to_rotvec, _quaternions, True),
    "canonicalize_quaternion": (g.canonicalize_quaternion, _quaternions, True),
    "sixd_to_matrix": (g.sixd_to_matrix, _sixd, False),
    "svd9d_to_matrix": (g.svd9d_to_matrix, _nine, False),
    "project_to_so3": (g.project_to_so3, _near_rotations, False),
    "se3_exp": (g.se3_exp, _twists, False),
    "so3r3_exp": (g.so3r3_exp, _twists, False),
}  # fmt: skip


def _outputs(out: object) -> tuple[torch.Tensor, ...]:
    return out if isinstance(out, tuple) else (out,)  # type: ignore[return-value]


def _run(fn: Callable[..., object], args: list[torch.Tensor], device: str) -> tuple[tuple[torch.Tensor, ...], list]:
    """Outputs and the gradients of a fixed weighted sum of them, with the inputs on ``device``."""
    inputs = [a.detach().to(device).requires_grad_(a.is_floating_point()) for a in args]
    outs = _outputs(fn(*inputs))
    floats = [o for o in outs if o.is_floating_point()]  # project_points also returns a mask
    total = sum((o * torch.linspace(-1.0, 1.0, o.numel(), dtype=o.dtype, device=device).view_as(o)).sum() for o in floats)
    grads = torch.autograd.grad(total, inputs, allow_unused=True)
    return tuple(o.detach().cpu() for o in outs), [None if d is None else d.cpu() for d in grads]


def _compare(cpu: tuple, cuda: tuple, tol: float, values_only: bool = False) -> None:
    for a, b in zip(cpu[0], cuda[0], strict=True):
        assert not b.is_floating_point() or torch.isfinite(b).all()
        torch.testing.assert_close(b, a, atol=tol, rtol=tol)
    for a, b in zip(cpu[1], cuda[1], strict=True):
        assert (a is None) == (b is None)
        if b is not None:
            assert torch.isfinite(b).all()
            if not values_only:
                torch.testing.assert_close(b, a, atol=tol, rtol=tol)


@pytest.mark.parametrize("dtype", (F32, F64), ids=("float32", "float64"))
@pytest.mark.parametrize("name", sorted(SINGLE))
def test_one_argument_functions_on_cuda_give_the_cpu_result(name, dtype):
    fn, make, ambiguous = SINGLE[name]
    x = make(dtype, False)
    _compare(_run(fn, [x], "cpu"), _run(fn, [x], "cuda"), TOL[dtype])


@pytest.mark.parametrize("dtype", (F32, F64), ids=("float32", "float64"))
@pytest.mark.parametrize("name", sorted(SINGLE))
def test_one_argument_functions_on_cuda_at_angles_zero_and_pi(name, dtype):
    """At the adversarial angles the values agree (as rotations where pi leaves a sign free)
    and the gradients are finite; they are compared only where the value is not ambiguous."""
    fn, make, ambiguous = SINGLE[name]
    x = make(dtype, True)
    cpu, cuda = _run(fn, [x], "cpu"), _run(fn, [x], "cuda")
    if not ambiguous:
        _compare(cpu, cuda, TOL[dtype] * 10)
        return
    for a, b in zip(cpu[0], cuda[0], strict=True):
        assert torch.isfinite(b).all()
        if a.shape[-1] in (3, 4):
            _same_rotation(a, b, TOL[dtype] * 10)
    assert all(d is None or torch.isfinite(d).all() for d in cuda[1])


@pytest.mark.parametrize("dtype", (F32, F64), ids=("float32", "float64"))
@pytest.mark.parametrize("name", sorted(CASES))
def test_several_argument_functions_on_cuda_give_the_cpu_result(name, dtype):
    fn, names, builders = CASES[name]
    args = _args(builders, [(16,)] * len(names), [dtype] * len(names))
    _compare(_run(fn, args, "cpu"), _run(fn, args, "cuda"), TOL[dtype])


@pytest.mark.parametrize("dtype", (F32, F64), ids=("float32", "float64"))
def test_geodesic_distance_of_equal_and_opposite_rotations_on_cuda(dtype):
    """Distance 0 (equal) and pi (a half-turn apart): the values of the CPU, finite gradients."""
    R = _rotations(dtype, False)
    half_turn = g.rotvec_to_matrix(torch.tensor([0.0, 0.0, math.pi], dtype=dtype)) @ R
    for other in (R, half_turn):
        cpu, cuda = _run(g.geodesic_distance, [R, other], "cpu"), _run(g.geodesic_distance, [R, other], "cuda")
        _compare(cpu, cuda, TOL[dtype] * 10, values_only=True)


def test_the_means_on_cuda_give_the_cpu_result():
    R = _rotations(F64, False).view(8, 8, 3, 3)
    weights = torch.linspace(0.5, 1.5, 8, dtype=F64)
    for fn, args in ((g.karcher_mean, (R,)), (g.chordal_mean, (R, weights))):
        torch.testing.assert_close(fn(*(a.cuda() for a in args)).cpu(), fn(*args), atol=1e-9, rtol=0)


def test_random_rotations_are_drawn_on_the_generators_device():
    gen = torch.Generator(device="cuda").manual_seed(0)
    R = g.random_rotation((100,), generator=gen, dtype=F64, device="cuda")
    assert R.device.type == "cuda"
    torch.testing.assert_close(R.transpose(-1, -2) @ R, torch.eye(3, dtype=F64, device="cuda").expand(100, 3, 3),
                               atol=1e-12, rtol=0)  # fmt: skip
    again = g.random_rotation((100,), generator=torch.Generator(device="cuda").manual_seed(0), dtype=F64, device="cuda")
    torch.testing.assert_close(again, R, atol=0, rtol=0)


def test_the_metric_weights_move_with_the_arguments():
    xi = _twists(F64, False)
    torch.testing.assert_close(g.metric_norm(W.double().cuda(), xi.cuda()).cpu(), g.metric_norm(W.double(), xi))
