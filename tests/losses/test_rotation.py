"""Salehi et al.'s rotation losses: rotation-vector MSE and the SO(3) geodesic loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from posereg import geometry as g
from posereg.losses import RotvecMSELoss, SO3GeodesicLoss, rotvec_mse_loss, so3_geodesic_loss
from tests.geometry.conftest import random_rotvecs

REPS = [g.ROTVEC, g.QUATERNION, g.MATRIX, g.SIXD, g.SVD9D]
F64 = torch.float64


def _pairs(n: int, seed: int):
    a = Rotation.from_rotvec(random_rotvecs(n, seed))
    b = Rotation.from_rotvec(random_rotvecs(n, seed + 1))
    return a, b


@pytest.mark.parametrize("rep", REPS, ids=lambda r: r.name)
def test_equals_scipy_angle_symmetric_and_squared(rep, dtype):
    a, b = _pairs(300, 0)
    x = rep.from_matrix(torch.as_tensor(a.as_matrix(), dtype=dtype))
    y = rep.from_matrix(torch.as_tensor(b.as_matrix(), dtype=dtype))
    expected = torch.as_tensor((a.inv() * b).magnitude(), dtype=dtype)
    tol = 2e-6 if dtype == torch.float32 else 1e-12
    per = so3_geodesic_loss(x, y, rep, reduction="none")
    torch.testing.assert_close(per, expected, atol=tol, rtol=0)
    torch.testing.assert_close(so3_geodesic_loss(y, x, rep, reduction="none"), per, atol=tol, rtol=0)
    torch.testing.assert_close(
        so3_geodesic_loss(x, y, rep, squared=True, reduction="sum"), (expected * expected).sum(), atol=300 * tol, rtol=0
    )
    assert so3_geodesic_loss(x, x, rep).item() == pytest.approx(0.0, abs=10 * tol)
    assert bool((per > 0).all())


def test_quaternion_sign_flips_and_scale_do_not_change_the_loss():
    a, b = _pairs(50, 2)
    qa = g.matrix_to_quaternion(torch.as_tensor(a.as_matrix()))
    qb = g.matrix_to_quaternion(torch.as_tensor(b.as_matrix()))
    base = so3_geodesic_loss(qa, qb, g.QUATERNION, reduction="none")
    for x, y in ((-qa, qb), (qa, -qb), (-qa, -qb), (2.5 * qa, qb)):
        torch.testing.assert_close(so3_geodesic_loss(x, y, g.QUATERNION, reduction="none"), base)


@pytest.mark.parametrize("rep", REPS, ids=lambda r: r.name)
@pytest.mark.parametrize("angle", [0.0, 1e-8, math.pi - 1e-6, math.pi])
def test_gradients_finite_at_adversarial_angles(rep, angle, dtype):
    axis = np.array([0.2, -0.7, 0.4])
    rel = Rotation.from_rotvec(axis / np.linalg.norm(axis) * angle)
    target = Rotation.from_rotvec(random_rotvecs(4, 9))
    pred = target * rel
    x = rep.from_matrix(torch.as_tensor(pred.as_matrix(), dtype=dtype)).requires_grad_(True)
    y = rep.from_matrix(torch.as_tensor(target.as_matrix(), dtype=dtype))
    for squared in (False, True):
        x.grad = None
        loss = so3_geodesic_loss(x, y, rep, squared=squared)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(x.grad).all(), (rep.name, angle, squared)


@pytest.mark.parametrize("rep", REPS, ids=lambda r: r.name)
def test_gradcheck_float64(rep):
    a, b = _pairs(5, 11)
    x = rep.from_matrix(torch.as_tensor(a.as_matrix())).requires_grad_(rep is not g.MATRIX)
    y = rep.from_matrix(torch.as_tensor(b.as_matrix()))
    if rep is g.MATRIX:
        # Matrices must stay rotations: differentiate through the exponential map instead.
        v = torch.as_tensor(a.as_rotvec()).requires_grad_(True)
        assert torch.autograd.gradcheck(lambda w: so3_geodesic_loss(g.rotvec_to_matrix(w), y, reduction="none"), (v,))
        return
    assert torch.autograd.gradcheck(lambda z: so3_geodesic_loss(z, y, rep, squared=True, reduction="none"), (x,))


def test_rotvec_mse_is_the_squared_euclidean_distance_and_blind_to_wrap_around():
    v = torch.tensor([[0.1, 0.2, 0.3]], dtype=F64)
    w = torch.tensor([[0.0, 0.4, 0.0]], dtype=F64)
    assert rotvec_mse_loss(v, w).item() == pytest.approx(0.01 + 0.04 + 0.09)
    assert rotvec_mse_loss(v, v).item() == 0.0
    # pi and -pi about one axis are the same rotation: the geodesic loss is 0, the MSE is (2 pi)^2.
    a = torch.tensor([[math.pi, 0.0, 0.0]], dtype=F64)
    assert so3_geodesic_loss(a, -a, g.ROTVEC).item() == pytest.approx(0.0, abs=1e-12)
    assert rotvec_mse_loss(a, -a).item() == pytest.approx(4 * math.pi**2)


def test_modules_match_functions():
    a, b = _pairs(6, 13)
    x, y = torch.as_tensor(a.as_rotvec()), torch.as_tensor(b.as_rotvec())
    torch.testing.assert_close(SO3GeodesicLoss(g.ROTVEC, squared=True)(x, y), so3_geodesic_loss(x, y, g.ROTVEC, squared=True))
    torch.testing.assert_close(RotvecMSELoss("sum")(x, y), rotvec_mse_loss(x, y, reduction="sum"))
    assert RotvecMSELoss.representation is g.ROTVEC
    assert "representation=rotvec" in repr(SO3GeodesicLoss(g.ROTVEC))


def test_bad_inputs():
    x = torch.zeros(4, 3)
    with pytest.raises(ValueError, match=r"pred, target: expected equal shapes \(\.\.\., 3\)"):
        so3_geodesic_loss(x, torch.zeros(1, 4, 3), g.ROTVEC)
    with pytest.raises(ValueError, match=r"pred: expected .*\(\.\.\., 3, 3\)"):
        so3_geodesic_loss(x, x)  # MATRIX is the default representation
    with pytest.raises(ValueError, match=r"\|q\| = 0"):
        so3_geodesic_loss(torch.zeros(2, 4), torch.tensor([[1.0, 0, 0, 0]] * 2), g.QUATERNION)
    with pytest.raises(ValueError, match="same dtype"):
        rotvec_mse_loss(x, x.double())
    with pytest.raises(ValueError, match="reduction"):
        SO3GeodesicLoss(reduction="median")


_rotvec = st.lists(st.floats(-4.0, 4.0), min_size=3, max_size=3)


@settings(max_examples=150, deadline=None)
@given(_rotvec, _rotvec, _rotvec)
def test_geodesic_loss_is_a_bi_invariant_metric(a, b, c):
    """Symmetry, the triangle inequality, and invariance under left and right multiplication."""
    A, B, C = (g.rotvec_to_matrix(torch.tensor([v], dtype=F64)) for v in (a, b, c))
    d = lambda X, Y: so3_geodesic_loss(X, Y).item()  # noqa: E731
    assert d(A, B) == pytest.approx(d(B, A), abs=1e-12)
    assert d(A, C) <= d(A, B) + d(B, C) + 1e-12
    assert d(C @ A, C @ B) == pytest.approx(d(A, B), abs=1e-9)
    assert d(A @ C, B @ C) == pytest.approx(d(A, B), abs=1e-9)
    assert 0.0 <= d(A, B) <= math.pi


@settings(max_examples=150, deadline=None)
@given(_rotvec, _rotvec)
def test_rotvec_mse_bounds_the_squared_geodesic_angle(a, b):
    """angle(exp(a)^T exp(b)) <= |a - b|: exp is 1-Lipschitz (the singular values of its
    Jacobian are 1 and sin(t/2)/(t/2) <= 1), so the MSE stage never reports less error
    than there is; near pi it reports far more (the wrap-around)."""
    va, vb = torch.tensor([a], dtype=F64), torch.tensor([b], dtype=F64)
    angle = so3_geodesic_loss(va, vb, g.ROTVEC).item()
    assert angle <= math.sqrt(rotvec_mse_loss(va, vb).item()) + 1e-9
