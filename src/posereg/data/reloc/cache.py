"""The render cache: the training and test renders of a configured synthetic scene, rendered once.

Files are ``<cache>/<scene>_<split>_<key>.pt`` (``RenderedScene.save``); the key hashes every
setting that changes the pixels or labels, so a changed configuration never reads a stale
render. Training sequences use path seeds ``0 ..``, test sequences ``TEST_SEED_BASE ..``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from posereg._files import atomic_path
from posereg.data.reloc.config import RelocDataConfig
from posereg.data.reloc.render import RenderedScene, render_scene
from posereg.data.reloc.scene import synthetic_scene

__all__ = ["TEST_SEED_BASE", "rendered_splits"]

TEST_SEED_BASE = 1000  # test sequences use path seeds 1000, 1001, ...: never a training path


def rendered_splits(data: RelocDataConfig, *, progress: bool = False) -> tuple[RenderedScene, RenderedScene]:
    """``(train, test)`` renders of the configured scene, read from or written to ``data.cache``.

    Args:
        data: the data section (``scene``, ``train_sequences``, ``test_sequences``, ``frames``,
            ``size`` in pixels, ``points_per_image``, ``cache`` folder or None for no cache).
        progress: show a progress bar while rendering.
    """
    scene = synthetic_scene(data.scene)
    splits = {"train": range(data.train_sequences), "test": range(TEST_SEED_BASE, TEST_SEED_BASE + data.test_sequences)}
    out = []
    for name, seeds in splits.items():
        settings = {"scene": repr(scene), "seeds": list(seeds), "frames": data.frames, "size": data.size,
                    "points": data.points_per_image, "version": 1}  # fmt: skip
        key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
        path = Path(data.cache) / f"{data.scene}_{name}_{key}.pt" if data.cache is not None else None
        if path is not None and path.is_file():
            out.append(RenderedScene.load(path))
            continue
        rendered = render_scene(scene, sequences=list(seeds), frames=data.frames, size=data.size,
                                points_per_image=data.points_per_image, progress=progress)  # fmt: skip
        if path is not None:  # atomically: the processes of a multi-process run may render at once
            with atomic_path(path) as tmp:
                rendered.save(tmp)
        out.append(rendered)
    return out[0], out[1]
