"""Fixtures shared by every test package."""

from __future__ import annotations

import pytest
import torch

DTYPES = (torch.float32, torch.float64)


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """posereg's caches (atlas, compiled kernels) in a folder of this test session, not the user's."""
    import os

    previous = os.environ.get("POSEREG_CACHE_DIR")
    os.environ["POSEREG_CACHE_DIR"] = str(tmp_path_factory.mktemp("posereg-cache"))
    yield
    if previous is None:
        os.environ.pop("POSEREG_CACHE_DIR", None)
    else:
        os.environ["POSEREG_CACHE_DIR"] = previous


@pytest.fixture(params=DTYPES, ids=["float32", "float64"])
def dtype(request: pytest.FixtureRequest) -> torch.dtype:
    return request.param


@pytest.fixture(scope="session")
def small_atlas():  # type: ignore[no-untyped-def]
    """MNI152 T1 on 40^3 voxels of 4.8 mm (the same 192 mm field of view as 64^3 x 3 mm)."""
    from posereg.data import Contrast, WorkingGrid, load_atlas

    return load_atlas(WorkingGrid(contrast=Contrast.T1, shape=40, spacing=4.8, resolution_mm=2))


@pytest.fixture(scope="session")
def small_head(small_atlas):  # type: ignore[no-untyped-def]
    """The synthetic-head model on a 4 mm canvas, with the small atlas as working grid."""
    from posereg.data.head_model import build_head_model

    return build_head_model(small_atlas, spacing=4.0, n_points=512)


def write_tiny_pipeline(folder):  # type: ignore[no-untyped-def]
    """An untrained Pose-Net + Correction-Net pipeline file on a 16^3 x 12 mm grid (for command tests)."""
    from posereg.data import WorkingGrid
    from posereg.models import CorrectionNet, VolumePoseNet
    from posereg.models.artifact import ModelArtifact, save_artifact
    from posereg.registration import save_pipeline_model

    torch.manual_seed(0)
    grid = WorkingGrid(shape=16, spacing=12.0, resolution_mm=2)
    small = {"channels": (4, 8), "pool_before": (1,), "fc": (16,), "pooled_size": 2}
    for net, name in ((VolumePoseNet(**small), "pose.pt"), (CorrectionNet(**small), "correction.pt")):
        save_artifact(ModelArtifact.of_network(net, {}, grid.record()), folder / name)
    save_pipeline_model(folder / "pipeline.pt", folder / "pose.pt", folder / "correction.pt")
    return folder / "pipeline.pt"
