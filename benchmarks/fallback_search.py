"""The fallback's global search: VVR-Search + refinement against ``pipeline_search`` (issue: real scans).

When ``posereg register`` finds its own result doubtful it runs a global search
(``registration.checked``). Two searches, from the same coarse NMI scores of 1728 start
rotations on a 12 mm grid:

- **VVR-Search + refinement** (the fallback up to session 14): SimpleITK's masked local
  registration from the 3 best-scoring starts, the best final metric, then the pipeline's
  refinement;
- **pipeline search** (``registration.search.pipeline_search``): the pipeline's refinement
  from the 3 best starts at least 30 degrees apart, the highest brain NMI.

Cases: synthetic heads (``synthetic_scans``, seeds 20000+, disjoint from training and from the
threshold calibration's 10000+; the truth is the drawn motion, up to the anatomy's own
variation), and the real scans of ``real_scans.py`` moved by its motions (truth: the motion
composed with the scan's stored reference alignment; run ``real_scans.py`` once first).
Every search is forced, whatever the pipeline's own verdict would be.

    python benchmarks/fallback_search.py --cache /tmp/realscans --synthetic 24 --output docs/benchmarks/fallback_search.md
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from real_scan_data import SCANS, fetch_scan  # noqa: E402
from real_scan_references import angle_deg, compose, moved_by_header, stored_reference  # noqa: E402
from real_scans import _motions  # noqa: E402

from posereg.data import load_atlas, load_nifti  # noqa: E402
from posereg.evaluation.report import machine_line, markdown_table, write_report  # noqa: E402
from posereg.registration import (  # noqa: E402
    IntensitySettings,
    Metric,
    RefineSettings,
    load_pipeline_model,
    pretrained_pipeline_path,
    search_registration,
)
from posereg.registration.search import pipeline_search  # noqa: E402

OLD, NEW = "VVR-Search + refinement (until session 14)", "pipeline search"


def _searches(pipeline):  # type: ignore[no-untyped-def]
    def old(v):  # type: ignore[no-untyped-def]
        found = search_registration(pipeline.atlas, v, settings=IntensitySettings(), coarse_metric=Metric.MATTES_MI,
                                    fixed_mask=pipeline.refine_mask)  # fmt: skip
        return pipeline.refined(v, found.R, found.t)

    def new(v):  # type: ignore[no-untyped-def]
        found = pipeline_search(pipeline, v)
        return found.R, found.t

    return {OLD: old, NEW: new}


def _cases(args: argparse.Namespace, head_atlas):  # type: ignore[no-untyped-def]
    """``(set, name, volume, true R)`` for every case."""
    if args.synthetic:
        from posereg.data.head_model import build_head_model
        from posereg.data.head_synthesis import synthetic_scans

        head = build_head_model(head_atlas)
        for b in range(math.ceil(args.synthetic / 4)):
            volumes, R, _ = synthetic_scans(head, 4, torch.Generator().manual_seed(20_000 + b))
            for i, (v, R_true) in enumerate(zip(volumes, R, strict=True)):
                yield "synthetic heads", f"seed {20_000 + b}, #{i}", v, R_true
    c = head_atlas.image.centre
    for info in SCANS:
        if args.cache is None or (args.scans and info.name not in args.scans):
            continue
        scan = load_nifti(fetch_scan(info, args.cache))
        reference, _ = stored_reference(info.name, args.cache)
        for motion in _motions(args.cases, args.seed):
            yield info.name, info.name, moved_by_header(scan, *motion), compose(motion, scan.centre, reference, c)[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="pipeline model (default: the bundled one)")
    parser.add_argument("--synthetic", type=int, default=24, help="synthetic heads (default 24; 0: none)")
    parser.add_argument("--cache", type=Path, help="real scans' cache (real_scans.py --cache); none: synthetic only")
    parser.add_argument("--scans", nargs="*", help="names of the real scans to use (default all)")
    parser.add_argument("--cases", type=int, default=6, help="motions per real scan (default 6, as real_scans.py)")
    parser.add_argument("--seed", type=int, default=0, help="the real scans' motions (default 0, as real_scans.py)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, help="Markdown report")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from tqdm import tqdm

    begin = time.perf_counter()
    model = load_pipeline_model(args.model if args.model is not None else pretrained_pipeline_path())
    atlas = load_atlas()
    pipeline = model.pipeline(atlas, RefineSettings())
    searches = _searches(pipeline)
    rows: dict[str, dict[str, dict[str, list[float]]]] = {}
    for group, _, volume, R_true in tqdm(list(_cases(args, atlas)), desc="cases", file=sys.stderr):
        for name, search in searches.items():
            start = time.perf_counter()
            R, _ = search(volume)
            cell = rows.setdefault(group, {}).setdefault(name, {"error": [], "seconds": []})
            cell["seconds"].append(time.perf_counter() - start)
            cell["error"].append(angle_deg(R, R_true))
    table = []
    for group, methods in rows.items():
        for name, cell in methods.items():
            e = cell["error"]
            table.append([group, name, f"{statistics.mean(e):.1f}", f"{statistics.median(e):.1f}", f"{max(e):.1f}",
                          f"{sum(x < 10 for x in e)}/{len(e)}", f"{sum(x > 20 for x in e)}",
                          f"{statistics.median(cell['seconds']):.2f}"])  # fmt: skip
    ratios = [statistics.median(m[OLD]["seconds"]) / statistics.median(m[NEW]["seconds"]) for m in rows.values()]
    command = " ".join(["python benchmarks/fallback_search.py", *sys.argv[1:]])
    report = "\n".join([
        "# The fallback's global search (benchmarks/fallback_search.py)", "", f"Command: `{command}`",
        machine_line(args.threads, time.perf_counter() - begin), "",
        "Rotation error in degrees against the truth (synthetic: the drawn motion; real: the motion composed with the "
        "scan's reference alignment, real_scans.md). Each search forced on every case.", "",
        *markdown_table(["cases", "search", "mean", "median", "max", "< 10 deg", "> 20 deg", "median time s"], table), "",
        "Median time ratio (old / new) per set of cases: " + ", ".join(f"{g} {r:.1f}x" for g, r in zip(rows, ratios)),
    ])  # fmt: skip
    print(report)
    if args.output is not None:
        write_report(args.output, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
