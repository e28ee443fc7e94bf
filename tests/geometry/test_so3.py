"""SO(3): exp/log/hat/vee, geodesic distance, projection, means - against scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from posereg import geometry as g
from tests.geometry.conftest import TOL, adversarial_rotvecs, random_rotvecs


def _t(x: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    return torch.as_tensor(x, dtype=dtype)


class TestExpLog:
    def test_exp_matches_scipy_random_and_adversarial(self, dtype):
        rv = np.concatenate([random_rotvecs(500, 0, 3 * math.pi), adversarial_rotvecs()])
        ref = Rotation.from_rotvec(rv).as_matrix()
        R = g.rotvec_to_matrix(_t(rv, dtype))
        assert R.dtype == dtype and R.shape == (len(rv), 3, 3)
        assert np.abs(R.double().numpy() - ref).max() <= 4 * TOL[dtype]

    def test_log_matches_scipy_away_from_pi(self, dtype):
        rv = random_rotvecs(500, 1, math.pi - 1e-3)
        R = _t(Rotation.from_rotvec(rv).as_matrix(), dtype)
        out = g.matrix_to_rotvec(R).double().numpy()
        ref = Rotation.from_matrix(Rotation.from_rotvec(rv).as_matrix()).as_rotvec()
        assert np.abs(out - ref).max() <= TOL[dtype] * (10 if dtype == torch.float32 else 1)

    def test_log_at_adversarial_angles(self, dtype):
        """At pi the axis sign is arbitrary: compare angles, then axis up to sign."""
        rv = adversarial_rotvecs()
        R_np = Rotation.from_rotvec(rv).as_matrix()
        out = g.matrix_to_rotvec(_t(R_np, torch.float64) if dtype == torch.float64 else _t(R_np, dtype))
        out = out.double().numpy()
        ref = Rotation.from_matrix(R_np).as_rotvec()
        angle, ref_angle = np.linalg.norm(out, axis=1), np.linalg.norm(ref, axis=1)
        assert np.abs(angle - ref_angle).max() <= TOL[dtype]
        flip = np.where((out * ref).sum(1) < 0, -1.0, 1.0)[:, None]
        assert np.abs(out * flip - ref).max() <= TOL[dtype]

    def test_round_trips(self, dtype):
        rv = random_rotvecs(300, 2, math.pi - 1e-2)
        v = _t(rv, dtype)
        assert torch.allclose(g.matrix_to_rotvec(g.rotvec_to_matrix(v)), v, atol=10 * TOL[dtype], rtol=0)
        R = g.random_rotation(300, generator=torch.Generator().manual_seed(0), dtype=dtype)
        assert torch.allclose(g.rotvec_to_matrix(g.matrix_to_rotvec(R)), R, atol=10 * TOL[dtype], rtol=0)

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.floats(-1e3, 1e3), min_size=3, max_size=3))
    def test_exp_is_a_rotation(self, v):
        R = g.rotvec_to_matrix(torch.tensor(v, dtype=torch.float64))
        assert torch.allclose(R @ R.mT, torch.eye(3, dtype=torch.float64), atol=1e-12)
        assert abs(float(torch.linalg.det(R)) - 1) < 1e-12

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(st.floats(-1, 1), min_size=3, max_size=3).filter(lambda a: sum(x * x for x in a) > 1e-4),
        st.floats(0, math.pi - 1e-6),
    )
    def test_log_inverts_exp_on_principal_range(self, axis, angle):
        a = torch.tensor(axis, dtype=torch.float64)
        v = a / a.norm() * angle
        assert torch.allclose(g.matrix_to_rotvec(g.rotvec_to_matrix(v)), v, atol=1e-9, rtol=0)

    def test_hat_vee(self):
        v = torch.randn(7, 3, dtype=torch.float64)
        w = torch.randn(7, 3, dtype=torch.float64)
        S = g.hat(v)
        assert torch.allclose(S, -S.mT)
        assert torch.allclose((S @ w.unsqueeze(-1)).squeeze(-1), torch.linalg.cross(v, w, dim=-1))
        assert torch.equal(g.vee(S), v)

    @pytest.mark.parametrize("shape", [(), (5,), (2, 3), (0,)])
    def test_batch_shapes(self, shape, dtype):
        v = torch.randn(*shape, 3, dtype=dtype)
        R = g.rotvec_to_matrix(v)
        assert R.shape == (*shape, 3, 3)
        assert g.matrix_to_rotvec(R).shape == (*shape, 3)
        assert g.geodesic_distance(R, R).shape == shape

    def test_gradcheck_away_from_cut_locus(self):
        v = torch.tensor(random_rotvecs(6, 3, 2.5), dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(g.rotvec_to_matrix, (v,))
        R = g.rotvec_to_matrix(v.detach()).requires_grad_()
        assert torch.autograd.gradcheck(g.matrix_to_rotvec, (R,))
        small = torch.tensor([[1e-9, -2e-9, 3e-9], [0.0, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(g.rotvec_to_matrix, (small,))

    @pytest.mark.parametrize("angle", [0.0, 1e-8, math.pi - 1e-6, math.pi])
    def test_gradients_finite_at_adversarial_angles(self, angle, dtype):
        axis = torch.tensor([1.0, -2.0, 3.0], dtype=dtype)
        v = (axis / axis.norm() * angle).requires_grad_()
        R = g.rotvec_to_matrix(v)
        (gv,) = torch.autograd.grad((R * torch.arange(9, dtype=dtype).view(3, 3)).sum(), v)
        assert torch.isfinite(gv).all()
        Rl = R.detach().requires_grad_()
        (gR,) = torch.autograd.grad(g.matrix_to_rotvec(Rl).sum(), Rl)
        assert torch.isfinite(gR).all()
        Rd = R.detach().requires_grad_()
        (gd,) = torch.autograd.grad(g.geodesic_distance(torch.eye(3, dtype=dtype), Rd), Rd)
        assert torch.isfinite(gd).all()

    def test_exp_gradient_at_zero_is_the_generators(self):
        """d exp(v)/dv at 0 is [e_i]x: the Lie algebra generators."""
        v = torch.zeros(3, dtype=torch.float64, requires_grad=True)
        J = torch.autograd.functional.jacobian(g.rotvec_to_matrix, v)
        for i in range(3):
            e = torch.zeros(3, dtype=torch.float64)
            e[i] = 1
            assert torch.allclose(J[..., i], g.hat(e))


class TestGeodesicDistance:
    def test_matches_scipy(self, dtype):
        gen = torch.Generator().manual_seed(4)
        R1 = g.random_rotation(400, generator=gen, dtype=torch.float64)
        R2 = g.random_rotation(400, generator=gen, dtype=torch.float64)
        ref = (Rotation.from_matrix(R1.numpy()).inv() * Rotation.from_matrix(R2.numpy())).magnitude()
        d = g.geodesic_distance(R1.to(dtype), R2.to(dtype)).double().numpy()
        assert np.abs(d - ref).max() <= 4 * TOL[dtype]

    def test_adversarial_angles(self, dtype):
        rv = adversarial_rotvecs()
        base = Rotation.from_rotvec(random_rotvecs(len(rv), 5))
        R1 = base.as_matrix()
        R2 = (base * Rotation.from_rotvec(rv)).as_matrix()
        ref = np.linalg.norm(rv, axis=1)
        d = g.geodesic_distance(_t(R1, dtype), _t(R2, dtype)).double().numpy()
        # float32 inputs carry rounding of ~6e-8 per entry; the angle of the rounded pair is
        # only defined to that precision.
        assert np.abs(d - ref).max() <= (TOL[dtype] if dtype == torch.float64 else 1e-6)
        d_id = g.geodesic_distance(torch.eye(3, dtype=dtype), _t(Rotation.from_rotvec(rv).as_matrix(), dtype))
        assert np.abs(d_id.double().numpy() - ref).max() <= TOL[dtype]

    def test_symmetric_and_in_range(self):
        gen = torch.Generator().manual_seed(6)
        R1, R2 = g.random_rotation((2, 50), generator=gen, dtype=torch.float64)
        d12, d21 = g.geodesic_distance(R1, R2), g.geodesic_distance(R2, R1)
        assert torch.allclose(d12, d21, atol=1e-14)
        assert bool((d12 >= 0).all() and (d12 <= math.pi).all())
        # cross(a, a) may round to ~1e-17 instead of 0 where the compiler contracts to FMA
        assert g.geodesic_distance(R1, R1).abs().max() < 1e-15

    def test_custom_backward_equals_autograd_of_the_formula(self):
        """The hand-written backward against autograd through plain torch ops (off-manifold too,
        which needs ``check_rotation=False``)."""
        gen = torch.Generator().manual_seed(7)
        R1 = (g.random_rotation(20, generator=gen, dtype=torch.float64) + 0.1 * torch.randn(20, 3, 3, generator=gen, dtype=torch.float64)).requires_grad_()
        R2 = g.random_rotation(20, generator=gen, dtype=torch.float64).requires_grad_()

        def reference(A, B):
            M = A.mT @ B
            u = torch.stack((M[..., 2, 1] - M[..., 1, 2], M[..., 0, 2] - M[..., 2, 0], M[..., 1, 0] - M[..., 0, 1]), -1)
            return torch.atan2(u.norm(dim=-1), M.diagonal(dim1=-2, dim2=-1).sum(-1) - 1)

        w = torch.randn(20, generator=gen, dtype=torch.float64)
        def distance(A, B):
            return g.geodesic_distance(A, B, check_rotation=False)

        ga = torch.autograd.grad((distance(R1, R2) * w).sum(), (R1, R2))
        gb = torch.autograd.grad((reference(R1, R2) * w).sum(), (R1, R2))
        for a, b in zip(ga, gb, strict=True):
            assert torch.allclose(a, b, atol=1e-12)
        assert torch.autograd.gradcheck(distance, (R1, R2))

    def test_broadcasting_and_gradient_shapes(self):
        gen = torch.Generator().manual_seed(8)
        R1 = g.random_rotation((4, 1), generator=gen, dtype=torch.float64).requires_grad_()
        R2 = g.random_rotation((1, 5), generator=gen, dtype=torch.float64).requires_grad_()
        d = g.geodesic_distance(R1, R2)
        assert d.shape == (4, 5)
        d.sum().backward()
        assert R1.grad.shape == R1.shape and R2.grad.shape == R2.shape
        R1e = R1.detach().expand(4, 5, 3, 3).clone().requires_grad_()
        g.geodesic_distance(R1e, R2.detach().expand(4, 5, 3, 3)).sum().backward()
        assert torch.allclose(R1.grad, R1e.grad.sum(1, keepdim=True), atol=1e-12)

    def test_gradient_is_the_riemannian_direction(self):
        """Moving R2 along its gradient's tangent projection decreases the distance at unit rate."""
        R1 = torch.eye(3, dtype=torch.float64)
        v = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64)
        R2 = g.rotvec_to_matrix(v).requires_grad_()
        (G,) = torch.autograd.grad(g.geodesic_distance(R1, R2), R2)
        # d/de d(R2 exp(e [w]x)) = <G, R2 [w]x>_F = vee(A - A^T) . w with A = R2^T G
        omega = g.vee(R2.detach().mT @ G - G.mT @ R2.detach())
        assert torch.allclose(omega, v / v.norm(), atol=1e-12)


