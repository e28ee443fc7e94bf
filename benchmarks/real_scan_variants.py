"""posereg register on real scans acquired otherwise: thick slices and a tight brain field of view (issue: real scans).

The README says `posereg register` takes thick-sliced scans and fields of view from a tight brain
crop to head and neck. The real scans that packages ship (``real_scan_data.py``) are all
near-isotropic and mostly whole heads, so this benchmark derives, from each of them at native size,
the acquisitions a clinic also produces, keeping the scan's world frame (so its reference
alignment, ``real_scans.py``'s, stays the truth):

- **thick axial slices**: the means of ``k`` consecutive slices along the voxel axis nearest the
  head's inferior-superior axis, ``k`` the nearest integer to ``--slice-mm`` over the spacing (a
  2D acquisition's box slice profile with contiguous slices); the header's slice spacing times ``k``
  and its origin at the first slab's centre;
- **brain crop**: the scan's voxels within ``--margin-mm`` of the atlas brain mapped into it through
  its reference alignment, along each voxel axis (a tight brain field of view: the brain, some
  skull, no neck or face below the brain's box).

Each variant is moved by ``real_scans.py``'s motions (angles over 0-180 degrees, shifts, applied to
the header). Rows: posereg's networks alone and ``posereg register`` (default: networks, refinement,
quality check and fallback). No parameter of posereg is set from these cases.

    python benchmarks/real_scan_variants.py --cache /tmp/realscans --output docs/benchmarks/real_scan_variants.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from real_scan_data import SCANS, fetch_scan  # noqa: E402
from real_scan_references import F64, Pose, angle_deg, compose, moved_by_header, stored_reference  # noqa: E402
from real_scans import _checked, _motions  # noqa: E402

from posereg.data import Volume, load_atlas, load_nifti  # noqa: E402
from posereg.evaluation import verdict_counts  # noqa: E402
from posereg.evaluation.report import machine_line, markdown_table, write_report  # noqa: E402
from posereg.registration import RefineSettings, load_pipeline_model, pretrained_pipeline_path  # noqa: E402


def thick_slices(volume: Volume, slice_mm: float) -> tuple[Volume, int, int]:
    """``volume`` with slabs of ``k`` slices averaged along the voxel axis nearest world I-S.

    Returns:
        The thick-sliced volume (world frame kept: each new voxel sits at its slab's centre), the
        axis and ``k``.
    """
    A = volume.affine[:3, :3]
    axis = int(torch.argmax(A[2].abs() / A.norm(dim=0)))
    k = max(1, round(slice_mm / float(volume.spacing[axis])))
    n = volume.shape[axis] // k
    data = volume.data.narrow(axis, 0, n * k)
    shape = list(data.shape)
    shape[axis : axis + 1] = [n, k]
    thick = data.reshape(shape).mean(axis + 1)
    affine = volume.affine.clone()
    affine[:3, 3] += A[:, axis] * (k - 1) / 2  # the first slab's centre
    affine[:3, axis] *= k
    return Volume(thick.contiguous(), affine), axis, k


def brain_crop(volume: Volume, reference: Pose, atlas, margin_mm: float) -> Volume:  # type: ignore[no-untyped-def]
    """The voxels of ``volume`` within ``margin_mm`` of the atlas brain's voxels under ``reference``, along
    each of the scan's voxel axes: the tight box a technician draws around the brain in the scanner's frame."""
    a = atlas.image
    ijk = torch.nonzero(atlas.mask).to(F64)
    brain = ijk @ a.affine[:3, :3].T + a.affine[:3, 3]
    R, t = reference
    in_scan = (brain - a.centre) @ R.T + a.centre + t  # atlas -> scan, RAS mm
    voxels = (in_scan - volume.affine[:3, 3]) @ torch.linalg.inv(volume.affine[:3, :3]).T
    margin = margin_mm / volume.spacing
    first = (voxels.min(0).values - margin).floor().clamp_min(0).long().tolist()
    last = [min(int(v), s - 1) for v, s in zip((voxels.max(0).values + margin).ceil().tolist(), volume.shape, strict=True)]
    data = volume.data[first[0] : last[0] + 1, first[1] : last[1] + 1, first[2] : last[2] + 1]
    affine = volume.affine.clone()
    affine[:3, 3] += volume.affine[:3, :3] @ torch.tensor(first, dtype=F64)
    return Volume(data.contiguous(), affine)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, required=True, help="real scans' cache with references (real_scans.py)")
    parser.add_argument("--cases", type=int, default=6, help="motions per variant (default 6, as real_scans.py)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--slice-mm", type=float, default=5.0, help="thick slices' thickness (default 5 mm)")
    parser.add_argument("--margin-mm", type=float, default=10.0, help="brain crop's margin (default 10 mm)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, help="Markdown report")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from tqdm import tqdm

    begin = time.perf_counter()
    model = load_pipeline_model(pretrained_pipeline_path())
    atlas = load_atlas()
    methods = {"posereg networks": (model.pipeline(atlas), False), "posereg register": (model.pipeline(atlas, RefineSettings()), True)}
    c = atlas.image.centre
    table, descriptions = [], []
    pooled: dict[str, dict[str, list]] = {m: {"error": [], "doubtful": []} for m in methods}
    for info in SCANS:
        scan = load_nifti(fetch_scan(info, args.cache))
        reference, _ = stored_reference(info.name, args.cache)
        variants = {}
        if float(scan.spacing.max()) < args.slice_mm / 2:
            thick, axis, k = thick_slices(scan, args.slice_mm)
            variants["thick axial slices"] = thick
            descriptions.append(f"- {info.name}, thick axial slices: {k} slices of voxel axis {axis} averaged, "
                                f"{tuple(thick.shape)} voxels of {[round(float(s), 2) for s in thick.spacing]} mm")  # fmt: skip
        if info.name.endswith("-head"):  # whole heads (the names say so)
            cropped = brain_crop(scan, reference, atlas, args.margin_mm)
            variants["brain crop"] = cropped
            descriptions.append(f"- {info.name}, brain crop: {tuple(cropped.shape)} of {tuple(scan.shape)} voxels")
        for variant, volume in variants.items():
            rows = {m: {"error": [], "seconds": [], "doubtful": []} for m in methods}
            for motion in tqdm(_motions(args.cases, args.seed), desc=f"{info.name}, {variant}", file=sys.stderr):
                moved = moved_by_header(volume, *motion)
                truth = compose(motion, volume.centre, reference, c)[0]
                for name, (pipeline, fallback) in methods.items():
                    start = time.perf_counter()
                    (R, _), doubtful = _checked(pipeline, moved, fallback)
                    rows[name]["seconds"].append(time.perf_counter() - start)
                    rows[name]["error"].append(angle_deg(R, truth))
                    rows[name]["doubtful"].append(doubtful)
            for name, row in rows.items():
                e = row["error"]
                pooled[name]["error"] += e
                pooled[name]["doubtful"] += row["doubtful"]
                table.append([info.name, variant, name, f"{statistics.fmean(e):.1f}", f"{statistics.median(e):.1f}",
                              f"{max(e):.1f}", f"{sum(x < 10 for x in e)}/{len(e)}", f"{sum(row['doubtful'])}/{len(e)}",
                              f"{statistics.median(row['seconds']):.2f}"])  # fmt: skip
    summary = []
    for name, row in pooled.items():
        e, d = row["error"], row["doubtful"]
        v = verdict_counts(e, [not f for f in d])
        summary.append([name, f"{statistics.fmean(e):.1f}", f"{max(e):.1f}", f"{100 * sum(x < 10 for x in e) / len(e):.0f}%",
                        f"{v.false_accepts} / {v.false_rejects}"])  # fmt: skip
    command = " ".join(["python benchmarks/real_scan_variants.py", *sys.argv[1:]])
    report = "\n".join([
        "# posereg register on real scans acquired otherwise (benchmarks/real_scan_variants.py)", "",
        f"Command: `{command}`", machine_line(args.threads, time.perf_counter() - begin), "",
        f"Each variant moved by {args.cases} motions (angles spread over 0-180 degrees, shifts +-20 mm, seed {args.seed}; "
        "real_scans.py's). Error: rotation, degrees, against the scan's reference alignment composed with the motion. "
        "`posereg register` is the default command (refinement, quality check, fallback); flagged: doubtful "
        "(exit status 3).", "", "Variants:", "", *descriptions, "",
        *markdown_table(["scan", "variant", "method", "mean error", "median", "max", "< 10 deg", "flagged",
                         "median time s"], table), "", "All variants pooled:", "",
        *markdown_table(["method", "mean error", "max", "< 10 deg", "false accepts / false rejects"], summary),
    ])  # fmt: skip
    print(report)
    if args.output is not None:
        write_report(args.output, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
