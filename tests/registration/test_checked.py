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


def test_a_close_result_of_a_pipeline_without_refinement_is_refined_before_any_search(subject_case, monkeypatch):
    from posereg.registration import RefineSettings, checked

    atlas, moving, R, t = subject_case
    close_R = R @ g.rotvec_to_matrix(torch.tensor([0.08, -0.06, 0.05], dtype=F64))  # 6 degrees off
    plain = DeepRegistration(atlas, OraclePose(close_R), probes=None)
    first, refined = plain(moving), plain(moving, refine=RefineSettings())
    # refine= for one call is the pipeline's refinement: the same result as a refining pipeline's
    own = DeepRegistration(atlas, OraclePose(close_R), probes=None, refine=RefineSettings())(moving)
    torch.testing.assert_close(refined.R, own.R)
    torch.testing.assert_close(refined.t, own.t)
    assert "refinement" in refined.stages and "refinement" not in first.stages
    assert refined.quality["brain_nmi"] > first.quality["brain_nmi"] + 0.002
    between = QualityThresholds(min_agreement=0.0, min_brain_nmi=(first.quality["brain_nmi"] + refined.quality["brain_nmi"]) / 2)

    def no_search(*args, **kwargs):
        raise AssertionError("the search ran although the refinement sufficed")

    monkeypatch.setattr(checked, "pipeline_search", no_search)
    result = register_checked(plain, moving, between)
    assert result.method == "networks + refinement (fallback)" and not result.doubtful and result.first_reasons
    assert "fallback refinement" in result.result.seconds and "fallback search" not in result.result.stages
    assert math.degrees(float(g.geodesic_distance(result.result.R, R))) < 1.5
    with pytest.raises(AssertionError, match="the search ran"):  # above what the refinement reaches: the search
        register_checked(plain, moving, QualityThresholds(min_agreement=0.0, min_brain_nmi=1.99))
    # Networks that disagree are not refined first: their result may be far off (the search runs).
    with pytest.raises(AssertionError, match="the search ran"):
        register_checked(plain, moving, QualityThresholds(min_agreement=1.01, min_brain_nmi=1.0))


def test_every_fallback_search_ends_with_the_refinement(subject_case):
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
    # With or without refinement in the pipeline, the search's result is refined (the default settings).
    assert error(finished) < 1.5 and error(searched) < 1.5
    # pipeline.refined is the same refinement, from any start
    start = (R @ g.rotvec_to_matrix(torch.tensor([0.15, 0.0, 0.1], dtype=F64)), t)
    R_refined, _ = refining.refined(moving, *start)
    assert math.degrees(float(g.geodesic_distance(R_refined, R))) < 1.5


def test_a_search_that_lands_on_the_same_pose_confirms_a_result_the_networks_disagreed_on(subject_case):
    """Low agreement alone is not a failure when the independent search finds the same pose."""
    atlas, moving, R, t = subject_case
    right = DeepRegistration(atlas, OraclePose(R), probes=None)
    # Every result fails the agreement threshold (an oracle without probes has agreement 1.0: ask for more).
    strict = QualityThresholds(min_agreement=1.01, min_brain_nmi=1.0)
    confirmed = register_checked(right, moving, strict)
    assert confirmed.confirmed and not confirmed.doubtful and confirmed.first_reasons
    assert confirmed.result.quality["search_agreement_deg"] <= strict.confirm_deg
    assert "fallback search" in confirmed.result.stages
    # Confirmation needs the search to land within confirm_deg; with 0 degrees nothing confirms, and
    # the verdict is the old one: the better-scoring result with its own doubts.
    unconfirmed = register_checked(right, moving, QualityThresholds(min_agreement=1.01, min_brain_nmi=1.0, confirm_deg=0.0))
    assert not unconfirmed.confirmed and "search_agreement_deg" not in unconfirmed.result.quality
    assert unconfirmed.doubtful == (unconfirmed.method != "fallback search")
    # A wrong first result is not confirmed by a search that finds the right pose.
    wrong_R = R @ g.rotvec_to_matrix(torch.tensor([0.0, 0.0, 2.5], dtype=F64))
    recovered = register_checked(DeepRegistration(atlas, OraclePose(wrong_R), probes=None), moving, strict)
    assert not recovered.confirmed and recovered.method == "fallback search"
    assert math.degrees(float(g.geodesic_distance(recovered.result.R, R))) < 5.0


