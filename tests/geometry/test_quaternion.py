"""Quaternions (w, x, y, z) against scipy (which stores x, y, z, w)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from posereg import geometry as g
from tests.geometry.conftest import TOL, adversarial_rotvecs, random_rotvecs, scipy_quat, to_scipy


def _quats(n: int, seed: int) -> np.ndarray:
    return scipy_quat(Rotation.random(n, random_state=seed).as_quat())


def test_quaternion_to_matrix_matches_scipy(dtype):
    q = np.concatenate([_quats(300, 0), scipy_quat(Rotation.from_rotvec(adversarial_rotvecs()).as_quat())])
    ref = Rotation.from_quat(to_scipy(q)).as_matrix()
    R = g.quaternion_to_matrix(torch.as_tensor(q, dtype=dtype))
    assert np.abs(R.double().numpy() - ref).max() <= 4 * TOL[dtype]


def test_non_unit_and_negated_quaternions_give_the_same_matrix():
    q = torch.as_tensor(_quats(50, 1))
    R = g.quaternion_to_matrix(q)
    assert torch.allclose(g.quaternion_to_matrix(3.7 * q), R, atol=1e-14)
    assert torch.allclose(g.quaternion_to_matrix(-q), R, atol=1e-14)


def test_matrix_to_quaternion_matches_scipy(dtype):
    rv = np.concatenate([random_rotvecs(300, 2), adversarial_rotvecs()])
    R = Rotation.from_rotvec(rv).as_matrix()
    q = g.matrix_to_quaternion(torch.as_tensor(R, dtype=dtype)).double().numpy()
    ref = scipy_quat(Rotation.from_matrix(R).as_quat())
    # same rotation: |<q, ref>| = 1; hemisphere w >= 0
    assert np.abs(np.abs((q * ref).sum(1)) - 1).max() <= 4 * TOL[dtype]
    assert (q[:, 0] >= 0).all()
    away = np.abs(ref[:, 0]) > 1e-3  # where w != 0, the canonical sign is unique
    ref_c = np.where(ref[:, :1] < 0, -ref, ref)
    assert np.abs(q[away] - ref_c[away]).max() <= 4 * TOL[dtype]


def test_rotvec_quaternion_conversions_match_scipy(dtype):
    rv = np.concatenate([random_rotvecs(300, 3, math.pi - 1e-3), adversarial_rotvecs()[:12]])
    q = g.rotvec_to_quaternion(torch.as_tensor(rv, dtype=dtype))
    ref = scipy_quat(Rotation.from_rotvec(rv).as_quat(canonical=True))
    assert np.abs(q.double().numpy() - ref).max() <= 4 * TOL[dtype]
    back = g.quaternion_to_rotvec(torch.as_tensor(ref, dtype=dtype)).double().numpy()
    assert np.abs(back - rv).max() <= 10 * TOL[dtype]
    assert torch.allclose(g.quaternion_to_rotvec(-q), g.quaternion_to_rotvec(q), atol=10 * TOL[dtype])


def test_quaternion_to_rotvec_at_pi_and_zero():
    q = torch.tensor([[0.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0], [1.0, 1e-9, 0.0, 0.0]], dtype=torch.float64)
    rv = g.quaternion_to_rotvec(q)
    assert torch.allclose(rv, torch.tensor([[0, 0, math.pi], [0, 0, 0], [2e-9, 0, 0]], dtype=torch.float64), atol=1e-15)


def test_multiply_composes_like_matrices():
    p, q = torch.as_tensor(_quats(40, 4)), torch.as_tensor(_quats(40, 5))
    Rp, Rq = g.quaternion_to_matrix(p), g.quaternion_to_matrix(q)
    assert torch.allclose(g.quaternion_to_matrix(g.quaternion_multiply(p, q)), Rp @ Rq, atol=1e-14)
    ident = torch.tensor([1.0, 0, 0, 0], dtype=torch.float64)
    assert torch.allclose(g.quaternion_multiply(p, g.quaternion_conjugate(p)), ident.expand(40, 4), atol=1e-14)


def test_canonicalize():
    q = torch.tensor([[-0.5, 0.5, 0.5, 0.5], [0.5, -0.5, 0.5, 0.5]])
    out = g.canonicalize_quaternion(q)
    assert torch.equal(out, torch.tensor([[0.5, -0.5, -0.5, -0.5], [0.5, -0.5, 0.5, 0.5]]))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-1, 1), min_size=4, max_size=4).filter(lambda q: sum(x * x for x in q) > 1e-3))
def test_angle_is_sign_invariant_and_equals_geodesic(qlist):
    q1 = torch.tensor(qlist, dtype=torch.float64)
    q1 = q1 / q1.norm()
    q2 = torch.tensor([0.3, -0.1, 0.8, 0.2], dtype=torch.float64)
    q2 = q2 / q2.norm()
    a = g.quaternion_angle(q1, q2)
    assert torch.allclose(a, g.quaternion_angle(-q1, q2), atol=1e-14)
    assert torch.allclose(a, g.geodesic_distance(g.quaternion_to_matrix(q1), g.quaternion_to_matrix(q2)), atol=1e-12)


def test_gradients_finite_at_zero_and_pi(dtype):
    for q in ([1.0, 0, 0, 0], [0.0, 1, 0, 0], [0.0, 0.6, 0, 0.8], [-1.0, 0, 0, 0]):
        qt = torch.tensor(q, dtype=dtype, requires_grad=True)
        for fn in (g.quaternion_to_matrix, g.quaternion_to_rotvec):
            (grad,) = torch.autograd.grad(fn(qt).sum(), qt)
            assert torch.isfinite(grad).all()
        (grad,) = torch.autograd.grad(g.quaternion_angle(qt, qt.detach()), qt)
        assert torch.isfinite(grad).all()


def test_gradcheck():
    q = torch.as_tensor(_quats(5, 6)).requires_grad_()
    assert torch.autograd.gradcheck(g.quaternion_to_matrix, (q,))
    assert torch.autograd.gradcheck(g.quaternion_to_rotvec, (q,))
    R = g.quaternion_to_matrix(q.detach()).requires_grad_()
    assert torch.autograd.gradcheck(g.matrix_to_quaternion, (R,))


def test_bad_input():
    with pytest.raises(ValueError, match=r"non-zero quaternions of shape \(\.\.\., 4\)"):
        g.quaternion_to_matrix(torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        g.quaternion_to_matrix(torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"non-zero quaternions of shape \(\.\.\., 4\)"):
        g.quaternion_to_rotvec(torch.zeros(4))
    with pytest.raises(ValueError, match="NaN or inf"):
        g.quaternion_multiply(torch.ones(4), torch.tensor([1.0, float("nan"), 0, 0]))
