"""SE(3): exp/log charts against the matrix exponential, composition, the left-invariant metric."""

from __future__ import annotations

import math

import pytest
import torch

from posereg import geometry as g

F64 = torch.float64


def _twists(n: int, seed: int, max_angle: float = math.pi - 1e-3) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(n, 3, generator=gen, dtype=F64)
    w = w / w.norm(dim=-1, keepdim=True) * torch.rand(n, 1, generator=gen, dtype=F64) * max_angle
    return torch.cat([w, 3 * torch.randn(n, 3, generator=gen, dtype=F64)], -1)


def _expm(xi: torch.Tensor) -> torch.Tensor:
    X = torch.zeros(*xi.shape[:-1], 4, 4, dtype=xi.dtype)
    X[..., :3, :3] = g.hat(xi[..., :3])
    X[..., :3, 3] = xi[..., 3:]
    return torch.linalg.matrix_exp(X)


def test_se3_exp_matches_matrix_exponential(dtype):
    xi = torch.cat([_twists(200, 0), torch.tensor([[0, 0, 0, 1.0, 2, 3], [1e-9, 0, 0, 1, 0, 0], [0, 0, math.pi, 1, 1, 1]], dtype=F64)])
    R, t = g.se3_exp(xi.to(dtype))
    T = _expm(xi)
    tol = 1e-12 if dtype == F64 else 5e-6
    assert torch.allclose(R.double(), T[..., :3, :3], atol=tol)
    assert torch.allclose(t.double(), T[..., :3, 3], atol=tol * 10)


def test_se3_log_inverts_exp():
    xi = torch.cat([_twists(200, 1), torch.tensor([[1e-9, 0, 0, 1, 2, 3], [0.02, 0, 0, 1, 2, 3]], dtype=F64)])
    assert torch.allclose(g.se3_log(*g.se3_exp(xi)), xi, atol=1e-10)
    xi2 = _twists(50, 2)
    assert torch.allclose(g.so3r3_log(*g.so3r3_exp(xi2)), xi2, atol=1e-12)


def test_charts_differ_exactly_by_v():
    xi = _twists(10, 3)
    R1, t1 = g.se3_exp(xi)
    R2, t2 = g.so3r3_exp(xi)
    assert torch.allclose(R1, R2)
    assert not torch.allclose(t1, t2)


def test_gradcheck_and_finite_gradients():
    xi = _twists(4, 4).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: g.se3_exp(x)[1], (xi,))
    R, t = g.se3_exp(xi.detach())
    R, t = R.requires_grad_(), t.requires_grad_()
    assert torch.autograd.gradcheck(g.se3_log, (R, t))
    for angle in (0.0, 1e-8, math.pi - 1e-6, math.pi):
        x = torch.tensor([angle, 0, 0, 1, 2, 3], dtype=F64, requires_grad=True)
        Rr, tt = g.se3_exp(x)
        (Rr.sum() + tt.sum()).backward()
        assert torch.isfinite(x.grad).all()
        Rd, td = Rr.detach().requires_grad_(), tt.detach().requires_grad_()
        g.se3_log(Rd, td).sum().backward()
        assert torch.isfinite(Rd.grad).all() and torch.isfinite(td.grad).all()


def test_compose_inverse_points_against_homogeneous_matrices():
    (Ra, ta), (Rb, tb) = g.se3_exp(_twists(20, 5)), g.se3_exp(_twists(20, 6))
    Ta, Tb = g.to_homogeneous(Ra, ta), g.to_homogeneous(Rb, tb)
    R, t = g.compose(Ra, ta, Rb, tb)
    assert torch.allclose(g.to_homogeneous(R, t), Ta @ Tb)
    Ri, ti = g.inverse(Ra, ta)
    assert torch.allclose(g.to_homogeneous(Ri, ti), torch.linalg.inv(Ta))
    p = torch.randn(20, 7, 3, dtype=F64)
    ph = torch.cat([p, torch.ones(20, 7, 1, dtype=F64)], -1)
    assert torch.allclose(g.transform_points(Ra, ta, p), (ph @ Ta.mT)[..., :3])
    Rr, tr = g.from_homogeneous(Ta)
    assert torch.equal(Rr, Ra) and torch.equal(tr, ta)


def test_homogeneous_bad_input():
    with pytest.raises(ValueError, match=r"last row"):
        g.from_homogeneous(torch.ones(4, 4))
    with pytest.raises(ValueError, match=r"\(\.\.\., 4, 4\)"):
        g.from_homogeneous(torch.eye(3))
    with pytest.raises(ValueError, match=r"\(\.\.\., N, 3\)"):
        g.transform_points(torch.eye(3), torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="same dtype"):
        g.compose(torch.eye(3), torch.zeros(3, dtype=F64), torch.eye(3), torch.zeros(3))


def test_block_isotropic_distance_is_the_product_formula():
    (R1, t1), (R2, t2) = g.se3_exp(_twists(30, 7)), g.se3_exp(_twists(30, 8))
    W = torch.diag(torch.tensor([2.0, 2, 2, 0.5, 0.5, 0.5], dtype=F64))
    assert g.is_block_isotropic(W)
    d2 = g.squared_geodesic_distance(R1, t1, R2, t2, W)
    ref = 2.0 * g.geodesic_distance(R1, R2) ** 2 + 0.5 * ((t2 - t1) ** 2).sum(-1)
    assert torch.allclose(d2, ref, atol=1e-12)
    assert torch.allclose(d2, g.squared_geodesic_distance(R2, t2, R1, t1, W), atol=1e-12)  # symmetric
    W2 = torch.diag(torch.tensor([1.0, 1, 1, 5, 5, 5], dtype=F64))
    assert not torch.allclose(g.squared_geodesic_distance(R1, t1, R2, t2, W2), d2)
    assert not g.is_block_isotropic(torch.diag(torch.tensor([1.0, 2, 3, 1, 1, 1], dtype=F64)))


