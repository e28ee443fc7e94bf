"""Time and check posereg's rotation geometry against its peers, in one process.

Rows: rotation vector -> matrix, matrix -> rotation vector, quaternion -> matrix, geodesic
distance between two batches, forward + backward of the mean geodesic distance. Columns:
posereg (eager), posereg.accel.fused (compact C kernels), RoMa, kornia, PyPose, theseus'
torchlie, geomstats (PyTorch backend) and scipy (float64 NumPy, no autograd: reference
only). All torch libraries get the same float32 tensors; timings are medians of repeated
round-robin samples (one sample per library in turn), so drifts of a shared machine hit
every library alike. A memory floor (``copy_`` of the same bytes into a preallocated
tensor) is measured in the same run.

glibc returns allocations above 32 MB to the OS on free, so every fresh 1e6 x 3 x 3 output
pays ~12 ms of page faults on this machine, more than most conversions cost. The script
therefore re-executes itself with ``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_``
raised (as PyTorch's CPU performance guide advises, via jemalloc/tcmalloc) for every
library alike; ``--system-malloc`` keeps the default.

    python benchmarks/geometry.py --output docs/benchmarks/geometry.md
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from importlib.metadata import version

import numpy as np

_TUNED = {"MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "100000000000"}
OPS = ("rotvec->matrix", "matrix->rotvec", "quaternion->matrix", "geodesic distance", "fwd+bwd mean geodesic")
DIFFERENTIABLE = ("posereg", "posereg.fused", "roma", "kornia", "pypose", "torchlie", "geomstats")


def _reexec_with_tuned_malloc(argv: list[str]) -> None:
    if "--system-malloc" in argv or all(os.environ.get(k) == v for k, v in _TUNED.items()):
        return
    env = dict(os.environ, **_TUNED)
    os.execve(sys.executable, [sys.executable, *argv], env)


def _libraries():  # type: ignore[no-untyped-def]
    """name -> {op: factory(inputs) -> zero-argument callable}; None where a library lacks the op."""
    import roma
    import torch
    from scipy.spatial.transform import Rotation

    from posereg import geometry as g
    from posereg.accel import fused

    os.environ.setdefault("GEOMSTATS_BACKEND", "pytorch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import geomstats.backend as gs  # noqa: F401
        import kornia.geometry.conversions as kc
        import pypose as pp
        import torchlie.functional as lie
        from geomstats.geometry.special_orthogonal import SpecialOrthogonal
    torch.set_default_dtype(torch.float32)  # geomstats switches the global default to float64
    so3 = SpecialOrthogonal(3, point_type="vector")

    def fb(dist: Callable) -> Callable:  # type: ignore[type-arg]
        def make(x):  # type: ignore[no-untyped-def]
            R1 = x["R1"].detach().requires_grad_()

            def run():  # type: ignore[no-untyped-def]
                return torch.autograd.grad(dist(R1, x["R2"]).mean(), R1)[0]

            return run

        return make

    def pp_geo(a, b):  # type: ignore[no-untyped-def]
        return (pp.mat2SO3(a, check=False).Inv() @ pp.mat2SO3(b, check=False)).Log().tensor().norm(dim=-1)

    def lie_geo(a, b):  # type: ignore[no-untyped-def]
        return lie.SO3.log(lie.SO3.compose(lie.SO3.inv(a), b)).norm(dim=-1)

    def gs_geo(a, b):  # type: ignore[no-untyped-def]
        return so3.rotation_vector_from_matrix(a.mT @ b).norm(dim=-1)

    libs = {
        "posereg": {
            OPS[0]: lambda x: lambda: g.rotvec_to_matrix(x["v"]),
            OPS[1]: lambda x: lambda: g.matrix_to_rotvec(x["R1"]),
            OPS[2]: lambda x: lambda: g.quaternion_to_matrix(x["q_wxyz"]),
            OPS[3]: lambda x: lambda: g.geodesic_distance(x["R1"], x["R2"]),
            OPS[4]: fb(g.geodesic_distance),
        },
        "posereg.fused": {
            OPS[0]: lambda x: lambda: fused.rotvec_to_matrix(x["v"]),
            OPS[1]: lambda x: lambda: fused.matrix_to_rotvec(x["R1"]),
            OPS[2]: lambda x: lambda: fused.quaternion_to_matrix(x["q_wxyz"]),
            OPS[3]: lambda x: lambda: fused.geodesic_distance(x["R1"], x["R2"]),
            OPS[4]: fb(fused.geodesic_distance),
        },
        "roma": {
            OPS[0]: lambda x: lambda: roma.rotvec_to_rotmat(x["v"]),
            OPS[1]: lambda x: lambda: roma.rotmat_to_rotvec(x["R1"]),
            OPS[2]: lambda x: lambda: roma.unitquat_to_rotmat(x["q_xyzw"]),
            OPS[3]: lambda x: lambda: roma.rotmat_geodesic_distance(x["R1"], x["R2"]),
            OPS[4]: fb(roma.rotmat_geodesic_distance),
        },
        "kornia": {
            OPS[0]: lambda x: lambda: kc.axis_angle_to_rotation_matrix(x["v"]),
            OPS[1]: lambda x: lambda: kc.rotation_matrix_to_axis_angle(x["R1"]),
            OPS[2]: lambda x: lambda: kc.quaternion_to_rotation_matrix(x["q_wxyz"]),
        },
        "pypose": {
            OPS[0]: lambda x: lambda: pp.so3(x["v"]).matrix(),
            OPS[1]: lambda x: lambda: pp.mat2SO3(x["R1"], check=False).Log().tensor(),
            OPS[2]: lambda x: lambda: pp.SO3(x["q_xyzw"]).matrix(),
            OPS[3]: lambda x: lambda: pp_geo(x["R1"], x["R2"]),
            OPS[4]: fb(pp_geo),
        },
        "torchlie": {
            OPS[0]: lambda x: lambda: lie.SO3.exp(x["v"]),
            OPS[1]: lambda x: lambda: lie.SO3.log(x["R1"]),
            OPS[2]: lambda x: lambda: lie.SO3.quaternion_to_rotation(x["q_wxyz"]),
            OPS[3]: lambda x: lambda: lie_geo(x["R1"], x["R2"]),
            OPS[4]: fb(lie_geo),
        },
        "geomstats": {
            OPS[0]: lambda x: lambda: so3.matrix_from_rotation_vector(x["v"]),
            OPS[1]: lambda x: lambda: so3.rotation_vector_from_matrix(x["R1"]),
            OPS[2]: lambda x: lambda: so3.matrix_from_quaternion(x["q_wxyz"]),
            OPS[3]: lambda x: lambda: gs_geo(x["R1"], x["R2"]),
            OPS[4]: fb(gs_geo),
        },
        "scipy": {
            OPS[0]: lambda x: lambda: Rotation.from_rotvec(x["np_v"]).as_matrix(),
            OPS[1]: lambda x: lambda: Rotation.from_matrix(x["np_R1"]).as_rotvec(),
            OPS[2]: lambda x: lambda: Rotation.from_quat(x["np_q_xyzw"]).as_matrix(),
            OPS[3]: lambda x: lambda: (Rotation.from_matrix(x["np_R1"]).inv() * Rotation.from_matrix(x["np_R2"])).magnitude(),
        },
    }
    return libs


def _inputs(n: int, seed: int):  # type: ignore[no-untyped-def]
    import torch
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    axes = rng.normal(size=(n, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    v = axes * rng.uniform(0, math.pi, size=(n, 1))
    r1 = Rotation.from_rotvec(v)
    r2 = Rotation.random(n, random_state=seed + 1)
    q_xyzw = r1.as_quat()
    R1, R2 = r1.as_matrix(), r2.as_matrix()
    f32 = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32)  # noqa: E731
    return {
        "v": f32(v), "R1": f32(R1), "R2": f32(R2), "q_xyzw": f32(q_xyzw), "q_wxyz": f32(q_xyzw[:, [3, 0, 1, 2]]),
        "np_v": v, "np_R1": R1, "np_R2": R2, "np_q_xyzw": q_xyzw,
    }  # fmt: skip


def _sample(fn: Callable[[], object], inner: int) -> float:
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - t0) / inner


def _time_round_robin(fns: dict[str, Callable[[], object]], repeats: int, budget: float) -> dict[str, float]:
    """Median seconds per call for each callable, sampled in turn."""
    inner = {}
    for name, fn in fns.items():
        fn()  # warm up (and build the kernels, for the fused path)
        one = _sample(fn, 1)
        inner[name] = max(1, min(1000, int(2e-3 / max(one, 1e-7))))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    t_end = time.perf_counter() + budget
    for r in range(repeats):
        for name, fn in fns.items():
            samples[name].append(_sample(fn, inner[name]))
        if r >= 2 and time.perf_counter() > t_end:
            break
    return {name: statistics.median(s) for name, s in samples.items()}


def _floor(n: int, op: str) -> float:
    """Seconds to copy the op's output bytes (conversions) or input bytes (distances)."""
    import torch

    nbytes = {OPS[0]: 9, OPS[1]: 9, OPS[2]: 9, OPS[3]: 18, OPS[4]: 18}[op] * n
    src, dst = torch.empty(nbytes), torch.empty(nbytes)
    src.fill_(1.0)
    return _time_round_robin({"copy": lambda: dst.copy_(src)}, 9, 1.0)["copy"]


