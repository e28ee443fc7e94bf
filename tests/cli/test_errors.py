"""The command line's error boundary: bad input gives one line on stderr and status 2, never a traceback."""

import gzip
import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch

from posereg.cli import main
from posereg.data import Volume, save_nifti


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad-inputs")
    (d / "text.nii.gz").write_text("not an image")
    mm6 = torch.diag(torch.tensor([6.0, 6.0, 6.0, 1.0], dtype=torch.float64))
    head = torch.zeros(32, 32, 32)
    head[6:26, 8:24, 10:22] = 1.0 + 0.1 * torch.arange(12.0)  # a smooth block: passes the content checks
    save_nifti(Volume(head, mm6), d / "scan.nii.gz")
    save_nifti(Volume(torch.rand(32, 32, 32, generator=torch.Generator().manual_seed(0)), mm6), d / "noise.nii.gz")
    save_nifti(Volume(torch.full((32, 32, 32), 7.0), mm6), d / "constant.nii.gz")
    dot = torch.zeros(32, 32, 32)
    dot[16, 16, 16] = 100.0
    save_nifti(Volume(dot, mm6), d / "dot.nii.gz")
    save_nifti(Volume(-1.0 - head, mm6), d / "negative.nii.gz")
    save_nifti(Volume(torch.ones(1, 1, 1), mm6), d / "one-voxel.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((32, 32, 32), np.complex64), np.diag([6.0, 6.0, 6.0, 1.0])), str(d / "complex.nii.gz"))
    nib.save(nib.Nifti1Image(head.numpy(), np.diag([1e-4, 1e-4, 1e-4, 1.0])), str(d / "tiny-voxels.nii.gz"))
    nib.save(nib.Nifti1Image(head.numpy(), np.diag([1e6, 1e6, 1e6, 1.0])), str(d / "huge-voxels.nii.gz"))
    # A 10000^3 header over a few bytes of data: refused from the header, before reading.
    header = nib.Nifti1Header()
    header.set_data_shape((10000, 10000, 10000))
    header.set_data_dtype(np.uint8)
    header.set_qform(np.diag([-1.0, 1.0, 1.0, 1.0]), code=1)
    header.set_sform(np.diag([-1.0, 1.0, 1.0, 1.0]), code=1)
    (d / "huge-grid.nii").write_bytes(header.binaryblock + b"\0" * 4 + b"\0" * 64)
    (d / "readonly").mkdir()
    (d / "readonly").chmod(0o555)
    data = gzip.decompress((d / "scan.nii.gz").read_bytes())
    (d / "truncated.nii.gz").write_bytes(gzip.compress(data[: len(data) // 2]))
    (d / "junk.pt").write_bytes(b"\x00junk")
    (d / "syntax.yaml").write_text("network: pose\n  seed: [\n")
    (d / "unknown.yaml").write_text("network: pose\nnot_a_section: 1\n")
    (d / "list.yaml").write_text("- 1\n- 2\n")
    return d


# (argv with {d} for the folder, the command name the message starts with, a fragment of the message)
CASES = [
    (["register", "{d}/missing.nii.gz", "--out-transform", "{d}/T.tfm"], "register", "missing.nii.gz"),
    (["register", "{d}/text.nii.gz", "--out-transform", "{d}/T.tfm"], "register", "text.nii.gz"),
    (["register", "{d}/truncated.nii.gz", "--out-transform", "{d}/T.tfm"], "register", "truncated.nii.gz"),
    (["register", "{d}/scan.nii.gz", "--model", "{d}/junk.pt", "--out-transform", "{d}/T.tfm"], "register", "junk.pt"),
    (["register", "{d}/scan.nii.gz", "--model", "{d}/missing.pt", "--out-transform", "{d}/T.tfm"], "register", "missing.pt"),
    (["register", "{d}/scan.nii.gz", "--grid-size", "100000", "--out-transform", "{d}/T.tfm"], "register", "shape"),
    (["register", "{d}/noise.nii.gz", "--out-transform", "{d}/T.tfm"], "register", "no anatomical structure"),
    (["register", "{d}/constant.nii.gz", "--out-transform", "{d}/T.tfm"], "register", "constant"),
    (["register", "{d}/dot.nii.gz", "--out-transform", "{d}/T.tfm"], "register", "nearly empty"),
    (["register", "{d}/negative.nii.gz", "--out-transform", "{d}/T.tfm"], "register", "no positive intensities"),
    (["register", "{d}/one-voxel.nii.gz", "--out-transform", "{d}/T.tfm"], "register", "constant"),
    (["register", "{d}/complex.nii.gz", "--out-transform", "{d}/T.tfm"], "register", "complex data"),
    (["register", "{d}/tiny-voxels.nii.gz", "--out-transform", "{d}/T.tfm"], "register", "voxel size"),
    (["register", "{d}/huge-voxels.nii.gz", "--out-transform", "{d}/T.tfm"], "register", "voxel size"),
    (["register", "{d}/huge-grid.nii", "--out-transform", "{d}/T.tfm"], "register", "more than posereg reads"),
    (["register", "{d}/scan.nii.gz", "--out-transform", "{d}/T.tfm", "--out-image", "{d}/scan.nii.gz"], "register",
     "would replace an input"),
    (["register", "{d}/scan.nii.gz", "--out-transform", "{d}/T.tfm", "--out-image", "{d}/T.tfm"], "register",
     "expected a file ending in .nii"),
    (["register", "{d}/scan.nii.gz", "--out-transform", "{d}/T.npy"], "register", "expected a file ending in .tfm"),
    (["register", "{d}/scan.nii.gz", "--out-transform", "{d}/T.mat", "--transform-format", "fsl"], "register",
     "FLIRT matrices are relative to a reference image"),
    (["register", "{d}/scan.nii.gz", "--out-transform", "{d}/T.tfm", "--transform-format", "ras"], "register",
     "expected a file ending in .txt or .mat"),
    (["register", "{d}/scan.nii.gz", "--out-transform", "{d}/readonly/T.tfm"], "register", "cannot write"),
    (["register", "{d}/scan.nii.gz", "--out-transform", "{d}/readonly"], "register", "expected a file ending"),
    (["register", "{d}/scan.nii.gz", "--spacing", "nan", "--out-transform", "{d}/T.tfm"], "register", "spacing"),
    (["locate-slice", "{d}/scan.nii.gz", "--model", "{d}/missing.pt"], "locate-slice", "missing.pt"),
    (["locate-slice", "{d}/scan.nii.gz", "--model", "{d}/junk.pt"], "locate-slice", "junk.pt"),
    (["bundle", "--pose", "{d}/missing.pt", "--output", "{d}/out.pt"], "bundle", "missing.pt"),
    (["bundle", "--pose", "{d}/junk.pt", "--output", "{d}/junk.pt"], "bundle", "would replace an input"),
    (["train", "volume", "--config", "{d}/syntax.yaml", "--output", "{d}/run"], "train volume", "syntax.yaml"),
    (["train", "volume", "--config", "{d}/unknown.yaml", "--output", "{d}/run"], "train volume", "not_a_section"),
    (["train", "slice", "--config", "{d}/list.yaml", "--output", "{d}/run"], "train slice", "list.yaml"),
    (["train", "reloc", "--config", "{d}/missing.yaml", "--output", "{d}/run"], "train reloc", "missing.yaml"),
    (["evaluate", "reloc", "--model", "{d}/missing.pt"], "evaluate reloc", "missing.pt"),
    (["evaluate", "reloc", "--model", "{d}/junk.pt"], "evaluate reloc", "junk.pt"),
    (["evaluate", "reloc", "--model", "{d}/junk.pt", "--plot", "{d}/plot.txt"], "evaluate reloc", "ending in .png"),
    (["bundle", "--pose", "{d}/junk.pt", "--output", "{d}/out.tfm"], "bundle", "ending in .pt"),
    (["demo", "--output", "{d}/text.nii.gz"], "demo", "is a file, not a folder"),
    (["geometry", "--count", "0"], "geometry", "--count"),
    (["demo", "--angles", "200"], "demo", "--angles"),
]


@pytest.mark.parametrize(("argv", "command", "fragment"), CASES, ids=[" ".join(c[0][:2]) + f" #{i}" for i, c in enumerate(CASES)])
def test_bad_input_gives_one_line_and_status_2(files, capsys, argv, command, fragment):
    if fragment == "cannot write" and os.geteuid() == 0:
        pytest.skip("root may write in a read-only folder")
    code = main([a.format(d=files) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"posereg {command}: ") and fragment in lines[0], err
    assert "Traceback" not in err


def test_debug_shows_the_traceback_instead(files):
    with pytest.raises(FileNotFoundError):
        main(["register", str(files / "missing.nii.gz"), "--out-transform", str(files / "T.tfm"), "--debug"])
    with pytest.raises(ValueError, match="--count"):
        main(["--debug", "geometry", "--count", "0"])


def test_an_internal_error_is_one_line_with_a_hint_and_status_1(monkeypatch, capsys):
    from posereg.cli import geometry

    def broken(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(geometry, "run", broken)
    assert main(["geometry"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("posereg geometry: internal error: RuntimeError: a bug") and "--debug" in err


def test_a_closed_pipe_is_not_an_error():
    # 'posereg geometry --count 2000 | head -n 1': the reader leaves early.
    reader = subprocess.Popen(["head", "-n", "1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    writer = subprocess.run([sys.executable, "-m", "posereg.cli", "geometry", "--count", "2000"], stdout=reader.stdin,
                            stderr=subprocess.PIPE, encoding="utf-8", errors="replace", timeout=120)  # fmt: skip
    reader.stdin.close()
    assert reader.wait(timeout=30) == 0
    assert writer.returncode == 0 and "Traceback" not in writer.stderr and "Error" not in writer.stderr