def test_riemannian_log_recovers_the_geodesic_velocity():
    """For the product metric the geodesic from g1 with body velocity (w, rho) reaches
    (R1 exp(w), t1 + R1 rho) at time 1."""
    R1, t1 = g.se3_exp(_twists(25, 9))
    xi = _twists(25, 10)
    R2 = R1 @ g.rotvec_to_matrix(xi[:, :3])
    t2 = t1 + (R1 @ xi[:, 3:].unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(g.riemannian_log(R1, t1, R2, t2), xi, atol=1e-10)
    W = torch.diag(torch.tensor([1.0, 1, 1, 3, 3, 3], dtype=F64))
    assert torch.allclose(g.metric_norm(W, xi) ** 2, g.squared_geodesic_distance(R1, t1, R2, t2, W), atol=1e-10)


def test_metric_validation():
    with pytest.raises(ValueError, match="symmetric"):
        g.metric_inner(torch.triu(torch.ones(6, 6)), torch.ones(6), torch.ones(6))
    with pytest.raises(ValueError, match="positive definite"):
        g.metric_inner(-torch.eye(6), torch.ones(6), torch.ones(6))
    with pytest.raises(ValueError, match=r"\(\.\.\., 6, 6\)"):
        g.metric_inner(torch.eye(5), torch.ones(6), torch.ones(6))
    xi = torch.zeros(6, requires_grad=True)
    g.metric_norm(torch.eye(6), xi).backward()
    assert torch.isfinite(xi.grad).all()


# --- Right Jacobians of the rotation-vector chart -------------------------------------------

@pytest.mark.parametrize("angle", [0.0, 1e-8, 0.04, 0.06, 1.0, 2.5, math.pi - 1e-6, math.pi])
def test_right_jacobian_maps_rotvec_steps_to_body_velocity(angle):
    """exp(v + h e_i) = exp(v) exp(h J_r(v) e_i) + O(h^2): central differences in float64."""
    axis = torch.tensor([0.3, -0.5, 0.8], dtype=torch.float64)
    v = axis / axis.norm() * angle
    R = g.rotvec_to_matrix(v)
    h = 1e-6
    columns = []
    for i in range(3):
        e = torch.zeros(3, dtype=torch.float64)
        e[i] = h
        plus = g.matrix_to_rotvec(R.mT @ g.rotvec_to_matrix(v + e))
        minus = g.matrix_to_rotvec(R.mT @ g.rotvec_to_matrix(v - e))
        columns.append((plus - minus) / (2 * h))
    numeric = torch.stack(columns, dim=-1)
    torch.testing.assert_close(g.so3_right_jacobian(v), numeric, atol=1e-8, rtol=0)


@pytest.mark.parametrize("angle", [0.0, 1e-8, 0.049, 0.051, 1.0, math.pi - 1e-6, math.pi])
def test_right_jacobian_inverse_is_the_inverse(angle, dtype):
    axis = torch.tensor([1.0, 2.0, -2.0], dtype=dtype) / 3.0
    v = axis * angle
    product = g.so3_right_jacobian(v) @ g.so3_right_jacobian_inverse(v)
    tol = 1e-6 if dtype == torch.float32 else 1e-13
    torch.testing.assert_close(product, torch.eye(3, dtype=dtype), atol=tol, rtol=0)


def test_right_jacobians_batch_gradcheck_and_bad_input():
    v = torch.tensor([[0.1, -0.2, 0.3], [1.0, 0.5, -2.0]], dtype=torch.float64, requires_grad=True)
    assert g.so3_right_jacobian(v.expand(4, 2, 3)).shape == (4, 2, 3, 3)
    assert torch.autograd.gradcheck(g.so3_right_jacobian, (v,))
    assert torch.autograd.gradcheck(g.so3_right_jacobian_inverse, (v,))
    zero = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    g.so3_right_jacobian_inverse(zero).sum().backward()
    assert torch.isfinite(zero.grad).all()
    with pytest.raises(ValueError, match=r"rotvec: expected .*\(\.\.\., 3\)"):
        g.so3_right_jacobian(torch.zeros(2, 4))


@pytest.mark.parametrize("theta", [1e-4, 0.01, 0.049, 0.0501, 0.3, 0.4999, 0.5001, 0.7, 1.0, 2.0, 3.0])
def test_series_coefficients_against_arbitrary_precision(theta):
    """B, C, D of the SE(3) V matrices and SO(3) Jacobians, on both sides of the Taylor switch."""
    import mpmath

    from posereg.geometry.se3 import _coefficient_d, _coefficients_bc

    mpmath.mp.dps = 50
    t = mpmath.mpf(theta)
    h = t / 2
    exact = {
        "b": (1 - mpmath.cos(t)) / t**2,
        "c": (t - mpmath.sin(t)) / t**3,
        "d": (1 - h * mpmath.cot(h)) / t**2,
    }
    theta2 = torch.tensor(theta * theta, dtype=F64)
    b, c = _coefficients_bc(theta2)
    d = _coefficient_d(theta2)
    for name, value in (("b", b), ("c", c), ("d", d)):
        assert float(value) == pytest.approx(float(exact[name]), rel=2e-14, abs=0.0), name
