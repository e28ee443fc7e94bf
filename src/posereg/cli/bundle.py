"""``posereg bundle``: pack trained Pose-Net and Correction-Net files into one pipeline model."""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the command."""
    p = sub.add_parser(
        "bundle",
        help="bundle trained networks into one pipeline model for 'posereg register'",
        description="Combine the model.pt of a Pose-Net run and (optionally) of a Correction-Net run of "
        "'posereg train volume' into one file; --half stores the weights in float16 (half the size).",
    )
    p.add_argument("--pose", required=True, help="model.pt of the Pose-Net run")
    p.add_argument("--correction", help="model.pt of the Correction-Net run")
    p.add_argument("--pose-steps", type=int, default=1, help="Pose-Net passes to use (default 1, as the paper)")
    p.add_argument("--correction-steps", type=int, default=1, help="Correction-Net passes to use (default 1)")
    p.add_argument("--half", action="store_true", help="store float16 weights")
    p.add_argument("--output", required=True, help="the pipeline model file to write")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Bundle the networks and describe the file written."""
    from posereg._files import check_outputs
    from posereg.registration import load_pipeline_model, save_pipeline_model

    check_outputs({"--output": args.output}, [args.pose, args.correction], {"--output": (".pt",)})

    save_pipeline_model(args.output, args.pose, args.correction, correction_steps=args.correction_steps,
                        pose_steps=args.pose_steps, half=args.half)  # fmt: skip
    model = load_pipeline_model(args.output)
    g = model.grid
    print(f"wrote {args.output}: Pose-Net{' + Correction-Net' if model.correction is not None else ''}, "
          f"{model.pose_steps} pose and {model.correction_steps} correction pass(es), "
          f"grid {g.shape}^3 x {g.spacing:g} mm, atlas MNI152 {g.contrast.value.upper()}")  # fmt: skip
    return 0
