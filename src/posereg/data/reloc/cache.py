"""The render cache: the training and test renders of a configured synthetic scene, rendered once.

Files are ``<cache>/<scene>_<split>_<key>.pt`` (``RenderedScene.save``); the key hashes every
setting that changes the pixels or labels, so a changed configuration never reads a stale
render. Training sequences use path seeds ``0 ..``, test sequences ``TEST_SEED_BASE ..``.

A cache file is written to a temporary file in the same folder and renamed into place
(``posereg._files.atomic_path``): an interrupted or failed write leaves no partial file and an
earlier file untouched. A cache file that cannot be read (truncated, corrupt, not a render of
these settings) is reported in a warning and rendered again; a cache that cannot be written is
reported and the render used without it. Nothing is ever an error: it is only a cache.

Writing is the caller's choice (``write_cache``): the folder is named by the ``data`` section,
which for ``posereg evaluate reloc`` comes from the model file being evaluated, and no path taken
from a model file is written. Evaluation reads the cache (safe ``weights_only`` loading, and the
content checked against the settings) and otherwise renders in memory.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import torch

from posereg._files import atomic_path
from posereg.data.reloc.config import RelocDataConfig
from posereg.data.reloc.render import RenderedScene, render_scene
from posereg.data.reloc.scene import synthetic_scene

__all__ = ["TEST_SEED_BASE", "rendered_splits"]

TEST_SEED_BASE = 1000  # test sequences use path seeds 1000, 1001, ...: never a training path


def rendered_splits(
    data: RelocDataConfig, *, progress: bool = False, write_cache: bool = True
) -> tuple[RenderedScene, RenderedScene]:
    """``(train, test)`` renders of the configured scene, read from or written to ``data.cache``.

    Args:
        data: the data section (``scene``, ``train_sequences``, ``test_sequences``, ``frames``,
            ``size`` in pixels, ``points_per_image``, ``cache`` folder or None for no cache).
        progress: show a progress bar while rendering.
        write_cache: write new renders to ``data.cache`` (atomically). False reads the cache only:
            for a ``data`` section that came from a model file (evaluation).
    """
    scene = synthetic_scene(data.scene)
    splits = {"train": range(data.train_sequences), "test": range(TEST_SEED_BASE, TEST_SEED_BASE + data.test_sequences)}
    out = []
    for name, seeds in splits.items():
        settings = {"scene": repr(scene), "seeds": list(seeds), "frames": data.frames, "size": data.size,
                    "points": data.points_per_image, "version": 1}  # fmt: skip
        key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
        path = Path(data.cache) / f"{data.scene}_{name}_{key}.pt" if data.cache is not None else None
        shape = (len(seeds) * data.frames, data.size, data.points_per_image)
        rendered = _read(path, shape, write_cache) if path is not None else None
        if rendered is None:
            rendered = render_scene(scene, sequences=list(seeds), frames=data.frames, size=data.size,
                                    points_per_image=data.points_per_image, progress=progress)  # fmt: skip
            if path is not None and write_cache:
                _write(path, rendered)
        out.append(rendered)
    return out[0], out[1]


def _read(path: Path, shape: tuple[int, int, int], replace: bool) -> RenderedScene | None:
    """The render cached at ``path``, or None (no file, or an unreadable one: with a warning)."""
    if not path.is_file():
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's remarks on a foreign file; the warning below says it
            rendered = RenderedScene.load(path)
        _check(rendered, *shape)
    except Exception as err:  # noqa: BLE001 - torch raises RuntimeError, EOFError, UnpicklingError...
        reason = (str(err).strip().splitlines() or ["the file ends early"])[0].split(". ")[0][:200]
        reason = reason.removeprefix(f"{path}: ")
        then = "rendering again and replacing it" if replace else "rendering again (the file is left as it is)"
        warnings.warn(f"{path}: unreadable render cache ({type(err).__name__}: {reason}); {then}", stacklevel=3)
        return None
    return rendered


def _check(rendered: RenderedScene, frames: int, size: int, points: int) -> None:
    """ValueError unless ``rendered`` has ``frames`` frames of ``size`` pixels and ``points`` points each."""
    expected = {"images": ((frames, 3, size, size), torch.uint8), "rotations": ((frames, 3, 3), torch.float64),
                "positions": ((frames, 3), torch.float64), "intrinsics": ((3, 3), torch.float64),
                "points": ((frames, points, 3), torch.float32), "points_mask": ((frames, points), torch.bool),
                "sequence": ((frames,), torch.int64)}  # fmt: skip
    for name, (shape, dtype) in expected.items():
        value = getattr(rendered, name)
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape or value.dtype != dtype:
            got = (tuple(value.shape), value.dtype) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(f"{name}: expected {shape} {dtype}, got {got}")
        if dtype.is_floating_point and not bool(torch.isfinite(value).all()):
            raise ValueError(f"{name}: non-finite values")


def _write(path: Path, rendered: RenderedScene) -> None:
    """Write ``rendered`` to ``path`` atomically; a failure is a warning (the render is still used)."""
    try:
        with atomic_path(path) as tmp:
            rendered.save(tmp)
    except (OSError, RuntimeError) as err:  # no space, no permission (torch reports write errors as RuntimeError)
        warnings.warn(f"{path}: could not write the render cache ({err}); continuing without it", stacklevel=3)
