"""Optimise free poses (no network) with each pose loss, in every rotation-magnitude bin.

Two experiments, both on rotations with an explicit seed:

1. Single target. For each bin of target rotation magnitude (0-30, ..., 150-180 degrees),
   ``--trials`` targets ``R*`` about uniform axes, and starts within 5 degrees of the
   identity (where a freshly initialised network's output is). Each loss optimises its own parameterisation of the pose (rotation vector, the
   ``pi * tanh`` head's pre-activation, 6D, quaternion, SE(3) 6-vector) with Adam and with
   SGD. Reported: median iterations until the geodesic error is below 1 degree (and the
   fraction of trials that get there within ``--iterations``), and the final error.
2. Noisy labels. Each pose is fitted to ``--observations`` noisy observations
   ``R* exp(n_k)`` of its target (``n_k`` Gaussian, ``--noise-deg`` per axis), labelled in
   each representation's principal range, as a training set labels them. Reported: the
   final error to ``R*``. Near 180 degrees the observations straddle the cut at pi, their
   rotation vectors point in opposite directions and the MSE on rotation vectors averages
   them towards the identity: the wrap-around failure that the geodesic losses avoid.

    python benchmarks/losses_toy.py --output docs/benchmarks/losses_toy.md
"""

from __future__ import annotations

import argparse
import datetime
import math
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from posereg import geometry as g
from posereg.evaluation.report import write_report
from posereg.losses import quaternion_distance, rotvec_mse_loss, se3_geodesic_loss, so3_geodesic_loss

BIN_EDGES_DEG = (0, 30, 60, 90, 120, 150, 180)
F64 = torch.float64


@dataclass(frozen=True)
class Method:
    """A loss with the pose parameterisation it optimises.

    ``init(R0)`` gives the starting parameters; ``to_matrix(p)`` the rotation; ``label(R)``
    the target in the method's representation; ``loss(p, label)`` per-sample losses.
    """

    name: str
    init: Callable[[Tensor], Tensor]
    to_matrix: Callable[[Tensor], Tensor]
    label: Callable[[Tensor], Tensor]
    loss: Callable[[Tensor, Tensor], Tensor]


def _pi_tanh_init(R: Tensor) -> Tensor:
    v = g.matrix_to_rotvec(R) / math.pi
    return torch.atanh(v.clamp(-1 + 1e-6, 1 - 1e-6))


def _quaternion_without_sign_invariance(q_hat: Tensor, q: Tensor) -> Tensor:
    """Kendall & Cipolla's term as written, ``|q - q_hat/|q_hat||``: not sign invariant."""
    return torch.linalg.vector_norm(q - q_hat / torch.linalg.vector_norm(q_hat, dim=-1, keepdim=True), dim=-1)


def _se3_init(R: Tensor) -> Tensor:
    # Rotation from R0; translation starts 1 unit away from its target (0) in a fixed direction.
    t0 = torch.full(R.shape[:-2] + (3,), 1.0 / math.sqrt(3.0), dtype=R.dtype)
    return torch.cat((g.matrix_to_rotvec(R), t0), dim=-1)


def _se3_label(R: Tensor) -> Tensor:
    return torch.cat((g.matrix_to_rotvec(R), torch.zeros(R.shape[:-2] + (3,), dtype=R.dtype)), dim=-1)


