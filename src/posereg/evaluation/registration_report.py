"""A checked registration result as text lines and as a plain record (JSON-ready).

Kept out of the command line so that scripts and the CLI print and store the same things:
the rotation (degrees about a RAS axis), the translation (mm, RAS), the stage times, the
quality measures and the verdict.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from posereg.geometry import matrix_to_rotvec
from posereg.registration import CheckedResult

__all__ = ["result_lines", "result_record"]


def _angle_axis(R: torch.Tensor) -> tuple[float, list[float]]:
    v = matrix_to_rotvec(R)
    angle = float(torch.linalg.vector_norm(v))
    return math.degrees(angle), ((v / angle).tolist() if angle > 0 else [0.0, 0.0, 0.0])


def result_record(moving: str, checked: CheckedResult) -> dict[str, Any]:
    """Plain data: ``input``, ``status`` ('ok' or 'doubtful'), ``reasons``, ``method``, the transform
    (``rotation_deg``, ``axis_ras``, ``matrix`` 3x3, ``translation_mm`` RAS, ``centre_mm``; atlas ->
    moving, ``x -> R (x - c) + c + t``), ``quality`` and ``seconds`` per stage."""
    r = checked.result
    angle, axis = _angle_axis(r.R)
    return {
        "input": moving, "status": "doubtful" if checked.doubtful else "ok", "reasons": list(checked.reasons),
        "method": checked.method, "rotation_deg": angle, "axis_ras": axis, "matrix": r.R.tolist(),
        "translation_mm": r.t.tolist(), "centre_mm": r.centre.tolist(), "quality": dict(r.quality),
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
        f"method:      {checked.method}",
        f"quality:     {quality}",
        f"verdict:     {verdict}",
    ]  # fmt: skip
    if checked.first_reasons and checked.method == "fallback search":
        lines.append("             (the networks' result was doubtful: " + "; ".join(checked.first_reasons) + ")")
    return lines
