"""Output heads: shapes, ranges, valid rotations, gradients, bad input."""

from __future__ import annotations

import math

import pytest
import torch

from posereg import geometry as g
from posereg.models import QuaternionHead, RotvecHead, SixDHead, SliceIndexHead, SVD9DHead, TranslationHead

ROTATION_HEADS = [RotvecHead, QuaternionHead, SixDHead, SVD9DHead]


def _features(*shape: int, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("head_cls", ROTATION_HEADS, ids=lambda c: c.__name__)
def test_rotation_heads_give_valid_rotations_for_any_batch_shape(head_cls):
    torch.manual_seed(0)
    head = head_cls(16)
    out = head(_features(2, 5, 16, scale=10.0))
    assert out.shape == (2, 5, *head.representation.trailing)
    R = head.to_matrix(out).double()
    assert R.shape == (2, 5, 3, 3)
    torch.testing.assert_close(R.mT @ R, torch.eye(3, dtype=torch.float64).expand_as(R), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(2, 5, dtype=torch.float64), atol=1e-5, rtol=0)


@pytest.mark.parametrize("head_cls", ROTATION_HEADS, ids=lambda c: c.__name__)
def test_gradients_flow_to_the_linear_layer(head_cls):
    torch.manual_seed(1)
    head = head_cls(8)
    target = g.random_rotation(4, generator=torch.Generator().manual_seed(2))
    loss = g.geodesic_distance(head.to_matrix(head(_features(4, 8))), target).mean()
    loss.backward()
    assert torch.isfinite(head.linear.weight.grad).all() and head.linear.weight.grad.abs().sum() > 0


def test_rotvec_head_is_pi_tanh():
    torch.manual_seed(3)
    head = RotvecHead(4)
    x = _features(100, 4, scale=100.0)
    out = head(x)
    torch.testing.assert_close(out, math.pi * torch.tanh(head.linear(x)))
    assert out.abs().max() <= torch.tensor(math.pi)  # tanh saturates at 1 in float32
    assert head(_features(100, 4, scale=0.01)).abs().max() < math.pi / 2


def test_quaternion_head_is_unit_on_the_upper_hemisphere_and_survives_zero_output():
    torch.manual_seed(4)
    head = QuaternionHead(4)
    q = head(_features(200, 4))
    torch.testing.assert_close(q.norm(dim=-1), torch.ones(200))
    assert bool((q[:, 0] >= 0).all())
    with torch.no_grad():
        head.linear.weight.zero_()
        head.linear.bias.zero_()
    assert torch.isfinite(head(_features(3, 4))).all()


def test_translation_and_slice_heads():
    torch.manual_seed(5)
    t = TranslationHead(6, scale=50.0)
    x = _features(7, 6)
    torch.testing.assert_close(t(x), 50.0 * t.linear(x))
    s = SliceIndexHead(6, scale=64.0)
    out = s(_features(3, 7, 6, scale=5.0))
    assert out.shape == (3, 7) and bool((out >= 0).all()) and bool((out > 0).any())


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"features: expected .*\(\.\.\., 16\), got shape \(4, 8\)"):
        RotvecHead(16)(torch.zeros(4, 8))
    with pytest.raises(ValueError, match=r"features: expected .*\(\.\.\., 3\)"):
        SliceIndexHead(3)(torch.zeros(2))
    with pytest.raises(ValueError, match="in_features"):
        SixDHead(0)
    with pytest.raises(ValueError, match="scale"):
        TranslationHead(4, scale=0.0)
