"""Slice-to-volume pose: Salehi et al.'s Table 1 experiment (2D->3D) on offline MRI.

Test cases: ``--subjects`` unseen synthetic subjects (the test seed family, never used in
training) x ``--rotations`` half-space rotations each (x, y within +-90 degrees, z over the
full circle), one slice per case from the middle 66% of the rotated stack, Rician noise; all
seeded. Methods, each on every case:

- SVR-GC: SimpleITK slice-to-volume registration (NCC, 3-level pyramid) from the geometric
  centre (an axial slice through the atlas centre);
- Pose-Net (MSE): the paper's rotation-vector network after its MSE stage (``--mse-model``);
- Pose-Net (geodesic): the trained slice network (``--model``);
- Pose-Net (geodesic, rotation-vector head): the paper's own head after both stages
  (``--rotvec-model``), when the main model uses another head;
- SVR-Deep: SVR started from the Pose-Net (geodesic).
- Pose-Net (geodesic) + stack search, and SVR-Deep + stack search: the network's rotation with
  the slice index of the best-correlated atlas slice along its normal, searched over the middle
  of the stack that the test slices come from (``posereg.registration.slice.search_stack``).

Reported per method and per rotation-magnitude bin (six bins with equal counts; the edges
are printed): mean +- std and median rotation error (degrees), slice position error (mm,
along the normal), median time per case; plus a box plot like the paper's Fig. 3.

    python benchmarks/slice_to_volume.py --model runs/slice2/model.pt \\
        --mse-model runs/slice_rotvec/model_after_mse.pt --rotvec-model runs/slice_rotvec/model.pt \\
        --output docs/benchmarks/slice_to_volume.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from posereg.data import load_atlas
from posereg.data.slices import SliceGeometry
from posereg.evaluation import SliceCase, bin_indices, equal_count_edges, rotation_error_deg, summarise
from posereg.evaluation.cases import synthetic_slice_cases
from posereg.evaluation.plots import binned_boxplot
from posereg.evaluation.report import binned_cells, binned_report, machine_line, markdown_table, write_report
from posereg.evaluation.timing import run_timed, select_methods
from posereg.registration.slice import SliceLocator, register_slice, slice_settings
from posereg.training.slice import load_slice_model

F64 = torch.float64
PAPER_TABLE1 = {  # Salehi et al. 2018, Table 1: mean rotation error (degrees) per bin, small to large
    "SVR-GC": "21.4 ... 147.7",
    "Pose-Net (geodesic)": "15.1 ... 36.5",
    "SVR-Deep": "10.2 ... 26.9",
}

Method = Callable[[SliceCase], tuple[torch.Tensor, float]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=10, help="unseen test subjects (default 10)")
    parser.add_argument("--rotations", type=int, default=10, help="rotations (slices) per subject (default 10)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", type=Path, required=True, help="slice Pose-Net (model.pt of posereg train slice)")
    parser.add_argument("--mse-model", type=Path, help="the slice Pose-Net after its MSE stage (model_after_mse.pt)")
    parser.add_argument("--rotvec-model", type=Path, help="a slice Pose-Net with the paper's rotation-vector head")
    parser.add_argument("--methods", nargs="*", help="run only these methods (names as in the table)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--output", type=Path, help="Markdown report (a .png box plot is written beside it)")
    args = parser.parse_args(argv)
    if args.subjects * args.rotations < 6:
        parser.error("need at least 6 cases (subjects x rotations) for six rotation bins")
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    net, config = load_slice_model(args.model)
    a = config.atlas
    atlas = load_atlas(a)
    geometry = SliceGeometry(a.shape, a.spacing, a.shape)
    cases = synthetic_slice_cases(atlas, args.subjects, args.rotations, args.seed, geometry=geometry)
    truth_angles = [float(rotation_error_deg(c.R, torch.eye(3, dtype=F64))) for c in cases]
    edges = equal_count_edges(truth_angles, bins=6)
    bins = bin_indices(truth_angles, edges)

    def located(locator: SliceLocator) -> Method:
        def run(case: SliceCase) -> tuple[torch.Tensor, float]:
            result = locator(case.image)
            return result.R, result.index

        return run

    methods: dict[str, Method] = {
        "SVR-GC": lambda c: (lambda r: (r.R, r.index))(register_slice(atlas, c.image, geometry)),
    }
    if args.mse_model is not None:
        methods["Pose-Net (MSE)"] = located(SliceLocator(atlas, load_slice_model(args.mse_model)[0], geometry))
    methods["Pose-Net (geodesic)"] = located(SliceLocator(atlas, net, geometry))
    if args.rotvec_model is not None:
        rotvec_net = load_slice_model(args.rotvec_model)[0]
        methods["Pose-Net (geodesic, rotation-vector head)"] = located(SliceLocator(atlas, rotvec_net, geometry))
    methods["SVR-Deep"] = located(SliceLocator(atlas, net, geometry, refine=slice_settings()))
    middle = geometry.middle_indices(config.data.middle_fraction)
    methods["Pose-Net (geodesic) + stack search"] = located(SliceLocator(atlas, net, geometry, search=middle))
    methods["SVR-Deep + stack search"] = located(SliceLocator(atlas, net, geometry, refine=slice_settings(), search=middle))
    try:
        methods = select_methods(methods, args.methods)
    except ValueError as exc:
        parser.error(str(exc))
    errors: dict[str, list[float]] = {}
    position: dict[str, list[float]] = {}
    times: dict[str, list[float]] = {}
    for name, (outputs, seconds) in run_timed(methods, cases).items():
        times[name] = seconds
        errors[name] = [float(rotation_error_deg(R_hat, case.R)) for (R_hat, _), case in zip(outputs, cases)]
        # slice position error: mm along the normal
        position[name] = [abs(index_hat - case.index) * geometry.spacing for (_, index_hat), case in zip(outputs, cases)]
    report = _report(args, geometry, edges, bins, errors, position, times, time.perf_counter() - start)
    print(report)
    if args.output is not None:
        write_report(args.output, report)
        binned_boxplot(args.output.with_suffix(".png"), errors, bins, edges)
    return 0


def _report(args, geometry, edges, bins, errors, position, times, elapsed) -> str:  # type: ignore[no-untyped-def]
    n_bins = len(edges) - 1
    header = ["method", *[f"{edges[b]:.0f}-{edges[b + 1]:.0f} deg" for b in range(n_bins)], "all",
              "slice position mm (mean +- std (median))", "median time ms"]  # fmt: skip
    rows = []
    for name, errs in errors.items():
        per_bin = binned_cells(errs, bins, n_bins)
        rows.append([name, *per_bin, summarise(errs).cell(), summarise(position[name]).cell(),
                     f"{1000 * statistics.median(times[name]):.1f}"])  # fmt: skip
    lines = markdown_table(header, rows)
    speed = []
    if "SVR-GC" in times:
        reference = statistics.median(times["SVR-GC"])
        speed = [f"- {name}: {1000 * statistics.median(t):.2f} ms, {reference / statistics.median(t):.0f}x faster than "
                 f"SVR-GC ({1000 * reference:.0f} ms)" for name, t in times.items() if name.startswith("Pose-Net")]  # fmt: skip
        speed += [f"- {name}: {1000 * statistics.median(t):.0f} ms" for name, t in times.items() if name.startswith("SVR-Deep")]
    paper = markdown_table(["method", "Salehi et al. 2018, Table 1 (mean degrees per bin)"], list(PAPER_TABLE1.items()))
    command = " ".join(["python benchmarks/slice_to_volume.py", *sys.argv[1:]]) if args.output else ""
    setting = (f"{args.subjects} unseen test subjects x {args.rotations} half-space rotations (seed {args.seed}), one "
               f"slice each from the middle 66% of the stack, Rician noise; {geometry.size}^2 pixels of "
               f"{geometry.spacing:g} mm; MNI152 2009a atlas.")  # fmt: skip
    body = [*lines, "", *(["Median time per slice (batch 1, the same run):", "", *speed, ""] if speed else [])]
    return binned_report("Slice-to-volume pose (benchmarks/slice_to_volume.py)", command,
                         machine_line(args.threads, elapsed), setting, edges, body, paper)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
