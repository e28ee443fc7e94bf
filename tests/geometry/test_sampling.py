"""Random rotations: Haar distribution (KS test), determinism, no global RNG use."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from posereg import geometry as g


def _haar_angle_cdf(t: np.ndarray) -> np.ndarray:
    # density (1 - cos t)/pi on [0, pi]
    return (t - np.sin(t)) / math.pi


def test_haar_angle_distribution_ks():
    R = g.random_rotation(20000, generator=torch.Generator().manual_seed(1234), dtype=torch.float64)
    angles = g.geodesic_distance(torch.eye(3, dtype=torch.float64), R).numpy()
    result = stats.kstest(angles, _haar_angle_cdf)
    assert result.pvalue > 0.01, result
    # and a distribution that is not Haar fails the same test (the test can fail)
    euler = g.random_euler_rotation(20000, [-math.pi] * 3, [math.pi] * 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    bad = g.geodesic_distance(torch.eye(3, dtype=torch.float64), euler).numpy()
    assert stats.kstest(bad, _haar_angle_cdf).pvalue < 1e-6


def test_haar_axis_is_uniform_and_rotations_valid():
    R = g.random_rotation((100, 50), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert R.shape == (100, 50, 3, 3)
    assert torch.allclose(R @ R.mT, torch.eye(3, dtype=torch.float64).expand_as(R), atol=1e-12)
    assert torch.allclose(torch.linalg.det(R), torch.ones(100, 50, dtype=torch.float64))
    # Haar is invariant under inversion: E[R] = 0 for every entry
    assert R.mean((0, 1)).abs().max() < 0.02


def test_generator_determinism_and_no_global_rng():
    state = torch.random.get_rng_state()
    a = g.random_rotation(10, generator=torch.Generator().manual_seed(5))
    b = g.random_rotation(10, generator=torch.Generator().manual_seed(5))
    c = g.random_rotation_with_angle(10, 0.1, 0.2, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert c.shape == (10, 3, 3)


def test_angle_range_sampler():
    R = g.random_rotation_with_angle(1000, 0.5, 0.7, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    angles = g.geodesic_distance(torch.eye(3, dtype=torch.float64), R)
    assert bool((angles >= 0.5 - 1e-12).all() and (angles <= 0.7 + 1e-12).all())
    assert stats.kstest(angles.numpy(), stats.uniform(0.5, 0.2).cdf).pvalue > 0.01
    with pytest.raises(ValueError, match="angle range"):
        g.random_rotation_with_angle(3, 1.0, 4.0)


def test_euler_sampler_respects_ranges():
    lo, hi = [-math.pi / 2, -math.pi / 2, -math.pi], [math.pi / 2, math.pi / 2, math.pi]
    R = g.random_euler_rotation(2000, [-0.3, -0.2, -1.0], [0.3, 0.2, 1.0], "xyz", generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    e = g.matrix_to_euler(R, "xyz")
    assert bool((e[:, 0].abs() <= 0.3 + 1e-9).all() and (e[:, 1].abs() <= 0.2 + 1e-9).all() and (e[:, 2].abs() <= 1.0 + 1e-9).all())
    assert g.random_euler_rotation(4, lo, hi).shape == (4, 3, 3)
    with pytest.raises(ValueError, match="high >= low"):
        g.random_euler_rotation(4, [0, 0, 0], [1, -1, 1])
    with pytest.raises(ValueError, match="shape"):
        g.random_rotation(-1)


def test_super_fibonacci_rotations_cover_so3_evenly():
    """Deterministic, valid rotations whose largest gap is far below that of random draws."""
    R = g.super_fibonacci_rotations(600, dtype=torch.float64)
    assert R.shape == (600, 3, 3)
    torch.testing.assert_close(R.mT @ R, torch.eye(3, dtype=torch.float64).expand(600, 3, 3), atol=1e-12, rtol=0)
    assert torch.equal(R, g.super_fibonacci_rotations(600, dtype=torch.float64))
    probes = g.random_rotation(2000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    random_set = g.random_rotation(600, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def covering(S: torch.Tensor) -> float:
        return float(g.geodesic_distance(probes[:, None], S[None]).min(dim=1).values.max())

    assert covering(R) < 0.75 * covering(random_set)
    # Evenly spread means Haar-like: the angle law (1 - cos t)/pi, KS at a fixed sample.
    angles = np.sort(g.geodesic_distance(R, torch.eye(3, dtype=torch.float64)).numpy())
    assert stats.kstest(angles, lambda t: (t - np.sin(t)) / np.pi).pvalue > 0.05
    with pytest.raises(ValueError, match="positive int"):
        g.super_fibonacci_rotations(0)