def _fmt_ms(s: float | None) -> str:
    if s is None:
        return "—"
    ms = s * 1e3
    return f"{ms:.4f}" if ms < 0.1 else f"{ms:.3f}" if ms < 10 else f"{ms:.1f}"


def run_timings(sizes: list[int], threads: list[int], repeats: int, libs) -> list[str]:  # type: ignore[no-untyped-def]
    import torch

    lines = []
    for nt in threads:
        torch.set_num_threads(nt)
        lines.append(f"\n### {nt} thread{'s' if nt > 1 else ''} (milliseconds per call, median)\n")
        for op in OPS:
            names = [name for name, ops in libs.items() if op in ops]
            lines.append(f"\n**{op}**\n")
            lines.append("| batch | " + " | ".join(names) + " | copy floor | posereg / best peer | best posereg / floor |")
            lines.append("|" + "---|" * (len(names) + 4))
            for n in sizes:
                x = _inputs(n, seed=0)
                fns, errors = {}, {}
                for name in names:
                    try:
                        fn = libs[name][op](x)
                        fn()
                        fns[name] = fn
                    except Exception as err:  # a peer that fails on this input
                        errors[name] = repr(err)[:80]
                times = _time_round_robin(fns, repeats, budget=20.0)
                floor = _floor(n, op)
                peers = [times[k] for k in DIFFERENTIABLE if k in times and not k.startswith("posereg")]
                best_peer = min(peers) if peers else None
                ours = [times[k] for k in ("posereg", "posereg.fused") if k in times]
                ratio = f"{times['posereg'] / best_peer:.2f}" if best_peer and "posereg" in times else "—"
                if best_peer and "posereg.fused" in times:
                    ratio += f" (fused {times['posereg.fused'] / best_peer:.2f})"
                cells = [_fmt_ms(times.get(k)) if k not in errors else "error" for k in names]
                lines.append(f"| {n:.0e} | " + " | ".join(cells) + f" | {_fmt_ms(floor)} | {ratio} | {min(ours) / floor:.1f}x |")
                print(lines[-1], flush=True)
                for k, e in errors.items():
                    lines.append(f"| | {k} failed: `{e}` |")
    return lines


