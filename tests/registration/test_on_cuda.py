"""The registration pipeline with its networks on a CUDA device gives the CPU's answer: a tiny
untrained pipeline on a synthetic subject, the bundled one on a synthetic head, and the
``register --device cuda`` command end to end. Skipped without CUDA; run by ``benchmarks/device_session.sh``
on a lent GPU (this module needs no SimpleITK, which that machine lacks)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from posereg import geometry as g
from posereg.data import Split, move_volume, subject_seed, synthesize_subject
from posereg.registration.pipeline_model import load_pipeline_model, pretrained_pipeline_path

from ..conftest import write_tiny_pipeline

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
F64 = torch.float64


def _moved_subject(atlas):  # type: ignore[no-untyped-def]
    subject = synthesize_subject(atlas, torch.Generator().manual_seed(subject_seed(Split.TEST, 1)))
    R = g.rotvec_to_matrix(torch.tensor([0.3, -2.2, 1.1], dtype=F64))
    return subject.with_data(move_volume(subject, R, torch.tensor([7.0, -5.0, 3.0], dtype=F64))[0, 0])


def test_tiny_networks_on_cuda_give_the_cpu_result(tmp_path, small_atlas):
    model = load_pipeline_model(write_tiny_pipeline(tmp_path))
    moving = _moved_subject(small_atlas)
    on_cpu = model.pipeline(small_atlas)(moving)
    pipeline = model.pipeline(small_atlas, device="cuda")
    assert next(pipeline.pose_net.parameters()).device.type == "cuda"
    on_gpu = pipeline(moving)
    torch.testing.assert_close(on_gpu.R, on_cpu.R, atol=1e-3, rtol=0)
    torch.testing.assert_close(on_gpu.t, on_cpu.t, atol=1e-2, rtol=0)


def test_the_bundled_networks_on_cuda_give_the_cpu_result():
    """The shipped weights on their own 64^3 x 3 mm grid: within 0.5 degrees and 0.5 mm of the
    CPU (float32 on both; the networks' own error is several degrees)."""
    from posereg.data import load_atlas

    model = load_pipeline_model(pretrained_pipeline_path())
    atlas = load_atlas(model.grid)
    moving = _moved_subject(atlas)
    on_cpu, on_gpu = model.pipeline(atlas)(moving), model.pipeline(atlas, device="cuda")(moving)
    assert float(torch.rad2deg(g.geodesic_distance(on_gpu.R, on_cpu.R))) < 0.5
    assert float((on_gpu.t - on_cpu.t).norm()) < 0.5


def test_register_command_on_cuda_writes_the_cpu_result(tmp_path, small_atlas, capsys):
    """``posereg register --device cuda`` end to end (reading, networks, refinement, the JSON
    record, a RAS matrix file): the CPU's transform to float32 rounding."""
    import json

    from posereg.cli import main
    from posereg.data import save_nifti

    save_nifti(small_atlas.image, tmp_path / "atlas.nii.gz")
    save_nifti(_moved_subject(small_atlas), tmp_path / "moving.nii.gz")
    model = write_tiny_pipeline(tmp_path)
    records = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / f"{device}.json"
        code = main(["register", str(tmp_path / "moving.nii.gz"), "--atlas", str(tmp_path / "atlas.nii.gz"),
                     "--grid-size", "40", "--spacing", "4.8", "--model", str(model), "--no-fallback",
                     "--device", device, "--out-result", str(out), "--transform-format", "ras",
                     "--out-transform", str(tmp_path / f"{device}.txt")])  # fmt: skip
        assert code in (0, 3), capsys.readouterr().err  # untrained networks: either verdict
        records[device] = json.loads(out.read_text())
    cpu, cuda = records["cpu"], records["cuda"]
    assert cuda["status"] == cpu["status"] and cuda["method"] == cpu["method"]
    ras = {device: np.loadtxt(tmp_path / f"{device}.txt") for device in records}
    assert ras["cpu"].shape == (4, 4)
    np.testing.assert_allclose(ras["cuda"][:3, :3], ras["cpu"][:3, :3], atol=1e-3)
    np.testing.assert_allclose(ras["cuda"][:3, 3], ras["cpu"][:3, 3], atol=1e-2)
