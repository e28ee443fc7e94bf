"""VVR-Search: coarse NCC search over evenly spread rotations, then local registration; the pipeline's search."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from posereg import geometry as g
from posereg.data import Split, move_volume, scanner_effects, subject_seed, synthesize_subject
from posereg.registration.pipeline import DeepRegistration
from posereg.registration.search import (
    coarse_rotation_scores,
    distinct_best,
    pipeline_search,
    search_registration,
)
from tests.registration.test_pipeline import OraclePose

F64 = torch.float64


@pytest.fixture(scope="module")
def far_case(small_atlas):
    subject = synthesize_subject(small_atlas, torch.Generator().manual_seed(subject_seed(Split.TEST, 3)))
    R = g.rotvec_to_matrix(torch.tensor([1.2, -1.9, 1.4], dtype=F64))  # about 150 degrees
    t = torch.tensor([5.0, 4.0, -6.0], dtype=F64)
    moving = subject.with_data(scanner_effects(move_volume(subject, R, t)[0, 0], torch.Generator().manual_seed(5)))
    return small_atlas, moving, R, t


def test_coarse_scores_peak_near_the_truth(far_case):
    atlas, moving, R, _ = far_case
    rotations = torch.cat((g.super_fibonacci_rotations(200, dtype=F64), R[None]))
    scores, _ = coarse_rotation_scores(atlas, moving, rotations)
    assert int(scores.argmax()) == 200  # the true rotation scores best
    assert scores[200] > 0.5 > float(scores[:200].median())


def test_search_recovers_a_large_rotation(far_case):
    atlas, moving, R, t = far_case
    assert math.degrees(g.geodesic_distance(R, torch.eye(3, dtype=F64))) > 140
    result = search_registration(atlas, moving, n_rotations=400, keep=2)
    assert math.degrees(g.geodesic_distance(result.R, R)) < 5.0
    assert float((result.t - t).norm()) < 8.0
    with pytest.raises(ValueError, match="keep"):
        search_registration(atlas, moving, n_rotations=2, keep=3)


def _brute_force_distinct(scores, rotations, keep, separation_deg):
    """Greedy non-maximum suppression written the slow way: every pair's angle from scipy."""
    from scipy.spatial.transform import Rotation

    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    rot = Rotation.from_matrix(rotations.numpy())
    kept = []
    for i in order:
        if len(kept) < keep and all(math.degrees((rot[i] * rot[j].inv()).magnitude()) >= separation_deg for j in kept):
            kept.append(i)
    return kept


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 40), keep=st.integers(1, 6),
       separation=st.floats(0.0, 120.0))  # fmt: skip
def test_distinct_best_is_greedy_suppression_on_so3(seed, n, keep, separation):
    gen = torch.Generator().manual_seed(seed)
    rotations = g.random_rotation((n,), generator=gen, dtype=F64)
    scores = torch.rand(n, generator=gen, dtype=F64)
    kept = distinct_best(scores, rotations, keep, separation)
    assert kept == _brute_force_distinct(scores, rotations, keep, separation)
    assert kept[0] == int(scores.argmax()) and len(kept) <= keep
    for a in range(len(kept)):  # best first, pairwise at least the separation apart
        for b in range(a):
            assert scores[kept[b]] >= scores[kept[a]]
            assert math.degrees(float(g.geodesic_distance(rotations[kept[a]], rotations[kept[b]]))) >= separation - 1e-6


def test_distinct_best_skips_the_neighbours_of_a_kept_start():
    base = g.rotvec_to_matrix(torch.tensor([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 1.0]], dtype=F64))
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6], dtype=F64)  # the second is 5.7 degrees from the first
    assert distinct_best(scores, base, 3, 30.0) == [0, 2, 3]
    assert distinct_best(scores, base, 3, 0.0) == [0, 1, 2]
    with pytest.raises(ValueError, match="shapes"):
        distinct_best(scores[:3], base, 3, 30.0)
    with pytest.raises(ValueError, match="keep"):
        distinct_best(scores, base, 0, 30.0)


def test_refined_starts_are_each_start_refined_and_scored_as_the_pipeline_scores(far_case):
    atlas, moving, R, t = far_case
    pipeline = DeepRegistration(atlas, OraclePose(R), probes=None)
    turns = g.rotvec_to_matrix(torch.tensor([[0.12, 0.0, -0.08], [0.0, -0.1, 0.1]], dtype=F64))
    starts_R, starts_t = R @ turns, t + torch.tensor([[3.0, 0.0, -2.0], [-2.0, 2.0, 0.0]], dtype=F64)
    R_out, t_out, nmis = pipeline.refined_starts(moving, starts_R, starts_t)
    for i in range(2):
        R_one, t_one = pipeline.refined(moving, starts_R[i], starts_t[i])
        torch.testing.assert_close(R_out[i], R_one, rtol=0, atol=1e-12)
        torch.testing.assert_close(t_out[i], t_one, rtol=0, atol=1e-10)
        assert float(nmis[i]) == pytest.approx(pipeline.brain_nmi(moving, R_one, t_one), abs=1e-9)
        assert math.degrees(float(g.geodesic_distance(R_out[i], R))) < 2.0
    again = pipeline.refined_starts(moving, starts_R, starts_t, working=pipeline.working_scan(moving))
    for a, b in zip(again, (R_out, t_out, nmis), strict=True):  # the caller's working scan: the same answers
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(ValueError, match="shapes"):
        pipeline.refined_starts(moving, starts_R[0], starts_t[0])


def test_pipeline_search_recovers_a_large_rotation_from_distinct_starts(far_case):
    atlas, moving, R, t = far_case
    pipeline = DeepRegistration(atlas, OraclePose(torch.eye(3, dtype=F64)), probes=None)  # the networks play no part
    found = pipeline_search(pipeline, moving, n_rotations=400, keep=3, separation_deg=30.0)
    assert math.degrees(float(g.geodesic_distance(found.R, R))) < 2.0
    assert float((found.t - t).norm()) < 3.0
    assert found.starts.shape == (3, 3, 3) and found.brain_nmis.shape == (3,)
    assert found.brain_nmi == pytest.approx(float(found.brain_nmis.max()))
    assert found.brain_nmi == pytest.approx(pipeline.brain_nmi(moving, found.R, found.t), abs=1e-9)
    apart = g.geodesic_distance(found.starts[:, None], found.starts[None])
    assert float(apart[~torch.eye(3, dtype=torch.bool)].min()) >= math.radians(30.0) - 1e-9
    with pytest.raises(ValueError, match="keep"):
        pipeline_search(pipeline, moving, n_rotations=2, keep=3)
