"""Bundled network weights (data files; see ``posereg.registration.pretrained_pipeline_path``)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["bundled_file"]


def bundled_file(name: str, what: str) -> Path:
    """The path of the bundled file ``name`` (``what`` names it in the error).

    Raises:
        FileNotFoundError: the installation lacks it.
    """
    from importlib.resources import files

    path = Path(str(files(__name__).joinpath(name)))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the bundled {what} is missing from this installation")
    return path
