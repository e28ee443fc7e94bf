"""Pipeline and slice model files: grids recorded and checked, bounded fields, nothing overwritten."""

import pytest
import torch

from posereg.data import Contrast, WorkingGrid
from posereg.models import CorrectionNet, VolumePoseNet
from posereg.models.artifact import ModelArtifact, read_payload, save_artifact
from posereg.models.slice import SlicePoseNet
from posereg.registration import load_pipeline_model, save_pipeline_model
from posereg.registration.slice_model import load_slice_model

SMALL = {"channels": (4, 8), "pool_before": (1,), "fc": (16,), "pooled_size": 2}
GRID = WorkingGrid(contrast=Contrast.T2, shape=16, spacing=12.0, resolution_mm=2)


def _save(tmp_path, net, name, grid=GRID, config=None):
    save_artifact(ModelArtifact.of_network(net, config or {}, grid.record()), tmp_path / name)
    return tmp_path / name


def test_the_pipeline_carries_the_grid_its_networks_were_trained_on(tmp_path):
    torch.manual_seed(0)
    pose, correction = _save(tmp_path, VolumePoseNet(**SMALL), "pose.pt"), _save(tmp_path, CorrectionNet(**SMALL), "c.pt")
    save_pipeline_model(tmp_path / "pipeline.pt", pose, correction, pose_steps=2)
    model = load_pipeline_model(tmp_path / "pipeline.pt")
    assert model.grid == GRID and model.pose_steps == 2 and model.correction is not None
    atlas = model.atlas()
    assert atlas.image.shape == (16, 16, 16) and atlas.contrast is Contrast.T2
    assert read_payload(tmp_path / "pipeline.pt")["format"] == "posereg-pipeline"


def test_bundling_refuses_mixed_grids_wrong_kinds_and_overwriting_an_input(tmp_path):
    torch.manual_seed(0)
    pose = _save(tmp_path, VolumePoseNet(**SMALL), "pose.pt")
    other = _save(tmp_path, CorrectionNet(**SMALL), "c.pt", WorkingGrid(shape=16, spacing=12.0, resolution_mm=2))
    with pytest.raises(ValueError, match="different grids"):
        save_pipeline_model(tmp_path / "p.pt", pose, other)
    with pytest.raises(ValueError, match="a correction network, expected pose"):
        save_pipeline_model(tmp_path / "p.pt", other, None)
    before = pose.read_bytes()
    with pytest.raises(ValueError, match="would replace an input"):
        save_pipeline_model(pose, pose, None)
    assert pose.read_bytes() == before
    with pytest.raises(ValueError, match="pose_steps: expected 1 to 16"):
        save_pipeline_model(tmp_path / "p.pt", pose, None, pose_steps=17)


@pytest.mark.parametrize("steps", [0, 10**9, 2.5, True, "2"])
def test_a_pipeline_file_with_unbounded_passes_is_refused(tmp_path, steps):
    torch.manual_seed(0)
    save_pipeline_model(tmp_path / "p.pt", _save(tmp_path, VolumePoseNet(**SMALL), "pose.pt"), None)
    payload = read_payload(tmp_path / "p.pt")
    torch.save({**payload, "pose_steps": steps}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="pose_steps must be an integer from 1 to 16"):
        load_pipeline_model(tmp_path / "bad.pt")


def test_a_slice_model_reads_its_grid_and_stack_range(tmp_path):
    torch.manual_seed(0)
    grid = WorkingGrid(shape=40, spacing=4.8, resolution_mm=2)
    path = _save(tmp_path, SlicePoseNet(width=0.125), "slice.pt", grid, {"data": {"middle_fraction": 0.5}})
    model = load_slice_model(path)
    assert model.grid == grid and model.middle_fraction == 0.5
    assert (model.geometry.size, model.geometry.spacing, model.geometry.stack) == (40, 4.8, 40)
    assert model.locator(model.atlas(), search_stack=True).search == (10, 30)
    torch.save({**read_payload(path), "config": {"data": {"middle_fraction": 1.5}}}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="middle_fraction"):
        load_slice_model(tmp_path / "bad.pt")
    torch.save({**read_payload(path), "grid": None}, tmp_path / "nogrid.pt")
    with pytest.raises(ValueError, match="does not record its working grid"):
        load_slice_model(tmp_path / "nogrid.pt")
    with pytest.raises(ValueError, match="a pose network, expected slice"):
        load_slice_model(_save(tmp_path, VolumePoseNet(**SMALL), "pose.pt"))
