"""Quaternions are normalised exactly at any scale whose largest component is a normal number;
smaller ones (zero, subnormal) raise ValueError naming the argument. No NaN either way."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from posereg import geometry as g

DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
F64 = torch.float64
DIRECTION = torch.tensor([0.8, -0.3, 0.5, 0.1], dtype=F64)  # largest component 0.8

# name -> (function of one quaternion batch, the argument named in errors)
NORMALISING = {
    "quaternion_to_matrix": (g.quaternion_to_matrix, "q"),
    "quaternion_to_rotvec": (g.quaternion_to_rotvec, "q"),
    "quaternion_angle/q1": (lambda q: g.quaternion_angle(q, torch.tensor([1.0, 0.3, 0, 0], dtype=q.dtype)), "q1"),
    "quaternion_angle/q2": (lambda q: g.quaternion_angle(torch.tensor([1.0, 0.3, 0, 0], dtype=q.dtype), q), "q2"),
    "QUATERNION.relative_angle": (lambda q: g.QUATERNION.relative_angle(q, q.flip(-1)), "q1"),
}  # fmt: skip


def _at_scale(largest: float, dtype: torch.dtype) -> torch.Tensor:
    """``DIRECTION`` scaled so that its largest component is ``largest``, rounded to ``dtype``."""
    return (DIRECTION * (largest / 0.8)).to(dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", sorted(NORMALISING))
def test_just_above_the_threshold_is_exact(name, dtype):
    fn, _ = NORMALISING[name]
    tiny = torch.finfo(dtype).tiny
    for largest in (2 * tiny, 1.0, 1e-3, 7.0):
        q = _at_scale(largest, dtype)
        out = fn(q)
        assert out.dtype == dtype and torch.isfinite(out).all()
        ref = fn(q.double() / q.double().abs().max())  # the same (rounded) direction, unit scale, float64
        eps = torch.finfo(dtype).eps
        torch.testing.assert_close(out.double(), ref, atol=2 * eps, rtol=2 * eps)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", sorted(NORMALISING))
def test_below_the_threshold_and_zero_are_refused(name, dtype):
    fn, arg = NORMALISING[name]
    tiny = torch.finfo(dtype).tiny
    q = torch.stack((_at_scale(1.0, dtype), _at_scale(tiny / 4, dtype), torch.zeros(4, dtype=dtype)))
    assert q[1].abs().max() > 0  # a subnormal quaternion, not zero
    with pytest.raises(ValueError, match=rf"^{arg}: expected non-zero quaternions of shape \(\.\.\., 4\) .*"
                                         rf"found largest \|q_i\| = .* at index \(1,\)"):  # fmt: skip
        fn(q)
    with pytest.raises(ValueError, match=rf"^{arg}: .*found \|q\| = 0 at index \(2,\)"):
        fn(q[[0, 0, 2]])


def test_the_issue_examples():
    # float32 quaternions of norm 1e-20 gave all-NaN matrices
    q = torch.tensor([1e-20, 0.0, 0.0, 0.0])
    assert torch.equal(g.quaternion_to_matrix(q), torch.eye(3))
    q = torch.tensor([0.0, 1e-20, 0.0, 0.0])
    assert torch.equal(g.quaternion_to_matrix(q), torch.diag(torch.tensor([1.0, -1.0, -1.0])))
    with pytest.raises(ValueError, match=r"q: expected non-zero quaternions .* found \|q\| = 0"):
        g.quaternion_to_matrix(torch.zeros(4))


@settings(max_examples=200, deadline=None)
@given(
    direction=st.lists(st.floats(-1, 1), min_size=4, max_size=4).filter(lambda v: max(map(abs, v)) > 0.1),
    exponent=st.integers(-37, 37),
)
def test_scale_invariance_in_float32(direction, exponent):
    u = torch.tensor(direction, dtype=torch.float32)
    q = u * 10.0**exponent
    assert torch.isfinite(q).all()
    R = g.quaternion_to_matrix(q)
    torch.testing.assert_close(R, g.quaternion_to_matrix(u), atol=2e-6, rtol=0)
    g.check_rotation_matrix(R)
    v = g.quaternion_to_rotvec(q)
    assert torch.isfinite(v).all() and float(v.norm()) <= math.pi + 1e-5


@settings(max_examples=100, deadline=None)
@given(
    direction=st.lists(st.floats(-1, 1), min_size=4, max_size=4).filter(lambda v: max(map(abs, v)) > 0.1),
    exponent=st.integers(-300, 300),
)
def test_gradients_at_any_scale_are_exact_in_float64(direction, exponent):
    """R(s u) = R(u), so dR/dq at s u is (dR/du) / s: finite, exact up to rounding."""
    u = torch.tensor(direction, dtype=F64)
    s = 10.0**exponent
    weights = torch.arange(1.0, 10.0, dtype=F64).view(3, 3)
    q = (u * s).requires_grad_()
    (g.quaternion_to_matrix(q) * weights).sum().backward()
    u1 = u.clone().requires_grad_()
    (g.quaternion_to_matrix(u1) * weights).sum().backward()
    assert torch.isfinite(q.grad).all()
    torch.testing.assert_close(q.grad * s, u1.grad, rtol=1e-10, atol=1e-10 * float(u1.grad.abs().max()))


@pytest.mark.parametrize("dtype", (torch.float32, torch.float16), ids=str)
def test_training_path_gradients_stay_finite_near_the_threshold(dtype):
    """A network's unnormalised quaternion near zero: finite values and gradients down to the
    smallest accepted scale (gradients grow like 1 / |q|, as the true derivative does)."""
    tiny = torch.finfo(dtype).tiny
    for largest in (1e4 * tiny, 1e2 * tiny, 4 * tiny):
        q = _at_scale(largest, dtype).requires_grad_()
        g.quaternion_to_matrix(q)[..., 0, 1].backward()
        assert torch.isfinite(q.grad).all(), largest


def test_gradcheck_at_angles_0_and_pi_and_two_scales():
    for q0 in ((1.0, 0.0, 0.0, 0.0), (0.0, 0.6, 0.0, 0.8)):  # angle 0, angle pi
        for scale in (1.0, 100.0):
            q = (torch.tensor(q0, dtype=F64) * scale).requires_grad_()
            assert torch.autograd.gradcheck(g.quaternion_to_matrix, (q,), eps=1e-6 * scale)
    q = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(g.quaternion_to_rotvec, (q,))
