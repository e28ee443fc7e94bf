"""Camera relocalisation: which loss trains PoseNet best (Kendall & Cipolla 2017; Hou et al. 2018).

On each of posereg's synthetic scenes (``room``: 7-Scenes-like metres; ``street``:
Cambridge-like tens of metres), PoseNet is trained from the same seed with each loss of
``posereg train reloc`` and evaluated on the scene's test sequences (different camera paths
through the same scene):

- beta-weighted ``|p - p_hat|_1 + beta |q - q_hat|_1`` for every ``--betas`` value (the sweep);
- learned homoscedastic weights (``s_p = 0``, ``s_q = -3`` at the start);
- the reprojection loss, fine-tuning the homoscedastic model for ``--finetune-epochs``;
- a control: the homoscedastic model trained on for the same epochs with its own loss (and
  its learned weights), so that the fine-tune's gain is not mistaken for more training;
- with ``--finetune-variants``, other fine-tunes of the first seed's model (learning rate x3
  and /3, twice the epochs, the Euclidean norm) in a table of their own;
- Hou et al.'s SE(3) geodesic loss with ``W`` from the spread of the training poses, and with
  ``W`` from the training residuals of the homoscedastic model (the authors' rule, which they
  applied to test residuals; training frames here); each as the squared distance ``d_W^2``
  (Hou et al.) and as the distance ``d_W`` itself (an L1-like loss, as the Kendall losses are).

Every cell is trained once per ``--seeds`` value (the network's initial weights, the order of
the training frames and dropout; the scenes are the same for every seed). The best checkpoint of
a run is chosen on a held-out training path (``data.val_sequences``); the test paths are only
evaluated.

Reported: median position (m) and orientation (degrees) error per scene and loss, in the
shape of Kendall & Cipolla's table (the median over seeds of each run's medians, with the
range over seeds), with their published numbers quoted beside; a ranking on both errors at
once; training throughput (images/s) and the share of each epoch spent loading data; a
plot of predicted vs true camera positions per scene (first seed).

    python benchmarks/relocalisation.py --output docs/benchmarks/relocalisation.md
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import Dataset

from posereg.data.reloc import relocalisation_data
from posereg.evaluation.plots import camera_positions
from posereg.evaluation.relocalisation import RelocalisationResult
from posereg.evaluation.report import markdown_table, write_report
from posereg.training.config import LossKind, RelocTrainingConfig, load_config
from posereg.training.loop import training_loader
from posereg.training.reloc import (
    metric_from_training_poses,
    metric_from_training_residuals,
    train_reloc,
)
from posereg.training.reloc_model import evaluate_reloc_model, load_reloc_model

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
    seed: int = 0
    seconds: float = 0.0
    images_per_s: float = 0.0
    result: RelocalisationResult | None = None
    extra: str = ""


def _configure(base: RelocTrainingConfig, kind: LossKind, **changes) -> RelocTrainingConfig:  # type: ignore[no-untyped-def]
    loss_keys = ("beta", "metric_weights", "se3_squared", "init", "gamma")
    loss = base.loss.replace(kind=kind, **{k: v for k, v in changes.items() if k in loss_keys})
    model = base.model.replace(init_from=changes.get("init_from"))
    optim = base.optim.replace(**{k: v for k, v in changes.items() if k in ("epochs", "lr")})
    return base.replace(loss=loss, model=model, optim=optim)


def _last_logged(run_dir: Path, key: str) -> float | None:
    path = run_dir / "logs" / "metrics.csv"
    if not path.is_file():
        return None
    values = [row[key] for row in csv.DictReader(path.open()) if row.get(key)]
    return float(values[-1]) if values else None


def _run_dir(run: Run, runs: Path) -> Path:
    name = f"{run.scene}_{run.name.replace(' ', '_').replace('=', '')}"
    return runs / (name if run.seed == 0 else f"{name}_seed{run.seed}")


def _trained_with(out: Path, config: RelocTrainingConfig) -> bool:
    """Whether ``out`` holds a finished run of exactly ``config`` (so ``--reuse`` never
    evaluates a run trained with other settings). The config is read from ``model.pt`` itself:
    ``config.json`` is written when training starts, so after an interrupted run it can
    describe a model that was never saved."""
    if not (out / "model.pt").is_file():
        return False
    _, trained = load_reloc_model(out / "model.pt")
    return trained.model_dump(mode="json") == config.model_dump(mode="json")


def _train(run: Run, runs: Path, reuse: bool) -> Path:
    out = _run_dir(run, runs)
    if not (reuse and _trained_with(out, run.config)):
        train_reloc(run.config, out, progress=False, overwrite=True)
    summary = json.loads((out / "summary.json").read_text())
    run.seconds = summary["seconds"]
    return out


def _loading_share(train: Dataset, config: RelocTrainingConfig, seconds_per_epoch: float) -> tuple[float, float]:
    """Seconds to load one epoch of batches (no network) through the training loader, and its
    share of a training epoch."""
    loader = training_loader(train, config.optim.batch_size, config.optim.num_workers, seed=config.seed)
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
    parser.add_argument("--finetune-variants", action="store_true",
                        help="also fine-tune the first seed's homoscedastic model with other learning rates, twice "
                             "the epochs and the Euclidean norm (a separate table)")
    parser.add_argument("--runs", type=Path, default=Path("runs/reloc"), help="run directories (default runs/reloc)")
    parser.add_argument("--se3-forms", nargs="+", default=["squared", "unsquared"], choices=("squared", "unsquared"),
                        help="which SE(3) losses to train: Hou et al.'s d_W^2 and/or d_W itself")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="network seeds; every cell is trained once per seed")
    parser.add_argument("--reuse", action="store_true",
                        help="evaluate existing runs trained with the same config instead of retraining them")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    all_runs: list[Run] = []
    variant_runs: list[Run] = []
    notes: dict[str, list[str]] = {}
    for scene in args.scenes:
        base = load_config(Path("configs") / f"reloc_{scene}.yaml", RelocTrainingConfig)
        if args.epochs is not None:
            base = base.replace(optim=base.optim.replace(epochs=args.epochs))
        data = relocalisation_data(base.data, progress=True)
        train, test = data.train_poses, data.test_poses
        W = torch.diagonal(metric_from_training_poses(train))
        notes[scene] = [
            f"{len(train)} training frames ({base.data.train_sequences} paths), {len(test)} test frames "
            f"({base.data.test_sequences} other paths), {base.data.size}x{base.data.size} px; camera-centre spread "
            f"(std per axis) {', '.join(f'{v:.2f}' for v in train.positions.std(0).tolist())} m",
            f"SE(3) weights from the training poses: w_r = {W[0]:.3f}, w_t = {W[3]:.3f} (w_t / w_r = {W[3] / W[0]:.3g})",
        ]

        def run_and_evaluate(run: Run, into: list[Run] = all_runs) -> Path:
            print(f"[{run.scene}, seed {run.seed}] {run.name}", flush=True)
            out = _train(run, args.runs, args.reuse)
            run.result, _ = evaluate_reloc_model(out / "model.pt")
            run.images_per_s = len(train) * run.config.optim.epochs / run.seconds
            into.append(run)
            return out

        for seed in args.seeds:
            seeded = base.replace(seed=seed)
            for b in args.betas:
                run_and_evaluate(Run(scene, f"beta={b:g}", _configure(seeded, LossKind.BETA, beta=b), seed))
            homo = Run(scene, "homoscedastic", _configure(seeded, LossKind.HOMOSCEDASTIC), seed)
            homo_out = run_and_evaluate(homo)
            s_p, s_q = _last_logged(homo_out, "loss/s_p"), _last_logged(homo_out, "loss/s_q")
            if s_p is None or s_q is None:
                raise RuntimeError(f"{homo_out}: no learned s_p, s_q in its logs")
            homo.extra = f"learned s_p = {s_p:.2f}, s_q = {s_q:.2f}"
            tuned = {"init_from": str(homo_out / "model.pt"), "epochs": args.finetune_epochs, "lr": args.finetune_lr}
            run_and_evaluate(Run(scene, "reprojection", _configure(seeded, LossKind.REPROJECTION, **tuned), seed))
            # The control goes on from where the homoscedastic run ended, its learned weights included.
            run_and_evaluate(Run(scene, "homoscedastic continued",
                                 _configure(seeded, LossKind.HOMOSCEDASTIC, init=(s_p, s_q), **tuned), seed))  # fmt: skip
            if args.finetune_variants and seed == args.seeds[0]:
                for name, changes in _finetune_variants(args.finetune_lr, args.finetune_epochs):
                    run_and_evaluate(Run(scene, name, _configure(seeded, LossKind.REPROJECTION, **{**tuned, **changes}),
                                         seed), into=variant_runs)  # fmt: skip
            # Hou et al.'s own rule for W: a first model's residuals (training frames here).
            first, _ = load_reloc_model(homo_out / "model.pt")
            W_res = torch.diagonal(metric_from_training_residuals(first, data))
            if seed == args.seeds[0]:
                notes[scene].append(f"SE(3) weights from the homoscedastic model's training residuals (seed {seed}): "
                                    f"w_r = {W_res[0]:.3f}, w_t = {W_res[3]:.3f} (w_t / w_r = {W_res[3] / W_res[0]:.3g})")  # fmt: skip
            for squared, suffix in [(form == "squared", "" if form == "squared" else " unsquared") for form in args.se3_forms]:
                run_and_evaluate(Run(scene, f"se3{suffix}", _configure(seeded, LossKind.SE3, se3_squared=squared), seed))
                run_and_evaluate(Run(scene, f"se3{suffix} residual W", _configure(
                    seeded, LossKind.SE3, se3_squared=squared, metric_weights=tuple(W_res.tolist())), seed))
            if seed == args.seeds[0]:
                loading, share = _loading_share(data.train, base, homo.seconds / homo.config.optim.epochs)
                notes[scene].append(f"data loading: {loading:.2f} s per epoch, {100 * share:.1f}% of a training epoch "
                                    f"(num_workers {base.optim.num_workers})")  # fmt: skip
        cells = _cells(all_runs, scene)
        best_beta = min((name for name in cells if name.startswith("beta")), key=lambda name: cells[name].score)
        first_seed = {r.name: r for r in all_runs if r.scene == scene and r.seed == args.seeds[0]}
        plotted = {f"best {best_beta}": first_seed[best_beta]}
        plotted.update({LABELS.get(n, n): first_seed[n] for n in ("homoscedastic", "reprojection", "se3", "se3 unsquared")
                        if n in first_seed})  # fmt: skip
        figure = args.output.with_name(f"{args.output.stem}_{scene}.png")
        camera_positions(figure, {k: v.result.predicted_positions for k, v in plotted.items()},
                         first_seed[best_beta].result.true_positions,
                         title=f"{scene}: test cameras, predicted vs true (seed {args.seeds[0]})")  # fmt: skip
    elapsed = time.perf_counter() - start
    report = _report(args, all_runs, variant_runs, notes, elapsed, argv)
    write_report(args.output, report)
    print(report)
    return 0


@dataclasses.dataclass
class Cell:
    """One (scene, loss) cell over seeds: the median over seeds of each run's median errors,
    their ranges, and ``score``: both medians divided by the scene's typical errors, summed."""

    position_m: float
    rotation_deg: float
    position_range: tuple[float, float]
    rotation_range: tuple[float, float]
    seeds: int
    reprojection_px: float | None = None
    score: float = 0.0

    def text(self) -> str:
        value = f"{self.position_m:.2f} m, {self.rotation_deg:.1f}°"
        if self.seeds == 1:
            return value
        (p0, p1), (r0, r1) = self.position_range, self.rotation_range
        return f"{value} ({p0:.2f}-{p1:.2f} m, {r0:.1f}-{r1:.1f}°)"


