"""posereg register on real brain MRI at native size, against SimpleITK and ANTs (issue: real scans).

Scans (``real_scan_data.py``): real subjects and templates that installable packages ship, whole
head and skull-stripped, T1 and T2; none is the training data (nilearn's MNI152 2009a maps).
Each scan is moved by ``--cases`` rigid motions (angles spread evenly over 0-180 degrees about
uniform random axes, shifts uniform in +-20 mm, seeded), applied to the header (exact, no
resampling, so the scan stays at its native size and voxels).

Truth: the motion composed with the scan's reference alignment to the atlas: the consensus of
careful registrations of the unmoved scan that use none of posereg's networks nor its refinement
(``reference_pose``): ANTs ``Similarity`` and ``Rigid`` with the atlas brain mask, each started
from the scan's header and from it pitched by +-15 degrees, ANTs after ``affine_initializer``,
VVR-Search, and for whole-head scans ANTs ``Similarity`` head-to-head (the whole scan to the
whole-head ICBM 2009c template, which lies in the atlas's MNI space, from the same three starts,
composed with that template's own reference); the largest group agreeing within 5 degrees gives
the reference, and how far the others lie is reported. Also reported, free of any reference: the self-consistency of each posereg mode (does
its answer on the moved scan equal its answer on the unmoved scan composed with the motion?).

Rows: posereg networks alone; ``posereg register --no-refine`` (networks, quality check,
automatic search fallback); ``posereg register`` (the same with the refinement, the default); VVR-GC; VVR-Search; ANTs ``Rigid`` (centre-of-mass
start), and ANTs ``Rigid`` after ``affine_initializer`` (``--ants-cases`` per scan; needs the
benchmark extra). The doubtful flag of posereg is scored: a false accept is a result more than
20 degrees off without the flag; a false reject a flagged result within 10 degrees.

    python benchmarks/real_scans.py --output docs/benchmarks/real_scans.md
    python benchmarks/real_scans.py --calibrate 64   # the quality thresholds, on synthetic heads
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from real_scan_data import SCANS, fetch_scan  # noqa: E402
from real_scan_references import (  # noqa: E402
    F64,
    REFERENCE_AGREEMENT_DEG,
    Pose,
    angle_deg,
    ants_registration,
    compose,
    moved_by_header,
    reference_pose,
    reference_targets,
)

from posereg.data import Volume, load_atlas, load_nifti  # noqa: E402
from posereg.evaluation import verdict_counts  # noqa: E402
from posereg.evaluation.report import machine_line, markdown_table, write_report  # noqa: E402
from posereg.evaluation.timing import select_methods  # noqa: E402
from posereg.geometry import random_rotation_with_angle  # noqa: E402
from posereg.registration import (  # noqa: E402
    IntensitySettings,
    RefineSettings,
    load_pipeline_model,
    pretrained_pipeline_path,
    register_checked,
    register_rigid,
    search_registration,
)


def _brain_nmi(pipeline, scan: Volume, pose: Pose) -> float:  # type: ignore[no-untyped-def]
    return pipeline.brain_nmi(scan, *pose)


def _motions(n: int, seed: int) -> list[Pose]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):  # angles spread evenly over [0, 180] degrees
        lo, hi = math.radians(180 * i / n), math.radians(180 * (i + 1) / n)
        R = random_rotation_with_angle((), lo, hi, generator=gen, dtype=F64)
        out.append((R, (2 * torch.rand(3, generator=gen, dtype=F64) - 1) * 20.0))
    return out


def run_scans(model, args: argparse.Namespace) -> dict:  # type: ignore[no-untyped-def]
    """Every method on every case: errors (deg), self-consistency (deg), times (s), flags."""
    from tqdm import tqdm

    atlas = load_atlas()
    networks = model.pipeline(atlas)
    refine = model.pipeline(atlas, RefineSettings())
    c = atlas.image.centre
    targets = reference_targets(networks, args.cache, Path(tempfile.mkdtemp()))
    fixed_path, mask_path = targets.fixed_path, targets.mask_path
    settings = IntensitySettings()
    methods = {
        "posereg networks": lambda v: _checked(networks, v, fallback=False),
        "posereg register --no-refine": lambda v: _checked(networks, v, fallback=True),
        "posereg register": lambda v: _checked(refine, v, fallback=True),
        "VVR-GC (SimpleITK)": lambda v: (_rt(register_rigid(atlas.image, _scaled(v), settings=settings)), None),
        "VVR-Search": lambda v: (_rt(search_registration(atlas, v, settings=settings)), None),
        "ANTs Rigid": lambda v: (ants_registration(fixed_path, mask_path, v, c, initializer=False), None),
        "ANTs initializer + Rigid": lambda v: (ants_registration(fixed_path, mask_path, v, c, initializer=True), None),
    }
    try:
        import ants  # noqa: F401
    except ImportError:
        methods = {k: m for k, m in methods.items() if not k.startswith("ANTs")}
    methods = select_methods(methods, args.methods)
    scans = [s for s in SCANS if not args.scans or s.name in args.scans]
    # ANTs on cases spread over the angle range (the first and the last, then between).
    k = min(args.ants_cases, args.cases)
    ants_cases = {round(j * (args.cases - 1) / max(k - 1, 1)) for j in range(k)}
    results: dict = {"scans": {}, "methods": list(methods)}
    for scan_info in scans:
        scan = load_nifti(fetch_scan(scan_info, args.cache))
        reference, references, group = reference_pose(scan, scan_info.name, networks, targets, args.cache)
        own = {name: methods[name](scan)[0] for name in methods if name.startswith("posereg")}
        rows: dict[str, dict[str, list]] = {m: {"error": [], "consistency": [], "seconds": [], "doubtful": []} for m in methods}
        for i, motion in enumerate(tqdm(_motions(args.cases, args.seed), desc=scan_info.name, file=sys.stderr)):
            moved = moved_by_header(scan, *motion)
            truth = compose(motion, scan.centre, reference, c)
            for name, method in methods.items():
                if name.startswith("ANTs") and i not in ants_cases:
                    continue
                begin = time.perf_counter()
                (R, t), doubtful = method(moved)
                rows[name]["seconds"].append(time.perf_counter() - begin)
                rows[name]["error"].append(angle_deg(R, truth[0]))
                rows[name]["doubtful"].append(doubtful)
                if name in own:
                    rows[name]["consistency"].append(angle_deg(R, compose(motion, scan.centre, own[name], c)[0]))
        results["scans"][scan_info.name] = {"description": scan_info.description, "shape": scan.shape,
                                            "spacing": [round(float(x), 2) for x in scan.spacing],
                                            "reference": group,
                                            "candidates_deg": {k: angle_deg(v[0], reference[0]) for k, v in references.items()},
                                            "rows": rows}  # fmt: skip
    return results


def _scaled(volume: Volume) -> Volume:
    from posereg.data import preprocess_intensity

    return volume.with_data(preprocess_intensity(volume.data))


def _rt(result) -> Pose:  # type: ignore[no-untyped-def]
    return result.R, result.t


def _checked(pipeline, volume: Volume, fallback: bool) -> tuple[Pose, bool]:  # type: ignore[no-untyped-def]
    checked = register_checked(pipeline, volume, fallback=fallback)
    return (checked.result.R, checked.result.t), checked.doubtful


def report_lines(results: dict, args: argparse.Namespace) -> list[str]:
    lines = [f"{args.cases} motions per scan (angles spread over 0-180 degrees, shifts +-20 mm, seed {args.seed}), "
             f"applied to the header; ANTs on {args.ants_cases} of them, spread over the angles. Errors: rotation, degrees, against the "
             "reference alignment composed with the motion. Consistency: posereg's answer on the moved scan against "
             "its answer on the unmoved scan composed with the motion (no reference involved).", ""]  # fmt: skip
    header = ["scan", "method", "mean error", "median", "max", "< 10 deg", "consistency (median)", "flagged",
              "median time s"]  # fmt: skip
    table, pooled = [], {m: {"error": [], "seconds": [], "doubtful": []} for m in results["methods"]}
    for name, scan in results["scans"].items():
        for method, row in scan["rows"].items():
            if not row["error"]:
                continue
            e = row["error"]
            for key in pooled[method]:
                pooled[method][key] += row[key]
            flagged = [d for d in row["doubtful"] if d is not None]
            table.append([name, method, f"{statistics.fmean(e):.1f}", f"{statistics.median(e):.1f}", f"{max(e):.1f}",
                          f"{sum(x < 10 for x in e)}/{len(e)}",
                          f"{statistics.median(row['consistency']):.1f}" if row["consistency"] else "-",
                          f"{sum(flagged)}/{len(flagged)}" if flagged else "-", f"{statistics.median(row['seconds']):.2f}"])  # fmt: skip
    lines += ["Scans (native size):", ""]
    lines += [f"- {name}: {s['description']}; {tuple(s['shape'])} voxels of {s['spacing']} mm; reference: the "
              f"mean of {len(s['reference'])} of {len(s['candidates_deg'])} candidates that agree within "
              f"{REFERENCE_AGREEMENT_DEG:g} degrees ({', '.join(s['reference'])}); the others lie "
              + (", ".join(f"{d:.1f}" for k, d in s["candidates_deg"].items() if k not in s["reference"]) or "-")
              + " degrees from it" for name, s in results["scans"].items()]  # fmt: skip
    lines += ["", *markdown_table(header, table), "", "All scans pooled:", ""]
    summary = []
    for method, row in pooled.items():
        e = row["error"]
        if not e:
            continue
        flags = [(err, d) for err, d in zip(e, row["doubtful"], strict=True) if d is not None]
        v = verdict_counts([err for err, _ in flags], [not d for _, d in flags])
        summary.append([method, f"{statistics.fmean(e):.1f}", f"{statistics.median(e):.1f}", f"{max(e):.1f}",
                        f"{100 * sum(x < 10 for x in e) / len(e):.0f}%",
                        f"{v.false_accepts} / {v.false_rejects}" if flags else "-", f"{statistics.median(row['seconds']):.2f}"])  # fmt: skip
    lines += markdown_table(["method", "mean error", "median", "max", "< 10 deg", "false accepts / false rejects",
                             "median time s"], summary)  # fmt: skip
    return lines


def reference_figure(model, args: argparse.Namespace, path: Path) -> None:  # type: ignore[no-untyped-def]
    """A sagittal slice of each unmoved scan resampled by each reference candidate and by posereg,
    with the atlas brain outline: the way to see which alignment is right when they disagree."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from posereg.data import antialiased, rigid_resample

    atlas = load_atlas()
    pipeline = model.pipeline(atlas)
    refined = model.pipeline(atlas, RefineSettings())
    targets = reference_targets(pipeline, args.cache, Path(tempfile.mkdtemp()))
    scans = [s for s in SCANS if not args.scans or s.name in args.scans]
    fig, axes = plt.subplots(len(scans), 8, figsize=(24, 3 * len(scans)), squeeze=False)
    a = atlas.image
    middle = a.shape[0] // 2  # a sagittal slice: a nod (the usual error) shows as a turn in the picture
    outline = a.data[middle].T.flip(0) > 0.3
    for row, info in zip(axes, scans, strict=True):
        scan = load_nifti(fetch_scan(info, args.cache))
        reference, candidates, group = reference_pose(scan, info.name, pipeline, targets, args.cache)
        own = refined(scan)
        candidates = {f"reference (consensus of {len(group)})": reference, "posereg networks": own.stages["correction-net"],
                      "posereg register (refined)": (own.R, own.t),
                      **{k: v for k, v in candidates.items() if k not in group}}  # fmt: skip
        row[0].imshow(a.data[middle].T.flip(0), cmap="gray")
        row[0].set_title(f"{info.name}: atlas", fontsize=8)
        for ax, (name, (R, t)) in zip(row[1:], candidates.items(), strict=False):
            image = rigid_resample(antialiased(scan, 3.0), scan.affine, R, t, a.centre, out_affine=a.affine,
                                   out_shape=a.shape)[0, 0]  # fmt: skip
            ax.imshow(image[middle].T.flip(0), cmap="gray")
            ax.contour(outline, levels=[0.5], colors="r", linewidths=0.5)
            ax.set_title(f"{name}\nNMI {_brain_nmi(pipeline, scan, (R, t)):.4f}, "
                         f"{angle_deg(R, reference[0]):.0f} deg from the reference", fontsize=7)  # fmt: skip
        for ax in row:
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)


