"""``posereg train volume|slice|reloc``: train a network from a YAML configuration."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

__all__ = ["add_parser", "run_reloc", "run_slice", "run_volume"]


_TASKS = (
    ("volume", "Salehi et al.'s volume Pose-Net or Correction-Net on synthetic MNI152 subjects",
     "Two-stage training (rotation-vector MSE, then geodesic) with checkpoints, CSV and TensorBoard logs under "
     "--output, and the final weights in OUTPUT/model.pt.", "configs/volume_pose.yaml"),
    ("slice", "Salehi et al.'s slice Pose-Net (2D ResNet-18: rotation + slice index) on synthetic MNI152 slices",
     "Two-stage training (rotation-vector MSE, then geodesic; squared slice-index error beside both) with "
     "checkpoints, CSV and TensorBoard logs under --output, and OUTPUT/model.pt.", "configs/slice_pose.yaml"),
    ("reloc", "PoseNet camera relocalisation on a synthetic scene (loss.kind: beta, homoscedastic, reprojection, se3)",
     "Renders (or reads from data.cache) the scene's training and test sequences and trains PoseNet with the loss "
     "that loss.kind names: Kendall & Cipolla's beta-weighted or learned homoscedastic weights, their reprojection "
     "fine-tune (model.init_from a homoscedastic model.pt), or Hou et al.'s SE(3) geodesic loss with weights from "
     "the training poses. Checkpoints, CSV and TensorBoard logs under --output, the final weights in "
     "OUTPUT/model.pt.", "configs/reloc_room.yaml"),
)  # fmt: skip


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``train`` and its tasks."""
    train = sub.add_parser("train", help="train a network from a YAML configuration",
                           description="Train posereg's networks; see configs/ for examples.")  # fmt: skip
    tasks = train.add_subparsers(dest="task", metavar="TASK", required=True)
    runs = {"volume": run_volume, "slice": run_slice, "reloc": run_reloc}
    for name, summary, description, example in _TASKS:
        p = tasks.add_parser(name, help=summary, description=description)
        _add_training_arguments(p, example)
        p.set_defaults(func=runs[name])


def _add_training_arguments(p: argparse.ArgumentParser, example: str) -> None:
    """The options every 'posereg train TASK' takes."""
    p.add_argument("--config", required=True, help=f"YAML configuration (e.g. {example})")
    p.add_argument("--output", required=True, help="run directory for checkpoints, logs and model.pt (refused when "
                   "not empty, unless --resume or --overwrite)")  # fmt: skip
    p.add_argument("--accelerator", choices=("cpu", "gpu", "auto"),
                   help="Lightning accelerator (default: the config's trainer.accelerator)")  # fmt: skip
    runs = p.add_mutually_exclusive_group()
    runs.add_argument("--resume", action="store_true", help="continue the run in --output from checkpoints/last.ckpt "
                      "(bit-identical to an uninterrupted run on the same trainer settings; from the beginning "
                      "when it has no checkpoint yet)")  # fmt: skip
    runs.add_argument("--overwrite", action="store_true", help="replace the run in --output")
    p.add_argument("--quiet", action="store_true", help="no progress bar or model summary")


def run_volume(args: argparse.Namespace) -> int:
    """Train the volume Pose-Net or Correction-Net of a YAML configuration."""
    from posereg.training.config import VolumeTrainingConfig
    from posereg.training.volume import train_volume

    return _train(args, VolumeTrainingConfig, train_volume)


def run_slice(args: argparse.Namespace) -> int:
    """Train the slice Pose-Net of a YAML configuration."""
    from posereg.training.config import SliceTrainingConfig
    from posereg.training.slice import train_slice

    return _train(args, SliceTrainingConfig, train_slice)


def run_reloc(args: argparse.Namespace) -> int:
    """Train PoseNet on a relocalisation scene with the loss of a YAML configuration."""
    from posereg.training.config import RelocTrainingConfig
    from posereg.training.reloc import train_reloc

    return _train(args, RelocTrainingConfig, train_reloc)


def _effective_config(args: argparse.Namespace, config_class: Any) -> Any:
    """The configuration file's values with the command line's overrides (``--accelerator``), validated."""
    config = config_class.from_yaml(args.config)
    if args.accelerator is not None:
        config = config.replace(trainer=config.trainer.replace(accelerator=args.accelerator))
    return config


def _train(args: argparse.Namespace, config_class: Any, train: Callable[..., Any]) -> int:
    """Load and check the configuration and the output folder before anything is written, print the
    effective configuration, train, and print where the run's outputs are."""
    import yaml

    from posereg.training.run import check_run_folder

    config = _effective_config(args, config_class)
    dumped = config.model_dump(mode="json")
    folder = check_run_folder(args.output, dumped, resume=args.resume, overwrite=args.overwrite)
    if _first_process():
        print(f"# effective configuration (saved as {folder.output / 'config.json'})")
        print(yaml.safe_dump(dumped, sort_keys=False).rstrip())
        if args.resume:
            print(f"resuming from {folder.resume_from}" if folder.resume_from else "nothing to resume: starting the run")
    result = train(config, args.output, progress=not args.quiet, resume=args.resume, overwrite=args.overwrite)
    if not _first_process():
        return 0
    print(f"trained {dumped['network']} network in {result.seconds:.0f} s")
    print(f"  model:       {result.model_path}")
    print(f"  best:        {result.best_checkpoint}")
    print(f"  metrics:     {result.metrics_csv}")
    print(f"  tensorboard: {result.output / 'tensorboard'}")
    return 0


def _first_process() -> bool:
    """Whether this is the first process of the run (launchers: torchrun's RANK, SLURM's SLURM_PROCID)."""
    import os

    return all(os.environ.get(name, "0") == "0" for name in ("RANK", "SLURM_PROCID"))
