"""The text lines and record of a checked registration result."""

from __future__ import annotations

import pytest
import torch

from posereg.evaluation.registration_report import result_lines, result_record
from posereg.registration import CheckedResult
from posereg.registration.pipeline import DeepResult

F64 = torch.float64


def _checked(method: str, doubtful: bool, first_reasons: list[str]) -> CheckedResult:
    R = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=F64)  # 90 degrees about +S
    result = DeepResult(R, torch.tensor([1.0, 2.0, 3.0], dtype=F64), torch.zeros(3, dtype=F64),
                        seconds={"networks": 0.3}, quality={"agreement": 0.9, "brain_nmi": 1.02})  # fmt: skip
    return CheckedResult(result, method, doubtful, first_reasons if doubtful else [], first_reasons)


@pytest.mark.parametrize("method", ["fallback search", "networks + refinement (fallback)"])
def test_a_fallback_result_says_why_the_first_one_was_doubtful(method):
    lines = result_lines(_checked(method, False, ["brain NMI 1.0100 < 1.0140"]))
    assert f"method:      {method}" in lines and lines[-1].endswith("(the networks' result was doubtful: brain NMI 1.0100 < 1.0140)")
    assert any(line == "verdict:     ok" for line in lines)
    record = result_record("scan.nii.gz", _checked(method, False, ["x"]))
    assert record["method"] == method and record["status"] == "ok" and record["first_pass_doubts"] == ["x"]
    assert record["rotation_deg"] == pytest.approx(90.0) and record["axis_ras"] == pytest.approx([0.0, 0.0, 1.0])


def test_a_doubtful_networks_result_gives_its_reasons_in_the_verdict_only():
    lines = result_lines(_checked("networks", True, ["agreement 0.05 < 0.10"]))
    assert any(line == "verdict:     DOUBTFUL: agreement 0.05 < 0.10" for line in lines)
    assert not any("the networks' result was doubtful" in line for line in lines)
