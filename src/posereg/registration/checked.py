"""Registration that checks its own result: a quality verdict, an automatic fallback, never silent.

``register_checked`` runs the deep pipeline, then judges the result by two measures of its own
(``DeepResult.quality``): the **agreement** of the Pose-Net passes on the scan re-posed by known
rotations (``registration.consensus``) and the **brain NMI**, the normalised mutual information
of the aligned scan and the atlas inside the atlas brain (contrast-agnostic). A result below
either threshold is *doubtful*; the fallback then runs unless disabled. Its first step, for a
pipeline without refinement whose networks agree (only the brain NMI is low: close, not wrong),
is the pipeline's own refinement (about a second): a result it lifts above the thresholds is
kept. Otherwise the search runs (``registration.search.pipeline_search``: coarse NMI scores of
1728 start rotations, the pipeline's refinement from the three best starts at least 30 degrees
apart, the highest brain NMI; 3-4 s on a 1 mm head, where VVR-Search's SimpleITK stage took
10-12 s, docs/benchmarks/fallback_search.md). When the search lands within
``confirm_deg`` of the pipeline's result, two independent methods found one pose: that is the
evidence the low agreement asked for, so the better-scoring of the two is kept and only the brain
NMI can still make it doubtful. Otherwise the better-scoring of the two is kept with its own
doubts. If the kept result is still doubtful, the verdict says so and why; the command line
turns that into a distinct exit status.

The thresholds were set on synthetic heads (``benchmarks/real_scans.py --calibrate``, seeds
disjoint from training), never on the real validation scans; the false-accept and
false-reject rates on real scans are reported in docs/benchmarks/real_scans.md.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

from posereg.data import Volume
from posereg.data.image_checks import check_brain_image
from posereg.geometry import geodesic_distance
from posereg.registration.pipeline import DeepRegistration, DeepResult
from posereg.registration.refine import RefineSettings
from posereg.registration.search import pipeline_search

__all__ = ["CheckedResult", "QualityThresholds", "doubts", "register_checked"]


@dataclass(frozen=True)
class QualityThresholds:
    """Below these a result is doubtful.

    Attributes:
        min_agreement: share of re-posed Pose-Net passes that agree (0-1); not applied to the
            fallback's result, which does not come from the networks.
        min_brain_nmi: normalised mutual information with the atlas in its brain (1-2).
        confirm_deg: a fallback search that lands within this angle of the pipeline's result
            confirms it (the benchmark's references use the same 5 degrees for agreeing methods).
    """

    min_agreement: float = 0.10
    min_brain_nmi: float = 1.014
    confirm_deg: float = 5.0


def doubts(quality: dict[str, float], thresholds: QualityThresholds) -> list[str]:
    """Why a result with these ``quality`` measures is doubtful (empty: it is not)."""
    reasons = []
    if "agreement" in quality and quality["agreement"] < thresholds.min_agreement:
        reasons.append(f"the Pose-Net passes on the re-posed scan disagree (agreement {quality['agreement']:.2f} "
                       f"< {thresholds.min_agreement:.2f})")  # fmt: skip
    if quality.get("brain_nmi", 2.0) < thresholds.min_brain_nmi:
        reasons.append(f"the aligned scan does not look like a brain at the atlas's place (brain NMI "
                       f"{quality['brain_nmi']:.4f} < {thresholds.min_brain_nmi:.4f})")  # fmt: skip
    return reasons


@dataclass(frozen=True)
class CheckedResult:
    """The kept result and the verdict on it.

    Attributes:
        result: the kept transform (``R``, ``t``, ``centre``; atlas -> moving, RAS mm), its
            stages, times and ``quality``.
        method: 'networks', 'networks + refinement', 'networks + refinement (fallback)' (a pipeline
            without refinement whose doubtful result the fallback refined) or 'fallback search'.
        doubtful: whether the kept result is below a threshold.
        reasons: why (empty when not doubtful).
        first_reasons: why the pipeline's own result was doubtful (empty if it was not).
        confirmed: the fallback search landed within ``QualityThresholds.confirm_deg`` of the
            pipeline's result (the angle is ``quality['search_agreement_deg']``).
    """

    result: DeepResult
    method: str
    doubtful: bool
    reasons: list[str] = field(default_factory=list)
    first_reasons: list[str] = field(default_factory=list)
    confirmed: bool = False


def register_checked(
    pipeline: DeepRegistration,
    moving: Volume,
    thresholds: QualityThresholds = QualityThresholds(),
    *,
    fallback: bool = True,
) -> CheckedResult:
    """Register ``moving`` with ``pipeline``; fall back (refinement, ``pipeline_search``) when the result is doubtful.

    Args:
        pipeline: the deep pipeline (with or without refinement).
        moving: the scan.
        thresholds: what counts as doubtful.
        fallback: run the fallback (see the module docstring) when the pipeline's result is doubtful.

    Raises:
        ValueError: ``moving`` is not a head or brain MRI (constant, nearly empty, noise:
            ``posereg.data.image_checks``); nothing is registered.
    """
    check_brain_image(moving, "moving image")
    first = pipeline(moving)
    method = "networks + refinement" if "refinement" in first.stages else "networks"
    first_reasons = doubts(first.quality, thresholds)
    if not first_reasons or not fallback:
        return CheckedResult(first, method, bool(first_reasons), first_reasons, first_reasons)
    own_reasons = first_reasons  # the doubts of the result the search is compared with
    start = time.perf_counter()
    if "refinement" not in first.stages and first.quality.get("agreement", 1.0) >= thresholds.min_agreement:
        # The networks agree, the alignment is not close enough: refine it as the default pipeline
        # would (a second; the networks run again, deterministically) before any search (3-4 s).
        refined = pipeline(moving, refine=pipeline.refine or RefineSettings())
        refined = replace(refined, seconds={**refined.seconds, "fallback refinement": time.perf_counter() - start})
        if not doubts(refined.quality, thresholds):
            return CheckedResult(refined, "networks + refinement (fallback)", False, [], first_reasons)
        if refined.quality["brain_nmi"] > first.quality["brain_nmi"]:  # what the search is compared with
            first, method, own_reasons = refined, "networks + refinement (fallback)", doubts(refined.quality, thresholds)
    start = time.perf_counter()
    found = pipeline_search(pipeline, moving)  # ends with the pipeline's refinement, scored as the pipeline scores
    R, t, nmi = found.R, found.t, found.brain_nmi
    seconds = {**first.seconds, "fallback search": time.perf_counter() - start}
    apart = math.degrees(float(geodesic_distance(R, first.R)))
    confirmed = apart <= thresholds.confirm_deg
    stages = {**first.stages, "fallback search": (R, t)}
    if nmi <= first.quality["brain_nmi"]:
        if not confirmed:  # say what the search found, so that the user knows it ran and disagreed
            unconfirmed = [*own_reasons, f"the fallback search did not confirm it (its best pose lies {apart:.0f} "
                           f"degrees away, with a lower brain NMI, {nmi:.4f})"]  # fmt: skip
            return CheckedResult(replace(first, seconds=seconds), method, True, unconfirmed, first_reasons)
        quality = {**first.quality, "search_agreement_deg": apart}
        kept = replace(first, seconds=seconds, stages=stages, quality=quality)
        reasons = doubts({"brain_nmi": quality["brain_nmi"]}, thresholds)  # the search stands for the agreement
        return CheckedResult(kept, method, bool(reasons), reasons, first_reasons, confirmed=True)
    quality = {"brain_nmi": nmi, "agreement_of_networks": first.quality["agreement"]}
    if confirmed:
        quality["search_agreement_deg"] = apart
    kept = DeepResult(R, t, found.centre, stages, seconds, quality)
    reasons = doubts(quality, thresholds)
    return CheckedResult(kept, "fallback search", bool(reasons), reasons, first_reasons, confirmed=confirmed)
