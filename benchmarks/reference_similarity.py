"""Which alignment looks more like the atlas: posereg's or the reference? (issue: real scans)

For each real scan (``real_scan_data.py``), unmoved: ``posereg register`` (networks and refinement,
the bundled model) and the scan's reference alignment (``real_scan_references.stored_reference``: the
consensus of the ANTs candidates stored by ``real_scans.py``), both scored by the brain NMI that
posereg's quality check uses (``DeepRegistration.brain_nmi``: normalised mutual information with the
atlas inside its brain) on the working grid (3 mm) and on finer atlas grids (2 and 1.5 mm). If the
refinement's answer differs from the reference because the coarse grid misleads it, the finer grids
prefer the reference. The difference is also split into rotations about the atlas's axes
(``log(R_ref^T R)``: about L-R, the pitch or nod; about A-P, the roll; about I-S, the yaw): a
brain's left-right symmetry pins its roll and yaw, while its pitch against a template of another
head shape is the least determined. No parameter of posereg is set from this table.

    python benchmarks/reference_similarity.py --cache /tmp/realscans --output docs/benchmarks/reference_similarity.md
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from real_scan_data import SCANS, fetch_scan  # noqa: E402
from real_scan_references import angle_deg, stored_reference  # noqa: E402

from posereg.data import load_atlas, load_nifti  # noqa: E402
from posereg.data.grid import WorkingGrid  # noqa: E402
from posereg.evaluation.report import machine_line, markdown_table, write_report  # noqa: E402
from posereg.geometry import matrix_to_rotvec  # noqa: E402
from posereg.registration import RefineSettings, load_pipeline_model, pretrained_pipeline_path  # noqa: E402
from posereg.registration.pipeline import DeepRegistration  # noqa: E402

GRIDS = ((3.0, 64), (2.0, 96), (1.5, 128))  # spacing mm, voxels per axis: the same 192 mm cube


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", required=True, type=Path, help="real-scan folder with references.json")
    parser.add_argument("--output", default=None, help="markdown report (default: print only)")
    args = parser.parse_args()
    start = time.perf_counter()
    model = load_pipeline_model(pretrained_pipeline_path())
    working = load_atlas()
    pipeline = model.pipeline(working)
    # Scorers on each grid (the networks are not used by brain_nmi; the refinement is not run).
    scorers = [DeepRegistration(working if s == 3.0 else load_atlas(WorkingGrid(shape=n, spacing=s)), model.pose,
                                probes=None) for s, n in GRIDS]  # fmt: skip
    rows = []
    for info in SCANS:
        scan = load_nifti(fetch_scan(info, args.cache))
        ours = pipeline(scan, refine=RefineSettings())
        (R_ref, t_ref), group = stored_reference(info.name, args.cache)
        pitch_roll_yaw = torch.rad2deg(matrix_to_rotvec(R_ref.mT @ ours.R)).tolist()  # about the atlas's x, y, z
        row = [info.name, f"{angle_deg(ours.R, R_ref):.1f}", " / ".join(f"{a:+.1f}" for a in pitch_roll_yaw),
               " / ".join(f"{d:+.1f}" for d in (ours.t - t_ref).tolist()), str(len(group))]  # fmt: skip
        for scorer in scorers:
            # The same transforms about each grid's centre (the grids share their centre to rounding).
            shift = scorer.atlas.image.centre - working.image.centre
            eye = torch.eye(3, dtype=torch.float64)
            a = scorer.brain_nmi(scan, ours.R, ours.t + (ours.R - eye) @ shift)
            b = scorer.brain_nmi(scan, R_ref, t_ref + (R_ref - eye) @ shift)
            row.append(f"{a:.4f} / {b:.4f} ({'posereg' if a > b else 'reference'})")
        rows.append(row)
        print(" | ".join(row), flush=True)
    header = ["scan", "posereg - reference (deg)", "about L-R / A-P / I-S (deg)", "translation, scan R / A / S (mm)",
              "candidates in the reference",
              *[f"brain NMI at {s:g} mm: posereg / reference (higher)" for s, _ in GRIDS]]  # fmt: skip
    lines = ["# posereg's alignment against the reference: which looks more like the atlas?", "",
             f"Command: `python {' '.join(sys.argv)}`", machine_line(torch.get_num_threads(), time.perf_counter() - start), "",
             "Each unmoved real scan: `posereg register` (bundled model, networks and refinement) and the "
             "reference (real_scans.md), scored by posereg's brain NMI on the 3 mm working grid and on 2 and "
             "1.5 mm atlas grids. The reference's translation is the mean of its candidates' (some of them "
             "ANTs Similarity: their scale is not used here). The difference split into rotations about the "
             "atlas's axes (log of R_ref^T R: L-R is the pitch, A-P the roll, I-S the yaw) and translations.", "",
             *markdown_table(header, rows)]  # fmt: skip
    if args.output:
        write_report(args.output, "\n".join(lines) + "\n")
    else:
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
