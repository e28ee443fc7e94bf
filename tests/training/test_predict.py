"""`posereg predict`: register's batch mode over Lightning's processes (2 CPU processes, gloo, as on a cluster)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import posereg
from posereg.cli import main
from posereg.data import Volume, save_nifti
from tests.conftest import write_tiny_pipeline
from tests.training.test_ddp import _can_run_ddp

MM6 = torch.diag(torch.tensor([6.0, 6.0, 6.0, 1.0], dtype=torch.float64))
SAME = ("input", "status", "rotation_deg", "matrix", "translation_mm", "quality", "method", "error")


@pytest.fixture(scope="module")
def scans(tmp_path_factory):  # type: ignore[no-untyped-def]
    d = tmp_path_factory.mktemp("predict")
    (d / "model.pt").write_bytes(write_tiny_pipeline(d).read_bytes())
    head = torch.zeros(32, 32, 32)
    head[6:26, 8:24, 10:22] = 1.0 + 0.1 * torch.arange(12.0)
    paths = []
    for k, data in enumerate([head, head.flip(0), head.flip(1), torch.rand(32, 32, 32, generator=torch.Generator().manual_seed(1)),
                              head.transpose(0, 1), head.flip(2)]):  # fmt: skip
        paths.append(d / f"scan{k}.nii.gz")
        save_nifti(Volume(data, MM6), paths[-1])
    return d, paths


def _rows(folder: Path) -> list[dict]:  # type: ignore[type-arg]
    return json.loads((folder / "results.json").read_text())


def test_two_processes_share_the_scans_and_give_the_one_process_table(scans, capsys):
    reason = _can_run_ddp()
    if reason:
        pytest.skip(reason)
    d, paths = scans
    common = [*map(str, paths), "--model", str(d / "model.pt"), "--no-fallback", "--no-refine", "--quiet"]
    assert main(["register", *common, "--out-dir", str(d / "one")]) == 2  # the noise scan fails
    capsys.readouterr()
    src = str(Path(posereg.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
    # Lightning starts the second process itself (as on one machine; torchrun and SLURM start both).
    command = [sys.executable, "-m", "posereg", "predict", *common, "--out-dir", str(d / "two"), "--devices", "2",
               "--strategy", "ddp"]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, timeout=600, check=False)
    err = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 2, err[-3000:]
    assert err.count("scan3.nii.gz: moving image: not a head or brain MRI") == 1  # printed once, by the first process
    one, two = _rows(d / "one"), _rows(d / "two")
    assert [r["input"] for r in two] == list(map(str, paths))
    for a, b in zip(one, two, strict=True):
        assert {k: a.get(k) for k in SAME} == {k: b.get(k) for k in SAME}
    assert {r["process"] for r in two} == {0, 1}  # each process registered a share
    assert sorted(p.name for p in (d / "two").iterdir()) == sorted(p.name for p in (d / "one").iterdir())


def test_one_process_predict_equals_register(scans, capsys):
    d, paths = scans
    common = [str(paths[0]), str(paths[1]), "--model", str(d / "model.pt"), "--no-fallback", "--quiet"]
    assert main(["predict", *common, "--out-dir", str(d / "p1")]) in (0, 3)
    assert capsys.readouterr().err == ""  # --quiet: not even Lightning's start-up lines
    assert main(["register", *common, "--out-dir", str(d / "r1")]) in (0, 3)
    for a, b in zip(_rows(d / "p1"), _rows(d / "r1"), strict=True):
        assert {k: a.get(k) for k in SAME} == {k: b.get(k) for k in SAME} and a["process"] == 0


@pytest.mark.parametrize(("extra", "message"), [(["--devices", "zero"], "devices"), (["--num-nodes", "0"], "num_nodes"),
                                               (["--transform-format", "fsl"], "batches write itk or ras")])  # fmt: skip
def test_bad_process_settings_are_refused(scans, capsys, extra, message):
    d, paths = scans
    code = main(["predict", str(paths[0]), "--model", str(d / "model.pt"), "--out-dir", str(d / "bad"), *extra])
    assert code == 2 and message in capsys.readouterr().err
