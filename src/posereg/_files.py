"""Files posereg writes: never half-written, never over an input, checked before the work.

``atomic_path``: the content goes to a temporary file in the destination's directory (same
file system, so the final ``os.replace`` is an atomic rename on POSIX and Windows); on any
error the temporary file is removed and a file already at the destination is left untouched.
``atomic_outputs`` does the same for the several outputs of one command: all are written to
temporary files first and renamed into place only when every one was written.
``check_outputs`` refuses, before any computation, an output path that is an input, that two
outputs share, whose extension the writer does not know, or whose folder cannot be written.
Imported by every layer that writes files, so it depends on nothing in posereg.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

__all__ = ["atomic_outputs", "atomic_path", "cache_root", "check_outputs", "private_folder"]


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path to write instead of ``path``; renamed onto ``path`` when the block succeeds.

    The temporary name keeps ``path``'s suffixes (``.nii.gz``, ``.tfm``) so that writers choosing
    a format by extension (nibabel, SimpleITK) choose the same one. Parent folders are created.

    Example::

        with atomic_path("model.pt") as tmp:
            torch.save(payload, tmp)
    """
    with atomic_outputs([path]) as (tmp,):
        yield tmp


def _umask() -> int:
    """The process umask, read without changing it where the system allows (Linux /proc)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: set and restore (briefly process-wide)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_outputs(paths: Sequence[str | Path]) -> Iterator[list[Path]]:
    """Temporary paths for several outputs, renamed onto ``paths`` together when the block succeeds.

    Nothing appears at any destination unless every output was written; a failure removes the
    temporary files and leaves earlier files at the destinations untouched. (The renames
    themselves run one after the other: each is atomic, the group is not, but nothing that can
    fail runs between them.)
    """
    with contextlib.ExitStack() as stack:
        temporaries = [stack.enter_context(_pending(Path(p))) for p in paths]
        yield [tmp for tmp, _ in temporaries]
        for tmp, final in temporaries:
            os.chmod(tmp, 0o666 & ~_umask())
        for tmp, final in temporaries:
            os.replace(tmp, final)


@contextlib.contextmanager
def _pending(path: Path) -> Iterator[tuple[Path, Path]]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{''.join(path.suffixes)}", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp, path
    finally:
        tmp.unlink(missing_ok=True)


def check_outputs(
    outputs: Mapping[str, str | Path | None],
    inputs: Sequence[str | Path | None],
    suffixes: Mapping[str, Sequence[str]],
) -> None:
    """Refuse bad output paths before any work is done.

    Args:
        outputs: ``{option name: path or None}``, e.g. ``{"--out-image": "a.nii.gz"}``.
        inputs: the command's input paths (None entries are skipped).
        suffixes: ``{option name: accepted endings}``, e.g. ``(".nii", ".nii.gz")``.

    Raises:
        ValueError: an output that is an input or another output, an unknown ending, an
            existing folder at the path, or a folder that cannot be created or written.
    """
    taken = {Path(p).resolve(): "an input" for p in inputs if p is not None}
    for option, path in outputs.items():
        if path is None:
            continue
        target = Path(path)
        endings = suffixes.get(option, ())
        if endings and not any(target.name.lower().endswith(e) for e in endings):
            raise ValueError(f"{option} {path}: expected a file ending in {' or '.join(endings)}")
        resolved = target.resolve()
        if resolved in taken:
            raise ValueError(f"{option} {path}: the output would replace {taken[resolved]}")
        taken[resolved] = f"the output of {option}"
        if target.is_dir():
            raise ValueError(f"{option} {path}: is a folder, expected a file name")
        folder = _existing_parent(resolved.parent)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ValueError(f"{option} {path}: cannot write in {folder}")


def _existing_parent(folder: Path) -> Path:
    """The nearest existing folder at or above ``folder`` (where a new folder would be created)."""
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"{folder}: is a file, not a folder")
    return folder


def cache_root() -> Path:
    """posereg's cache folder: ``$POSEREG_CACHE_DIR``, else ``$XDG_CACHE_HOME/posereg``, else
    ``~/.cache/posereg`` (not created here)."""
    if os.environ.get("POSEREG_CACHE_DIR"):
        return Path(os.environ["POSEREG_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "posereg"


def private_folder(path: Path) -> Path | None:
    """``path`` created 0700 if missing, or None unless it is a folder of this user that nobody
    else can write (then the caller must neither read nor write cached files there)."""
    import stat

    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.stat()
    except OSError:
        return None
    uid = os.getuid() if hasattr(os, "getuid") else None
    if not stat.S_ISDIR(info.st_mode) or (uid is not None and info.st_uid != uid) or info.st_mode & 0o022:
        return None
    return path
