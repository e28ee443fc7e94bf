"""``posereg predict SCAN... --out-dir DIR --devices N``: register's batch mode spread over processes,
devices and nodes by Lightning's predict loop (``posereg.training.predict``)."""

from __future__ import annotations

import argparse

from posereg.cli.register import add_scan_arguments

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the command."""
    p = sub.add_parser(
        "predict",
        help="register many scans on several processes, devices or nodes (Lightning's predict loop)",
        description="'posereg register SCAN... --out-dir DIR' for more scans than one process handles: each "
        "process registers a disjoint share of the scans and the first writes results.csv and results.json. "
        "--devices N starts N processes here; under torchrun or SLURM (one process per device and node) give "
        "--strategy ddp with the same --devices and --num-nodes. Each process runs the networks on its device (--accelerator gpu: its GPU).",
    )
    p.add_argument("moving", nargs="+", help="the volumes to align (NIfTI, NRRD, MHA/MHD or DICOM folders)")
    p.add_argument("--out-dir", required=True, help="one transform per scan, results.csv and results.json here")
    p.add_argument("--write-images", action="store_true", help="also write <name>_aligned.nii.gz on the reference grid")
    add_scan_arguments(p)
    p.add_argument("--accelerator", choices=("cpu", "gpu", "auto"), default="cpu", help="Lightning's accelerator (default cpu)")
    p.add_argument("--devices", default="1", help="processes (devices) per node, or 'auto' (default 1)")
    p.add_argument("--num-nodes", type=int, default=1, help="nodes (default 1)")
    p.add_argument("--strategy", choices=("auto", "ddp", "ddp_spawn"), default="auto",
                   help="how the processes start (default: Lightning's choice; ddp under torchrun or SLURM)")  # fmt: skip
    p.set_defaults(func=run, out_transform=None, out_image=None, out_result=None)


def run(args: argparse.Namespace) -> int:
    """Register every scan over the processes; exit status as ``posereg register --out-dir``."""
    import logging

    from posereg.cli.register_batch import run_batch
    from posereg.training.config import TrainerConfig

    if args.quiet or args.json:  # Lightning's start-up lines (accelerator, tips) are not results
        logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)

    devices = int(args.devices) if args.devices.isdigit() else args.devices
    trainer = TrainerConfig.model_validate({"accelerator": args.accelerator, "devices": devices,
                                            "num_nodes": args.num_nodes, "strategy": args.strategy})  # fmt: skip
    return run_batch(args, trainer)
