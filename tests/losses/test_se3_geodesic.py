"""Hou et al.'s SE(3) geodesic loss, its closed-form and tangent gradients, and the metric weights."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.spatial.transform import Rotation

from posereg import geometry as g
from posereg.losses import (
    SE3GeodesicLoss,
    chart_metric,
    estimate_metric_weights,
    pose_spread,
    se3_geodesic_gradient,
    se3_geodesic_loss,
    se3_geodesic_tangent_gradient,
)

F64 = torch.float64
W_ISO = torch.diag(torch.tensor([3.0, 3.0, 3.0, 0.5, 0.5, 0.5], dtype=F64))


def _poses(n: int, seed: int, max_angle: float = math.pi - 1e-3) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(n, 3, generator=gen, dtype=F64)
    w = w / w.norm(dim=-1, keepdim=True) * torch.rand(n, 1, generator=gen, dtype=F64) * max_angle
    return torch.cat((w, 2 * torch.randn(n, 3, generator=gen, dtype=F64)), -1)


def test_block_isotropic_value_is_the_product_formula_and_matches_scipy():
    pred, target = _poses(100, 0), _poses(100, 1)
    rel = Rotation.from_rotvec(pred[:, :3].numpy()).inv() * Rotation.from_rotvec(target[:, :3].numpy())
    expected = 3.0 * torch.as_tensor(rel.magnitude()) ** 2 + 0.5 * ((pred[:, 3:] - target[:, 3:]) ** 2).sum(-1)
    torch.testing.assert_close(se3_geodesic_loss(pred, target, W_ISO, reduction="none"), expected, rtol=0, atol=1e-12)
    assert se3_geodesic_loss(pred, pred, W_ISO).item() == pytest.approx(0.0, abs=1e-20)
    assert bool((se3_geodesic_loss(pred, target, W_ISO, reduction="none") > 0).all())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_autograd_equals_the_authors_closed_form(seed):
    """d(d^2)/d pred = -2 G(y_hat) Log_{y_hat}(y), G = J^-T W J^-1, for block-isotropic W."""
    pred = _poses(64, 10 + seed).requires_grad_(True)
    target = _poses(64, 20 + seed)
    W = torch.diag(torch.tensor([1.0 + seed] * 3 + [0.2] * 3, dtype=F64))
    se3_geodesic_loss(pred, target, W, reduction="sum").backward()
    torch.testing.assert_close(pred.grad, se3_geodesic_gradient(pred.detach(), target, W), rtol=0, atol=1e-12)


def test_w_changes_both_the_value_and_the_gradient():
    pred, target = _poses(8, 3), _poses(8, 4)
    results = []
    for W in (torch.eye(6, dtype=F64), W_ISO):
        x = pred.clone().requires_grad_(True)
        value = se3_geodesic_loss(x, target, W)
        value.backward()
        results.append((value.detach(), x.grad))
    (v1, g1), (v2, g2) = results
    assert not torch.allclose(v1, v2) and not torch.allclose(g1, g2)
    # Scaling only the translation block scales only the translation term.
    W = torch.diag(torch.tensor([1.0, 1.0, 1.0, 4.0, 4.0, 4.0], dtype=F64))
    rot = se3_geodesic_loss(pred, target, torch.diag(torch.tensor([1.0] * 3 + [1e-300] * 3, dtype=F64)))
    trans = ((pred[:, 3:] - target[:, 3:]) ** 2).sum(-1).mean()
    torch.testing.assert_close(se3_geodesic_loss(pred, target, W), rot + 4 * trans)


@pytest.mark.parametrize("curve", ["split", "se3"])
def test_tangent_gradient_matches_finite_differences_along_exp_curves(curve):
    """d/ds d^2(y_hat exp(s u), y) at s = 0 equals <grad, u>_W (central differences)."""
    pred, target = _poses(16, 5, max_angle=2.5), _poses(16, 6, max_angle=2.5)
    R_hat, t_hat = g.so3r3_exp(pred)
    R, t = g.so3r3_exp(target)
    grad = se3_geodesic_tangent_gradient(R_hat, t_hat, R, t)
    u = torch.randn(16, 6, generator=torch.Generator().manual_seed(7), dtype=F64)
    exp = g.so3r3_exp if curve == "split" else g.se3_exp

    def d2(s: float) -> torch.Tensor:
        dR, dt = exp(s * u)
        R_s, t_s = g.compose(R_hat, t_hat, dR, dt)
        return g.squared_geodesic_distance(R_s, t_s, R, t, W_ISO)

    h = 1e-6
    numeric = (d2(h) - d2(-h)) / (2 * h)
    torch.testing.assert_close(g.metric_inner(W_ISO, grad, u), numeric, rtol=1e-6, atol=1e-6)


def test_tangent_gradient_descends_by_retraction():
    R_hat, t_hat = g.so3r3_exp(_poses(4, 8, max_angle=2.0))
    R, t = g.so3r3_exp(_poses(4, 9, max_angle=2.0))
    before = g.squared_geodesic_distance(R_hat, t_hat, R, t, W_ISO)
    for _ in range(100):
        step = -0.1 * se3_geodesic_tangent_gradient(R_hat, t_hat, R, t)
        R_hat, t_hat = g.compose(R_hat, t_hat, *g.so3r3_exp(step))
    after = g.squared_geodesic_distance(R_hat, t_hat, R, t, W_ISO)
    assert bool((after < 1e-12 * before).all())


def test_gradients_finite_at_zero_and_pi(dtype):
    target = _poses(3, 10).to(dtype)
    for angle in (0.0, 1e-8, math.pi - 1e-6, math.pi):
        rel = torch.tensor([0.0, 0.0, angle], dtype=dtype)
        R_hat = g.rotvec_to_matrix(target[:, :3]) @ g.rotvec_to_matrix(rel)
        pred = torch.cat((g.matrix_to_rotvec(R_hat), target[:, 3:]), -1).requires_grad_(True)
        loss = se3_geodesic_loss(pred, target, W_ISO.to(dtype))
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(pred.grad).all()
        assert torch.isfinite(se3_geodesic_gradient(pred.detach(), target, W_ISO.to(dtype))).all()


def test_gradcheck_float64_with_a_general_metric():
    A = torch.randn(6, 6, generator=torch.Generator().manual_seed(11), dtype=F64)
    W = A @ A.T + 6 * torch.eye(6, dtype=F64)
    pred = _poses(4, 12, max_angle=2.5).requires_grad_(True)
    target = _poses(4, 13, max_angle=2.5)
    assert torch.autograd.gradcheck(lambda x: se3_geodesic_loss(x, target, W, reduction="none"), (pred,))


def test_chart_metric_is_spd_and_equals_w_at_the_identity_rotation():
    pred = _poses(5, 14)
    G = chart_metric(pred, W_ISO)
    assert torch.allclose(G, G.mT) and bool((torch.linalg.eigvalsh(G) > 0).all())
    at_identity = torch.cat((torch.zeros(5, 3, dtype=F64), pred[:, 3:]), -1)
    torch.testing.assert_close(chart_metric(at_identity, W_ISO), W_ISO.expand(5, 6, 6))


def test_estimate_metric_weights_is_the_normalised_inverse_variance():
    gen = torch.Generator().manual_seed(15)
    std = torch.tensor([0.05, 0.05, 0.05, 2.0, 2.0, 2.0], dtype=F64)  # radians, metres
    residuals = torch.randn(20000, 6, generator=gen, dtype=F64) * std
    W = estimate_metric_weights(residuals)
    w = torch.diagonal(W)
    assert torch.allclose(W, torch.diag(w)) and w.norm().item() == pytest.approx(1.0)
    assert (w[0] / w[3]).item() == pytest.approx((2.0 / 0.05) ** 2, rel=0.05)
    assert torch.allclose(w[:3], w[0]) and torch.allclose(w[3:], w[3])
    # Authors' per-component rule: w = diag(inv(cov)), unit length.
    w_full = torch.diagonal(estimate_metric_weights(residuals, isotropic_blocks=False))
    expected = torch.diagonal(torch.linalg.inv(torch.cov(residuals.T)))
    torch.testing.assert_close(w_full, expected / expected.norm())


def test_pose_spread_feeds_the_weights_from_training_poses():
    gen = torch.Generator().manual_seed(16)
    R = g.rotvec_to_matrix(0.3 * torch.randn(500, 3, generator=gen, dtype=F64))
    t = torch.tensor([10.0, -5.0, 2.0], dtype=F64) + 20.0 * torch.randn(500, 3, generator=gen, dtype=F64)
    spread = pose_spread(R, t)
    assert spread.shape == (500, 6)
    torch.testing.assert_close(spread[:, :3].mean(0), torch.zeros(3, dtype=F64), atol=1e-8, rtol=0)
    w = torch.diagonal(estimate_metric_weights(spread))
    assert (w[0] / w[3]).item() == pytest.approx((20.0 / 0.3) ** 2, rel=0.15)


def test_module_and_bad_inputs():
    pred, target = _poses(4, 17), _poses(4, 18)
    module = SE3GeodesicLoss(W_ISO, reduction="sum")
    torch.testing.assert_close(module(pred, target), se3_geodesic_loss(pred, target, W_ISO, reduction="sum"))
    assert "W" in dict(module.named_buffers())
    with pytest.raises(ValueError, match="positive definite"):
        se3_geodesic_loss(pred, target, -W_ISO)
    with pytest.raises(ValueError, match=r"W: expected .*\(\.\.\., 6, 6\)"):
        se3_geodesic_loss(pred, target, torch.eye(3, dtype=F64))
    with pytest.raises(ValueError, match=r"pred, target: expected equal shapes \(\.\.\., 6\)"):
        se3_geodesic_loss(pred[:2], target, W_ISO)
    with pytest.raises(ValueError, match=r"N >= 7"):
        estimate_metric_weights(torch.randn(5, 6))
    flat = torch.randn(50, 6, dtype=F64)
    flat[:, 4] = 1.0
    with pytest.raises(ValueError, match="singular"):
        estimate_metric_weights(flat)
    with pytest.raises(ValueError, match=r"R, t: expected shapes \(N, 3, 3\) and \(N, 3\)"):
        pose_spread(torch.eye(3, dtype=F64).expand(4, 3, 3), torch.zeros(5, 3, dtype=F64))
