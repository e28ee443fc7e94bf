"""PoseLoss: rotation and translation terms with fixed, learned or metric weights."""

from __future__ import annotations

import pytest
import torch

from posereg import geometry as g
from posereg.losses import (
    FixedWeighting,
    HomoscedasticWeighting,
    MetricWeighting,
    PoseLoss,
    QuaternionDistance,
    SO3GeodesicLoss,
    TranslationDistance,
    posenet_loss,
    se3_geodesic_loss,
    so3_geodesic_loss,
)

F64 = torch.float64


def _batch(seed: int, n: int = 8):
    gen = torch.Generator().manual_seed(seed)
    R = g.random_rotation(n, generator=gen, dtype=F64)
    return R, 3 * torch.randn(n, 3, generator=gen, dtype=F64)


def test_fixed_weighting_is_posenet_loss():
    (R1, t1), (R2, t2) = _batch(0), _batch(1)
    q1, q2 = g.matrix_to_quaternion(R1), g.matrix_to_quaternion(R2)
    loss = PoseLoss(FixedWeighting(250.0), QuaternionDistance(2), TranslationDistance(2))
    assert loss.representation is g.QUATERNION
    torch.testing.assert_close(loss(q1, t1, q2, t2), posenet_loss(t1, q1, t2, q2, beta=250.0))


def test_salehi_weighting_and_geodesic_term_in_any_representation():
    (R1, t1), (R2, t2) = _batch(2), _batch(3)
    loss = PoseLoss(FixedWeighting(1.0, translation_weight=0.1), SO3GeodesicLoss(g.SIXD, reduction="none"),
                    TranslationDistance(2, squared=True), reduction="none")  # fmt: skip
    x1, x2 = g.matrix_to_sixd(R1), g.matrix_to_sixd(R2)
    expected = so3_geodesic_loss(R1, R2, reduction="none") + 0.1 * ((t1 - t2) ** 2).sum(-1)
    torch.testing.assert_close(loss(x1, t1, x2, t2), expected)


def test_homoscedastic_weighting_learns_and_is_a_parameter():
    (R1, t1), (R2, t2) = _batch(4), _batch(5)
    loss = PoseLoss(HomoscedasticWeighting((0.0, -3.0), reduction="none"),
                    SO3GeodesicLoss(g.ROTVEC, squared=True, reduction="none"), TranslationDistance(1))  # fmt: skip
    names = [n for n, _ in loss.named_parameters()]
    assert names == ["weighting.log_variances"]
    v1, v2 = g.matrix_to_rotvec(R1), g.matrix_to_rotvec(R2)
    angle2 = so3_geodesic_loss(R1, R2, squared=True, reduction="none")
    l1 = (t1 - t2).abs().sum(-1)
    expected = (l1 * 1.0 + 0.0 + angle2 * torch.exp(torch.tensor(3.0, dtype=F64)) - 3.0).mean()
    torch.testing.assert_close(loss(v1, t1, v2, t2), expected)


def test_unsquared_metric_weighting_is_the_distance_with_a_finite_gradient_at_zero():
    (R1, t1), (R2, t2) = _batch(6), _batch(7)
    W = torch.diag(torch.tensor([2.0, 2.0, 2.0, 0.5, 0.5, 0.5], dtype=F64))
    v1, v2 = g.matrix_to_rotvec(R1), g.matrix_to_rotvec(R2)
    squared, distance = MetricWeighting(W), MetricWeighting(W, squared=False)
    torch.testing.assert_close(distance(v1, t1, v2, t2), squared(v1, t1, v2, t2).sqrt())
    v, t = v2.clone().requires_grad_(), t2.clone().requires_grad_()
    distance(v, t, v2, t2).sum().backward()  # d_W = 0: the subgradient 0, not NaN
    assert torch.equal(v.grad, torch.zeros_like(v)) and torch.equal(t.grad, torch.zeros_like(t))
    assert "squared=False" in repr(distance)


