"""The ``posereg`` command line: ``posereg --help`` lists the subcommands."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _cmd_version(args: argparse.Namespace) -> int:
    import torch

    import posereg

    print(f"posereg {posereg.__version__} (torch {torch.__version__})")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    """Geometry demonstration: random rotations, their log/exp round trip and distances."""
    import torch

    from posereg import geometry as g

    if args.count < 1:
        print("posereg demo: --count must be at least 1", file=sys.stderr)
        return 2
    gen = torch.Generator().manual_seed(args.seed)
    dtype = torch.float64
    R = g.random_rotation(args.count, generator=gen, dtype=dtype)
    v = g.matrix_to_rotvec(R)
    roundtrip = (g.rotvec_to_matrix(v) - R).abs().amax(dim=(-2, -1))
    q = g.matrix_to_quaternion(R)
    angle_to_first = g.geodesic_distance(R[:1], R)
    print(f"posereg geometry demo: {args.count} Haar-uniform rotations (seed {args.seed}, float64)\n")
    header = f"{'#':>3}  {'angle (deg)':>11}  {'axis (x, y, z)':>24}  {'quaternion (w, x, y, z)':>32}  {'|exp(log R) - R|':>16}  {'d(R0, R) deg':>12}"
    print(header)
    print("-" * len(header))
    for i in range(args.count):
        theta = float(v[i].norm())
        axis = (v[i] / theta).tolist() if theta > 0 else [0.0, 0.0, 0.0]
        axis_s = "(" + ", ".join(f"{a:+.3f}" for a in axis) + ")"
        quat_s = "(" + ", ".join(f"{c:+.3f}" for c in q[i].tolist()) + ")"
        print(
            f"{i:>3}  {math.degrees(theta):>11.3f}  {axis_s:>24}  {quat_s:>32}  "
            f"{float(roundtrip[i]):>16.2e}  {math.degrees(float(angle_to_first[i])):>12.3f}"
        )
    # Edge cases that break naive formulas: angles 0, 1e-8 and pi.
    print("\nedge cases (float32 and float64): exp/log round trip and distance to the identity")
    for dt in (torch.float32, torch.float64):
        for angle in (0.0, 1e-8, math.pi - 1e-6, math.pi):
            rv = torch.tensor([[angle, 0.0, 0.0]], dtype=dt)
            Rk = g.rotvec_to_matrix(rv)
            back = g.matrix_to_rotvec(Rk)
            dist = g.geodesic_distance(torch.eye(3, dtype=dt), Rk)
            print(
                f"  {str(dt):>13}  angle {angle:<20.17g} log(exp(v)) angle {float(back.norm()):<20.17g}"
                f" distance {float(dist):.17g}"
            )
    return 0


def _cmd_train_volume(args: argparse.Namespace) -> int:
    """Train the volume Pose-Net or Correction-Net of a YAML configuration."""
    from posereg.training.config import load_volume_config

    try:
        config = load_volume_config(args.config)
    except (FileNotFoundError, ValueError) as exc:
        print(f"posereg train volume: {exc}", file=sys.stderr)
        return 2
    from posereg.training.volume import train_volume

    result = train_volume(config, args.output, accelerator=args.accelerator, progress=not args.quiet)
    print(f"trained {config.network.value} network in {result.seconds:.0f} s")
    print(f"  model:       {result.model_path}")
    print(f"  best:        {result.best_checkpoint}")
    print(f"  metrics:     {result.metrics_csv}")
    print(f"  tensorboard: {result.output / 'tensorboard'}")
    return 0


def _load_atlas_arg(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The default MNI152 atlas, or a user's NIfTI atlas, on the requested grid."""
    from posereg.data import (
        Atlas,
        Contrast,
        brain_mask,
        load_atlas,
        load_nifti,
        preprocess_intensity,
        resample_to_grid,
    )
    from posereg.registration.moments import centre_of_gravity

    shape = (args.grid_size,) * 3
    if args.atlas is None:
        return load_atlas(Contrast(args.atlas_contrast), shape, args.spacing)
    native = load_nifti(args.atlas)
    image = resample_to_grid(native, shape, args.spacing, centre_of_gravity(native))
    image = image.with_data(preprocess_intensity(image.data))
    return Atlas(image, brain_mask(image.data), Contrast(args.atlas_contrast))


