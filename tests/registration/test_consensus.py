"""Pose-Net consensus over re-posed inputs, and the contrast-agnostic similarity the pipeline checks."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from posereg import geometry as g
from posereg.registration._similarity import nmi_rows, normalised_mutual_information
from posereg.registration.consensus import octahedral_rotations, rotation_clusters, rotation_consensus

F64 = torch.float64


def test_octahedral_rotations_are_the_cube_group():
    Q = octahedral_rotations()
    assert Q.shape == (24, 3, 3)
    torch.testing.assert_close(Q @ Q.mT, torch.eye(3, dtype=F64).expand(24, 3, 3))
    assert bool((torch.det(Q) > 0).all())
    # A group: closed under products, 24 distinct elements.
    products = (Q[:, None] @ Q[None]).reshape(-1, 3, 3)
    distance = g.geodesic_distance(products[:, None], Q[None])
    assert bool((distance.min(1).values < 1e-9).all())
    assert int((g.geodesic_distance(Q[:, None], Q[None]) < 1e-9).sum()) == 24
    # Covering radius: every rotation is within 62.8 degrees (acos((2 sqrt 2 - 1) / 2)... of the cube's 24).
    R = g.random_rotation(4000, generator=torch.Generator().manual_seed(0), dtype=F64)
    radius = math.degrees(float(g.geodesic_distance(R[:, None], Q[None]).min(1).values.max()))
    assert 55.0 < radius <= 62.8


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), outliers=st.integers(0, 10))
def test_consensus_finds_the_majority_among_outliers(seed, outliers):
    gen = torch.Generator().manual_seed(seed)
    R = g.random_rotation((), generator=gen, dtype=F64)
    noise = g.rotvec_to_matrix(0.05 * torch.randn(24 - outliers, 3, generator=gen, dtype=F64))  # ~3 degrees
    inliers = R @ noise
    wrong = g.random_rotation(outliers, generator=gen, dtype=F64)
    wrong = wrong[g.geodesic_distance(wrong, R.expand_as(wrong)) > math.radians(45)]  # true outliers only
    found = rotation_consensus(torch.cat([inliers, wrong]))
    # The answer is the inliers' own chordal mean (scipy's Rotation.mean, Markley's), whatever the
    # outliers: how far that mean lies from R is the noise's draw (14 inliers of ~3 degrees put it
    # over 3 degrees for seed 6926330), not the consensus's doing.
    inlier_mean = torch.from_numpy(Rotation.from_matrix(inliers.numpy()).mean().as_matrix())
    assert math.degrees(float(g.geodesic_distance(found.R, inlier_mean))) < 1e-6
    assert found.agreement >= (24 - outliers) / (24 - outliers + len(wrong)) - 1e-9
    assert found.spread_deg < 10.0


def test_clusters_are_disjoint_and_ordered():
    Q = octahedral_rotations()
    estimates = torch.cat([Q[:1].expand(5, 3, 3), Q[1:2].expand(3, 3, 3), Q[2:3]])
    clusters = rotation_clusters(estimates, 20.0, 5)
    assert [round(c.agreement * 9) for c in clusters] == [5, 3, 1]
    for c, expected in zip(clusters, Q[:3], strict=True):
        torch.testing.assert_close(c.R, expected)
    with pytest.raises(ValueError, match="estimates"):
        rotation_consensus(torch.eye(3))
    with pytest.raises(ValueError, match="tolerance"):
        rotation_clusters(estimates, 0.0)


def test_nmi_is_contrast_agnostic_and_matches_a_numpy_reference():
    import numpy as np

    gen = torch.Generator().manual_seed(1)
    a = torch.rand(5000, generator=gen, dtype=F64)
    inverted = 1 - a  # a T2-like inversion of a T1 image: as informative as a itself
    independent = torch.rand(5000, generator=gen, dtype=F64)
    scores = nmi_rows(a, torch.stack([a, inverted, independent]))
    assert float(scores[0]) == pytest.approx(2.0) and float(scores[1]) == pytest.approx(2.0)
    assert 1.0 <= float(scores[2]) < 1.2
    # numpy's histogram2d with the same rounding bins
    bins = 32
    ia, ib = np.round(a.numpy() * (bins - 1)), np.round(independent.numpy() * (bins - 1))
    joint, _, _ = np.histogram2d(ia, ib, bins=bins, range=[[-0.5, bins - 0.5]] * 2)
    p = joint / joint.sum()

    def h(q):  # noqa: ANN001, ANN202
        q = q[q > 0]
        return -(q * np.log(q)).sum()

    reference = (h(p.sum(1)) + h(p.sum(0))) / h(p)
    assert float(normalised_mutual_information(a, independent)) == pytest.approx(reference, rel=1e-12)
    # the batched rows are each row's own NMI
    for row, score in zip((a, inverted, independent), scores, strict=True):
        assert float(score) == pytest.approx(float(normalised_mutual_information(row, a)), rel=1e-12)
    with pytest.raises(ValueError, match="expected"):
        normalised_mutual_information(a, a[:10])


@pytest.mark.parametrize("n", [8, 9])
def test_permuted_views_equal_resampling_by_the_cube_rotations(n):
    from posereg.data import isotropic_affine, rigid_resample
    from posereg.registration.consensus import permuted_views

    gen = torch.Generator().manual_seed(2)
    view = torch.rand(n, n, n, generator=gen, dtype=F64)
    centre = torch.tensor([3.0, -2.0, 5.0], dtype=F64)
    affine = isotropic_affine((n, n, n), 2.5, centre)
    Q = octahedral_rotations()
    expected = rigid_resample(view, affine, Q.mT, torch.zeros(24, 3, dtype=F64), centre, out_affine=affine,
                              out_shape=(n, n, n))[:, 0]  # fmt: skip
    torch.testing.assert_close(permuted_views(view, Q), expected, atol=1e-9, rtol=0)
    with pytest.raises(ValueError, match="signed permutation"):
        permuted_views(view, g.rotvec_to_matrix(torch.tensor([[0.3, 0.0, 0.0]], dtype=F64)))
