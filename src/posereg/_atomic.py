"""Writing a file so that readers see the old file or the new one, never half of one.

The content goes to a temporary file in the destination's directory (same file system, so
the final ``os.replace`` is an atomic rename on POSIX and Windows); on any error the
temporary file is removed and a file already at the destination is left untouched.
Imported by every layer that writes files, so it depends on nothing in posereg.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path"]


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path to write instead of ``path``; renamed onto ``path`` when the block succeeds.

    The temporary name keeps ``path``'s suffixes (``.nii.gz``, ``.tfm``) so that writers choosing
    a format by extension (nibabel, SimpleITK) choose the same one. Parent folders are created.

    Example::

        with atomic_path("model.pt") as tmp:
            torch.save(payload, tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        # mkstemp creates the file 0600; give it the mode a plain open() would have.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    """The process umask, read without changing it where the system allows (Linux /proc)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: set and restore (briefly process-wide)
    os.umask(mask)
    return mask
