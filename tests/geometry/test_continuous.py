"""6D (Zhou et al. 2019) and 9D-SVD (Levinson et al. 2020) representations."""

from __future__ import annotations

import numpy as np
import torch

from posereg import geometry as g


def test_sixd_round_trip_and_columns():
    R = g.random_rotation(50, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = g.matrix_to_sixd(R)
    assert torch.equal(x[:, :3], R[:, :, 0]) and torch.equal(x[:, 3:], R[:, :, 1])
    assert torch.allclose(g.sixd_to_matrix(x), R, atol=1e-14)


def test_sixd_matches_numpy_gram_schmidt():
    x = torch.randn(40, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    R = g.sixd_to_matrix(x).numpy()
    a1, a2 = x[:, :3].numpy(), x[:, 3:].numpy()
    b1 = a1 / np.linalg.norm(a1, axis=1, keepdims=True)
    b2 = a2 - (b1 * a2).sum(1, keepdims=True) * b1
    b2 /= np.linalg.norm(b2, axis=1, keepdims=True)
    ref = np.stack([b1, b2, np.cross(b1, b2)], axis=-1)
    assert np.abs(R - ref).max() < 1e-14
    assert np.allclose(np.linalg.det(R), 1)


def test_sixd_degenerate_is_finite():
    x = torch.zeros(2, 6, requires_grad=True)
    R = g.sixd_to_matrix(x)
    R.sum().backward()
    assert torch.isfinite(R).all() and torch.isfinite(x.grad).all()


def test_svd9d_is_the_projection_and_gradcheck():
    x = torch.randn(5, 9, generator=torch.Generator().manual_seed(2), dtype=torch.float64, requires_grad=True)
    R = g.svd9d_to_matrix(x)
    assert torch.allclose(R, g.project_to_so3(x.detach().view(5, 3, 3)))
    assert torch.autograd.gradcheck(g.svd9d_to_matrix, (x,))
    assert torch.autograd.gradcheck(g.sixd_to_matrix, (x[:, :6].detach().clone().requires_grad_(),))


def test_sixd_is_orthonormal_to_rounding_even_for_nearly_parallel_columns():
    """One Gram-Schmidt projection leaves b1 . b2 ~ eps / sin(angle between a1 and a2): 1e-2
    in float32 at an angle of 1e-5. Projecting twice keeps R^T R = I to a few eps, so 6D
    network outputs pass the rotation check of the functions they are passed to."""
    gen = torch.Generator().manual_seed(4)
    a1 = torch.randn(2000, 3, generator=gen)
    for angle in (1.0, 1e-2, 1e-4, 1e-5):
        a2 = 3 * (a1 + angle * torch.randn(2000, 3, generator=gen) * a1.norm(dim=-1, keepdim=True))
        R = g.sixd_to_matrix(torch.cat((a1, a2), -1))
        err = (R.double().mT @ R.double() - torch.eye(3, dtype=torch.float64)).abs().max()
        assert err < 1e-5, (angle, float(err))
        g.check_rotation_matrix(R)
