"""``posereg evaluate reloc``: a relocalisation model's errors on its scene's test frames."""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "run_reloc"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``evaluate`` and its tasks."""
    evaluate = sub.add_parser("evaluate", help="evaluate a trained network on its test data",
                              description="Evaluate posereg's trained networks.")  # fmt: skip
    tasks = evaluate.add_subparsers(dest="task", metavar="TASK", required=True)
    p = tasks.add_parser(
        "reloc",
        help="median position (m) and orientation (deg) errors of a 'posereg train reloc' model",
        description="Predicts the camera pose of every test frame of the scene the model was trained on "
        "(data section of its configuration) and prints Kendall & Cipolla's median errors; --plot draws "
        "predicted against true camera positions, seen from above.",
    )
    p.add_argument("--model", required=True, help="model.pt of 'posereg train reloc'")
    p.add_argument("--plot", help="output figure of predicted vs true camera positions (PNG)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_reloc)


def run_reloc(args: argparse.Namespace) -> int:
    """Median position and orientation errors of a relocalisation model on its scene's test frames."""
    from posereg._files import check_outputs
    from posereg.evaluation.plots import camera_positions
    from posereg.training.reloc_model import evaluate_reloc_model

    check_outputs({"--plot": args.plot}, [args.model], {"--plot": (".png", ".pdf", ".svg")})

    result, config = evaluate_reloc_model(args.model, progress=not args.quiet)
    p, r = result.position_m, result.rotation_deg
    print(f"scene {config.data.scene}, loss {config.loss.kind.value}: {p.numel()} test frames "
          f"({config.data.test_sequences} sequences)")  # fmt: skip
    print(f"  position:    median {result.median_position_m:.3f} m, mean {p.mean():.3f} m, 90th percentile "
          f"{p.quantile(0.9):.3f} m")  # fmt: skip
    print(f"  orientation: median {result.median_rotation_deg:.2f} deg, mean {r.mean():.2f} deg, 90th percentile "
          f"{r.quantile(0.9):.2f} deg")  # fmt: skip
    if result.median_reprojection_px is not None:
        print(f"  reprojection: median {result.median_reprojection_px:.2f} px over the frames' visible scene points")
    if args.plot is not None:
        camera_positions(args.plot, {config.loss.kind.value: result.predicted_positions}, result.true_positions,
                         title=f"{config.data.scene}: test cameras, predicted vs true")  # fmt: skip
        print(f"  figure:      {args.plot}")
    return 0