def _cells(runs: list[Run], scene: str) -> dict[str, Cell]:
    """Each loss's ``Cell`` on ``scene``; the scores use as units the medians over the
    scene's cells (ranking both errors at once, as the beta sweep is ranked)."""
    by_name: dict[str, list[RelocalisationResult]] = {}
    for r in runs:
        if r.scene == scene and r.result is not None:
            by_name.setdefault(r.name, []).append(r.result)
    cells = {}
    for name, results in by_name.items():
        p = [x.median_position_m for x in results]
        q = [x.median_rotation_deg for x in results]
        px = [x.median_reprojection_px for x in results if x.median_reprojection_px is not None]
        cells[name] = Cell(statistics.median(p), statistics.median(q), (min(p), max(p)), (min(q), max(q)), len(results),
                           statistics.median(px) if px else None)  # fmt: skip
    p_unit = max(statistics.median(c.position_m for c in cells.values()), 1e-9)
    q_unit = max(statistics.median(c.rotation_deg for c in cells.values()), 1e-9)
    for c in cells.values():
        c.score = c.position_m / p_unit + c.rotation_deg / q_unit
    return cells


def _finetune_variants(lr: float, epochs: int) -> list[tuple[str, dict]]:  # type: ignore[type-arg]
    """The reprojection fine-tunes tried beside the benchmark's own (``lr``, ``epochs``, L1)."""
    return [(f"reprojection lr={3 * lr:g}", {"lr": 3 * lr}), (f"reprojection lr={lr / 3:.2g}", {"lr": lr / 3}),
            (f"reprojection {2 * epochs} epochs", {"epochs": 2 * epochs}), ("reprojection gamma=2", {"gamma": 2})]  # fmt: skip


