"""Mattes mutual information: against a dense evaluation of the same Parzen formula, gradients, properties."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from posereg.losses import cubic_bspline, intensity_bins, parzen_mutual_information

F64 = torch.float64


def dense_mutual_information(moving: torch.Tensor, fixed_bin: torch.Tensor, bins: int, fixed_bins: int) -> float:
    """The same estimate with the cubic window evaluated at every bin (O(N B)) and a plain loop."""
    u = moving.clamp(0, 1) * (bins - 5) + 2
    joint = torch.zeros(fixed_bins, bins, dtype=F64)
    for value, label in zip(u.tolist(), fixed_bin.tolist(), strict=True):
        for b in range(bins):
            x = abs(value - b)
            joint[label, b] += (4 - 6 * x**2 + 3 * x**3) / 6 if x < 1 else ((2 - x) ** 3 / 6 if x < 2 else 0.0)
    joint /= len(u)
    pf, pm = joint.sum(1), joint.sum(0)
    return sum(float(joint[a, b]) * math.log(float(joint[a, b]) / float(pf[a] * pm[b]))
               for a in range(fixed_bins) for b in range(bins) if joint[a, b] > 0)  # fmt: skip


def test_cubic_bspline_is_a_partition_of_unity_with_unit_integral():
    x = torch.linspace(-3, 3, 6001, dtype=F64)
    assert abs(float(torch.trapezoid(cubic_bspline(x), x)) - 1.0) < 1e-6
    u = torch.rand(100, dtype=F64, generator=torch.Generator().manual_seed(0)) * 10
    shifts = torch.arange(-3, 4, dtype=F64)
    torch.testing.assert_close(cubic_bspline(u[:, None] - (torch.floor(u)[:, None] + shifts)).sum(1),
                               torch.ones(100, dtype=F64))  # fmt: skip
    assert float(cubic_bspline(torch.tensor(2.0))) == 0.0 and abs(float(cubic_bspline(torch.tensor(0.0))) - 2 / 3) < 1e-7


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 60), bins=st.integers(6, 20), fixed_bins=st.integers(1, 6), seed=st.integers(0, 2**31 - 1))
def test_matches_a_dense_evaluation(n, bins, fixed_bins, seed):
    gen = torch.Generator().manual_seed(seed)
    moving = torch.rand(n, dtype=F64, generator=gen) * 1.2 - 0.1  # some samples outside [0, 1] (clipped)
    labels = torch.randint(0, fixed_bins, (n,), generator=gen)
    value = float(parzen_mutual_information(moving, labels, bins, fixed_bins))
    assert value == pytest.approx(dense_mutual_information(moving, labels, bins, fixed_bins), abs=1e-10)
    assert value >= -1e-12


def test_gradient_matches_finite_differences():
    gen = torch.Generator().manual_seed(1)
    moving = (torch.rand(300, dtype=F64, generator=gen) * 0.9 + 0.05).requires_grad_()
    labels = intensity_bins(moving.detach() ** 2 + 0.1 * torch.rand(300, dtype=F64, generator=gen), 8)
    assert torch.autograd.gradcheck(lambda m: parzen_mutual_information(m, labels, 16, 8), (moving,))


def test_dependence_scores_high_independence_near_zero_and_labels_are_only_labels():
    gen = torch.Generator().manual_seed(2)
    fixed = torch.rand(20000, dtype=F64, generator=gen)
    labels = intensity_bins(fixed, 16)
    related = parzen_mutual_information(1 - fixed, labels, 32, 16)  # an inverted contrast
    unrelated = parzen_mutual_information(torch.rand(20000, dtype=F64, generator=gen), labels, 32, 16)
    assert float(unrelated) < 0.02 < 1.5 < float(related)
    relabelled = (labels * 5) % 16  # a permutation of the 16 labels: mutual information ignores names
    torch.testing.assert_close(parzen_mutual_information(1 - fixed, relabelled, 32, 16), related)


def test_float32_and_bad_inputs():
    labels = torch.tensor([0, 1, 1, 0])
    value = parzen_mutual_information(torch.tensor([0.1, 0.9, 0.8, 0.2]), labels, 8, 2)
    assert value.dtype == torch.float32 and float(value) > 0.3
    with pytest.raises(ValueError, match="two"):
        parzen_mutual_information(torch.rand(4, 1), labels, 8, 2)
    with pytest.raises(ValueError, match="at least 6"):
        parzen_mutual_information(torch.rand(4), labels, 5, 2)
    with pytest.raises(ValueError, match="integer labels"):
        parzen_mutual_information(torch.rand(4), labels.double(), 8, 2)
    with pytest.raises(ValueError, match="integer labels"):
        parzen_mutual_information(torch.rand(4), labels + 1, 8, 2)
    with pytest.raises(ValueError, match="bins"):
        intensity_bins(torch.rand(3), 0)
