"""``posereg demo``: posereg's main job on data it ships, beside SimpleITK, with a figure."""

from __future__ import annotations

import argparse
import sys

from posereg.cli._common import load_model, seconds_text

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the command."""
    p = sub.add_parser(
        "demo",
        help="register held-out synthetic brains with the bundled model and with VVR-GC",
        description="posereg's main job on data it ships: held-out synthetic subjects (never trained on) "
        "rotated by the given angles are aligned to the MNI152 atlas by the deep pipeline, by the same refined by mutual information and by "
        "SimpleITK from the geometric centre (VVR-GC); prints errors and times side by side and writes a "
        "figure of atlas / moving / aligned slices.",
    )
    p.add_argument("--subjects", type=int, default=2, help="held-out test subjects (default 2)")
    p.add_argument("--angles", type=float, nargs="+", default=[20.0, 60.0, 100.0, 140.0, 180.0],
                   help="rotation angles in degrees, one motion each (default 20 60 100 140 180)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of the motions (default 0)")
    p.add_argument("--model", help="pipeline model file (default: the bundled one)")
    p.add_argument("--output", default="posereg-demo", help="folder for the figure (default posereg-demo)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Register held-out synthetic subjects with the bundled model and with VVR-GC; table and figure."""
    from pathlib import Path

    from tqdm import tqdm

    from posereg._files import check_outputs
    from posereg.evaluation.plots import registration_slices
    from posereg.evaluation.volume_demo import METHODS, run_volume_demo, summarise_demo

    if args.subjects < 1 or not args.angles or any(not 0 <= a <= 180 for a in args.angles):
        raise ValueError("--subjects must be >= 1 and --angles within [0, 180] degrees")
    check_outputs({"--output": str(Path(args.output) / "volume_registration.png")}, [args.model], {})
    model = load_model(args)
    g = model.grid
    print(f"posereg demo: rigid registration of held-out synthetic subjects to the MNI152 {g.contrast.value.upper()} "
          f"atlas ({g.shape}^3 voxels of {g.spacing:g} mm)")  # fmt: skip
    atlas = model.atlas()
    with tqdm(total=args.subjects * len(args.angles), desc="registering", file=sys.stderr, disable=args.quiet) as bar:
        rows = run_volume_demo(atlas, model, args.subjects, args.angles, args.seed,
                               progress=lambda done, _: bar.update(done - bar.n))  # fmt: skip
    header = f"{'subject':>7} {'angle':>6} | " + " | ".join(f"{m:^25}" for m in METHODS)
    print("\n" + " " * 15 + "| " + " | ".join(f"{'rotation  transl.    time':^25}" for _ in METHODS))
    print(header)
    print("-" * len(header))
    for row in rows:
        cells = [f"{o.rotation_deg:6.1f} deg {o.translation_mm:5.1f} mm {seconds_text(o.seconds):>7}"
                 for o in (row.outcomes[m] for m in METHODS)]  # fmt: skip
        print(f"{row.subject:>7} {row.angle_deg:5.0f}d | " + " | ".join(cells))
    print("-" * len(header))
    print("\nmedian rotation error, cases within 10 degrees, median time per case:")
    summary = summarise_demo(rows)
    for m, s in summary.items():
        print(f"  {m:<18} {s.median_rotation_deg:6.1f} deg  {s.within_10_deg:>3}/{s.cases}  "
              f"{seconds_text(s.median_seconds):>7}")  # fmt: skip
    ratio = summary["VVR-GC"].median_seconds / summary["deep pipeline"].median_seconds
    print(f"\nThe deep pipeline is {ratio:.0f}x faster than VVR-GC here (median times per case).")
    figure = Path(args.output) / "volume_registration.png"
    shown = rows[: len(args.angles)]
    registration_slices(figure, atlas.image, [(f"subject {r.subject}, {r.angle_deg:.0f} deg", r.moving, r.aligned)
                                              for r in shown], atlas.mask)  # fmt: skip
    print(f"figure: {figure} (atlas / moving / aligned by the deep pipeline; red: the atlas brain outline)")
    return 0
