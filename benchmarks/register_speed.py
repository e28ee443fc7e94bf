"""How fast is ``posereg register`` on real-size scans? Stage times and whole processes, against SimpleITK.

Real 1 mm scans that packages ship (``real_scan_data.py``, 180-260 voxels a side, whole heads),
at their native size. Measured in one run, medians of ``--repeats``:

- stages inside one process (after a warm-up call): reading the file, centre of gravity, the
  networks (24 Pose-Net probes, candidates, Correction-Net passes, quality), the refinement,
  writing the transform; plus ``import posereg.cli`` and the model + cached atlas load;
- whole processes, as a user runs them: ``posereg register`` (networks and refinement, the
  default), ``posereg register --no-refine``, a plain SimpleITK rigid registration of the same scan to the 1 mm MNI152 template
  from the geometric centre (Mattes MI, 3 levels; a script of its own, ``_SITK_RIGID``), and
  posereg's VVR-GC (``register_rigid`` on the 3 mm working grid);
- a batch: ``posereg register SCAN... --out-dir`` over ``--batch`` scans, in scans per second,
  with and without the refinement.

Usage::

    python benchmarks/register_speed.py --cache ~/.cache/posereg/real-scans --output docs/benchmarks/register_speed.md
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from real_scan_data import SCANS, fetch_scan  # noqa: E402

from posereg.evaluation.report import machine_line, markdown_table, write_report  # noqa: E402

ONE_MM = ("colin27-head", "icbm2009c-head", "subject-mprage-head", "subject-s1-head")

_SITK_RIGID = """
import sys, SimpleITK as sitk
fixed = sitk.ReadImage(sys.argv[2], sitk.sitkFloat32)
moving = sitk.ReadImage(sys.argv[1], sitk.sitkFloat32)
initial = sitk.CenteredTransformInitializer(fixed, moving, sitk.Euler3DTransform(),
                                            sitk.CenteredTransformInitializerFilter.GEOMETRY)
r = sitk.ImageRegistrationMethod()
r.SetMetricAsMattesMutualInformation(50)
r.SetMetricSamplingStrategy(r.RANDOM)
r.SetMetricSamplingPercentage(0.1, 0)
r.SetInterpolator(sitk.sitkLinear)
r.SetOptimizerAsRegularStepGradientDescent(2.0, 1e-4, 200)
r.SetOptimizerScalesFromPhysicalShift()
r.SetShrinkFactorsPerLevel([4, 2, 1])
r.SetSmoothingSigmasPerLevel([2, 1, 0])
r.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
r.SetInitialTransform(initial, inPlace=False)
sitk.WriteTransform(r.Execute(fixed, moving), sys.argv[3])
"""

_VVR_GC = """
import sys
from posereg.data import load_atlas
from posereg.data.image_io import load_image
from posereg.registration import register_rigid, write_rigid_transform
result = register_rigid(load_atlas().image, load_image(sys.argv[1]))
write_rigid_transform(sys.argv[2], result.R, result.t, result.centre)
"""

_STAGES = """
import json, sys, time
start = time.perf_counter()
import posereg.cli  # noqa: F401
imported = time.perf_counter()
from posereg.data.image_io import load_image
from posereg.registration import RefineSettings, load_pipeline_model, pretrained_pipeline_path, register_checked
from posereg.registration.transform_files import write_transform
model = load_pipeline_model(pretrained_pipeline_path())
pipeline = model.pipeline(model.atlas(), RefineSettings())
loaded = time.perf_counter()
register_checked(pipeline, load_image(sys.argv[1]), fallback=False)  # warm-up
rows = []
for _ in range(int(sys.argv[3])):
    t0 = time.perf_counter(); moving = load_image(sys.argv[1]); t1 = time.perf_counter()
    checked = register_checked(pipeline, moving, fallback=False); t2 = time.perf_counter()
    r = checked.result
    write_transform(sys.argv[2], r.R, r.t, r.centre); t3 = time.perf_counter()
    rows.append({"read": t1 - t0, "centre of gravity": r.seconds["centre of gravity"],
                 "networks": r.seconds["networks"] - r.seconds["centre of gravity"],
                 "refinement": r.seconds["refinement"], "write": t3 - t2,
                 "register_checked": t2 - t1})
print(json.dumps({"import": imported - start, "model + atlas": loaded - imported, "rows": rows}))
"""


def _process_seconds(argv: list[str], repeats: int) -> float:
    """Median wall time of ``argv`` as a process (exit 0 or 3 accepted: 3 is a doubtful verdict)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if done.returncode not in (0, 3):
            raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()[-500:]}")
    return statistics.median(times)


