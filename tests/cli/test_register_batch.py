"""`posereg register SCAN... --out-dir`: one row per scan, a failed scan does not stop the batch."""

import csv
import json

import numpy as np
import pytest
import torch

from posereg.cli import main
from posereg.data import Volume, save_nifti
from tests.conftest import write_tiny_pipeline

MM6 = torch.diag(torch.tensor([6.0, 6.0, 6.0, 1.0], dtype=torch.float64))


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    d = tmp_path_factory.mktemp("batch")
    (d / "model.pt").write_bytes(write_tiny_pipeline(d).read_bytes())
    head = torch.zeros(32, 32, 32)
    head[6:26, 8:24, 10:22] = 1.0 + 0.1 * torch.arange(12.0)
    save_nifti(Volume(head, MM6), d / "a.nii.gz")
    save_nifti(Volume(head.flip(0), MM6), d / "b.nii.gz")
    save_nifti(Volume(torch.rand(32, 32, 32, generator=torch.Generator().manual_seed(1)), MM6), d / "noise.nii.gz")
    return d


def test_a_batch_writes_a_row_per_scan_and_goes_on_after_a_failure(batch, capsys):
    out = batch / "out"
    scans = [batch / "a.nii.gz", batch / "noise.nii.gz", batch / "b.nii.gz", batch / "missing.nii.gz"]
    code = main(["register", *map(str, scans), "--model", str(batch / "model.pt"), "--out-dir", str(out),
                 "--no-fallback", "--write-images", "--quiet"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""  # two failed scans; --quiet prints nothing else
    assert "noise.nii.gz: moving image: not a head or brain MRI" in captured.err and "missing.nii.gz" in captured.err
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [r["input"] for r in rows] == list(map(str, scans))
    assert [r["status"] in ("ok", "doubtful") for r in rows] == [True, False, True, False]
    assert rows[1]["status"] == rows[3]["status"] == "failed" and "no anatomical structure" in rows[1]["error"]
    assert sorted(p.name for p in out.iterdir()) == ["a.tfm", "a_aligned.nii.gz", "b.tfm", "b_aligned.nii.gz",
                                                      "results.csv", "results.json"]  # fmt: skip
    records = json.loads((out / "results.json").read_text())
    assert records[0]["outputs"] == [str(out / "a.tfm"), str(out / "a_aligned.nii.gz")]
    assert set(records[0]["quality"]) == {"agreement", "brain_nmi"} and len(records[0]["matrix"]) == 3
    # The rotation in the table is the one in the transform file.
    from posereg.registration import read_rigid_transform

    R, _, _ = read_rigid_transform(out / "a.tfm")
    np.testing.assert_allclose(np.asarray(records[0]["matrix"]), R.numpy(), atol=1e-6)


def test_json_output_and_ras_matrices(batch, capsys):
    out = batch / "json"
    code = main(["register", str(batch / "a.nii.gz"), "--model", str(batch / "model.pt"), "--out-dir", str(out),
                 "--no-fallback", "--json", "--transform-format", "ras"])  # fmt: skip
    records = json.loads(capsys.readouterr().out)
    assert code in (0, 3) and len(records) == 1 and records[0]["outputs"] == [str(out / "a.txt")]
    assert np.loadtxt(out / "a.txt").shape == (4, 4)


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--out-transform", "T.tfm"], "--out-dir writes every output"),
     (["--transform-format", "fsl"], "batches write itk or ras transforms")],
)  # fmt: skip
def test_bad_batch_arguments_are_refused(batch, capsys, extra, message):
    code = main(["register", str(batch / "a.nii.gz"), "--model", str(batch / "model.pt"),
                 "--out-dir", str(batch / "bad"), *extra])  # fmt: skip
    assert code == 2 and message in capsys.readouterr().err


def test_two_scans_with_one_name_are_refused_before_any_work(batch, tmp_path, capsys):
    (tmp_path / "x").mkdir()
    save_nifti(Volume(torch.ones(32, 32, 32), MM6), tmp_path / "x" / "a.nii.gz")
    code = main(["register", str(batch / "a.nii.gz"), str(tmp_path / "x" / "a.nii.gz"), "--model",
                 str(batch / "model.pt"), "--out-dir", str(tmp_path / "out")])  # fmt: skip
    assert code == 2 and "would write the same outputs (a)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_one_scan_without_out_dir_needs_an_output(batch, capsys):
    assert main(["register", str(batch / "a.nii.gz"), "--model", str(batch / "model.pt")]) == 2
    assert "one scan takes --out-transform" in capsys.readouterr().err


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("posereg ")
