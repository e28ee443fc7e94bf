"""posereg locate-slice on slices of real brain MRI (issue 19): a slice model against SVR-GC.

Scans (``real_scan_data.py``): real subjects and templates that installable packages ship, whole
head and skull-stripped, T1 and T2; none is the training data. Each scan's alignment to the atlas
is the consensus reference of ``real_scans.py`` (stored in ``--cache``/references.json by that
benchmark; run it first). A case is a 1 mm slice of the real scan, 240 x 240 mm, cut at a known
plane of the atlas frame: Salehi et al.'s half-space rotation ``R`` (seeded), a slice index ``k``
from the middle 66 % of the stack, and its field of view shifted within the plane by up to
+-15 mm (a real slice is not centred on the brain). The truth is ``(R, k)``: the plane in the
atlas frame, carried into the scan by the reference. The slice goes through what
``posereg locate-slice`` does (``slice_to_grid``, ``preprocess_slice``, the locator).

Errors: rotation of the slice's volume (degrees, geodesic, in-plane angle included), the angle
of the plane normal, and the plane's position along the normal (mm).

    python benchmarks/real_slices.py --model runs/slice_heads/model.pt --cache /tmp/realscans --slices 20 \
        --output docs/benchmarks/real_slices.md --figure docs/benchmarks/real_slices.png
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
from real_scan_references import stored_reference  # noqa: E402

from posereg.data import Volume, load_atlas, load_nifti  # noqa: E402
from posereg.data.resample import sample_at_points  # noqa: E402
from posereg.data.slices import cut_slices, half_space_rotation, preprocess_slice, slice_to_grid  # noqa: E402
from posereg.evaluation import rotation_error_deg, summarise, verdict_counts  # noqa: E402
from posereg.evaluation.report import machine_line, markdown_table, write_report  # noqa: E402
from posereg.registration.slice import SliceLocator, register_slice, slice_settings  # noqa: E402
from posereg.registration.slice_check import slice_doubts  # noqa: E402
from posereg.registration.slice_model import load_slice_model  # noqa: E402

F64 = torch.float64
FIELD_MM, PIXEL_MM, SHIFT_MM = 240, 1.0, 15.0


def real_slice(scan: Volume, reference: tuple[torch.Tensor, torch.Tensor], reference_centre: torch.Tensor,
               centre: torch.Tensor, R: torch.Tensor, offset_mm: float, shift: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """The ``FIELD_MM`` mm slice of ``scan`` (1 mm pixels) on the atlas-frame plane of ``(R, offset)``.

    Pixel ``(i, j)`` lies at the atlas point ``x = c + R^T (u_i + s_u, v_j + s_v, d)`` (``c`` the slice
    model's atlas centre), carried into the scan by the reference ``y = R_ref (x - c') + c' + t_ref``
    (``c'`` the centre it is stated about).
    """
    n = int(FIELD_MM / PIXEL_MM)
    axis = (torch.arange(n, dtype=F64) - (n - 1) / 2) * PIXEL_MM
    u, v = torch.meshgrid(axis + shift[0], axis + shift[1], indexing="ij")
    local = torch.stack((u, v, torch.full_like(u, offset_mm)), -1)
    x = centre + local @ R  # c + R^T local, as rows
    R_ref, t_ref = reference
    y = (x - reference_centre) @ R_ref.T + reference_centre + t_ref
    return sample_at_points(scan, y).float()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="slice model (model.pt of posereg train slice)")
    parser.add_argument("--slices", type=int, default=20, help="slices per scan (default 20)")
    parser.add_argument("--svr-slices", type=int, default=5, help="of those, how many the SVR methods also run (default 5)")
    parser.add_argument("--scans", nargs="*", help="names of the scans to use (default all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "posereg" / "real-scans")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--figure", type=Path, help="PNG: a few slices, the atlas at the true and the located plane")
    parser.add_argument("--output", type=Path, help="Markdown report")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    model = load_slice_model(args.model)
    atlas, geometry = model.atlas(), model.geometry
    c = atlas.image.centre
    reference_centre = load_atlas().image.centre  # real_scans.py states its references about it
    low, high = geometry.middle_indices(model.middle_fraction)
    search = (low, high)
    methods = {
        "Pose-Net (one pass)": SliceLocator(atlas, model.net, geometry, turns=False),
        "Pose-Net": SliceLocator(atlas, model.net, geometry),
        "Pose-Net + stack search": SliceLocator(atlas, model.net, geometry, search=search),
        "SVR-Deep + stack search": SliceLocator(atlas, model.net, geometry, refine=slice_settings(), search=search),
    }
    svr_gc = "SVR-GC (SimpleITK from the identity)"
    every = [*methods, svr_gc]
    rows = {m: {"rotation": [], "normal": [], "position": [], "seconds": [], "accepted": []} for m in every}
    per_scan: dict[str, dict[str, list[float]]] = {}
    examples = []
    scans = [s for s in SCANS if not args.scans or s.name in args.scans]
    for info in scans:
        scan = load_nifti(fetch_scan(info, args.cache))
        reference, group = stored_reference(info.name, args.cache)
        gen = torch.Generator().manual_seed(1000 * args.seed + SCANS.index(info))  # other planes in every scan
        per_scan[info.name] = {m: [] for m in every}
        svr_cases = {round(j * (args.slices - 1) / max(args.svr_slices - 1, 1)) for j in range(args.svr_slices)}
        for i in range(args.slices):
            R = half_space_rotation(gen)
            k = int(torch.randint(low, high, (), generator=gen))
            shift = (2 * torch.rand(2, generator=gen, dtype=F64) - 1) * SHIFT_MM
            image = real_slice(scan, reference, reference_centre, c, R, float(geometry.offset_mm(k)), shift)
            view = preprocess_slice(slice_to_grid(image, (PIXEL_MM, PIXEL_MM), geometry))
            normal = R[2]
            for name in every:
                if name.startswith("SVR") and i not in svr_cases:
                    continue
                begin = time.perf_counter()
                if name == svr_gc:
                    found = register_slice(atlas, view, geometry)
                    R_hat, k_hat = found.R, float(found.index)
                else:
                    found = methods[name](view)
                    R_hat, k_hat = found.R, found.index
                    if "agreement" in found.quality:  # judged as locate-slice judges it
                        rows[name]["accepted"].append(not slice_doubts(found.quality))
                rows[name]["seconds"].append(time.perf_counter() - begin)
                error = float(rotation_error_deg(R_hat, R))
                rows[name]["rotation"].append(error)
                cosine = float(torch.dot(R_hat[2].to(F64), normal).clamp(-1, 1))
                rows[name]["normal"].append(math.degrees(math.acos(cosine)))
                rows[name]["position"].append(abs(k_hat - k) * geometry.spacing)
                per_scan[info.name][name].append(error)
                if name == "Pose-Net" and i < 2 and args.figure is not None:
                    examples.append((info.name, view, cut_slices(atlas.image, R, torch.tensor(float(k)), geometry),
                                     cut_slices(atlas.image, R_hat.to(F64), torch.tensor(k_hat), geometry), error))  # fmt: skip
        print(f"{info.name}: reference from {len(group)} candidates; Pose-Net median "
              f"{statistics.median(per_scan[info.name]['Pose-Net']):.1f} deg", file=sys.stderr)  # fmt: skip
    report = _report(args, rows, per_scan, every, time.perf_counter() - start)
    print(report)
    if args.output is not None:
        write_report(args.output, report)
    if args.figure is not None:
        _figure(args.figure, examples)
    return 0


def _report(args, rows, per_scan, every, elapsed) -> str:  # type: ignore[no-untyped-def]
    header = ["method", "rotation deg (mean +- std (median))", "within 20 deg", "normal deg (median)",
              "position mm (median)", "median time ms", "accepted", "accepted over 20 deg", "within 10 deg, flagged"]  # fmt: skip
    table = []
    for name in every:
        r = rows[name]
        if not r["rotation"]:
            continue
        within = sum(e <= 20 for e in r["rotation"])
        verdict = ["-", "-", "-"]
        if r["accepted"]:  # locate-slice's verdict (slice_doubts, thresholds set on synthetic slices)
            v = verdict_counts(r["rotation"], r["accepted"])
            verdict = [f"{v.accepted}/{v.cases}", f"{v.false_accepts}/{v.accepted}", f"{v.false_rejects}/{v.good}"]
        table.append([name, summarise(r["rotation"]).cell(), f"{within}/{len(r['rotation'])}",
                      f"{statistics.median(r['normal']):.1f}", f"{statistics.median(r['position']):.1f}",
                      f"{1000 * statistics.median(r['seconds']):.1f}", *verdict])  # fmt: skip
    scan_header = ["scan", *[f"{m}: mean (median) deg" for m in every]]
    scan_rows = [[name, *[f"{statistics.mean(v[m]):.1f} ({statistics.median(v[m]):.1f})" if v[m] else "-" for m in every]]
                 for name, v in per_scan.items()]  # fmt: skip
    command = " ".join(["python benchmarks/real_slices.py", *sys.argv[1:]]) if args.output else ""
    return "\n".join([
        "# posereg locate-slice on slices of real scans (benchmarks/real_slices.py)", "",
        f"Command: `{command}`" if command else "", machine_line(args.threads, elapsed), "",
        f"{args.slices} slices per scan (half-space rotations, middle 66 % of the stack, in-plane shift +-{SHIFT_MM:g} mm, "
        f"seed {args.seed}, other planes in every scan), {FIELD_MM} x {FIELD_MM} pixels of {PIXEL_MM:g} mm cut from the real scan at native "
        f"resolution through the scan's reference alignment; the SVR methods on {args.svr_slices} of them per scan.", "",
        *markdown_table(header, table), "", "Per scan (rotation error):", "", *markdown_table(scan_header, scan_rows),
    ])  # fmt: skip


def _figure(path: Path, examples) -> None:  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, len(examples), figsize=(1.6 * len(examples), 5.2), squeeze=False)
    for j, (name, view, truth, found, error) in enumerate(examples):
        for i, (image, title) in enumerate(((view, name),
                                            (truth, "atlas, true plane"), (found, f"located, {error:.0f} deg"))):  # fmt: skip
            axes[i, j].imshow(image.T, cmap="gray", origin="lower")
            axes[i, j].set_title(title, fontsize=7)
            axes[i, j].axis("off")
    fig.suptitle("Real slices (top), the atlas at their true plane (middle) and at the plane the Pose-Net located (bottom)",
                 fontsize=8)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