def run_accuracy(libs) -> list[str]:  # type: ignore[no-untyped-def]
    """Max error vs scipy (float64) at angles 0, 1e-8, pi - 1e-6, pi, and finiteness."""
    import torch
    from scipy.spatial.transform import Rotation

    angles = (0.0, 1e-8, math.pi - 1e-6, math.pi)
    axes = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, -2, 3], [-0.3, 0.1, -0.9]], dtype=float)
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    v = np.concatenate([axes * a for a in angles])
    base = Rotation.random(len(v), random_state=3)
    ref = {
        OPS[0]: Rotation.from_rotvec(v).as_matrix(),
        OPS[1]: v,
        OPS[2]: Rotation.from_rotvec(v).as_matrix(),
        OPS[3]: np.linalg.norm(v, axis=1),
    }
    lines = ["\n## Accuracy at the adversarial angles (0, 1e-8, pi - 1e-6, pi; six axes)\n",
             "Max absolute error against scipy (float64 reference; radians or matrix entries). "
             "`value`/`grad`: all values / gradients finite. Logarithms at pi are compared up to the sign of the axis.\n"]
    for dtype in (torch.float64, torch.float32):
        lines.append(f"\n**{str(dtype).replace('torch.', '')}**\n")
        lines.append("| library | " + " | ".join(OPS[:4]) + " |")
        lines.append("|---|" + "---|" * 4)
        for name, ops in libs.items():
            if name == "scipy":
                continue
            cells = []
            for op in OPS[:4]:
                if op not in ops:
                    cells.append("—")
                    continue
                t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=dtype).requires_grad_()  # noqa: E731
                R = Rotation.from_rotvec(v).as_matrix()
                q = Rotation.from_rotvec(v).as_quat()
                x = {"v": t(v), "R1": t(R if op != OPS[3] else base.as_matrix()),
                     "R2": t((base * Rotation.from_rotvec(v)).as_matrix()),
                     "q_xyzw": t(q), "q_wxyz": t(q[:, [3, 0, 1, 2]])}  # fmt: skip
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        out = libs[name][op](x)()
                        out_t = out.tensor() if hasattr(out, "tensor") else out
                        leaves = [x[k] for k in x if x[k].grad_fn is None]
                        grads = torch.autograd.grad(
                            (out_t * torch.linspace(0.5, 1.5, out_t.numel(), dtype=out_t.dtype).view_as(out_t)).sum(),
                            leaves, allow_unused=True,
                        )
                    o = out_t.detach().double().numpy().reshape(ref[op].shape)
                    err = np.abs(o - ref[op])
                    if op == OPS[1]:
                        err = np.minimum(err, np.abs(o + ref[op]))
                    finite_v = bool(np.isfinite(o).all())
                    finite_g = all(bool(torch.isfinite(gr).all()) for gr in grads if gr is not None)
                    cells.append(f"{np.nanmax(err) if finite_v else float('nan'):.1e} value {'ok' if finite_v else 'NaN'} grad {'ok' if finite_g else 'NaN'}")
                except Exception as e:
                    cells.append(f"error: {type(e).__name__}")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    return lines