class TestProjectionAndMeans:
    def test_projection_matches_numpy_svd(self):
        gen = torch.Generator().manual_seed(9)
        M = torch.randn(50, 3, 3, generator=gen, dtype=torch.float64)
        U, _, Vt = np.linalg.svd(M.numpy())
        d = np.sign(np.linalg.det(U @ Vt))
        ref = U @ (np.eye(3) * np.stack([np.ones_like(d), np.ones_like(d), d], -1)[:, None, :]).swapaxes(-1, -2) @ Vt
        ref = np.einsum("nij,nj,njk->nik", U, np.stack([np.ones_like(d), np.ones_like(d), d], -1), Vt)
        R = g.project_to_so3(M)
        assert np.abs(R.numpy() - ref).max() < 1e-12
        assert torch.allclose(torch.linalg.det(R), torch.ones(50, dtype=torch.float64))

    def test_projection_gradient_finite_with_repeated_singular_values(self):
        for M in (torch.eye(3), torch.diag(torch.tensor([2.0, 1.0, 1.0])), -torch.eye(3)):
            M = M.double().requires_grad_()
            g.project_to_so3(M).mul(torch.arange(9.0).view(3, 3).double()).sum().backward()
            assert torch.isfinite(M.grad).all()
        M = torch.randn(4, 3, 3, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(g.project_to_so3, (M,))

    def test_chordal_mean_against_direct_computation(self):
        gen = torch.Generator().manual_seed(10)
        R = g.random_rotation((3, 10), generator=gen, dtype=torch.float64)
        w = torch.rand(3, 10, generator=gen, dtype=torch.float64)
        mean = g.chordal_mean(R, w)
        ref = g.project_to_so3((w[..., None, None] * R).sum(1) / w.sum(1)[:, None, None])
        assert torch.allclose(mean, ref)
        assert torch.allclose(g.chordal_mean(R), g.project_to_so3(R.mean(1)))

    def test_karcher_mean_of_symmetric_perturbations_is_the_centre(self):
        gen = torch.Generator().manual_seed(11)
        centre = g.random_rotation((), generator=gen, dtype=torch.float64)
        v = 0.4 * torch.randn(8, 3, generator=gen, dtype=torch.float64)
        R = centre @ g.rotvec_to_matrix(torch.cat([v, -v]))
        mean = g.karcher_mean(R)
        assert float(g.geodesic_distance(mean, centre)) < 1e-10

    def test_karcher_mean_satisfies_first_order_condition(self):
        gen = torch.Generator().manual_seed(12)
        centre = g.random_rotation((), generator=gen, dtype=torch.float64)
        R = centre @ g.rotvec_to_matrix(0.5 * torch.randn(12, 3, generator=gen, dtype=torch.float64))
        mean = g.karcher_mean(R)
        residual = g.matrix_to_rotvec(mean.mT @ R).mean(0)
        assert float(residual.norm()) < 1e-10
        chordal = g.chordal_mean(R)
        cost = lambda m: (g.geodesic_distance(m, R) ** 2).sum()  # noqa: E731
        assert float(cost(mean)) <= float(cost(chordal)) + 1e-12

    def test_mean_dim_must_be_a_batch_dim(self):
        with pytest.raises(ValueError, match="batch dimension"):
            g.chordal_mean(torch.eye(3).expand(4, 3, 3), dim=-1)


class TestBadInput:
    @pytest.mark.parametrize(
        "fn, x, expected",
        [
            (g.rotvec_to_matrix, torch.zeros(4, 2), r"\(\.\.\., 3\)"),
            (g.matrix_to_rotvec, torch.zeros(3, 4), r"\(\.\.\., 3, 3\)"),
            (g.matrix_to_rotvec, torch.zeros(2, 4, 3), r"\(\.\.\., 3, 3\)"),
            (g.hat, torch.zeros(4), r"\(\.\.\., 3\)"),
            (g.vee, torch.zeros(3), r"\(\.\.\., 3, 3\)"),
            (g.project_to_so3, torch.zeros(2, 2), r"\(\.\.\., 3, 3\)"),
        ],
    )
    def test_wrong_shape(self, fn, x, expected):
        with pytest.raises(ValueError, match=expected):
            fn(x)

    @pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
    def test_non_finite(self, bad):
        v = torch.zeros(5, 3)
        v[3, 1] = bad
        with pytest.raises(ValueError, match=r"rotvec: .*\(\.\.\., 3\).*NaN or inf"):
            g.rotvec_to_matrix(v)
        R = torch.eye(3).repeat(5, 1, 1)
        R[2, 0, 1] = bad
        with pytest.raises(ValueError, match=r"R: .*\(\.\.\., 3, 3\)"):
            g.matrix_to_rotvec(R)
        with pytest.raises(ValueError, match=r"R2: .*\(\.\.\., 3, 3\)"):
            g.geodesic_distance(torch.eye(3), R)

    def test_huge_finite_values_are_not_mistaken_for_inf(self):
        from posereg.geometry._checks import check_tensor

        v = torch.full((4, 3), 3e38)  # the cheap sum check overflows; the entries are finite
        assert check_tensor(v, (3,), "v") is v
        v[1, 1] = float("nan")
        with pytest.raises(ValueError, match="NaN or inf"):
            check_tensor(v, (3,), "v")

    def test_non_tensor_and_integer_inputs(self):
        with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
            g.rotvec_to_matrix([0.0, 0.0, 1.0])  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="dtype"):
            g.rotvec_to_matrix(torch.zeros(3, dtype=torch.int64))
