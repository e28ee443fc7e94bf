"""How fast are synthetic heads drawn? Samples per second of each batch function, eager and compiled.

Training on synthetic heads is data-bound when the synthesis is slower than a training step
(a Pose-Net step on 2 CPU cores takes ~40-50 samples/s). Times ``pose_batch`` (as the Pose-Net
sampler calls it: the centring view at 12 mm), ``correction_batch`` and ``head_slice_batch``
for ``--batch`` samples, the median of ``--repeats`` calls after a warm-up call (which also
compiles), with ``compiled=False`` and ``compiled=True``.

    python benchmarks/synthesis_speed.py --head-model head_model.pt --output docs/benchmarks/synthesis_speed.md
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial
from pathlib import Path

import torch


def _rate(draw, batch: int, repeats: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """``(samples per second, seconds of the warm-up call)`` of ``draw(n, generator)``."""
    start = time.perf_counter()
    draw(batch, torch.Generator().manual_seed(0))
    warm_up = time.perf_counter() - start
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        draw(batch, torch.Generator().manual_seed(i + 1))
        times.append(time.perf_counter() - start)
    return batch / statistics.median(times), warm_up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--head-model", required=True, help="file of posereg.data.head_model.save_head_model")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default=None, help="markdown report (default: print only)")
    args = parser.parse_args()

    from posereg.data.head_model import load_head_model
    from posereg.data.head_slices import head_slice_batch
    from posereg.data.head_synthesis import correction_batch, pose_batch
    from posereg.evaluation.report import machine_line, markdown_table, write_report

    start = time.perf_counter()
    head = load_head_model(args.head_model)
    spacing = float(head.atlas.image.spacing[0])
    functions = {
        "pose_batch (Pose-Net views, 12 mm centring view)": partial(pose_batch, coarse_spacing=4 * spacing),
        "correction_batch (Correction-Net pairs)": correction_batch,
        "head_slice_batch (slices)": head_slice_batch,
    }
    rows = []
    for name, function in functions.items():
        eager, _ = _rate(lambda n, g, f=function: f(head, n, g), args.batch, args.repeats)
        try:
            compiled, compile_s = _rate(lambda n, g, f=function: f(head, n, g, compiled=True), args.batch, args.repeats)
        except TypeError:  # a posereg from before compiled synthesis (to measure the speed-up)
            rows.append([name, f"{eager:.1f}", "-", "-", "-"])
            continue
        rows.append([name, f"{eager:.1f}", f"{compiled:.1f}", f"{compiled / eager:.1f}x", f"{compile_s:.0f}"])
        print(rows[-1], flush=True)
    table = markdown_table(["batch function", "eager samples/s", "compiled samples/s", "ratio",
                            "first compiled call s"], rows)  # fmt: skip
    print("\n".join(table))
    if args.output:
        command = (f"python benchmarks/synthesis_speed.py --head-model {args.head_model} --batch {args.batch} "
                   f"--repeats {args.repeats} --output {args.output}")  # fmt: skip
        lines = ["# Synthetic-head synthesis speed", "", f"Command: `{command}`",
                 machine_line(torch.get_num_threads(), time.perf_counter() - start), "",
                 f"Batches of {args.batch} on the CPU; medians of {args.repeats} calls after a warm-up call.", "",
                 *table]  # fmt: skip
        write_report(Path(args.output), "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
