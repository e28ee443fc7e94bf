"""The bundled pipeline model: it loads, describes its grid, and registers held-out subjects.

Accuracy is checked on a few unseen test-family cases with loose bounds (the benchmark,
docs/benchmarks/volume_registration.md, measures it properly): a broken or mismatched
weights file, a preprocessing change the networks were not trained for, or a frame error in
the pipeline would fail these by tens of degrees.
"""

from __future__ import annotations

import statistics

import pytest
import torch

from posereg.data import Contrast, WorkingGrid, load_atlas
from posereg.evaluation import rotation_error_deg, synthetic_cases, translation_error_mm
from posereg.registration import load_pipeline_model, pretrained_pipeline_path


@pytest.fixture(scope="module")
def model():
    return load_pipeline_model(pretrained_pipeline_path())


def test_the_bundled_model_is_small_and_describes_its_grid(model):
    # float16 weights; the heads model's last convolutions are 128 wide (64 before): 11.1 MiB.
    assert pretrained_pipeline_path().stat().st_size < 12 * 2**20
    assert model.correction is not None and model.correction_steps >= 1
    assert (model.grid.contrast, model.grid.shape, model.grid.spacing) == (Contrast.T1, 64, 3.0)
    assert model.pose.spec["network"] == "pose" and model.correction.spec["network"] == "correction"


def test_the_bundled_model_registers_unseen_subjects_from_any_angle(model):
    atlas = load_atlas(WorkingGrid(contrast=Contrast.T1, shape=64, spacing=3.0))
    angles = [10.0, 50.0, 90.0, 130.0, 170.0]
    cases = synthetic_cases(atlas, subjects=1, rotations=len(angles), seed=123, angles_deg=angles)
    pipeline = model.pipeline(atlas)
    errors, shifts = [], []
    for case in cases:
        result = pipeline(case.moving)
        errors.append(float(rotation_error_deg(result.R, case.R)))
        shifts.append(float(translation_error_mm(result.t, case.t)))
    assert statistics.median(errors) < 10.0, errors
    assert statistics.median(shifts) < 6.0, shifts
    identity = torch.eye(3, dtype=torch.float64)
    start = [float(rotation_error_deg(identity, c.R)) for c in cases]
    assert sum(errors) < 0.2 * sum(start)  # far better than not moving at all