def _machine() -> str:
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines() if line.startswith("Model name"))
    except Exception:
        cpu = platform.processor() or "unknown CPU"
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[64, 1e3, 1e5, 1e6])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--output", help="write the markdown report here")
    parser.add_argument("--system-malloc", action="store_true", help="keep glibc's default allocator settings")
    args = parser.parse_args(argv)
    import torch

    libs = _libraries()
    from posereg.accel import _native
    from posereg.evaluation.report import write_report

    kernels = _native.kernels()
    fused_build = ("not built: posereg.fused runs the eager formulas" if kernels is None else
                   f"`{' '.join(kernels.flags)}`" + (" (libmvec SIMD sin/atan2)" if kernels.simd_math else ""))
    sizes = [int(s) for s in args.sizes]
    versions = ", ".join(
        f"{p} {version(p)}" for p in ("torch", "numpy", "scipy", "roma", "kornia", "pypose", "torchlie", "geomstats")
    )
    head = [
        "# Geometry benchmark: posereg against its peers",
        "",
        f"Command: `python benchmarks/geometry.py {' '.join(sys.argv[1:])}` (`make bench-geometry`)  ",
        f"Date: {datetime.date.today()}  ",
        f"Machine: {_machine()}  ",
        f"Versions: posereg {version('posereg')}, {versions}  ",
        f"posereg.fused kernels: {fused_build}  ",
        "Allocator: " + ("glibc defaults" if args.system_malloc else ", ".join(f"{k}={v}" for k, v in _TUNED.items())) + "  ",
        "Inputs: float32, rotation vectors with uniform axes and angles uniform in [0, pi), Haar-random second rotations; "
        "scipy gets the same values in float64 NumPy (no autograd: reference only). "
        "pytorch3d has no wheel for this torch/CPU and is not included.",
        "",
        "`posereg / best peer`: posereg eager time divided by the fastest differentiable PyTorch peer (<= 1.00 means posereg is "
        "at least as fast); in brackets the same for `posereg.accel.fused`. `copy floor`: `dst.copy_(src)` of the op's "
        "output bytes (conversions) or input bytes (distances) in this run; `best posereg / floor` uses the faster posereg path.",
    ]
    print("\n".join(head), flush=True)
    body = run_timings(sizes, args.threads, args.repeats, libs)
    torch.set_num_threads(1)
    body += run_accuracy(libs)
    if args.output:
        write_report(args.output, "\n".join(head + body))
    return 0


if __name__ == "__main__":
    _reexec_with_tuned_malloc(sys.argv)
    sys.exit(main())
