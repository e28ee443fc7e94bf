"""Volume-to-atlas rigid registration: Salehi et al.'s Table 2/3 experiment on offline MRI.

Test cases: ``--subjects`` unseen synthetic subjects (the test seed family, never used in
training) x ``--rotations`` Haar-uniform rotations each, translations uniform in +-10 mm,
scanner effects (cropping, Rician noise), all seeded. Methods, each on every case:

- PAA (init only): principal-axes alignment by itself, axis signs by skewness (the classic
  moments method; shows it is not trivially exact); PAA+NCC: posereg's variant, signs chosen
  by image correlation;
- VVR-GC: SimpleITK registration from the geometric centre;
- VVR-PAA, VVR-PAA+NCC: the same from the two principal-axes alignments;
- VVR-Search: coarse search over 1728 start rotations, the best 3 refined;
- with ``--model``: Pose-Net (its rotation + centre-of-gravity translation), Correction-Net
  (Pose-Net + Correction-Net once each: the paper's deep pipeline), the posereg pipeline (the
  model's recorded passes, e.g. a second Pose-Net pass on the re-posed scan) and VVR-Deep (the
  posereg pipeline + SimpleITK); ``--mse-model`` adds the Pose-Net after its MSE stage only
  (``model_after_mse.pt``).

Reported per method and per rotation-magnitude bin (six bins with equal counts; the edges
are printed): mean +- std and median rotation error (degrees), success rate (< 10 degrees),
translation error (mm), median time per case; plus a box plot like the paper's Fig. 4.

    python benchmarks/volume_registration.py --model MODEL.pt --output docs/benchmarks/volume_registration.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from posereg.data import Atlas, load_atlas
from posereg.evaluation import (
    RegistrationCase,
    bin_indices,
    equal_count_edges,
    rotation_error_deg,
    summarise,
    synthetic_cases,
    translation_error_mm,
)
from posereg.evaluation.plots import binned_boxplot
from posereg.evaluation.report import binned_cells, binned_report, machine_line, markdown_table, write_report
from posereg.evaluation.timing import run_timed, select_methods
from posereg.models import load_volume_network
from posereg.registration import (
    DeepRegistration,
    IntensitySettings,
    RefineSettings,
    SignChoice,
    load_pipeline_model,
    principal_axes_alignment,
    register_rigid,
    search_registration,
)

F64 = torch.float64
PAPER_TABLE2 = {  # Salehi et al. 2018, Table 2: mean error (degrees) per bin, small to large rotations
    "VVR-GC": "2.42, 45.39, 149.91, 177.0, 174.87, 177.2",
    "VVR-PAA": "95.54 ... 141.44",
    "Pose-Net (MSE)": "23.96 ... 55.76",
    "Pose-Net (geodesic)": "10.08, 11.44, 12.43, 13.46, 16.46, 34.19",
    "Correction-Net": "4.54, 4.45, 4.83, 4.82, 6.33, 19.42",
    "VVR-Deep": "2.42, 2.35, 2.43, 2.36, 4.84, 20.44",
}


Method = Callable[[RegistrationCase], tuple[torch.Tensor, torch.Tensor]]


def _methods(atlas: Atlas, args: argparse.Namespace) -> dict[str, Method]:
    settings = IntensitySettings()
    def paa(case: RegistrationCase, signs: SignChoice) -> tuple[torch.Tensor, torch.Tensor]:
        return principal_axes_alignment(atlas.image, case.moving, atlas.mask, signs=signs)

    methods: dict[str, Method] = {
        "PAA (init only)": lambda c: paa(c, SignChoice.SKEWNESS),
        "PAA+NCC (init only)": lambda c: paa(c, SignChoice.NCC),
        "VVR-GC": lambda c: _rt(register_rigid(atlas.image, c.moving, settings=settings)),
        "VVR-PAA": lambda c: _rt(register_rigid(atlas.image, c.moving, initial=paa(c, SignChoice.SKEWNESS),
                                                settings=settings)),
        "VVR-PAA+NCC": lambda c: _rt(register_rigid(atlas.image, c.moving, initial=paa(c, SignChoice.NCC),
                                                    settings=settings)),
        "VVR-Search": lambda c: _rt(search_registration(atlas, c.moving, settings=settings)),
    }  # fmt: skip
    if args.mse_model is not None:
        payload = torch.load(args.mse_model, map_location="cpu", weights_only=True)  # a model.pt of training
        methods["Pose-Net (MSE)"] = _stage(DeepRegistration(atlas, load_volume_network(payload), probes=None),
                                           "pose-net")  # fmt: skip
    if args.model is not None:
        model = load_pipeline_model(args.model)
        # The paper's rows: one pass on the view as it is (no re-posed probes).
        methods["Pose-Net (geodesic)"] = _stage(DeepRegistration(atlas, model.pose, probes=None), "pose-net")
        if model.correction is not None:
            paper = DeepRegistration(atlas, model.pose, model.correction, probes=None)
            methods["Correction-Net"] = _stage(paper, "correction-net")
            # posereg's pipeline: the model's passes, the re-posed probes and candidate verification.
            methods[f"posereg pipeline (Pose-Net x{model.pose_steps}, Correction-Net x{model.correction_steps})"] = (
                _stage(model.pipeline(atlas), "correction-net"))  # fmt: skip
            # The paper's VVR-Deep: SimpleITK from the networks' result; posereg's own refinement beside it.
            deep = model.pipeline(atlas)
            methods["VVR-Deep"] = lambda c: _rt(register_rigid(atlas.image, c.moving, settings=settings,
                                                               initial=deep(c.moving).stages["correction-net"]))
            methods["posereg pipeline + refinement"] = _stage(model.pipeline(atlas, RefineSettings()), "refinement")
    return methods


def _rt(result) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[no-untyped-def]
    return result.R, result.t


def _stage(pipeline: DeepRegistration, name: str) -> Method:
    def run(case: RegistrationCase) -> tuple[torch.Tensor, torch.Tensor]:
        return pipeline(case.moving).stages[name]

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=10, help="unseen test subjects (default 10)")
    parser.add_argument("--rotations", type=int, default=10, help="rotations per subject (default 10)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", type=Path, help="pipeline model (Pose-Net geodesic + Correction-Net)")
    parser.add_argument("--mse-model", type=Path,
                        help="the Pose-Net after its MSE stage (model_after_mse.pt of posereg train volume)")
    parser.add_argument("--methods", nargs="*", help="run only these methods (names as in the table)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--output", type=Path, help="Markdown report (a .png box plot is written beside it)")
    args = parser.parse_args(argv)
    if args.subjects * args.rotations < 6:
        parser.error("need at least 6 cases (subjects x rotations) for six rotation bins")
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    atlas = load_atlas()
    cases = synthetic_cases(atlas, args.subjects, args.rotations, args.seed)
    truth_angles = [float(rotation_error_deg(c.R, torch.eye(3, dtype=F64))) for c in cases]
    edges = equal_count_edges(truth_angles, bins=6)
    bins = bin_indices(truth_angles, edges)
    try:
        methods = select_methods(_methods(atlas, args), args.methods)
    except ValueError as exc:
        parser.error(str(exc))
    errors: dict[str, list[float]] = {}
    t_errors: dict[str, list[float]] = {}
    times: dict[str, list[float]] = {}
    for name, (outputs, seconds) in run_timed(methods, cases).items():
        times[name] = seconds
        errors[name] = [float(rotation_error_deg(R_hat, case.R)) for (R_hat, _), case in zip(outputs, cases)]
        t_errors[name] = [float(translation_error_mm(t_hat, case.t)) for (_, t_hat), case in zip(outputs, cases)]
    report = _report(args, edges, bins, errors, t_errors, times, time.perf_counter() - start)
    print(report)
    if args.output is not None:
        write_report(args.output, report)
        binned_boxplot(args.output.with_suffix(".png"), errors, bins, edges)
    return 0


def _report(args, edges, bins, errors, t_errors, times, elapsed) -> str:  # type: ignore[no-untyped-def]
    n_bins = len(edges) - 1
    header = ["method", *[f"{edges[b]:.0f}-{edges[b + 1]:.0f} deg" for b in range(n_bins)], "all", "success < 10 deg",
              "translation mm (median)", "median time s"]  # fmt: skip
    rows = []
    for name, errs in errors.items():
        per_bin = binned_cells(errs, bins, n_bins)
        overall = summarise(errs)
        rows.append([name, *per_bin, overall.cell(), f"{100 * overall.success_rate:.0f}%",
                     f"{statistics.median(t_errors[name]):.1f}",
                     f"{statistics.median(times[name]):.3f}"])  # fmt: skip
    lines = markdown_table(header, rows)
    median = {name: statistics.median(t) for name, t in times.items()}
    ratios = [f"{slow} / {fast}: {median[slow] / median[fast]:.1f}x" for slow, fast in (
        ("VVR-GC", "Correction-Net"), ("VVR-GC", next((m for m in median if m.startswith("posereg pipeline")), "")),
        ("VVR-Search", "VVR-Deep")) if slow in median and fast in median]  # fmt: skip
    if ratios:
        lines += ["", "Median time ratios in this run: " + "; ".join(ratios) + "."]
    paper = markdown_table(["method", "Salehi et al. 2018, Table 2 (mean degrees per bin)"], list(PAPER_TABLE2.items()))
    command = " ".join(["python benchmarks/volume_registration.py", *sys.argv[1:]]) if args.output else ""
    setting = (f"{args.subjects} unseen test subjects x {args.rotations} Haar-uniform rotations (seed {args.seed}), "
               "translations uniform in +-10 mm, FOV cropping and Rician noise; 64^3 voxels of 3 mm; MNI152 2009a atlas.")
    return binned_report("Volume-to-atlas rigid registration (benchmarks/volume_registration.py)", command,
                         machine_line(args.threads, elapsed), setting, edges, [*lines, ""], paper,
                         ["", "Times (Salehi et al. Table 3, CPU): VVR-GC 553 s, VVR-Deep 365 s per case."])  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