def _variant_table(runs: list[Run], variants: list[Run], scenes: list[str], seed: int) -> list[str]:
    """The fine-tune variants beside the same seed's fine-tune and control: m, degrees, pixels."""
    def text(r: Run) -> str:
        px = r.result.median_reprojection_px
        return r.result.cell() + (f", {px:.2f} px" if px is not None else "")

    rows = [r for r in runs if r.seed == seed and r.name in ("homoscedastic", "reprojection", "homoscedastic continued")]
    by = {(r.scene, r.name): r for r in rows + variants}
    names = list(dict.fromkeys(r.name for r in rows + variants))
    return markdown_table(["run", *scenes], [[LABELS.get(n, n), *[text(by[(s, n)]) if (s, n) in by else "-" for s in scenes]]
                                             for n in names])  # fmt: skip


def _report(args, runs: list[Run], variants: list[Run], notes: dict[str, list[str]], elapsed: float, argv) -> str:  # type: ignore[no-untyped-def]
    scenes = list(dict.fromkeys(r.scene for r in runs))
    names = list(dict.fromkeys(r.name for r in runs))
    cells = {scene: _cells(runs, scene) for scene in scenes}
    seeds = ", ".join(str(s) for s in args.seeds)
    command = "python benchmarks/relocalisation.py " + " ".join(argv if argv is not None else sys.argv[1:])
    o = runs[0].config.optim
    lines = [
        "# Camera relocalisation on synthetic scenes: which loss trains PoseNet best",
        "",
        f"Command: `{command}`  ",
        f"Machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
        f"{datetime.date.today()}; total {elapsed / 60:.1f} min. Network seeds {seeds} (initial weights and the order "
        "of the training frames); path seeds 0.. (train) and 1000.. (test), the same scenes for every seed.",
        f"Optimiser: {'AdamW (decoupled weight decay)' if o.decoupled_weight_decay else 'Adam (L2 weight decay)'}, "
        f"lr {o.lr:g}, weight decay {o.weight_decay:g}, cosine decay, batch {o.batch_size}, the same for every loss; "
        f"fine-tunes: {args.finetune_epochs} epochs at lr {args.finetune_lr:g}.",
        "",
        f"Median test errors (position, orientation): the median over {len(args.seeds)} seed(s) of each run's medians"
        + (", with the range over seeds" if len(args.seeds) > 1 else "") + ":",
        "",
    ]
    lines += markdown_table(["loss", *scenes], [[LABELS.get(name, name), *[cells[s][name].text() if name in cells[s]
                                                                            else "-" for s in scenes]] for name in names])  # fmt: skip
    if any(c.reprojection_px is not None for scene in scenes for c in cells[scene].values()):
        size = runs[0].config.data.size
        lines += ["", f"Median test reprojection error (pixels of the {size} x {size} images; the Euclidean form of the "
                  "loss the fine-tune minimises, over each frame's visible scene points; median over seeds):", ""]  # fmt: skip
        lines += markdown_table(["loss", *scenes], [[LABELS.get(name, name), *[
            f"{cells[s][name].reprojection_px:.2f} px" if name in cells[s] and cells[s][name].reprojection_px is not None
            else "-" for s in scenes]] for name in names])  # fmt: skip
    lines += ["", "Ranking on both errors at once (each median divided by the median over the scene's rows, summed; "
              "lower is better):", ""]  # fmt: skip
    for scene in scenes:
        ranked = sorted(cells[scene].items(), key=lambda item: item[1].score)
        lines.append(f"- {scene}: " + ", ".join(f"{LABELS.get(n, n)} {c.score:.2f}" for n, c in ranked))
    if variants:
        lines += ["", f"Reprojection fine-tune variants (seed {args.seeds[0]}; each from the same homoscedastic model, "
                  "median position, orientation and reprojection error on the test frames):", ""]  # fmt: skip
        lines += _variant_table(runs, variants, scenes, args.seeds[0])
    lines += ["", "Training (medians over seeds):", ""]
    rows = []
    for scene in scenes:
        for name in names:
            group = [r for r in runs if r.scene == scene and r.name == name]
            if not group:
                continue
            secs = statistics.median(r.seconds for r in group)
            speed = statistics.median(r.images_per_s for r in group)
            extra = "; ".join(f"seed {r.seed}: {r.extra}" for r in group if r.extra)
            rows.append([scene, LABELS.get(name, name), str(group[0].config.optim.epochs), f"{secs:.0f} s", f"{speed:.0f}", extra])
    lines += markdown_table(["scene", "loss", "epochs", "time", "images/s", "note"], rows)
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
