"""``posereg geometry``: a short demonstration of the rotation maths, in a table."""

from __future__ import annotations

import argparse
import math

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the command."""
    p = sub.add_parser(
        "geometry",
        help="print a short geometry demonstration",
        description="Random rotations, their log/exp round trip and geodesic distances, in a table.",
    )
    p.add_argument("--count", type=int, default=8, help="number of random rotations (default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the torch.Generator (default 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Geometry demonstration: random rotations, their log/exp round trip and distances."""
    import torch

    from posereg import geometry as g

    if args.count < 1:
        raise ValueError("--count must be at least 1")
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
