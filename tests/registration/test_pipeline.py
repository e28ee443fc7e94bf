"""The deep pipeline's frame algebra (with oracle networks) and 'posereg register' end to end."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from torch import nn

from posereg import geometry as g
from posereg.cli import main
from posereg.data import Split, Volume, load_nifti, move_volume, save_nifti, subject_seed, synthesize_subject
from posereg.models import CorrectionNet, VolumePoseNet
from posereg.registration.pipeline import DeepRegistration
from posereg.registration.pipeline_model import load_pipeline_model, save_pipeline_model

F64 = torch.float64


class OraclePose(nn.Module):
    """Returns a fixed rotation vector, whatever the input."""

    def __init__(self, R: torch.Tensor) -> None:
        super().__init__()
        self.v = g.matrix_to_rotvec(R).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.v.expand(x.shape[0], 3)

    def to_matrix(self, v: torch.Tensor) -> torch.Tensor:
        return g.rotvec_to_matrix(v.double())


class OracleCorrection(OraclePose):
    def __init__(self, R: torch.Tensor, t: torch.Tensor) -> None:
        super().__init__(R)
        self.t = t.float()

    def forward(self, x: torch.Tensor):  # type: ignore[override]
        return super().forward(x), self.t.expand(x.shape[0], 3)


@pytest.fixture(scope="module")
def case(small_atlas):
    subject = synthesize_subject(small_atlas, torch.Generator().manual_seed(subject_seed(Split.TEST, 1)))
    R = g.rotvec_to_matrix(torch.tensor([0.3, -2.2, 1.1], dtype=F64))
    t = torch.tensor([7.0, -5.0, 3.0], dtype=F64)
    return small_atlas, subject.with_data(move_volume(subject, R, t)[0, 0]), R, t


def test_centre_of_gravity_and_pose_stages_with_a_perfect_pose_net(case):
    atlas, moving, R, t = case
    result = DeepRegistration(atlas, OraclePose(R), probes=None)(moving)
    R1, t1 = result.stages["pose-net"]
    torch.testing.assert_close(R1, R, atol=1e-6, rtol=0)
    assert float((t1 - t).norm()) < 5.0  # the centroids of subject and atlas differ a little
    assert set(result.seconds) == {"centre of gravity", "networks"}
    assert set(result.quality) == {"agreement", "brain_nmi"} and 1.0 <= result.quality["brain_nmi"] <= 2.0


def test_correction_composes_as_t1_then_t2(case):
    atlas, moving, R, t = case
    R_err = g.rotvec_to_matrix(torch.tensor([0.2, 0.1, -0.25], dtype=F64))
    first = DeepRegistration(atlas, OraclePose(R @ R_err.mT), probes=None)(moving)
    R1, t1 = first.stages["pose-net"]
    # The residual that makes T1 o T2 exact: R2 = R1^T R, t2 = R1^T (t - t1).
    oracle = OracleCorrection(R1.mT @ R, R1.mT @ (t - t1))
    result = DeepRegistration(atlas, OraclePose(R @ R_err.mT), oracle, probes=None)(moving)
    torch.testing.assert_close(result.R, R, atol=1e-5, rtol=0)
    torch.testing.assert_close(result.t, t, atol=1e-4, rtol=0)
    aligned = DeepRegistration(atlas, OraclePose(R @ R_err.mT), oracle, probes=None).aligned_image(moving, result)
    assert aligned.shape == atlas.image.shape


def test_repeated_correction_composes_each_pass(case):
    atlas, moving, R, t = case
    pose = OraclePose(R)
    R2 = g.rotvec_to_matrix(torch.tensor([0.05, -0.02, 0.03], dtype=F64))
    t2 = torch.tensor([1.0, -2.0, 0.5], dtype=F64)
    oracle = OracleCorrection(R2, t2)
    R1, t1 = DeepRegistration(atlas, pose, probes=None)(moving).stages["pose-net"]
    result = DeepRegistration(atlas, pose, oracle, correction_steps=3, probes=None)(moving)
    R_expected, t_expected = R1, t1
    for _ in range(3):  # T = T1 o T2 o T2 o T2
        R_expected, t_expected = R_expected @ oracle.to_matrix(oracle.v[None])[0], t_expected + R_expected @ t2.float().double()
    torch.testing.assert_close(result.R, R_expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(result.t, t_expected, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="correction_steps"):
        DeepRegistration(atlas, pose, oracle, correction_steps=0)
    with pytest.raises(ValueError, match="pose_steps"):
        DeepRegistration(atlas, pose, oracle, pose_steps=0)


class ResidualOracle(nn.Module):
    """A Pose-Net that is right only about small rotations: it returns the residual it is
    told, unless the view is the first one (then a wrong guess)."""

    def __init__(self, first: torch.Tensor, second: torch.Tensor) -> None:
        super().__init__()
        self.first, self.second, self.calls = g.matrix_to_rotvec(first).float(), g.matrix_to_rotvec(second).float(), 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return (self.first if self.calls == 1 else self.second).expand(x.shape[0], 3)

    def to_matrix(self, v: torch.Tensor) -> torch.Tensor:
        return g.rotvec_to_matrix(v.double())


def test_a_second_pose_pass_composes_with_the_first(case):
    atlas, moving, R, t = case
    wrong = g.rotvec_to_matrix(torch.tensor([1.4, 0.2, 0.0], dtype=F64))  # a failed first pass
    net = ResidualOracle(wrong, wrong.mT @ R)  # the second pass sees the residual wrong^T R
    result = DeepRegistration(atlas, net, pose_steps=2, probes=None)(moving)
    torch.testing.assert_close(result.stages["pose-net"][0], R, atol=1e-5, rtol=0)


def test_coarse_centre_of_gravity_matches_the_full_resolution_centroid(case):
    from posereg.data import antialiased, load_mni152
    from posereg.registration.moments import centre_of_gravity
    from posereg.registration.pipeline import coarse_centre_of_gravity

    atlas, moving, _, _ = case
    fine = centre_of_gravity(moving)
    coarse = coarse_centre_of_gravity(moving, antialiased(moving, 4.8), 4.8)
    assert float((coarse - fine).norm()) < 1.5  # mm, on a 4.8 mm grid viewed at 9.6 mm
    # A 2 mm template with a large field of view, its grid off-centre from the brain.
    mni = load_mni152(resolution_mm=2)
    fine = centre_of_gravity(mni.image)
    coarse = coarse_centre_of_gravity(mni.image, antialiased(mni.image, 3.0), 3.0)
    assert float((coarse - fine).norm()) < 1.5


def _tiny_models(tmp_path):
    torch.manual_seed(0)
    sizes = {"channels": (4, 8), "pool_before": (1,), "fc": (16,), "pooled_size": 2}
    paths = []
    for net, name in ((VolumePoseNet(**sizes), "pose.pt"), (CorrectionNet(**sizes), "correction.pt")):
        torch.save({"spec": net.spec, "state_dict": net.state_dict()}, tmp_path / name)
        paths.append(tmp_path / name)
    save_pipeline_model(tmp_path / "pipeline.pt", *paths)
    return tmp_path / "pipeline.pt"


def test_register_cli_writes_a_tfm_that_maps_points_like_the_pipeline(tmp_path, case, capsys):
    atlas, moving, _, _ = case
    save_nifti(atlas.image, tmp_path / "atlas.nii.gz")
    save_nifti(moving, tmp_path / "moving.nii.gz")
    model = _tiny_models(tmp_path)
    argv = [str(tmp_path / "moving.nii.gz"), "--atlas", str(tmp_path / "atlas.nii.gz"), "--grid-size", "40",
            "--spacing", "4.8", "--model", str(model), "--out-transform", str(tmp_path / "T.tfm"),
            "--out-image", str(tmp_path / "aligned.nii.gz"), "--out-result", str(tmp_path / "r.json"),
            "--no-fallback"]  # fmt: skip
    code = main(["register", *argv])
    captured = capsys.readouterr()
    out = captured.out
    assert "rotation:" in out and "degrees about axis" in out and "mm (RAS)" in out and "verdict:" in out
    # Untrained networks: the verdict may go either way, but the exit status, the JSON record
    # and the message must tell the same story.
    import json

    record = json.loads((tmp_path / "r.json").read_text())
    assert code == (3 if record["status"] == "doubtful" else 0)
    assert (code == 3) == ("doubtful" in captured.err)
    assert set(record["quality"]) == {"agreement", "brain_nmi"} and record["method"] == "networks + refinement"
    # The pipeline's own transform, recomputed in-process from the same files.
    from posereg.data import WorkingGrid, load_atlas

    # What the command does: the user's atlas on the grid of --grid-size and --spacing.
    atlas_used = load_atlas(WorkingGrid(shape=40, spacing=4.8), load_nifti(tmp_path / "atlas.nii.gz"))
    from posereg.registration import RefineSettings  # register refines by default

    ours = load_pipeline_model(model).pipeline(atlas_used, RefineSettings())(load_nifti(tmp_path / "moving.nii.gz"))
    transform = sitk.ReadTransform(str(tmp_path / "T.tfm"))
    flip = np.array([-1.0, -1.0, 1.0])
    points = 60 * torch.randn(8, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    expected = (points - ours.centre) @ ours.R.T + ours.centre + ours.t
    for p, q in zip(points.numpy(), expected.numpy(), strict=True):
        np.testing.assert_allclose(np.asarray(transform.TransformPoint((p * flip).tolist())) * flip, q, atol=1e-4)
    aligned = load_nifti(tmp_path / "aligned.nii.gz")
    assert aligned.shape == (40, 40, 40)


def test_register_cli_errors(tmp_path, capsys):
    model = _tiny_models(tmp_path)
    code = main(["register", str(tmp_path / "none.nii.gz"), "--model", str(model), "--out-transform", str(tmp_path / "T.tfm")])
    assert code == 2 and "none.nii.gz" in capsys.readouterr().err
    save_nifti(Volume(torch.rand(8, 8, 8), torch.eye(4, dtype=F64)), tmp_path / "m.nii.gz")
    torch.save({"nothing": 1}, tmp_path / "bad.pt")
    code = main(["register", str(tmp_path / "m.nii.gz"), "--model", str(tmp_path / "bad.pt"),
                 "--grid-size", "16", "--spacing", "12", "--out-transform", str(tmp_path / "T.tfm")])  # fmt: skip
    assert code == 2 and "not a posereg pipeline model" in capsys.readouterr().err


def test_the_atlas_grid_must_be_the_networks_working_grid(small_atlas):
    from posereg.data import Atlas

    oblique = small_atlas.image.affine.clone()
    oblique[:3, :3] = g.rotvec_to_matrix(torch.tensor([0.0, 0.0, 0.3], dtype=F64)) @ oblique[:3, :3]
    bad = Atlas(Volume(small_atlas.image.data, oblique), small_atlas.mask, small_atlas.contrast)
    with pytest.raises(ValueError, match="cubic, isotropic, RAS-aligned"):
        DeepRegistration(bad, OraclePose(torch.eye(3, dtype=F64)))


def test_half_precision_bundles_load_as_float32_and_record_the_settings(tmp_path):
    model = _tiny_models(tmp_path)
    half = tmp_path / "half.pt"
    save_pipeline_model(half, tmp_path / "pose.pt", tmp_path / "correction.pt", correction_steps=2, pose_steps=3,
                        half=True)  # fmt: skip
    full, loaded = load_pipeline_model(model), load_pipeline_model(half)
    assert (loaded.correction_steps, loaded.pose_steps) == (2, 3) and full.correction_steps == full.pose_steps == 1
    assert all(p.dtype == torch.float32 for p in loaded.pose.parameters())
    x = torch.rand(1, 1, 16, 16, 16)
    with torch.no_grad():  # float16 weights: about 3 significant digits
        torch.testing.assert_close(loaded.pose(x), full.pose(x), atol=2e-2, rtol=0)
    assert half.stat().st_size < model.stat().st_size
    with pytest.raises(ValueError, match="correction_steps"):
        save_pipeline_model(half, tmp_path / "pose.pt", None, correction_steps=0)


def test_bundle_cli(tmp_path, capsys):
    _tiny_models(tmp_path)
    out = tmp_path / "bundle.pt"
    argv = ["bundle", "--pose", str(tmp_path / "pose.pt"), "--correction", str(tmp_path / "correction.pt"),
            "--correction-steps", "2", "--half", "--output", str(out)]  # fmt: skip
    assert main(argv) == 0 and "1 pose and 2 correction pass(es)" in capsys.readouterr().out
    assert load_pipeline_model(out).correction_steps == 2
    assert main(["bundle", "--pose", str(tmp_path / "missing.pt"), "--output", str(out)]) == 2
    assert "missing.pt" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_register_refuses_a_device_the_machine_lacks(tmp_path, capsys):
    model = _tiny_models(tmp_path)
    save_nifti(Volume(torch.rand(8, 8, 8), torch.eye(4, dtype=F64)), tmp_path / "m.nii.gz")
    for extra in ([], ["--out-dir", str(tmp_path / "out")]):
        args = ["--out-transform", str(tmp_path / "T.tfm")] if not extra else extra
        code = main(["register", str(tmp_path / "m.nii.gz"), "--model", str(model), "--device", "cuda", *args])
        assert code == 2 and "no usable CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "T.tfm").exists() and not (tmp_path / "out").exists()


def test_the_pipelines_inference_copies_compute_what_the_networks_do(small_atlas):
    """Folded batch norms and channels-last weights are a speed-up only: same rotations, same corrections."""
    torch.manual_seed(1)
    sizes = {"channels": (4, 8), "pool_before": (0,), "fc": (16,), "pooled_size": 2}
    pose, correction = VolumePoseNet(**sizes), CorrectionNet(**sizes)
    for net in (pose, correction):  # non-trivial batch-norm statistics, as after training
        for m in net.modules():
            if isinstance(m, nn.BatchNorm3d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    pose.eval()
    correction.eval()
    pipeline = DeepRegistration(small_atlas, pose, correction, probes=None)
    conv = next(p for p in pipeline.pose_net.parameters() if p.dim() == 5)
    assert conv.is_contiguous(memory_format=torch.channels_last_3d)
    x = torch.rand((3, 1, *small_atlas.image.shape), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(pipeline._rotations(pipeline.pose_net, x), pose.to_matrix(pose(x)).double(),
                                   atol=1e-5, rtol=0)  # fmt: skip
        pair = torch.cat((x, x.flip(2)), 1)
        for got, want in zip(pipeline.correction_net(pair.contiguous(memory_format=torch.channels_last_3d)),
                             correction(pair), strict=True):  # fmt: skip
            torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
