"""The render cache: unreadable files are reported and rendered again, writes are atomic, and a
``data`` section from a model file (evaluation) never writes."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from posereg.data.reloc import RelocDataConfig, RenderedScene, relocalisation_data, rendered_splits

SMALL = {"scene": "room", "train_sequences": 2, "test_sequences": 1, "frames": 2, "size": 16, "points_per_image": 4}


@pytest.fixture(scope="module")
def renders(tmp_path_factory):  # type: ignore[no-untyped-def]
    """The two renders of ``SMALL`` and the bytes of their cache files ``{name: bytes}``."""
    cache = tmp_path_factory.mktemp("cache")
    train, test = rendered_splits(RelocDataConfig(**SMALL, cache=str(cache)))
    return train, test, {p.name: p.read_bytes() for p in cache.glob("*.pt")}


def _cache(tmp_path: Path, files: dict[str, bytes]) -> tuple[RelocDataConfig, Path, Path]:
    """A cache folder holding ``files``; the config using it and the train and test file paths."""
    cache = tmp_path / "cache"
    cache.mkdir()
    for name, content in files.items():
        (cache / name).write_bytes(content)
    train, test = (cache / next(n for n in files if f"_{split}_" in n) for split in ("train", "test"))
    return RelocDataConfig(**SMALL, cache=str(cache)), train, test


def _same(a: RenderedScene, b: RenderedScene) -> bool:
    return all(torch.equal(getattr(a, k), getattr(b, k)) for k in ("images", "positions", "rotations", "points"))


@pytest.mark.parametrize(
    ("spoil", "why"),
    [
        (lambda p, other: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "truncated"),
        (lambda p, other: p.write_bytes(b""), "empty"),
        (lambda p, other: p.write_bytes(b"\x80\x04garbage" * 50), "not a torch file"),
        (lambda p, other: torch.save({"images": torch.zeros(2)}, p), "not a rendered scene"),
        (lambda p, other: p.write_bytes(other.read_bytes()), "another split's render"),  # loads, wrong content
    ],
)
def test_unreadable_cache_warned_and_rendered_again(tmp_path: Path, renders, spoil, why: str) -> None:  # type: ignore[no-untyped-def]
    train, test, files = renders
    config, train_file, _ = _cache(tmp_path, files)
    other = tmp_path / "other.pt"
    RenderedScene(**{**train.__dict__, "images": train.images[:1]}).save(other)  # one frame too few
    spoil(train_file, other)
    with pytest.warns(UserWarning, match=rf"{train_file.name}: unreadable render cache .*rendering again and replacing"):
        again, again_test = rendered_splits(config)
    assert _same(again, train) and _same(again_test, test)
    assert _same(RenderedScene.load(train_file), train)
    assert sorted(p.name for p in train_file.parent.iterdir()) == sorted(files)  # replaced, no temporary left
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rendered_splits(config)  # the replaced file reads without a warning


def test_failed_cache_write_leaves_the_earlier_file(tmp_path: Path, renders, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    train, _, files = renders
    config, train_file, test_file = _cache(tmp_path, files)
    earlier = b"an earlier, truncated cache file"
    train_file.write_bytes(earlier)
    test_file.unlink()

    def fail_midway(self: RenderedScene, path: str | Path) -> None:
        Path(path).write_bytes(b"half a render")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(RenderedScene, "save", fail_midway)
    with pytest.warns(UserWarning) as caught:
        again, _ = rendered_splits(config)
    messages = [str(w.message) for w in caught]
    assert any("unreadable render cache" in m for m in messages)
    assert sum("could not write the render cache" in m and "No space left" in m for m in messages) == 2
    assert _same(again, train)  # the render is used all the same
    assert train_file.read_bytes() == earlier  # the earlier file is untouched
    assert not test_file.exists()  # no half-written file where there was none
    assert [p.name for p in train_file.parent.iterdir()] == [train_file.name]  # no temporary left


def test_cache_write_is_atomic(tmp_path: Path, renders, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The file appears under its name only once complete: it is written elsewhere and renamed."""
    train, _, files = renders
    config, train_file, _ = _cache(tmp_path, files)
    train_file.unlink()
    written: list[Path] = []
    save = RenderedScene.save

    def record(self: RenderedScene, path: str | Path) -> None:
        written.append(Path(path))
        assert not train_file.exists()
        save(self, path)

    monkeypatch.setattr(RenderedScene, "save", record)
    rendered_splits(config)
    assert len(written) == 1 and written[0].parent == train_file.parent and written[0] != train_file
    assert _same(RenderedScene.load(train_file), train) and not written[0].exists()


def test_no_cache_written_unless_asked(tmp_path: Path, renders) -> None:  # type: ignore[no-untyped-def]
    """``write_cache=False`` (a data section read from a model file) writes nothing, anywhere."""
    train, test, files = renders
    cache = tmp_path / "named" / "by" / "a" / "model"
    config = RelocDataConfig(**SMALL, cache=str(cache))
    data = relocalisation_data(config, write_cache=False)
    assert not (tmp_path / "named").exists()
    kept = train.sequence < SMALL["train_sequences"] - 1  # the last training path is the validation split
    torch.testing.assert_close(data.train_poses.positions, train.positions[kept])
    # an existing cache is read; an unreadable one is rendered again and left as it is
    config, train_file, _ = _cache(tmp_path, files)
    train_file.write_bytes(b"truncated")
    with pytest.warns(UserWarning, match=r"unreadable render cache .*the file is left as it is"):
        again, again_test = rendered_splits(config, write_cache=False)
    assert _same(again, train) and _same(again_test, test) and train_file.read_bytes() == b"truncated"
