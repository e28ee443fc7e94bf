"""Build, cache and load the optional C kernels of ``posereg.accel.fused`` (internal).

``_kernels.c`` (next to this file) is compiled on first use with the system C compiler
(``$CC``, else Python's configured compiler, else ``cc``) into a shared library under the
cache directory (``$POSEREG_CACHE_DIR``, else ``$XDG_CACHE_HOME/posereg``, else
``~/.cache/posereg``), keyed by a hash of the source, the flags and the compiler, and
loaded with ``ctypes``. No torch headers are involved: the build takes about a second.

Flags: ``-O3`` without ``-ffast-math`` (NaN and inf keep their meaning), the vector ISA
that torch itself dispatches to on this CPU (``torch.backends.cpu.get_cpu_capability``),
on x86-64 Linux glibc's SIMD math library (libmvec: vectorised ``sin``/``atan2``,
<= 4 ulp), and OpenMP where torch runs its own parallel loops on GNU OpenMP: the library
then links ``libgomp.so.1``, which the dynamic loader binds to the copy torch has already
loaded (same SONAME), so the kernels share torch's runtime and thread pool instead of
starting a second one. When a build fails, the next configuration is tried (without
OpenMP, without libmvec, without ISA flags, then plain ``-O2``); when all fail,
``kernels()`` returns None once with a warning and the callers use the eager formulas.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import warnings
from pathlib import Path

import torch

__all__ = ["Kernels", "cache_dir", "kernels"]

_SOURCE = Path(__file__).with_name("_kernels.c")
_BARE_FLAGS = ("-std=c99", "-O2", "-fPIC", "-shared")
# -fopenmp-simd honours the kernels' `omp simd` pragmas (vectorised loops and sums) without
# linking an OpenMP runtime, which could clash with the one torch ships.
_BASE_FLAGS = ("-std=c99", "-O3", "-fPIC", "-shared", "-fno-math-errno", "-fno-trapping-math", "-fopenmp-simd")
_ISA_FLAGS = {
    "AVX2": ("-mavx2", "-mfma"),
    "AVX512": ("-mavx2", "-mfma", "-mavx512f", "-mavx512dq", "-mavx512vl", "-mavx512bw"),
}
_MVEC_FLAGS = ("-DPOSEREG_MVEC",)
_OPENMP_FLAG = "-fopenmp"  # compile and link: `omp parallel` pragmas, and libgomp.so.1 as a dependency


def cache_dir() -> Path:
    """Where built kernels are kept (created on demand)."""
    if os.environ.get("POSEREG_CACHE_DIR"):
        return Path(os.environ["POSEREG_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "posereg"


def _compiler() -> str | None:
    configured = (sysconfig.get_config_var("CC") or "").split()
    for candidate in (os.environ.get("CC", ""), configured[0] if configured else "", "cc", "gcc", "clang"):
        if candidate and shutil.which(candidate):
            return candidate
    return None


def _configurations() -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """``(compile flags, link flags)`` to try, fastest first."""
    isa = _ISA_FLAGS.get(torch.backends.cpu.get_cpu_capability(), ())
    x86_linux = sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64")
    configs = []
    if x86_linux and _torch_uses_gnu_openmp():
        configs.append((_BASE_FLAGS + (_OPENMP_FLAG,) + isa + _MVEC_FLAGS, (_OPENMP_FLAG, "-lmvec", "-lm")))
    if x86_linux:
        configs.append((_BASE_FLAGS + isa + _MVEC_FLAGS, ("-lmvec", "-lm")))
    configs.append((_BASE_FLAGS + isa, ("-lm",)))
    if isa:
        configs.append((_BASE_FLAGS, ("-lm",)))
    configs.append((_BARE_FLAGS, ("-lm",)))
    return configs


def _torch_uses_gnu_openmp() -> bool:
    """Whether torch runs its parallel loops on OpenMP with the ``libgomp.so.1`` it ships (the
    SONAME an ``-fopenmp`` build links to, so the loader reuses torch's copy and its thread
    pool; wheels that ship a renamed copy, ``libgomp-<hash>.so.1``, would get a second one)."""
    if "parallel backend: OpenMP" not in torch.__config__.parallel_info():
        return False
    return (Path(torch.__file__).parent / "lib" / "libgomp.so.1").is_file()


def _build(compiler: str, flags: tuple[str, ...], libs: tuple[str, ...]) -> Path:
    """Compile ``_kernels.c`` once per (source, flags, compiler); return the library path."""
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=60).stdout
    key = hashlib.sha256(_SOURCE.read_bytes() + repr((flags, libs, compiler, version)).encode()).hexdigest()[:16]
    target = cache_dir() / "kernels" / f"posereg_kernels_{key}.so"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename: atomic, so concurrent processes never load half a file.
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        built = Path(tmp) / target.name
        cmd = [compiler, *flags, "-o", str(built), str(_SOURCE), *libs]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {result.stderr.strip()[:500]}")
        os.replace(built, target)
    return target


class Kernels:
    """The loaded library: ``fn(name, dtype)`` gives the ctypes function for a dtype."""

    _SIGNATURES = {
        "rotvec_to_matrix": (ctypes.c_double, 2),
        "quaternion_to_matrix": (ctypes.c_double, 2),
        "matrix_to_rotvec": (ctypes.c_double, 2),
        "geodesic_distance": (ctypes.c_double, 3),
        "geodesic_distance_backward": (None, 5),
    }
    _SUFFIX = {torch.float32: "f32", torch.float64: "f64"}

    def __init__(self, path: Path, flags: tuple[str, ...]) -> None:
        self.path, self.flags = path, flags
        self._lib = ctypes.CDLL(str(path))
        self._fns = {}
        for name, (restype, pointers) in self._SIGNATURES.items():
            for dtype, suffix in self._SUFFIX.items():
                fn = getattr(self._lib, f"{name}_{suffix}")
                fn.restype = restype
                fn.argtypes = [ctypes.c_void_p] * pointers + [ctypes.c_int64, ctypes.c_int]
                self._fns[name, dtype] = fn

    @property
    def simd_math(self) -> bool:
        """Whether the build uses libmvec's vectorised ``sin``/``atan2``."""
        return "-DPOSEREG_MVEC" in self.flags

    def team_size(self, n: int, threads: int) -> int:
        """How many threads a kernel over ``n`` elements runs on when given ``threads``."""
        return int(self._lib.posereg_team_size(ctypes.c_int64(n), ctypes.c_int(threads)))

    @property
    def openmp(self) -> bool:
        """Whether the build splits large batches over torch's OpenMP threads."""
        return _OPENMP_FLAG in self.flags

    def fn(self, name: str, dtype: torch.dtype):  # type: ignore[no-untyped-def]
        """The kernel ``name`` for ``dtype`` (float32 or float64)."""
        return self._fns[name, dtype]


@functools.cache
def kernels() -> Kernels | None:
    """The built kernels, or None (with one warning) when no configuration compiles."""
    compiler = _compiler()
    if compiler is None:
        warnings.warn("posereg.accel.fused: no C compiler found; using the eager formulas", stacklevel=2)
        return None
    errors = []
    for flags, libs in _configurations():
        try:
            return Kernels(_build(compiler, flags, libs), flags)
        except (OSError, RuntimeError, subprocess.SubprocessError) as err:
            errors.append(str(err))
    warnings.warn(f"posereg.accel.fused: building the C kernels failed; using the eager formulas ({errors[-1]})",
                  stacklevel=2)  # fmt: skip
    return None