def _cmd_register(args: argparse.Namespace) -> int:
    """Rigidly register a volume to the atlas with the deep pipeline (and optional refinement)."""
    import torch

    from posereg.data import load_nifti, save_nifti
    from posereg.registration import IntensitySettings, write_rigid_transform
    from posereg.registration.pipeline import DeepRegistration, load_pipeline_model

    if args.model is None:
        print("posereg register: --model is required (no pretrained model is bundled yet)", file=sys.stderr)
        return 2
    try:
        moving = load_nifti(args.moving)
        atlas = _load_atlas_arg(args)
        pose, correction = load_pipeline_model(args.model)
    except (FileNotFoundError, ValueError) as exc:
        print(f"posereg register: {exc}", file=sys.stderr)
        return 2
    pipeline = DeepRegistration(atlas, pose, correction, IntensitySettings() if args.refine else None)
    result = pipeline(moving)
    write_rigid_transform(args.out_transform, result.R, result.t, result.centre)
    if args.out_image is not None:
        save_nifti(pipeline.aligned_image(moving, result), args.out_image)
    from posereg.geometry import matrix_to_rotvec

    v = matrix_to_rotvec(result.R)
    angle = float(torch.linalg.vector_norm(v))
    axis = (v / angle).tolist() if angle > 0 else [0.0, 0.0, 0.0]
    print(f"rotation:    {math.degrees(angle):.2f} degrees about axis ({axis[0]:+.3f}, {axis[1]:+.3f}, {axis[2]:+.3f}) (RAS)")
    t = result.t.tolist()
    print(f"translation: ({t[0]:+.2f}, {t[1]:+.2f}, {t[2]:+.2f}) mm (RAS), about centre "
          f"({', '.join(f'{x:.1f}' for x in result.centre.tolist())}) mm")
    print("stages:      " + ", ".join(f"{k} {1000 * v:.0f} ms" for k, v in result.seconds.items()))
    print(f"transform:   {args.out_transform} (ITK, LPS, atlas -> moving: resample the moving image with it)")
    if args.out_image is not None:
        print(f"aligned:     {args.out_image}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``posereg`` command."""
    parser = argparse.ArgumentParser(
        prog="posereg",
        description="Learn rigid poses (rotations, rigid transforms) with deep networks trained on geometric losses.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("version", help="print the posereg and torch versions")
    p.set_defaults(func=_cmd_version)
    p = sub.add_parser(
        "demo",
        help="print a short geometry demonstration",
        description="Random rotations, their log/exp round trip and geodesic distances, in a table.",
    )
    p.add_argument("--count", type=int, default=8, help="number of random rotations (default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the torch.Generator (default 0)")
    p.set_defaults(func=_cmd_demo)

    train = sub.add_parser("train", help="train a network from a YAML configuration",
                           description="Train posereg's networks; see configs/ for examples.")
    train_sub = train.add_subparsers(dest="task", metavar="TASK", required=True)
    p = train_sub.add_parser(
        "volume",
        help="Salehi et al.'s volume Pose-Net or Correction-Net on synthetic MNI152 subjects",
        description="Two-stage training (rotation-vector MSE, then geodesic) with checkpoints, CSV and "
        "TensorBoard logs under --output, and the final weights in OUTPUT/model.pt.",
    )
    p.add_argument("--config", required=True, help="YAML configuration (e.g. configs/volume_pose.yaml)")
    p.add_argument("--output", required=True, help="run directory for checkpoints, logs and model.pt")
    p.add_argument("--accelerator", default="cpu", choices=("cpu", "gpu", "auto"), help="Lightning accelerator")
    p.add_argument("--quiet", action="store_true", help="no progress bar or model summary")
    p.set_defaults(func=_cmd_train_volume)

    p = sub.add_parser(
        "register",
        help="rigidly align a brain MRI volume to the atlas (deep pipeline, optional refinement)",
        description="Centre of gravity, Pose-Net rotation, Correction-Net residual and (with --refine) "
        "SimpleITK intensity refinement. Writes an ITK transform (.tfm: SimpleITK, ITK-SNAP, 3D Slicer) "
        "mapping atlas points to moving points, and optionally the aligned image on the atlas grid.",
    )
    p.add_argument("moving", help="the volume to align (NIfTI, any orientation)")
    p.add_argument("--atlas", help="atlas NIfTI (default: the bundled MNI152 2009a template)")
    p.add_argument("--atlas-contrast", default="t1", choices=("t1", "t2"), help="contrast of the atlas (default t1)")
    p.add_argument("--grid-size", type=int, default=64, help="voxels per axis of the working grid (default 64)")
    p.add_argument("--spacing", type=float, default=3.0, help="working grid spacing in mm (default 3)")
    p.add_argument("--model", help="pipeline model file (save_pipeline_model of posereg train volume outputs)")
    p.add_argument("--refine", action="store_true", help="refine with intensity-based registration (VVR-Deep)")
    p.add_argument("--out-transform", required=True, help="output ITK transform file (.tfm)")
    p.add_argument("--out-image", help="output aligned image (NIfTI)")
    p.set_defaults(func=_cmd_register)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``posereg`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