def calibrate(model, n: int) -> str:  # type: ignore[no-untyped-def]
    """The quality measures of the networks' result on ``n`` synthetic heads (seeds 10000+, disjoint
    from training) and the doubtful rate they give with the default thresholds."""
    from posereg.data.head_model import build_head_model
    from posereg.data.head_synthesis import synthetic_scans
    from posereg.registration import QualityThresholds, doubts

    head = build_head_model(load_atlas())
    pipeline = model.pipeline(head.atlas)
    rows = []
    for b in range(math.ceil(n / 4)):
        volumes, R, _ = synthetic_scans(head, 4, torch.Generator().manual_seed(10_000 + b))
        for v, R_true in zip(volumes, R, strict=True):
            r = pipeline(v)
            rows.append((angle_deg(r.R, R_true), r.quality["agreement"], r.quality["brain_nmi"],
                         bool(doubts(r.quality, QualityThresholds()))))  # fmt: skip
    table = [[f"{e:.1f}", f"{a:.2f}", f"{m:.4f}", "doubtful" if d else ""] for e, a, m, d in sorted(rows, key=lambda r: r[2])]
    bad = [r for r in rows if r[0] > 20]
    return "\n".join([*markdown_table(["error deg", "agreement", "brain NMI", "verdict"], table), "",
                      f"{len(bad)} of {len(rows)} above 20 degrees; flagged: {sum(r[3] for r in bad)}; "
                      f"flagged within 10 degrees: {sum(r[3] for r in rows if r[0] <= 10)}"])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="pipeline model (default: the bundled one)")
    parser.add_argument("--cases", type=int, default=6, help="motions per scan (default 6)")
    parser.add_argument("--ants-cases", type=int, default=3, help="of those, how many ANTs also registers (default 3)")
    parser.add_argument("--scans", nargs="*", help="names of the scans to use (default all)")
    parser.add_argument("--methods", nargs="*", help="run only these methods (names as in the table)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "posereg" / "real-scans")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calibrate", type=int, metavar="N", help="only: the quality measures on N synthetic heads")
    parser.add_argument("--reference-figure", type=Path, help="only: the reference candidates of each scan (PNG)")
    parser.add_argument("--output", type=Path, help="Markdown report")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_pipeline_model(args.model if args.model is not None else pretrained_pipeline_path())
    if args.calibrate is not None:
        print(calibrate(model, args.calibrate))
        return 0
    if args.reference_figure is not None:
        reference_figure(model, args, args.reference_figure)
        return 0
    start = time.perf_counter()
    results = run_scans(model, args)
    command = " ".join(["python benchmarks/real_scans.py", *sys.argv[1:]]) if args.output else ""
    report = "\n".join(["# posereg register on real scans (benchmarks/real_scans.py)", "",
                        f"Command: `{command}`" if command else "", machine_line(args.threads, time.perf_counter() - start),
                        "", *report_lines(results, args)])  # fmt: skip
    print(report)
    if args.output is not None:
        write_report(args.output, report)
        (args.output.with_suffix(".json")).write_text(__import__("json").dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