def test_a_search_that_neither_confirms_nor_beats_the_result_is_named_in_the_reasons(subject_case, monkeypatch):
    from posereg.registration import checked
    from posereg.registration.search import PipelineSearchResult

    atlas, moving, R, t = subject_case
    right = DeepRegistration(atlas, OraclePose(R), probes=None)
    far = R @ g.rotvec_to_matrix(torch.tensor([0.0, 0.0, 2.5], dtype=F64))  # 143 degrees off

    def wrong_search(pipeline, volume):
        nmi = pipeline.brain_nmi(volume, far, t)
        return PipelineSearchResult(far, t, atlas.image.centre, nmi, far[None], torch.tensor([nmi]), 0.1)

    monkeypatch.setattr(checked, "pipeline_search", wrong_search)
    result = register_checked(right, moving, QualityThresholds(min_agreement=1.01, min_brain_nmi=1.0))
    assert result.doubtful and result.method == "networks" and not result.confirmed
    assert result.reasons[:-1] == result.first_reasons and len(result.first_reasons) == 1
    assert "fallback search did not confirm it" in result.reasons[-1] and "143 degrees away" in result.reasons[-1]
    assert math.degrees(float(g.geodesic_distance(result.result.R, R))) < 1e-3  # the networks' result is kept


def test_a_confirmed_pose_that_does_not_look_like_a_brain_stays_doubtful(subject_case):
    atlas, moving, R, t = subject_case
    impossible = QualityThresholds(min_agreement=1.01, min_brain_nmi=1.99)
    checked = register_checked(DeepRegistration(atlas, OraclePose(R), probes=None), moving, impossible)
    assert checked.doubtful and any("brain NMI" in reason for reason in checked.reasons)


def test_candidates_brain_nmi_sampled_at_the_brain_equals_whole_views(subject_case):
    """The pipeline scores candidates by sampling the scan at the atlas brain's voxels only: the
    same NMI as resampling whole views onto the atlas grid and taking their brain voxels."""
    from posereg.data import preprocess_intensity, rigid_resample, scan_intensity_range
    from posereg.geometry import rotvec_to_matrix

    atlas, moving, R, t = subject_case
    pipeline = DeepRegistration(atlas, OraclePose(R), probes=None)
    smooth = pipeline.working_scan(moving)
    scan_range = scan_intensity_range(smooth.data)
    turn = rotvec_to_matrix(torch.tensor([[0.0, 0.0, 0.0], [0.2, -0.1, 0.05], [1.0, 0.5, -2.0]], dtype=torch.float64))
    Rs, ts = R @ turn, t + torch.tensor([[0.0, 0.0, 0.0], [3.0, -2.0, 1.0], [10.0, 0.0, -5.0]], dtype=torch.float64)
    a = atlas.image
    views = rigid_resample(smooth.data, smooth.affine, Rs, ts, a.centre, out_affine=a.affine, out_shape=a.shape)[:, 0]
    from posereg.registration._similarity import nmi_rows

    aligned = preprocess_intensity(views, scan_range).float()[:, atlas.mask].double()
    expected = nmi_rows(atlas.image.data[atlas.mask].double(), aligned)  # whole views, then their brain voxels
    sampled = pipeline._brain_nmis(smooth, Rs, ts, scan_range)
    torch.testing.assert_close(sampled, expected, atol=1e-5, rtol=0)
    assert float(sampled[0]) > float(sampled[1]) > float(sampled[2])  # the truth, near it, far from it


def test_a_transform_from_elsewhere_is_scored_as_the_pipeline_scores_its_own(subject_case):
    """``brain_nmi`` (the fallback's results) gives the pipeline's own ``quality['brain_nmi']`` for
    the pipeline's own transform, refined or not: the two kinds of result compare fairly."""
    from posereg.registration import RefineSettings

    atlas, moving, R, _ = subject_case
    pipeline = DeepRegistration(atlas, OraclePose(R @ g.rotvec_to_matrix(torch.tensor([0.1, 0.0, -0.05], dtype=F64))),
                                probes=None)  # fmt: skip
    for result in (pipeline(moving), pipeline(moving, refine=RefineSettings())):
        assert pipeline.brain_nmi(moving, result.R, result.t) == pytest.approx(result.quality["brain_nmi"], abs=1e-9)
    far = pipeline.brain_nmi(moving, R @ g.rotvec_to_matrix(torch.tensor([0.0, 2.0, 0.0], dtype=F64)), result.t)
    assert far < result.quality["brain_nmi"] - 0.01


def test_the_fallback_refinement_is_the_pipeline_refinement(subject_case):
    """``refined`` from the pipeline's own pre-refinement result gives the refining pipeline's answer."""
    from posereg.registration import RefineSettings

    atlas, moving, R, _ = subject_case
    pipeline = DeepRegistration(atlas, OraclePose(R @ g.rotvec_to_matrix(torch.tensor([0.1, 0.05, -0.05], dtype=F64))),
                                probes=None, refine=RefineSettings())  # fmt: skip
    own = pipeline(moving)
    start = own.stages["pose-net"]  # no Correction-Net: the refinement starts from the Pose-Net's result
    R_refined, t_refined = pipeline.refined(moving, *start)
    torch.testing.assert_close(R_refined, own.R, rtol=0, atol=1e-12)
    torch.testing.assert_close(t_refined, own.t, rtol=0, atol=1e-10)
