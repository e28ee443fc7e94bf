"""Learned homoscedastic weighting (Kendall & Cipolla 2017)."""

from __future__ import annotations

import math

import pytest
import torch

from posereg.losses import HomoscedasticWeighting, homoscedastic_weighted_sum


def test_formula_and_defaults():
    w = HomoscedasticWeighting()
    assert w.log_variances.tolist() == [0.0, -3.0] and w.num_tasks == 2
    losses = torch.tensor([2.0, 0.5])
    expected = 2.0 * math.exp(0.0) + 0.0 + 0.5 * math.exp(3.0) - 3.0
    assert w(losses).item() == pytest.approx(expected, rel=1e-6)
    per_sample = torch.tensor([[2.0, 0.5], [1.0, 1.0]])
    torch.testing.assert_close(w(per_sample), homoscedastic_weighted_sum(per_sample, w.log_variances).detach() * 1)


def test_any_number_of_tasks_and_reductions():
    s = torch.tensor([0.1, -0.2, 0.3])
    losses = torch.rand(5, 3, generator=torch.Generator().manual_seed(0))
    per = homoscedastic_weighted_sum(losses, s, reduction="none")
    torch.testing.assert_close(per, (losses * torch.exp(-s) + s).sum(-1))
    torch.testing.assert_close(homoscedastic_weighted_sum(losses, s, reduction="sum"), per.sum())


def test_sgd_converges_to_the_log_variances():
    """Residuals with known variances: s_i must converge to log(variance_i) within 10%."""
    gen = torch.Generator().manual_seed(1)
    variances = torch.tensor([0.01, 25.0])  # log: -4.61, 3.22
    weighting = HomoscedasticWeighting(init=(0.0, -3.0))
    optimiser = torch.optim.SGD(weighting.parameters(), lr=0.05)
    for _ in range(3000):
        residuals = torch.randn(256, 2, generator=gen) * variances.sqrt()
        loss = weighting((residuals * residuals).mean(0))  # L_i = mean squared residual
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    expected = variances.log()
    learned = weighting.log_variances.detach()
    assert torch.all((learned - expected).abs() <= 0.1 * expected.abs()), (learned, expected)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"losses: expected .*\(\.\.\., 2\)"):
        HomoscedasticWeighting()(torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"log_variances: expected .*\(T,\)"):
        homoscedastic_weighted_sum(torch.zeros(2), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="init"):
        HomoscedasticWeighting(init=())
    with pytest.raises(ValueError, match="init"):
        HomoscedasticWeighting(init=(0.0, float("inf")))
    with pytest.raises(ValueError, match="reduction"):
        HomoscedasticWeighting(reduction="max")
