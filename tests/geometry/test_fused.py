"""The optional fused kernels agree with the eager functions (values and gradients)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from posereg import geometry as g
from posereg.geometry import fused


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_matches_eager(dtype):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        _compare_fused_and_eager(dtype)
    fallbacks = [w for w in caught if "torch.compile failed" in str(w.message)]
    assert not fallbacks, "the compiled path fell back to eager: " + str(fallbacks[0].message)


def _compare_fused_and_eager(dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(257, 3, generator=gen, dtype=dtype) * 2
    v[0] = 0
    v[1] = torch.tensor([math.pi, 0, 0], dtype=dtype)
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    assert torch.allclose(fused.rotvec_to_matrix(v), g.rotvec_to_matrix(v), atol=tol)
    R1 = g.random_rotation((4, 64), generator=gen, dtype=dtype)
    R2 = g.random_rotation((4, 64), generator=gen, dtype=dtype)
    assert torch.allclose(fused.geodesic_distance(R1, R2), g.geodesic_distance(R1, R2), atol=tol)
    a = R1.clone().requires_grad_()
    b = R1.clone().requires_grad_()
    fused.geodesic_distance(a, R2).sum().backward()
    g.geodesic_distance(b, R2).sum().backward()
    assert torch.allclose(a.grad, b.grad, atol=10 * tol)
    vz = torch.zeros(2, 3, dtype=dtype, requires_grad=True)
    fused.rotvec_to_matrix(vz).sum().backward()
    assert torch.isfinite(vz.grad).all()


def test_fused_validates_input():
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        fused.rotvec_to_matrix(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="NaN or inf"):
        fused.geodesic_distance(torch.full((3, 3), float("nan")), torch.eye(3))