def _methods() -> list[Method]:
    none = {"reduction": "none"}
    rotvec, rv_label = g.rotvec_to_matrix, g.matrix_to_rotvec
    return [
        Method("MSE, rotation vector", rv_label, rotvec, rv_label, lambda p, y: rotvec_mse_loss(p, y, **none)),
        Method(
            "MSE, pi*tanh head (Salehi stage 1)",
            _pi_tanh_init,
            lambda z: g.rotvec_to_matrix(math.pi * torch.tanh(z)),
            rv_label,
            lambda z, y: rotvec_mse_loss(math.pi * torch.tanh(z), y, **none),
        ),
        Method(
            "geodesic, pi*tanh head (Salehi stage 2)",
            _pi_tanh_init,
            lambda z: g.rotvec_to_matrix(math.pi * torch.tanh(z)),
            rv_label,
            lambda z, y: so3_geodesic_loss(math.pi * torch.tanh(z), y, g.ROTVEC, **none),
        ),
        Method("geodesic, rotation vector", rv_label, rotvec, rv_label,
               lambda p, y: so3_geodesic_loss(p, y, g.ROTVEC, **none)),
        Method("geodesic^2, rotation vector", rv_label, rotvec, rv_label,
               lambda p, y: so3_geodesic_loss(p, y, g.ROTVEC, squared=True, **none)),
        Method("geodesic, 6D", g.matrix_to_sixd, g.sixd_to_matrix, g.matrix_to_sixd,
               lambda p, y: so3_geodesic_loss(p, y, g.SIXD, **none)),
        Method("PoseNet quaternion, sign invariant", g.matrix_to_quaternion, g.quaternion_to_matrix,
               g.matrix_to_quaternion, quaternion_distance),
        Method("PoseNet quaternion, as written", g.matrix_to_quaternion, g.quaternion_to_matrix,
               g.matrix_to_quaternion, _quaternion_without_sign_invariance),
        Method(
            "SE(3) geodesic (Hou, W = I), 6-vector",
            _se3_init,
            lambda p: g.rotvec_to_matrix(p[..., :3]),
            _se3_label,
            lambda p, y: se3_geodesic_loss(p, y, torch.eye(6, dtype=p.dtype), **none),
        ),
    ]  # fmt: skip


