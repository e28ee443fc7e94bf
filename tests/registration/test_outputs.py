"""One writer for a registration's files: all or none, the same files for a single scan and a batch."""

from __future__ import annotations

import json

import pytest
import torch

from posereg.data import Volume, XformCode, isotropic_affine
from posereg.data.image_io import load_image
from posereg.geometry import rotvec_to_matrix
from posereg.registration.apply import Interpolation
from posereg.registration.itk import read_rigid_transform
from posereg.registration.outputs import RegistrationOutputs, write_outputs
from posereg.registration.transform_files import TransformFormat

F64 = torch.float64


def _scan() -> Volume:
    data = torch.zeros(12, 12, 12)
    data[3:9, 4:8, 2:10] = torch.linspace(1.0, 2.0, 6 * 4 * 8).reshape(6, 4, 8)
    return Volume(data, isotropic_affine((12, 12, 12), 2.0, torch.tensor([1.0, -2.0, 3.0], dtype=F64)))


def _pose() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return rotvec_to_matrix(torch.tensor([0.1, -0.2, 0.3], dtype=F64)), torch.tensor([2.0, 0.5, -1.0], dtype=F64), torch.zeros(3, dtype=F64)


def test_every_output_is_written_and_reads_back(tmp_path):
    scan = _scan()
    R, t, c = _pose()
    outputs = RegistrationOutputs(tmp_path / "T.tfm", TransformFormat.ITK, tmp_path / "aligned.nii.gz",
                                  (scan, XformCode.ALIGNED), Interpolation.LINEAR, tmp_path / "result.json")  # fmt: skip
    paths = write_outputs(outputs, scan, R, t, c, json.dumps({"ok": 1}))
    assert paths == (tmp_path / "T.tfm", tmp_path / "aligned.nii.gz", tmp_path / "result.json")
    R2, t2, c2 = read_rigid_transform(tmp_path / "T.tfm")
    torch.testing.assert_close(R2 @ (torch.zeros(3, dtype=F64) - c2) + c2 + t2, R @ (torch.zeros(3, dtype=F64) - c) + c + t)
    assert load_image(tmp_path / "aligned.nii.gz").shape == scan.shape
    assert json.loads((tmp_path / "result.json").read_text()) == {"ok": 1}


def test_a_failing_output_leaves_nothing(tmp_path):
    """The image cannot be written (its folder is a file): the transform must not appear either."""
    scan = _scan()
    (tmp_path / "blocked").write_text("a file, not a folder")
    outputs = RegistrationOutputs(tmp_path / "T.tfm", image=tmp_path / "blocked" / "aligned.nii.gz",
                                  reference=(scan, XformCode.ALIGNED))  # fmt: skip
    with pytest.raises(OSError):
        write_outputs(outputs, scan, *_pose())
    assert not (tmp_path / "T.tfm").exists()


@pytest.mark.parametrize("bad", [
    {"image": "x.nii.gz"},  # no reference grid
    {"fmt": TransformFormat.FSL},  # no FLIRT grids
])  # fmt: skip
def test_incomplete_requests_are_refused(tmp_path, bad):
    with pytest.raises(ValueError):
        RegistrationOutputs(tmp_path / "T.tfm", **bad)


def test_a_record_needs_its_text(tmp_path):
    outputs = RegistrationOutputs(tmp_path / "T.tfm", record=tmp_path / "r.json")
    with pytest.raises(ValueError, match="record_text"):
        write_outputs(outputs, _scan(), *_pose())
    assert not (tmp_path / "T.tfm").exists()
