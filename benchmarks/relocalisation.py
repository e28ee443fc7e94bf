"""Camera relocalisation: which loss trains PoseNet best (Kendall & Cipolla 2017; Hou et al. 2018).

On each of posereg's synthetic scenes (``room``: 7-Scenes-like metres; ``street``:
Cambridge-like tens of metres), PoseNet is trained from the same seed with each loss of
``posereg train reloc`` and evaluated on the scene's test sequences (different camera paths
through the same scene):

- beta-weighted ``|p - p_hat|_1 + beta |q - q_hat|_1`` for every ``--betas`` value (the sweep);
- learned homoscedastic weights (``s_p = 0``, ``s_q = -3`` at the start);
- the reprojection loss, fine-tuning the homoscedastic model for ``--finetune-epochs``;
- a control: the homoscedastic model trained on for the same epochs with its own loss, so
  that the fine-tune's gain is not mistaken for the gain of more training;
- Hou et al.'s SE(3) geodesic loss with ``W`` from the spread of the training poses, and with
  ``W`` from the training residuals of the homoscedastic model (the authors' rule, which they
  applied to test residuals; training frames here); each as the squared distance ``d_W^2``
  (Hou et al.) and as the distance ``d_W`` itself (an L1-like loss, as the Kendall losses are).

Reported: median position (m) and orientation (degrees) error per scene and loss, in the
shape of Kendall & Cipolla's table, with their published numbers quoted beside; training
throughput (images/s) and the share of each epoch spent loading data; a plot of predicted
vs true camera positions per scene.

    python benchmarks/relocalisation.py --output docs/benchmarks/relocalisation.md
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import json
import platform
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import Dataset

from posereg.evaluation.plots import camera_positions
from posereg.evaluation.relocalisation import RelocalisationResult
from posereg.evaluation.report import markdown_table, write_report
from posereg.training.loop import training_loader
from posereg.training.reloc import (
    evaluate_reloc_model,
    load_reloc_model,
    metric_from_training_poses,
    metric_from_training_residuals,
    relocalisation_data,
    train_reloc,
)
from posereg.training.reloc_config import LossKind, RelocTrainingConfig, load_reloc_config

PUBLISHED = [  # Kendall & Cipolla 2017 (median m / degrees), from ../shared/REFERENCE.md
    ("King's College", "PoseNet, beta (tuned)", "1.92 m, 5.40°"),
    ("King's College", "reprojection fine-tune", "0.88 m, 1.04°"),
    ("7-Scenes Chess", "reprojection fine-tune", "0.13 m, 4.48°"),
    ("King's College", "DSAC* (structure-based, the ceiling)", "0.18 m, 0.3°"),
]


LABELS = {
    "homoscedastic": "learned weights (homoscedastic)",
    "reprojection": "reprojection fine-tune of it",
    "homoscedastic continued": "control: homoscedastic, same extra epochs",
    "se3": "SE(3) geodesic d², W from the pose spread",
    "se3 residual W": "SE(3) geodesic d², W from training residuals",
    "se3 unsquared": "SE(3) geodesic d, W from the pose spread",
    "se3 unsquared residual W": "SE(3) geodesic d, W from training residuals",
}


@dataclasses.dataclass
class Run:
    scene: str
    name: str
    config: RelocTrainingConfig
    seconds: float = 0.0
    images_per_s: float = 0.0
    result: RelocalisationResult | None = None
    extra: str = ""


def _configure(base: RelocTrainingConfig, kind: LossKind, **changes) -> RelocTrainingConfig:  # type: ignore[no-untyped-def]
    loss = dataclasses.replace(base.loss, kind=kind, **{k: v for k, v in changes.items() if k in ("beta", "metric_weights", "se3_squared")})
    model = dataclasses.replace(base.model, init_from=changes.get("init_from"))
    optim = dataclasses.replace(base.optim, **{k: v for k, v in changes.items() if k in ("epochs", "lr")})
    return dataclasses.replace(base, loss=loss, model=model, optim=optim)


def _last_logged(run_dir: Path, key: str) -> float | None:
    path = run_dir / "logs" / "metrics.csv"
    if not path.is_file():
        return None
    values = [row[key] for row in csv.DictReader(path.open()) if row.get(key)]
    return float(values[-1]) if values else None


def _train(run: Run, runs: Path, reuse: bool) -> Path:
    out = runs / f"{run.scene}_{run.name.replace(' ', '_').replace('=', '')}"
    model = out / "model.pt"
    if not (reuse and model.is_file()):
        train_reloc(run.config, out, progress=False)
    summary = json.loads((out / "summary.json").read_text())
    run.seconds = summary["seconds"]
    return out


def _loading_share(train: Dataset, config: RelocTrainingConfig, seconds_per_epoch: float) -> tuple[float, float]:
    """Seconds to load one epoch of batches (no network) through the training loader, and its
    share of a training epoch."""
    loader = training_loader(train, config.optim.batch_size, config.optim.num_workers)
    start = time.perf_counter()
    for _ in loader:
        pass
    loading = time.perf_counter() - start
    return loading, loading / seconds_per_epoch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", nargs="+", default=["room", "street"], choices=("room", "street"))
    parser.add_argument("--betas", type=float, nargs="+", default=[1.0, 10.0, 100.0, 1000.0])
    parser.add_argument("--epochs", type=int, help="override optim.epochs of the scene configs")
    parser.add_argument("--finetune-epochs", type=int, default=20)
    parser.add_argument("--finetune-lr", type=float, default=1e-4)
    parser.add_argument("--runs", type=Path, default=Path("runs/reloc"), help="run directories (default runs/reloc)")
    parser.add_argument("--reuse", action="store_true", help="evaluate existing runs instead of retraining")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    all_runs: list[Run] = []
    notes: dict[str, list[str]] = {}
    for scene in args.scenes:
        base = load_reloc_config(Path("configs") / f"reloc_{scene}.yaml")
        if args.epochs is not None:
            base = dataclasses.replace(base, optim=dataclasses.replace(base.optim, epochs=args.epochs))
        data = relocalisation_data(base.data, progress=True)
        train, test = data.train_poses, data.test_poses
        W = torch.diagonal(metric_from_training_poses(train))
        notes[scene] = [
            f"{len(train)} training frames ({base.data.train_sequences} paths), {len(test)} test frames "
            f"({base.data.test_sequences} other paths), {base.data.size}x{base.data.size} px; camera-centre spread "
            f"(std per axis) {', '.join(f'{v:.2f}' for v in train.positions.std(0).tolist())} m",
            f"SE(3) weights from the training poses: w_r = {W[0]:.3f}, w_t = {W[3]:.3f} (w_t / w_r = {W[3] / W[0]:.3g})",
        ]

        def run_and_evaluate(run: Run) -> Path:
            print(f"[{run.scene}] {run.name}", flush=True)
            out = _train(run, args.runs, args.reuse)
            run.result, _ = evaluate_reloc_model(out / "model.pt")
            run.images_per_s = len(train) * run.config.optim.epochs / run.seconds
            all_runs.append(run)
            return out

        for b in args.betas:
            run_and_evaluate(Run(scene, f"beta={b:g}", _configure(base, LossKind.BETA, beta=b)))
        homo = Run(scene, "homoscedastic", _configure(base, LossKind.HOMOSCEDASTIC))
        homo_out = run_and_evaluate(homo)
        s_p, s_q = _last_logged(homo_out, "loss/s_p"), _last_logged(homo_out, "loss/s_q")
        homo.extra = f"learned s_p = {s_p:.2f}, s_q = {s_q:.2f}" if s_p is not None and s_q is not None else ""
        tuned = {"init_from": str(homo_out / "model.pt"), "epochs": args.finetune_epochs, "lr": args.finetune_lr}
        run_and_evaluate(Run(scene, "reprojection", _configure(base, LossKind.REPROJECTION, **tuned)))
        run_and_evaluate(Run(scene, "homoscedastic continued", _configure(base, LossKind.HOMOSCEDASTIC, **tuned)))
        # Hou et al.'s own rule for W: a first model's residuals (training frames here).
        first, _ = load_reloc_model(homo_out / "model.pt")
        W_res = torch.diagonal(metric_from_training_residuals(first, data))
        notes[scene].append(f"SE(3) weights from the homoscedastic model's training residuals: w_r = "
                            f"{W_res[0]:.3f}, w_t = {W_res[3]:.3f} (w_t / w_r = {W_res[3] / W_res[0]:.3g})")  # fmt: skip
        for squared, suffix in ((True, ""), (False, " unsquared")):
            run_and_evaluate(Run(scene, f"se3{suffix}", _configure(base, LossKind.SE3, se3_squared=squared)))
            run_and_evaluate(Run(scene, f"se3{suffix} residual W", _configure(
                base, LossKind.SE3, se3_squared=squared, metric_weights=tuple(W_res.tolist()))))
        loading, share = _loading_share(data.train, base, homo.seconds / homo.config.optim.epochs)
        notes[scene].append(f"data loading: {loading:.2f} s per epoch, {100 * share:.1f}% of a training epoch "
                            f"(num_workers {base.optim.num_workers})")  # fmt: skip
        p_scale, r_scale = _typical_errors(all_runs, scene)
        best_beta = min((r for r in all_runs if r.scene == scene and r.name.startswith("beta")),
                        key=lambda r: r.result.median_position_m / p_scale + r.result.median_rotation_deg / r_scale)  # fmt: skip
        plotted = {f"best {best_beta.name}": best_beta}
        plotted.update({LABELS.get(r.name, r.name): r for r in all_runs
                        if r.scene == scene and r.name in ("homoscedastic", "reprojection", "se3")})  # fmt: skip
        figure = args.output.with_name(f"{args.output.stem}_{scene}.png")
        camera_positions(figure, {k: v.result.predicted_positions for k, v in plotted.items()},
                         best_beta.result.true_positions, title=f"{scene}: test cameras, predicted vs true")  # fmt: skip
    elapsed = time.perf_counter() - start
    report = _report(args, all_runs, notes, elapsed, argv)
    write_report(args.output, report)
    print(report)
    return 0


def _typical_errors(runs: list[Run], scene: str) -> tuple[float, float]:
    """The medians over this scene's runs of their median position and orientation errors
    (the units in which the beta sweep is ranked on both errors at once)."""
    results = [r.result for r in runs if r.scene == scene and r.result is not None]
    p = torch.tensor([r.median_position_m for r in results]).median().item()
    q = torch.tensor([r.median_rotation_deg for r in results]).median().item()
    return max(p, 1e-9), max(q, 1e-9)


def _report(args, runs: list[Run], notes: dict[str, list[str]], elapsed: float, argv) -> str:  # type: ignore[no-untyped-def]
    scenes = list(dict.fromkeys(r.scene for r in runs))
    names = list(dict.fromkeys(r.name for r in runs))
    by = {(r.scene, r.name): r for r in runs}
    command = "python benchmarks/relocalisation.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        "# Camera relocalisation on synthetic scenes: which loss trains PoseNet best",
        "",
        f"Command: `{command}`  ",
        f"Machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
        f"{datetime.date.today()}; total {elapsed / 60:.1f} min. Seeds: network seed 0 for every run, path seeds "
        "0.. (train) and 1000.. (test).",
        f"Optimiser: {'AdamW (decoupled weight decay)' if runs[0].config.optim.decoupled_weight_decay else 'Adam (L2 weight decay)'}, "
        f"lr {runs[0].config.optim.lr:g}, weight decay {runs[0].config.optim.weight_decay:g}, cosine decay, batch "
        f"{runs[0].config.optim.batch_size}, the same for every loss.",
        "",
        "Median test errors (position, orientation), one training run each:",
        "",
    ]
    lines += markdown_table(["loss", *scenes], [[LABELS.get(name, name), *[by[(s, name)].result.cell() if (s, name) in by
                                                                            else "-" for s in scenes]] for name in names])  # fmt: skip
    lines += ["", "Training:", ""]
    lines += markdown_table(["scene", "loss", "epochs", "time", "images/s", "note"],
                            [[r.scene, LABELS.get(r.name, r.name), str(r.config.optim.epochs), f"{r.seconds:.0f} s",
                              f"{r.images_per_s:.0f}", r.extra] for r in runs])  # fmt: skip
    lines += ["", "Scenes:", ""]
    for scene, items in notes.items():
        lines += [f"- **{scene}**: " + "; ".join(items)]
    lines += ["", "Published (Kendall & Cipolla 2017, real images at 224 px with a GoogLeNet; for reference, "
              "not comparable in scale):", ""]  # fmt: skip
    lines += markdown_table(["scene", "method", "median"], PUBLISHED)
    lines += ["", *[f"![{s}]({args.output.stem}_{s}.png)" for s in scenes], ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
