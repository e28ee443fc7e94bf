"""VVR-Search: coarse NCC search over evenly spread rotations, then local registration."""

from __future__ import annotations

import math

import pytest
import torch

from posereg import geometry as g
from posereg.data import Split, move_volume, scanner_effects, subject_seed, synthesize_subject
from posereg.registration.search import coarse_rotation_scores, search_registration

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