def main() -> int:
    """Run the measurements and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default=str(Path.home() / ".cache/posereg/real-scans"), help="real-scan folder")
    parser.add_argument("--repeats", type=int, default=3, help="repetitions per measurement (median)")
    parser.add_argument("--batch", type=int, default=20, help="scans in the batch measurement")
    parser.add_argument("--output", default="docs/benchmarks/register_speed.md")
    args = parser.parse_args()
    import json

    import torch
    from nilearn import datasets

    start = time.perf_counter()
    python = sys.executable
    posereg = str(Path(python).parent / "posereg")
    template = Path(tempfile.mkdtemp()) / "mni152_1mm.nii.gz"
    datasets.load_mni152_template(resolution=1).to_filename(template)
    scans = {s.name: fetch_scan(s, Path(args.cache)) for s in SCANS if s.name in ONE_MM}
    work = Path(tempfile.mkdtemp())
    subprocess.run([posereg, "register", str(next(iter(scans.values()))), "--out-transform", str(work / "w.tfm")],
                   capture_output=True)  # fills the atlas cache, as any earlier call would have  # fmt: skip
    stage_rows, process_rows, ratios = [], [], []
    for name, path in scans.items():
        import nibabel as nib

        shape = "x".join(map(str, nib.load(str(path)).shape[:3]))
        out = json.loads(subprocess.run([python, "-c", _STAGES, str(path), str(work / "s.tfm"), str(args.repeats)],
                                        capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])  # fmt: skip
        med = {k: statistics.median(r[k] for r in out["rows"]) for k in out["rows"][0]}
        stage_rows.append([name, shape, f"{out['import']:.2f}", f"{out['model + atlas']:.2f}", f"{med['read']:.2f}",
                           f"{med['centre of gravity']:.3f}", f"{med['networks']:.3f}", f"{med['refinement']:.3f}",
                           f"{med['write']:.3f}"])  # fmt: skip
        ours = _process_seconds([posereg, "register", str(path), "--out-transform", str(work / "p.tfm")], args.repeats)
        networks = _process_seconds([posereg, "register", str(path), "--no-refine", "--out-transform",
                                     str(work / "r.tfm")], args.repeats)  # fmt: skip
        sitk_rigid = _process_seconds([python, "-c", _SITK_RIGID, str(path), str(template), str(work / "k.tfm")],
                                      args.repeats)  # fmt: skip
        vvr_gc = _process_seconds([python, "-c", _VVR_GC, str(path), str(work / "g.tfm")], args.repeats)
        process_rows.append([name, f"{ours:.2f}", f"{networks:.2f}", f"{sitk_rigid:.2f}", f"{vvr_gc:.2f}",
                             f"{sitk_rigid / ours:.1f}x", f"{vvr_gc / ours:.1f}x"])  # fmt: skip
        ratios.append(sitk_rigid / ours)
    batch = [str(p) for _, p in zip(range(args.batch), _cycle(list(scans.values())), strict=False)]
    links = Path(tempfile.mkdtemp())
    named = []
    for i, p in enumerate(batch):  # distinct names: one output set per scan
        target = links / f"scan{i:03d}.nii.gz"
        shutil.copyfile(p, target)
        named.append(str(target))
    batch_seconds = {}
    for label, extra in (("networks and refinement", []), ("networks alone (--no-refine)", ["--no-refine"])):
        t0 = time.perf_counter()
        subprocess.run([posereg, "register", *named, "--out-dir", str(work / f"batch{len(extra)}"), "--no-fallback",
                        "--quiet", *extra], capture_output=True)  # fmt: skip
        batch_seconds[label] = time.perf_counter() - t0
    elapsed = time.perf_counter() - start
    command = "python " + " ".join(sys.argv)
    lines = [
        "# posereg register on real-size scans: stage times and whole processes",
        "",
        f"Command: `{command}`",
        machine_line(torch.get_num_threads(), elapsed),
        "",
        "Real 1 mm whole-head scans that packages ship (benchmarks/real_scan_data.py), at their native size; "
        f"medians of {args.repeats}.",
        "",
        "## Stages in one process (seconds; after a warm-up call, the atlas cache filled)",
        "",
        *markdown_table(["scan", "voxels", "import posereg.cli", "model + atlas", "read", "centre of gravity",
                         "networks", "refinement", "write"], stage_rows),  # fmt: skip
        "",
        "## Whole processes (seconds, as a user runs them)",
        "",
        *markdown_table(["scan", "posereg register", "register --no-refine", "SimpleITK rigid", "VVR-GC",
                         "SimpleITK / posereg", "VVR-GC / posereg"], process_rows),  # fmt: skip
        "",
        f"Median ratio SimpleITK rigid / posereg register: {statistics.median(ratios):.1f}x.",
        "",
        f"## Batch: {len(named)} scans in one `posereg register ... --out-dir` call",
        "",
        *[f"- {label}: {s:.1f} s in all, {len(named) / s:.2f} scans per second" for label, s in batch_seconds.items()],
    ]
    write_report(args.output, "\n".join(lines) + "\n")
    return 0


def _cycle(items: list) -> object:  # type: ignore[type-arg]
    while True:
        yield from items


if __name__ == "__main__":
    sys.exit(main())
