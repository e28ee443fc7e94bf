"""Training curves of ``posereg train volume`` and ``train slice`` runs: a per-epoch table and a figure.

Reads each run's ``logs/metrics.csv`` (Lightning's CSV logger) and writes, per epoch, the
mean training rotation error and the validation mean and median rotation errors (degrees),
plus the validation translation error for Correction-Nets and the slice-index error for slice
Pose-Nets.

    python benchmarks/training_curves.py runs/pose runs/correction --output docs/benchmarks/volume_training.md
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import statistics
import sys
from pathlib import Path


def read_curves(run: Path) -> dict[int, dict[str, float]]:
    """``{epoch: {metric: value}}``; training metrics are averaged over the epoch's steps."""
    path = run / "logs" / "metrics.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no metrics (is {run} a posereg train volume run?)")
    steps: dict[int, list[float]] = {}
    epochs: dict[int, dict[str, float]] = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            epoch = int(row["epoch"])
            if row.get("train/rotation_error_deg"):
                steps.setdefault(epoch, []).append(float(row["train/rotation_error_deg"]))
            for key in ("val/rotation_error_deg", "val/rotation_median_deg", "val/translation_error_mm",
                        "val/slice_index_error"):  # fmt: skip
                if row.get(key):
                    epochs.setdefault(epoch, {})[key] = float(row[key])
    for epoch, values in steps.items():
        epochs.setdefault(epoch, {})["train/rotation_error_deg"] = statistics.fmean(values)
    return dict(sorted(epochs.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories of posereg train volume or train slice")
    parser.add_argument("--title", default="Training curves of the bundled volume model")
    parser.add_argument("--output", type=Path, required=True, help="Markdown table (a .png is written beside it)")
    args = parser.parse_args(argv)
    curves = {run.name: read_curves(run) for run in args.runs}
    lines = [f"# {args.title}", "",
             f"Command: `python benchmarks/training_curves.py {shlex.join(sys.argv[1:])}`", ""]  # fmt: skip
    for run in args.runs:
        summary = run / "summary.json"
        config = run / "config.json"
        if summary.is_file():
            info = json.loads(summary.read_text())
            lines.append(f"- {run.name}: {info['seconds']:.0f} s for {info['epochs']} epochs ({info['accelerator']})"
                         + (f", network {json.loads(config.read_text())['network']}" if config.is_file() else ""))
    lines.append("")
    for name, curve in curves.items():
        last = ("val/slice_index_error", "val slice index error (slices)") if any(
            "val/slice_index_error" in m for m in curve.values()) else ("val/translation_error_mm", "val translation mm")
        lines += [f"### {name}", "", f"| epoch | train mean deg | val mean deg | val median deg | {last[1]} |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for epoch, m in curve.items():
            cells = [m.get(k) for k in ("train/rotation_error_deg", "val/rotation_error_deg",
                                        "val/rotation_median_deg", last[0])]  # fmt: skip
            lines.append(f"| {epoch} | " + " | ".join("-" if c is None else f"{c:.1f}" for c in cells) + " |")
        lines.append("")
    from posereg.evaluation.report import write_report

    write_report(args.output, "\n".join(lines))  # keeps a hand-written reading
    _plot(args.output.with_suffix(".png"), curves)
    print("\n".join(lines))
    return 0


def _plot(path: Path, curves: dict[str, dict[int, dict[str, float]]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.6), squeeze=False)
    for ax, (name, curve) in zip(axes[0], curves.items(), strict=True):
        epochs = list(curve)
        for key, label in (("train/rotation_error_deg", "train mean"), ("val/rotation_error_deg", "val mean"),
                           ("val/rotation_median_deg", "val median")):  # fmt: skip
            ax.plot(epochs, [curve[e].get(key, float("nan")) for e in epochs], marker="o", markersize=3, label=label)
        ax.set(title=name, xlabel="epoch", ylabel="rotation error (degrees)", yscale="log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