def _starts(trials: int, gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """Targets, starts and bin index of each trial (``trials`` per bin x 6 bins).

    Targets have rotation magnitudes uniform in their bin about uniform axes; starts are
    near the identity (within 5 degrees), where a freshly initialised network's output is.
    """
    targets, starts, bins = [], [], []
    for b, (lo, hi) in enumerate(zip(BIN_EDGES_DEG[:-1], BIN_EDGES_DEG[1:])):
        targets.append(g.random_rotation_with_angle(trials, math.radians(lo), math.radians(hi), generator=gen, dtype=F64))
        starts.append(g.random_rotation_with_angle(trials, 0.0, math.radians(5.0), generator=gen, dtype=F64))
        bins.append(torch.full((trials,), b))
    return torch.cat(targets), torch.cat(starts), torch.cat(bins)


def _optimise(
    method: Method, start: Tensor, labels: Tensor, truth: Tensor, optimiser: str, lr: float, iterations: int
) -> tuple[Tensor, Tensor]:
    """Run one optimiser on all trials at once (sum of independent per-trial losses).

    ``labels``: ``(N, K, ...)`` observations per trial. Returns the first iteration at which
    each trial's error to ``truth`` was below 1 degree (``iterations + 1`` if never) and the
    final errors in degrees.
    """
    p = method.init(start).clone().requires_grad_(True)
    opt = torch.optim.Adam([p], lr=lr) if optimiser == "Adam" else torch.optim.SGD([p], lr=lr)
    first = torch.full((start.shape[0],), iterations + 1)
    one_degree = math.radians(1.0)
    for it in range(iterations + 1):
        with torch.no_grad():
            err = g.geodesic_distance(method.to_matrix(p), truth)
            first = torch.where((err < one_degree) & (first > iterations), it, first)
        if it == iterations:
            break
        opt.zero_grad()
        method.loss(p.unsqueeze(1).expand(-1, labels.shape[1], *p.shape[1:]), labels).sum().backward()
        opt.step()
    return first, torch.rad2deg(err)


def _bin_cells(values: Tensor, bins: Tensor, fmt: Callable[[Tensor], str]) -> list[str]:
    return [fmt(values[bins == b]) for b in range(len(BIN_EDGES_DEG) - 1)]


def _iterations_cell(first: Tensor, iterations: int) -> str:
    reached = first <= iterations
    if not bool(reached.any()):
        return "never (0%)"
    median = int(first[reached].float().median().item()) if bool(reached.all()) else None
    pct = 100.0 * reached.float().mean().item()
    return f"{median}" if median is not None else f"{int(first.float().median().item()) if pct >= 50 else '>'+str(iterations)} ({pct:.0f}%)"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=64, help="trials per bin (default 64)")
    parser.add_argument("--iterations", type=int, default=2000, help="optimiser steps (default 2000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--observations", type=int, default=8, help="noisy labels per pose (default 8)")
    parser.add_argument("--noise-deg", type=float, default=3.0, help="label noise per axis, degrees (default 3)")
    parser.add_argument("--output", type=Path, help="write the Markdown report here (and a .png beside it)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    gen = torch.Generator().manual_seed(args.seed)
    truth, start, bins = _starts(args.trials, gen)
    noise = torch.randn(truth.shape[0], args.observations, 3, generator=gen, dtype=F64)
    noisy = truth.unsqueeze(1) @ g.rotvec_to_matrix(math.radians(args.noise_deg) * noise)
    bin_names = [f"{lo}-{hi}" for lo, hi in zip(BIN_EDGES_DEG[:-1], BIN_EDGES_DEG[1:])]
    settings = {"Adam": 0.01, "SGD": 0.05}
    sections: dict[str, list[list[str]]] = {}
    noisy_errors: dict[str, Tensor] = {}
    iteration_medians: dict[str, list[float]] = {}
    reached: dict[tuple[str, str], float] = {}
    for method in _methods():
        for optimiser, lr in settings.items():
            first, final = _optimise(method, start, method.label(truth).unsqueeze(1), truth, optimiser, lr, args.iterations)
            cells = _bin_cells(first, bins, lambda f: _iterations_cell(f, args.iterations))
            finals = _bin_cells(final, bins, lambda e: f"{e.mean().item():.2f}")
            sections.setdefault(f"iterations-{optimiser}", []).append([method.name, *cells])
            sections.setdefault(f"final-{optimiser}", []).append([method.name, *finals])
            reached[(method.name, optimiser)] = (first <= args.iterations).float().mean().item()
            if optimiser == "Adam":
                iteration_medians[method.name] = [
                    first[bins == b].float().median().item() for b in range(len(bin_names))
                ]
        _, final = _optimise(method, start, method.label(noisy), truth, "Adam", settings["Adam"], args.iterations)
        noisy_errors[method.name] = final
        cells = _bin_cells(final, bins, lambda e: f"{e.mean().item():.1f} / {e.max().item():.1f}")
        sections.setdefault("noisy", []).append([method.name, *cells])
        print(f"{method.name}: done ({time.perf_counter() - t_start:.0f} s)", file=sys.stderr)
    elapsed = time.perf_counter() - t_start
    report = _report(args, bin_names, sections, settings, elapsed)
    report += "\n\n" + _findings(bins, iteration_medians, noisy_errors, reached)
    print(report)
    if args.output is not None:
        write_report(args.output, report)
        _plot(args.output.with_suffix(".png"), bin_names, iteration_medians, noisy_errors, bins, args)
    return 0


def _report(args: argparse.Namespace, bin_names: list[str], sections: dict, settings: dict, elapsed: float) -> str:
    header = ["loss, parameterisation", *[f"{b} deg" for b in bin_names]]
    out = [
        "# Free-pose optimisation with each loss (benchmarks/losses_toy.py)",
        "",
        f"Command: `python benchmarks/losses_toy.py --trials {args.trials} --iterations {args.iterations} "
        f"--seed {args.seed} --observations {args.observations} --noise-deg {args.noise_deg}"
        + (f" --output {args.output}`" if args.output else "`"),
        f"Machine: {platform.processor() or platform.machine()}, {platform.system()}, Python "
        f"{platform.python_version()}, torch {torch.__version__}, 1 thread; "
        f"{datetime.date.today().isoformat()}; {elapsed:.0f} s in all.",
        "",
        f"{args.trials} trials per bin of target rotation magnitude (starts within 5 degrees of the identity); float64; every loss optimises "
        f"its own parameterisation from the same starts. Adam lr {settings['Adam']}, SGD lr "
        f"{settings['SGD']}, {args.iterations} steps, no schedule.",
        "",
        "## 1. Single target: median iterations until the error is below 1 degree",
        "",
        "A number alone: every trial got there. `n (p%)`: only p% did; n is the median over all "
        f"trials (`>{args.iterations}` when fewer than half did).",
    ]
    for optimiser in settings:
        out += ["", f"### {optimiser}", "", _table(header, sections[f"iterations-{optimiser}"])]
    out += ["", "Mean final error (degrees):"]
    for optimiser in settings:
        out += ["", f"### {optimiser}", "", _table(header, sections[f"final-{optimiser}"])]
    out += [
        "",
        "## 2. Noisy labels: final error to the true rotation, mean / max (degrees), Adam",
        "",
        f"{args.observations} observations per pose, noise {args.noise_deg} degrees per axis; a "
        f"perfect estimator's error is about {args.noise_deg * math.sqrt(3 / args.observations):.1f} degrees.",
        "",
        _table(header, sections["noisy"]),
    ]
    return "\n".join(out)


def _findings(bins: Tensor, iteration_medians: dict, noisy_errors: dict, reached: dict) -> str:
    """A few sentences computed from the results (regenerated with them)."""
    last = len(BIN_EDGES_DEG) - 2
    mse, geo = "MSE, rotation vector", "geodesic, rotation vector"
    e_mse, e_geo = noisy_errors[mse][bins == last], noisy_errors[geo][bins == last]
    fastest = min(iteration_medians, key=lambda k: iteration_medians[k][last])
    sgd_angle = {k[0]: v for k, v in reached.items() if k[1] == "SGD" and v < 1.0}
    lines = [
        "## Findings",
        "",
        f"- Wrap-around: with noisy labels of rotations in the last bin, the MSE on rotation vectors ends "
        f"{e_mse.mean().item():.1f} degrees from the truth on average and {e_mse.max().item():.0f} at worst "
        f"(labels on both sides of pi average towards the identity); the geodesic loss on the same "
        f"parameters ends {e_geo.mean().item():.1f} / {e_geo.max().item():.1f} degrees, the noise floor. "
        + " ".join(
            f"{k}: {noisy_errors[k][bins == last].mean().item():.1f} / {noisy_errors[k][bins == last].max().item():.1f}."
            for k in ("geodesic^2, rotation vector", "SE(3) geodesic (Hou, W = I), 6-vector")
        ),
        f"- Speed with Adam, last bin: {fastest} needs {iteration_medians[fastest][last]:.0f} median iterations "
        f"to reach 1 degree; MSE on rotation vectors {iteration_medians[mse][last]:.0f}. Adam's step is about lr "
        "per coordinate, so losses whose parameters must travel further (rotation vectors through the ball) "
        "take longer; the squared losses slow down near the optimum where their gradient vanishes.",
    ]
    if sgd_angle:
        names = ", ".join(f"{k} ({100 * v:.0f}%)" for k, v in sgd_angle.items())
        lines.append(
            f"- SGD at a constant learning rate does not settle below 1 degree for every trial with: {names}. "
            "The unsquared angle has a gradient of constant norm (an L1-like kink at 0), so fixed steps "
            "oscillate around the optimum; use the squared form or a decaying learning rate with SGD."
        )
    return "\n".join(lines)


def _plot(path: Path, bin_names: list[str], iteration_medians: dict, noisy_errors: dict, bins: Tensor, args) -> None:  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    x = range(len(bin_names))
    for name, medians in iteration_medians.items():
        ax1.plot(x, medians, marker="o", label=name)
    ax1.set(xticks=list(x), xticklabels=bin_names, xlabel="target rotation (degrees)", yscale="log",
            ylabel="median Adam iterations to 1 degree", title="Single target")
    ax1.axhline(args.iterations, color="grey", linestyle=":", linewidth=1)
    for name, final in noisy_errors.items():
        means = [final[bins == b].mean().item() for b in range(len(bin_names))]
        ax2.plot(x, means, marker="o", label=name)
    ax2.set(xticks=list(x), xticklabels=bin_names, xlabel="target rotation (degrees)", yscale="log",
            ylabel="mean final error (degrees)", title=f"{args.observations} noisy labels per pose")
    ax2.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