def test_metric_weighting_is_the_se3_loss_even_for_a_general_w():
    (R1, t1), (R2, t2) = _batch(6), _batch(7)
    A = torch.randn(6, 6, generator=torch.Generator().manual_seed(8), dtype=F64)
    W = A @ A.T + 6 * torch.eye(6, dtype=F64)
    v1, v2 = g.matrix_to_rotvec(R1), g.matrix_to_rotvec(R2)
    loss = PoseLoss(MetricWeighting(W))
    expected = se3_geodesic_loss(torch.cat((v1, t1), -1), torch.cat((v2, t2), -1), W)
    torch.testing.assert_close(loss(v1, t1, v2, t2), expected)
    W_iso = torch.diag(torch.tensor([2.0, 2.0, 2.0, 0.5, 0.5, 0.5], dtype=F64))
    on_matrices = PoseLoss(MetricWeighting(W_iso, g.MATRIX))
    torch.testing.assert_close(
        on_matrices(R1, t1, R2, t2),
        se3_geodesic_loss(torch.cat((v1, t1), -1), torch.cat((v2, t2), -1), W_iso),
    )
    assert list(dict(on_matrices.named_buffers())) == ["weighting.W"]


def test_gradients_reach_both_predictions():
    (R1, t1), (R2, t2) = _batch(9), _batch(10)
    q1 = g.matrix_to_quaternion(R1).requires_grad_(True)
    t1 = t1.clone().requires_grad_(True)
    loss = PoseLoss(HomoscedasticWeighting(), QuaternionDistance(), TranslationDistance())
    loss(q1, t1, g.matrix_to_quaternion(R2), t2).backward()
    assert torch.count_nonzero(q1.grad) > 0 and torch.count_nonzero(t1.grad) > 0


def test_bad_combinations():
    with pytest.raises(ValueError, match="pass None"):
        PoseLoss(MetricWeighting(torch.eye(6)), SO3GeodesicLoss(reduction="none"), TranslationDistance())
    with pytest.raises(ValueError, match="expected both"):
        PoseLoss(FixedWeighting(1.0), SO3GeodesicLoss(reduction="none"))
    with pytest.raises(ValueError, match="2 tasks"):
        PoseLoss(HomoscedasticWeighting((0.0, 0.0, 0.0)), QuaternionDistance(), TranslationDistance())
    with pytest.raises(ValueError, match="translation_weight"):
        FixedWeighting(1.0, translation_weight=-1.0)


def test_reductions_with_a_default_homoscedastic_module_and_shape_errors():
    (R1, t1), (R2, t2) = _batch(11, n=4), _batch(12, n=4)
    q1, q2 = g.matrix_to_quaternion(R1), g.matrix_to_quaternion(R2)
    per = PoseLoss(HomoscedasticWeighting(), QuaternionDistance(), TranslationDistance(), reduction="none")(q1, t1, q2, t2)
    assert per.shape == (4,)  # the module's own 'mean' reduction must not leak through
    total = PoseLoss(HomoscedasticWeighting(), QuaternionDistance(), TranslationDistance(), reduction="sum")(q1, t1, q2, t2)
    torch.testing.assert_close(total, per.sum())
    metric = PoseLoss(MetricWeighting(torch.eye(6, dtype=F64)))
    v1, v2 = g.matrix_to_rotvec(R1), g.matrix_to_rotvec(R2)
    with pytest.raises(ValueError, match=r"translation_pred, translation_target: expected equal shapes"):
        metric(v1, t1, v2, t2[:3].unsqueeze(1))
    with pytest.raises(ValueError, match=r"rotation_pred, rotation_target: expected equal shapes"):
        metric(v1, t1, v2[:1], t2)
    with pytest.raises(ValueError, match="same batch shape"):
        metric(v1[:2], t1[:2].flip(0).unsqueeze(0), v2[:2], t2[:2].unsqueeze(0))
    mean_terms = PoseLoss(FixedWeighting(1.0), SO3GeodesicLoss(g.ROTVEC), TranslationDistance())
    with pytest.raises(ValueError, match=r"per-sample losses of shape \(4,\) \(use reduction='none'\)"):
        mean_terms(v1, t1, v2, t2)
