"""join() switches from stack() to per-column copies for large outputs: both paths must agree,
in values and gradients."""

from __future__ import annotations

import torch

from posereg import geometry as g
from posereg.geometry._layout import _COPY_JOIN_MIN_NUMEL


def test_large_batch_path_matches_small_batches_with_gradients():
    n = _COPY_JOIN_MIN_NUMEL // 9 + 100  # the (n, 3, 3) output takes the copy path
    v = torch.randn(n, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64, requires_grad=True)
    w = torch.randn(n, 3, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    big = g.rotvec_to_matrix(v)
    (g_big,) = torch.autograd.grad((big * w).sum(), v)
    chunks = [g.rotvec_to_matrix(c) for c in v.split(100)]  # each below the threshold: stack()
    small = torch.cat(chunks)
    (g_small,) = torch.autograd.grad((small * w).sum(), v)
    assert torch.equal(big, small)
    assert torch.allclose(g_big, g_small, atol=1e-14)
