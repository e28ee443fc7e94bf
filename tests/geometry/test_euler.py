"""Euler angles: all 24 scipy conventions, both directions, gimbal lock."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from posereg import geometry as g

SEQS = [
    "".join(p)
    for p in itertools.product("xyz", repeat=3)
    if p[0] != p[1] and p[1] != p[2]
]
SEQS = SEQS + [s.upper() for s in SEQS]
assert len(SEQS) == 24


@pytest.mark.parametrize("seq", SEQS)
def test_euler_to_matrix_matches_scipy(seq):
    angles = np.random.default_rng(0).uniform(-math.pi, math.pi, size=(100, 3))
    ref = Rotation.from_euler(seq, angles).as_matrix()
    R = g.euler_to_matrix(torch.as_tensor(angles), seq)
    assert np.abs(R.numpy() - ref).max() < 1e-12


@pytest.mark.parametrize("seq", SEQS)
def test_matrix_to_euler_matches_scipy(seq):
    R = Rotation.random(200, random_state=1).as_matrix()
    ref = Rotation.from_matrix(R).as_euler(seq)
    angles = g.matrix_to_euler(torch.as_tensor(R), seq)
    assert np.abs(angles.numpy() - ref).max() < 1e-10
    assert torch.allclose(g.euler_to_matrix(angles, seq), torch.as_tensor(R), atol=1e-12)


@pytest.mark.parametrize("seq", SEQS)
def test_gimbal_lock_matches_scipy(seq):
    symmetric = seq[0].lower() == seq[2].lower()
    middles = [0.0, math.pi] if symmetric else [-math.pi / 2, math.pi / 2]
    angles = np.array([[0.7, m, -0.4] for m in middles])
    R = Rotation.from_euler(seq, angles).as_matrix()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = Rotation.from_matrix(R).as_euler(seq)
    out = g.matrix_to_euler(torch.as_tensor(R), seq)
    diff = np.remainder(out.numpy() - ref + math.pi, 2 * math.pi) - math.pi  # equal as angles
    assert np.abs(diff).max() < 1e-7
    assert torch.allclose(g.euler_to_matrix(out, seq), torch.as_tensor(R), atol=1e-7)
    Rg = torch.as_tensor(R).requires_grad_()
    g.matrix_to_euler(Rg, seq).sum().backward()
    assert torch.isfinite(Rg.grad).all()


def test_float32():
    R = Rotation.random(100, random_state=2).as_matrix()
    out = g.matrix_to_euler(torch.as_tensor(R, dtype=torch.float32), "ZYX")
    assert np.abs(out.double().numpy() - Rotation.from_matrix(R).as_euler("ZYX")).max() < 1e-5


@pytest.mark.parametrize("seq", ["xy", "xyzz", "xXz", "xxz", "abc", "xyy", 3])
def test_bad_sequences(seq):
    with pytest.raises(ValueError, match="seq"):
        g.euler_to_matrix(torch.zeros(3), seq)  # type: ignore[arg-type]


def test_bad_angles_shape():
    with pytest.raises(ValueError, match=r"angles: .*\(\.\.\., 3\)"):
        g.euler_to_matrix(torch.zeros(2, 2), "xyz")
