"""The package's shape: every package star-imports, and inference commands never import training."""

import importlib
import json
import subprocess
import sys

import pytest
import torch

from posereg.data import Volume, WorkingGrid, save_nifti
from posereg.models.artifact import ModelArtifact, save_artifact
from posereg.models.slice import SlicePoseNet
from tests.conftest import write_tiny_pipeline

PACKAGES = ["geometry", "accel", "losses", "models", "data", "registration", "evaluation", "training", "cli"]


@pytest.mark.parametrize("package", PACKAGES)
def test_star_import_works_for_every_package(package):
    namespace: dict = {}
    exec(f"from posereg.{package} import *", namespace)  # noqa: S102 - the point of the test
    module = importlib.import_module(f"posereg.{package}")
    assert set(module.__all__) <= set(namespace), f"posereg.{package}.__all__ names what it lacks"


_PROBE = """
import json, sys
from posereg.cli import main
code = main(sys.argv[1:])
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("lightning", "pytorch_lightning", "lightning_fabric")
                or m.startswith("posereg.training"))
lightning = sorted(m for m in loaded if not m.startswith("posereg"))
print(json.dumps({"code": code, "loaded": loaded, "lightning": lightning}))
"""


def _probe(argv):
    done = subprocess.run([sys.executable, "-c", _PROBE, *map(str, argv)], capture_output=True, encoding="utf-8", errors="replace", timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_inference_commands_never_import_lightning(tmp_path):
    write_tiny_pipeline(tmp_path)
    grid = WorkingGrid(shape=16, spacing=12.0, resolution_mm=2)
    head = torch.zeros(32, 32, 32)
    head[6:26, 8:24, 10:22] = 1.0
    save_nifti(Volume(head, torch.diag(torch.tensor([6.0, 6.0, 6.0, 1.0], dtype=torch.float64))), tmp_path / "m.nii.gz")
    register = _probe(["register", tmp_path / "m.nii.gz", "--model", tmp_path / "pipeline.pt", "--no-fallback",
                       "--out-transform", tmp_path / "T.tfm"])  # fmt: skip
    assert register["code"] in (0, 3) and register["loaded"] == [] and register["lightning"] == []
    assert (tmp_path / "T.tfm").is_file()
    save_artifact(ModelArtifact.of_network(SlicePoseNet(width=0.125), {}, grid.record()), tmp_path / "slice.pt")
    save_nifti(Volume(head[:, :, 16:17], torch.diag(torch.tensor([6.0, 6.0, 6.0, 1.0], dtype=torch.float64))),
               tmp_path / "s.nii.gz")  # fmt: skip
    located = _probe(["locate-slice", tmp_path / "s.nii.gz", "--model", tmp_path / "slice.pt"])
    assert located["code"] in (0, 3) and located["loaded"] == [] and located["lightning"] == []
    # Evaluating a relocalisation model reads it through training's configuration schema, but
    # never imports Lightning (the file is refused as a PoseNet model after the imports happened).
    evaluated = _probe(["evaluate", "reloc", "--model", tmp_path / "slice.pt"])
    assert evaluated["code"] == 2 and "posereg.training.reloc_model" in evaluated["loaded"]
    assert evaluated["lightning"] == []
