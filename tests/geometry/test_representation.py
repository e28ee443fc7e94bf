"""Rotation representations: round trips, relative angles against scipy, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from posereg import geometry as g
from tests.geometry.conftest import adversarial_rotvecs, random_rotvecs

REPS = [g.ROTVEC, g.QUATERNION, g.MATRIX, g.SIXD, g.SVD9D]


def test_registry_names_every_representation_once():
    assert g.REPRESENTATIONS == {r.name: r for r in REPS}


@pytest.mark.parametrize("rep", REPS, ids=lambda r: r.name)
def test_round_trip_through_the_representation(rep, dtype):
    rv = np.concatenate([adversarial_rotvecs(), random_rotvecs(50, seed=3)])
    R = torch.as_tensor(Rotation.from_rotvec(rv).as_matrix(), dtype=dtype)
    x = rep.from_matrix(R)
    assert x.shape == (len(rv), *rep.trailing)
    tol = 2e-6 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(rep.to_matrix(x), R, atol=tol, rtol=0)


@pytest.mark.parametrize("rep", REPS, ids=lambda r: r.name)
def test_relative_angle_matches_scipy(rep, dtype):
    a = Rotation.from_rotvec(random_rotvecs(200, seed=4))
    b = Rotation.from_rotvec(np.concatenate([random_rotvecs(176, seed=5), adversarial_rotvecs()]))
    expected = torch.as_tensor((a.inv() * b).magnitude(), dtype=torch.float64)
    x = rep.from_matrix(torch.as_tensor(a.as_matrix(), dtype=dtype))
    y = rep.from_matrix(torch.as_tensor(b.as_matrix(), dtype=dtype))
    tol = 2e-6 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(rep.relative_angle(x, y).double(), expected, atol=tol, rtol=0)


def test_quaternion_relative_angle_rejects_zero_quaternions():
    q = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match=r"\|q\| = 0"):
        g.QUATERNION.relative_angle(q, q.flip(0))


def test_check_names_the_expected_shape():
    with pytest.raises(ValueError, match=r"pred: expected .*\(\.\.\., 6\), got shape \(2, 3\)"):
        g.SIXD.check(torch.zeros(2, 3), "pred")
