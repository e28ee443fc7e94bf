"""Registration that checks itself: the verdict, the fallback, the record the CLI writes."""

from __future__ import annotations

import math

import pytest
import torch

from posereg import geometry as g
from posereg.data import Split, move_volume, subject_seed, synthesize_subject
from posereg.registration import QualityThresholds, doubts, register_checked
from posereg.registration.pipeline import DeepRegistration
from tests.registration.test_pipeline import OraclePose

F64 = torch.float64


@pytest.fixture(scope="module")
def subject_case(small_atlas):
    subject = synthesize_subject(small_atlas, torch.Generator().manual_seed(subject_seed(Split.TEST, 3)))
    R = g.rotvec_to_matrix(torch.tensor([0.4, 1.2, -0.6], dtype=F64))
    t = torch.tensor([4.0, -3.0, 2.0], dtype=F64)
    return small_atlas, subject.with_data(move_volume(subject, R, t)[0, 0]), R, t


def test_doubts_name_each_failed_measure():
    t = QualityThresholds(min_agreement=0.2, min_brain_nmi=1.02)
    assert doubts({"agreement": 0.5, "brain_nmi": 1.05}, t) == []
    reasons = doubts({"agreement": 0.1, "brain_nmi": 1.01}, t)
    assert len(reasons) == 2 and "agreement 0.10" in reasons[0] and "brain NMI 1.0100" in reasons[1]
    assert doubts({"brain_nmi": 1.05}, t) == []  # the fallback's result has no agreement


def test_a_right_result_is_trusted_and_a_wrong_one_is_caught_and_recovered(subject_case):
    atlas, moving, R, t = subject_case
    right = DeepRegistration(atlas, OraclePose(R), probes=None)(moving)
    wrong_R = R @ g.rotvec_to_matrix(torch.tensor([0.0, 0.0, 2.5], dtype=F64))  # 143 degrees off
    wrong = DeepRegistration(atlas, OraclePose(wrong_R), probes=None)(moving)
    # The image similarity in the atlas brain separates the two by a wide margin.
    assert right.quality["brain_nmi"] > wrong.quality["brain_nmi"] + 0.01
    thresholds = QualityThresholds(min_agreement=0.0,
                                   min_brain_nmi=(right.quality["brain_nmi"] + wrong.quality["brain_nmi"]) / 2)  # fmt: skip
    trusted = register_checked(DeepRegistration(atlas, OraclePose(R), probes=None), moving, thresholds)
    assert not trusted.doubtful and trusted.method == "networks" and "fallback search" not in trusted.result.seconds
    kept = register_checked(DeepRegistration(atlas, OraclePose(wrong_R), probes=None), moving, thresholds, fallback=False)
    assert kept.doubtful and kept.reasons == kept.first_reasons and kept.method == "networks"
    recovered = register_checked(DeepRegistration(atlas, OraclePose(wrong_R), probes=None), moving, thresholds)
    assert recovered.method == "fallback search" and recovered.first_reasons and not recovered.doubtful
    assert math.degrees(float(g.geodesic_distance(recovered.result.R, R))) < 5.0
    assert "fallback search" in recovered.result.seconds and "fallback search" in recovered.result.stages


def test_a_refining_pipeline_refines_the_fallback_result_too(subject_case):
    from posereg.registration import RefineSettings

    atlas, moving, R, t = subject_case
    wrong_R = R @ g.rotvec_to_matrix(torch.tensor([0.0, 0.0, 2.5], dtype=F64))
    plain = DeepRegistration(atlas, OraclePose(wrong_R), probes=None)
    refining = DeepRegistration(atlas, OraclePose(wrong_R), probes=None, refine=RefineSettings())
    thresholds = QualityThresholds(min_agreement=0.0, min_brain_nmi=1.5)  # every result doubtful: the fallback runs
    searched = register_checked(plain, moving, thresholds)
    finished = register_checked(refining, moving, thresholds)
    assert searched.method == finished.method == "fallback search"
    error = lambda r: math.degrees(float(g.geodesic_distance(r.result.R, R)))  # noqa: E731
    assert error(finished) < 1.5 and error(finished) <= error(searched) + 0.2
    # pipeline.refined is the same refinement, from any start
    start = (R @ g.rotvec_to_matrix(torch.tensor([0.15, 0.0, 0.1], dtype=F64)), t)
    R_refined, _ = refining.refined(moving, *start)
    assert math.degrees(float(g.geodesic_distance(R_refined, R))) < 1.5
