"""Evaluation: errors with units, rotation-magnitude bins, synthetic test cases, reports, plots.

Plain results (numbers and dataclasses): metrics, bins, cases, relocalisation errors, the
``posereg demo`` runner and summary (``volume_demo``), the lines and JSON record of a
registration result (``registration_report``), Markdown reports and timing for benchmarks.
Plotting lives in ``plots`` and imports matplotlib only when called. Nothing here prints.
"""

from posereg.evaluation.bins import bin_indices, equal_count_edges
from posereg.evaluation.cases import RegistrationCase, SliceCase, synthetic_cases, synthetic_slice_cases
from posereg.evaluation.metrics import (
    ErrorSummary,
    VerdictCounts,
    position_error_m,
    rotation_error_deg,
    summarise,
    translation_error_mm,
    verdict_counts,
)
from posereg.evaluation.relocalisation import (
    RelocalisationResult,
    evaluate_relocalisation,
    predict_camera_poses,
    relocalisation_result,
    reprojection_error_px,
)

__all__ = [
    "ErrorSummary", "RegistrationCase", "RelocalisationResult", "SliceCase", "VerdictCounts", "bin_indices", "equal_count_edges", "evaluate_relocalisation",
    "position_error_m", "predict_camera_poses", "relocalisation_result", "reprojection_error_px", "rotation_error_deg", "summarise", "synthetic_cases", "synthetic_slice_cases", "translation_error_mm", "verdict_counts",
]  # fmt: skip
