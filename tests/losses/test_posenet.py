"""PoseNet's beta-weighted loss (Kendall & Cipolla 2017)."""

from __future__ import annotations

import math

import pytest
import torch

from posereg import geometry as g
from posereg.losses import PoseNetLoss, posenet_loss, quaternion_distance

F64 = torch.float64


def _batch(n: int, seed: int, dtype=F64):
    gen = torch.Generator().manual_seed(seed)
    q = g.matrix_to_quaternion(g.random_rotation(n, generator=gen, dtype=dtype))
    p = torch.randn(n, 3, generator=gen, dtype=dtype)
    return p, q


def test_hand_computed_value():
    p_hat = torch.tensor([[1.0, 2.0, 2.0]], dtype=F64)
    p = torch.zeros(1, 3, dtype=F64)
    q_hat = torch.tensor([[2.0, 0.0, 0.0, 0.0]], dtype=F64)  # normalised to (1, 0, 0, 0)
    q = torch.tensor([[0.6, 0.8, 0.0, 0.0]], dtype=F64)
    # |p - p_hat|_2 = 3; |q - q_n|_2 = sqrt(0.16 + 0.64); L1 versions 5 and 1.2.
    assert posenet_loss(p_hat, q_hat, p, q, beta=10.0).item() == pytest.approx(3 + 10 * math.sqrt(0.8))
    assert posenet_loss(p_hat, q_hat, p, q, beta=10.0, gamma=1).item() == pytest.approx(5 + 10 * 1.2)


def test_zero_at_equality_positive_otherwise_and_reductions():
    p, q = _batch(16, 0)
    assert posenet_loss(p, q, p, q, beta=500.0).item() == pytest.approx(0.0, abs=1e-12)
    p2, q2 = _batch(16, 1)
    per = posenet_loss(p2, q2, p, q, beta=500.0, reduction="none")
    assert per.shape == (16,) and bool((per > 0).all())
    torch.testing.assert_close(posenet_loss(p2, q2, p, q, beta=500.0, reduction="sum"), per.sum())
    torch.testing.assert_close(posenet_loss(p2, q2, p, q, beta=500.0), per.mean())


def test_sign_flips_change_nothing():
    p, q = _batch(32, 2)
    p2, q2 = _batch(32, 3)
    base = posenet_loss(p2, q2, p, q, beta=300.0, reduction="none")
    signs = torch.where(torch.rand(32, 1, generator=torch.Generator().manual_seed(4)) < 0.5, -1.0, 1.0)
    for qa, qb in ((-q2, q), (q2, -q), (signs * q2, q), (q2, signs * q)):
        torch.testing.assert_close(posenet_loss(p2, qa, p, qb, beta=300.0, reduction="none"), base)


def test_gradients_finite_at_equality_and_at_the_antipode(dtype):
    p, q = _batch(8, 5, dtype)
    for q_hat0 in (q, -q, 3.0 * q):
        p_hat = p.clone().requires_grad_(True)
        q_hat = q_hat0.clone().requires_grad_(True)
        loss = posenet_loss(p_hat, q_hat, p, q, beta=100.0)
        loss.backward()
        assert loss.item() == pytest.approx(0.0, abs=1e-5 if dtype == torch.float32 else 1e-12)
        assert torch.isfinite(p_hat.grad).all() and torch.isfinite(q_hat.grad).all()


def test_gradcheck_float64():
    p, q = _batch(6, 6)
    p_hat = (p + 0.3).requires_grad_(True)
    q_hat = (q + 0.2 * torch.randn(6, 4, generator=torch.Generator().manual_seed(7), dtype=F64)).requires_grad_(True)
    for gamma in (1, 2):
        assert torch.autograd.gradcheck(
            lambda a, b: posenet_loss(a, b, p, q, beta=7.0, gamma=gamma, reduction="none"), (p_hat, q_hat)
        )


def test_module_matches_function_and_reports_its_settings():
    p, q = _batch(4, 8)
    p2, q2 = _batch(4, 9)
    module = PoseNetLoss(beta=250.0, gamma=1, reduction="sum")
    torch.testing.assert_close(module(p2, q2, p, q), posenet_loss(p2, q2, p, q, beta=250.0, gamma=1, reduction="sum"))
    assert "beta=250.0" in repr(module)


def test_bad_inputs():
    p, q = _batch(4, 10)
    with pytest.raises(ValueError, match=r"\|q\| = 0"):
        posenet_loss(p, torch.zeros(4, 4, dtype=F64), p, q, beta=1.0)
    with pytest.raises(ValueError, match=r"position_pred, position_target: expected equal shapes \(\.\.\., 3\)"):
        posenet_loss(p[:3], q, p, q, beta=1.0)
    with pytest.raises(ValueError, match=r"quaternion_pred: expected .*\(\.\.\., 4\)"):
        posenet_loss(p, q[:, :3], p, q, beta=1.0)
    with pytest.raises(ValueError, match="beta"):
        posenet_loss(p, q, p, q, beta=-1.0)
    with pytest.raises(ValueError, match="gamma"):
        quaternion_distance(q, q, gamma=3)
    with pytest.raises(ValueError, match="reduction"):
        posenet_loss(p, q, p, q, beta=1.0, reduction="avg")
    with pytest.raises(ValueError, match="finite"):
        posenet_loss(p, q, p.clone().fill_(float("nan")), q, beta=1.0)


def test_targets_must_be_unit_quaternions():
    p, q = _batch(3, 11)
    with pytest.raises(ValueError, match=r"quaternion_target: expected unit quaternions"):
        posenet_loss(p, q, p, 2.0 * q, beta=1.0)
