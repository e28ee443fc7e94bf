"""A checked registration result as text lines and as a plain record (JSON-ready).

Kept out of the command line so that scripts and the CLI print and store the same things:
the rotation (degrees about a RAS axis), the translation (mm, RAS), the stage times, the
quality measures and the verdict.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from posereg.geometry import matrix_to_rotvec
from posereg.registration import CheckedResult
from posereg.registration.batch import BatchRow

__all__ = ["BATCH_COLUMNS", "batch_record", "result_lines", "result_record", "write_batch_table"]


def _angle_axis(R: torch.Tensor) -> tuple[float, list[float]]:
    v = matrix_to_rotvec(R)
    angle = float(torch.linalg.vector_norm(v))
    return math.degrees(angle), ((v / angle).tolist() if angle > 0 else [0.0, 0.0, 0.0])


def result_record(moving: str, checked: CheckedResult) -> dict[str, Any]:
    """Plain data: ``input``, ``status`` ('ok' or 'doubtful'), ``reasons``, ``method``,
    ``confirmed_by_search`` (the fallback search landed on the same pose), the transform
    (``rotation_deg``, ``axis_ras``, ``matrix`` 3x3, ``translation_mm`` RAS, ``centre_mm``; atlas ->
    moving, ``x -> R (x - c) + c + t``), ``quality`` and ``seconds`` per stage."""
    r = checked.result
    angle, axis = _angle_axis(r.R)
    return {
        "input": moving, "status": "doubtful" if checked.doubtful else "ok", "reasons": list(checked.reasons),
        "method": checked.method, "confirmed_by_search": checked.confirmed, "rotation_deg": angle, "axis_ras": axis,
        "matrix": r.R.tolist(), "translation_mm": r.t.tolist(), "centre_mm": r.centre.tolist(), "quality": dict(r.quality),
        "first_pass_doubts": list(checked.first_reasons), "seconds": dict(r.seconds),
    }  # fmt: skip


def result_lines(checked: CheckedResult) -> list[str]:
    """What ``posereg register`` prints about the result."""
    r = checked.result
    angle, axis = _angle_axis(r.R)
    t = r.t.tolist()
    q = r.quality
    quality = ", ".join(f"{k} {v:.3f}" for k, v in q.items())
    verdict = "DOUBTFUL: " + "; ".join(checked.reasons) if checked.doubtful else "ok"
    lines = [
        f"rotation:    {angle:.2f} degrees about axis ({axis[0]:+.3f}, {axis[1]:+.3f}, {axis[2]:+.3f}) (RAS)",
        f"translation: ({t[0]:+.2f}, {t[1]:+.2f}, {t[2]:+.2f}) mm (RAS), about centre "
        f"({', '.join(f'{x:.1f}' for x in r.centre.tolist())}) mm",
        "stages:      " + ", ".join(f"{k} {1000 * v:.0f} ms" for k, v in r.seconds.items()),
        f"method:      {checked.method}" + (", confirmed by the fallback search "
                                             f"({q['search_agreement_deg']:.1f} degrees apart)" if checked.confirmed else ""),
        f"quality:     {quality}",
        f"verdict:     {verdict}",
    ]  # fmt: skip
    if checked.first_reasons and checked.method in ("fallback search", "networks + refinement (fallback)"):
        lines.append("             (the networks' result was doubtful: " + "; ".join(checked.first_reasons) + ")")
    return lines


BATCH_COLUMNS = ("input", "status", "rotation_deg", "axis_ras", "translation_mm", "agreement", "brain_nmi", "method",
                 "seconds", "outputs", "error")  # fmt: skip


def batch_record(row: BatchRow) -> dict[str, Any]:
    """A batch row as plain data: ``result_record`` of the result (when there is one) plus the
    row's ``status``, ``error``, total ``seconds`` and ``outputs``."""
    record: dict[str, Any] = {"input": row.scan, "status": row.status}
    if row.checked is not None:
        record = result_record(row.scan, row.checked)
        record["stage_seconds"] = record.pop("seconds")
    record.update(status=row.status, error=row.error, seconds=row.seconds, outputs=list(row.outputs))
    return record


def write_batch_table(records: Sequence[dict[str, Any]], csv_path: str | Path, json_path: str | Path) -> None:
    """The batch's results as CSV (one line per scan, ``BATCH_COLUMNS``) and JSON (the full records), atomically."""
    from posereg._files import atomic_outputs

    with atomic_outputs([csv_path, json_path]) as (csv_tmp, json_tmp):
        with open(csv_tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(BATCH_COLUMNS)
            for r in records:
                quality = r.get("quality", {})
                cells = [r["input"], r["status"], _number(r.get("rotation_deg")), _vector(r.get("axis_ras")),
                         _vector(r.get("translation_mm")), _number(quality.get("agreement")),
                         _number(quality.get("brain_nmi")), r.get("method", ""), _number(r["seconds"]),
                         " ".join(r["outputs"]), r.get("error", "")]  # fmt: skip
                writer.writerow(cells)
        Path(json_tmp).write_text(json.dumps(list(records), indent=2) + "\n")


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _vector(values: Sequence[float] | None) -> str:
    return "" if values is None else " ".join(f"{v:.4f}" for v in values)
