"""The volume-registration demonstration (``posereg demo``): the deep pipeline beside VVR-GC.

Held-out synthetic subjects (the test seed family) are moved by rotations of chosen angles;
each case is registered by the deep pipeline (Pose-Net + Correction-Net), by the same
refined by mutual information (``registration.refine``, posereg's VVR-Deep) and by SimpleITK
from the geometric centre (VVR-GC).
The result holds every error and time; ``registration_slices`` draws the aligned scans.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from posereg.data import Atlas, Volume
from posereg.evaluation.cases import RegistrationCase, synthetic_cases
from posereg.evaluation.metrics import rotation_error_deg, translation_error_mm
from posereg.registration import IntensitySettings, PipelineModel, RefineSettings, register_rigid

__all__ = ["DemoRow", "MethodOutcome", "MethodSummary", "run_volume_demo", "summarise_demo"]

METHODS = ("deep pipeline", "deep + refinement", "VVR-GC")


@dataclass(frozen=True)
class MethodOutcome:
    """One method on one case: rotation error (degrees), translation error (mm), seconds."""

    rotation_deg: float
    translation_mm: float
    seconds: float


@dataclass(frozen=True)
class DemoRow:
    """A demo case: its subject and true angle, each method's outcome, and the deep pipeline's
    aligned scan (on the atlas grid) for figures."""

    subject: int
    angle_deg: float
    outcomes: dict[str, MethodOutcome]
    moving: Volume
    aligned: Volume


def run_volume_demo(
    atlas: Atlas,
    model: PipelineModel,
    subjects: int = 2,
    angles_deg: Sequence[float] = (20.0, 60.0, 100.0, 140.0, 180.0),
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> list[DemoRow]:
    """Register ``subjects x len(angles_deg)`` held-out cases with the three methods.

    Args:
        atlas: the atlas on the networks' working grid.
        model: the pipeline networks (e.g. ``load_pipeline_model(pretrained_pipeline_path())``).
        subjects: test subjects.
        angles_deg: the rotation angle of each motion (about a random axis), degrees.
        seed: seed of the motions.
        progress: called with ``(done, total)`` after each case.
    """
    cases = synthetic_cases(atlas, subjects, len(angles_deg), seed, angles_deg=angles_deg)
    settings = IntensitySettings()
    deep = model.pipeline(atlas)
    refined = model.pipeline(atlas, refine=RefineSettings())
    rows = []
    for n, case in enumerate(cases):
        outcomes = {}
        result = deep(case.moving)
        outcomes["deep pipeline"] = _outcome(case, result.R, result.t, result.seconds["networks"])
        fine = refined(case.moving)
        outcomes["deep + refinement"] = _outcome(case, fine.R, fine.t, fine.seconds["networks"] + fine.seconds["refinement"])
        start = time.perf_counter()
        gc = register_rigid(atlas.image, case.moving, settings=settings)
        outcomes["VVR-GC"] = _outcome(case, gc.R, gc.t, time.perf_counter() - start)
        angle = float(rotation_error_deg(case.R, torch.eye(3, dtype=case.R.dtype)))
        rows.append(DemoRow(case.subject, angle, outcomes, case.moving, deep.aligned_image(case.moving, result)))
        if progress is not None:
            progress(n + 1, len(cases))
    return rows


def _outcome(case: RegistrationCase, R: torch.Tensor, t: torch.Tensor, seconds: float) -> MethodOutcome:
    return MethodOutcome(float(rotation_error_deg(R, case.R)), float(translation_error_mm(t, case.t)), seconds)


@dataclass(frozen=True)
class MethodSummary:
    """One method over all demo cases: median rotation error (degrees), cases under 10 degrees,
    case count and median seconds per case."""

    median_rotation_deg: float
    within_10_deg: int
    cases: int
    median_seconds: float


def summarise_demo(rows: Sequence[DemoRow]) -> dict[str, MethodSummary]:
    """``{method: MethodSummary}`` of the demo's rows, in ``METHODS`` order.

    Raises:
        ValueError: no rows.
    """
    if not rows:
        raise ValueError("rows: expected at least one demo case")
    out = {}
    for m in METHODS:
        errors = [r.outcomes[m].rotation_deg for r in rows]
        out[m] = MethodSummary(statistics.median(errors), sum(e < 10 for e in errors), len(errors),
                               statistics.median(r.outcomes[m].seconds for r in rows))  # fmt: skip
    return out
