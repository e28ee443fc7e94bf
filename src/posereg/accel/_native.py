"""Build, cache and load the optional C kernels of ``posereg.accel.fused`` (internal).

``_kernels.c`` (next to this file) is compiled on first use with the system C compiler
(``$CC``, else Python's configured compiler, else ``cc``) into a shared library in the
``kernels`` subdirectory of the cache directory (``$POSEREG_CACHE_DIR``, else
``$XDG_CACHE_HOME/posereg``, else ``~/.cache/posereg``), keyed by a hash of the source, the
flags and the compiler, and loaded with ``ctypes``. No torch headers are involved: the
build takes about a second. ``POSEREG_NO_NATIVE=1`` (any value but empty, ``0``,
``false``, ``no``, ``off``) turns all of this off: nothing is compiled, written or loaded.

Cache safety: loading a library runs its code, so a library is loaded only when nobody
but the current user (and root) can have written it. The cache directory and its
``kernels`` subdirectory are created with mode 0700 (whatever the umask), and before every
load both directories and the library file are checked: owned by the current user, not
writable by group or others, and (the ``kernels`` directory and the library) not symbolic
links. A library is built into a fresh ``mkstemp`` file (0600) in the same directory,
chmod-ed to 0700 and renamed over the target with ``os.replace``, so no process ever sees
half a file. When a check fails, ``kernels()`` warns once, naming the path, and returns
None: the callers run the eager formulas. It does not rebuild elsewhere (say, in a
private temporary directory): a cache that fails the check is something the user should
look at, and a silent per-process rebuild would hide it. The fix is ``chmod 700`` (or
``chmod go-w`` on the library), removing the directory, or another ``POSEREG_CACHE_DIR``.
The checks are on paths: they cannot stop someone who can write to a parent of the cache
directory from swapping it between the check and the load, so that parent should be
private too (``~/.cache`` normally is).

Flags: ``-O3`` without ``-ffast-math`` (NaN and inf keep their meaning), the vector ISA
that torch itself dispatches to on this CPU (``torch.backends.cpu.get_cpu_capability``),
on x86-64 Linux glibc's SIMD math library (libmvec: vectorised ``sin``/``atan2``,
<= 4 ulp), and OpenMP where torch runs its own parallel loops on GNU OpenMP: the library
then links ``libgomp.so.1``, which the dynamic loader binds to the copy torch has already
loaded (same SONAME), so the kernels share torch's runtime and thread pool instead of
starting a second one. When a build fails, the next configuration is tried (without
OpenMP, without libmvec, without ISA flags, then plain ``-O2``); when all fail,
``kernels()`` returns None once with a warning and the callers use the eager formulas.

``kernels()`` decides once per process (environment, compiler, cache checks) and
remembers the outcome; ``reset()`` forgets it, so that the next call decides again.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
import warnings
from pathlib import Path

import torch

__all__ = ["InsecureCacheError", "Kernels", "cache_dir", "kernels", "native_disabled", "reset"]

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
_OPT_OUT = "POSEREG_NO_NATIVE"
_OPT_OUT_OFF = ("", "0", "false", "no", "off")


class InsecureCacheError(Exception):
    """A cache directory or library that someone other than the current user may have written."""


def native_disabled() -> bool:
    """Whether ``$POSEREG_NO_NATIVE`` opts out of the kernels (set, not ``0``/``false``/``no``/``off``)."""
    return os.environ.get(_OPT_OUT, "").strip().lower() not in _OPT_OUT_OFF


def cache_dir() -> Path:
    """The cache directory (``$POSEREG_CACHE_DIR``, else ``$XDG_CACHE_HOME/posereg``, else
    ``~/.cache/posereg``: ``posereg._files.cache_root``, shared with the atlas cache); the libraries
    go in its ``kernels`` subdirectory, created on demand."""
    from posereg._files import cache_root

    return cache_root()


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


def _current_uid() -> int:
    """The user whose files the cache may hold (``os.getuid()``)."""
    getuid = getattr(os, "getuid", None)
    if getuid is None:  # no POSIX ownership to check (Windows): do not load anything
        raise InsecureCacheError("file ownership cannot be checked on this platform")
    return getuid()


def _check_private(path: Path, *, directory: bool, follow_links: bool = False) -> None:
    """Raise ``InsecureCacheError`` unless ``path`` is a directory (or regular file) owned
    by the current user and writable by neither its group nor others. ``follow_links``:
    ``path`` may be a symbolic link (to a directory that passes the same checks)."""
    info = os.stat(path) if follow_links else os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise InsecureCacheError(f"{path} is a symbolic link")
    if not (stat.S_ISDIR if directory else stat.S_ISREG)(info.st_mode):
        raise InsecureCacheError(f"{path} is not a {'directory' if directory else 'regular file'}")
    uid = _current_uid()
    if info.st_uid != uid:
        raise InsecureCacheError(f"{path} is owned by uid {info.st_uid}, not by the current user (uid {uid})")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise InsecureCacheError(f"{path} is writable by its group or by others (mode {stat.S_IMODE(info.st_mode):04o})")


def _private_dir() -> Path:
    """``cache_dir() / "kernels"``, each created with mode 0700 where missing, once both pass
    ``_check_private`` (the cache directory itself may be a symbolic link)."""
    root = cache_dir()
    for path in (root, root / "kernels"):
        try:
            path.mkdir(mode=0o700, parents=True)  # missing parents of the root get the default mode
        except FileExistsError:
            continue
        os.chmod(path, 0o700)  # mkdir's mode is masked by the umask; make it exact
    _check_private(root, directory=True, follow_links=True)
    _check_private(root / "kernels", directory=True)
    return root / "kernels"


def _build(compiler: str, flags: tuple[str, ...], libs: tuple[str, ...]) -> Path:
    """Compile ``_kernels.c`` once per (source, flags, compiler) into the private cache;
    return the library path, checked (``InsecureCacheError`` when a check fails)."""
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=60).stdout
    key = hashlib.sha256(_SOURCE.read_bytes() + repr((flags, libs, compiler, version)).encode()).hexdigest()[:16]
    directory = _private_dir()
    target = directory / f"posereg_kernels_{key}.so"
    if not os.path.lexists(target):
        # Build beside the target and rename: atomic, so concurrent processes never load half a file.
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{target.stem}.", suffix=".tmp")
        os.close(fd)
        try:
            cmd = [compiler, *flags, "-o", tmp, str(_SOURCE), *libs]
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            if result.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed: {result.stderr.strip()[:500]}")
            os.chmod(tmp, 0o700)  # the linker may have recreated it with the umask's mode
            os.replace(tmp, target)
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)
    _check_private(target, directory=False)
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
    """The built kernels, or None: opted out (``$POSEREG_NO_NATIVE``, silently), no C
    compiler, no configuration that compiles, or a cache that fails the safety checks (one
    warning each). Decided once per process; ``reset()`` forgets the decision."""
    if native_disabled():
        return None
    compiler = _compiler()
    if compiler is None:
        warnings.warn("posereg.accel: no C compiler found; using the eager formulas", stacklevel=2)
        return None
    errors = []
    for flags, libs in _configurations():
        try:
            return Kernels(_build(compiler, flags, libs), flags)
        except InsecureCacheError as err:
            warnings.warn(f"posereg.accel: not loading the C kernels from an unsafe cache ({err}); using the eager "
                          "formulas. Make the cache private to you (chmod 700 for directories, chmod go-w for "
                          "the library), remove it, set POSEREG_CACHE_DIR to another directory, or set "
                          "POSEREG_NO_NATIVE=1.", stacklevel=2)  # fmt: skip
            return None
        except (OSError, RuntimeError, subprocess.SubprocessError) as err:
            errors.append(str(err))
    warnings.warn(f"posereg.accel: building the C kernels failed; using the eager formulas ({errors[-1]})",
                  stacklevel=2)  # fmt: skip
    return None


def reset() -> None:
    """Forget what ``kernels()`` decided, so that its next call reads the environment
    (``POSEREG_NO_NATIVE``, ``POSEREG_CACHE_DIR``), checks the cache and loads again (a
    library already loaded in this process stays mapped: ctypes never unloads one)."""
    kernels.cache_clear()
