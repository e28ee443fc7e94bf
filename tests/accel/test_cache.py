"""The accelerator's opt-out and its private kernel cache: ``POSEREG_NO_NATIVE=1`` compiles
and loads nothing; a cache someone else could have written is refused (one warning, eager
values); a new cache is created with mode 0700 whatever the umask."""

from __future__ import annotations

import os
import re
import stat
import warnings
from pathlib import Path

import pytest
import torch

from posereg import geometry as g
from posereg.accel import _native, fused

needs_compiler = pytest.mark.skipif(_native._compiler() is None, reason="no C compiler: nothing is built or loaded")


@pytest.fixture
def cache(monkeypatch, tmp_path) -> Path:
    """A cache directory of this test's own (not created yet), the opt-out unset, only the
    plainest build configuration (quick), and the load decided afresh, before and after."""
    monkeypatch.setenv("POSEREG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("POSEREG_NO_NATIVE", raising=False)
    plainest = _native._configurations()[-1]
    monkeypatch.setattr(_native, "_configurations", lambda: [plainest])
    fused.reset()
    yield tmp_path / "cache"
    fused.reset()


def _inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(11)
    v = 2 * torch.randn(50, 3, generator=gen, dtype=torch.float64)
    q = torch.randn(50, 4, generator=gen, dtype=torch.float64)
    R1, R2 = (g.random_rotation((50,), generator=gen, dtype=torch.float64) for _ in range(2))
    return v, q, R1, R2


def _assert_eager_values() -> None:
    """With the kernels unloaded the fused functions are the eager ones, bit for bit,
    gradients included."""
    v, q, R1, R2 = _inputs()
    assert torch.equal(fused.rotvec_to_matrix(v), g.rotvec_to_matrix(v))
    assert torch.equal(fused.quaternion_to_matrix(q), g.quaternion_to_matrix(q))
    assert torch.equal(fused.matrix_to_rotvec(R1), g.matrix_to_rotvec(R1))
    grads = []
    for fn in (fused.geodesic_distance, g.geodesic_distance):
        a = R1.clone().requires_grad_()
        d = fn(a, R2)
        d.sum().backward()
        grads.append((d.detach(), a.grad))
    assert all(torch.equal(mine, ref) for mine, ref in zip(*grads, strict=True))


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _build(cache: Path) -> Path:
    """Build and load once (the library the refusal tests then tamper with); its path."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fused.available()
    (library,) = (cache / "kernels").iterdir()
    fused.reset()
    return library


def test_opt_out_compiles_and_loads_nothing(monkeypatch, cache):
    def no_compiler() -> None:
        raise AssertionError("POSEREG_NO_NATIVE=1 must not look for a compiler")

    monkeypatch.setenv("POSEREG_NO_NATIVE", "1")
    monkeypatch.setattr(_native, "_compiler", no_compiler)
    fused.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # opting out is silent
        assert _native.native_disabled()
        assert not fused.available()
        _assert_eager_values()
    assert not cache.exists()  # nothing written either


@pytest.mark.parametrize("value", ["", "0", "false", "No", "off"])
def test_opt_out_values_that_keep_the_kernels(monkeypatch, value):
    monkeypatch.setenv("POSEREG_NO_NATIVE", value)
    assert not _native.native_disabled()


@needs_compiler
def test_opt_out_is_read_again_after_reset(monkeypatch, cache):
    assert fused.available()
    monkeypatch.setenv("POSEREG_NO_NATIVE", "1")
    assert fused.available()  # decided once per process...
    fused.reset()
    assert not fused.available()  # ...until reset
    _assert_eager_values()
    monkeypatch.setenv("POSEREG_NO_NATIVE", "0")
    fused.reset()
    assert fused.available()


@needs_compiler
def test_cache_is_created_private_whatever_the_umask(cache):
    old = os.umask(0)  # the old cache came out 0777 under this umask
    try:
        library = _build(cache)
    finally:
        os.umask(old)
    assert _mode(cache) == 0o700 and _mode(cache / "kernels") == 0o700 and _mode(library) == 0o700
    assert library.name.startswith("posereg_kernels_") and library.suffix == ".so"  # no temporary left behind
    assert fused.available()  # and a private cache is loaded from


@needs_compiler
def test_existing_private_cache_is_used(cache):
    """An existing cache directory that is the user's and not writable by others (an old
    0755 one) is fine: it need not be exactly 0700."""
    (cache / "kernels").mkdir(parents=True)
    os.chmod(cache, 0o755)
    os.chmod(cache / "kernels", 0o755)
    library = _build(cache)
    mtime = library.stat().st_mtime_ns
    assert fused.available() and library.stat().st_mtime_ns == mtime  # loaded, not rebuilt


def _make_group_writable(path: Path) -> None:
    os.chmod(path, 0o770)


def _make_world_writable(path: Path) -> None:
    os.chmod(path, 0o777)


def _make_symlink(path: Path) -> None:
    real = path.with_name("elsewhere.so")
    path.rename(real)
    path.symlink_to(real)


# what is tampered with (the cache root, its kernels directory or the library), how, and
# the message that must name it
TAMPERING = {
    "cache dir 0777": ("root", _make_world_writable, "writable by its group or by others"),
    "kernels dir 0777": ("kernels", _make_world_writable, "writable by its group or by others"),
    "kernels dir 0770": ("kernels", _make_group_writable, "writable by its group or by others"),
    "library 0770": ("library", _make_group_writable, "writable by its group or by others"),
    "library 0777": ("library", _make_world_writable, "writable by its group or by others"),
    "library symlink": ("library", _make_symlink, "is a symbolic link"),
}


@needs_compiler
@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_unsafe_cache_is_refused(monkeypatch, cache, case):
    what, tamper, reason = TAMPERING[case]
    library = _build(cache)
    target = {"root": cache, "kernels": cache / "kernels", "library": library}[what]
    tamper(target)
    built = _native._build

    def no_rebuild(*args):  # type: ignore[no-untyped-def]
        path = built(*args)  # raises on the unsafe cache before any compiler runs...
        raise AssertionError(f"{path} was returned for loading")  # ...or this fails the test

    monkeypatch.setattr(_native, "_build", no_rebuild)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert not fused.available()
        _assert_eager_values()  # every call falls back, values unchanged
        assert not fused.available()
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1, messages  # one warning, not one per call
    assert "unsafe cache" in messages[0] and str(target) in messages[0] and reason in messages[0]


@needs_compiler
def test_library_of_another_user_is_refused(monkeypatch, cache):
    library = _build(cache)
    uid = os.getuid()
    original = _native._check_private

    def library_owned_by_someone_else(path: Path, *, directory: bool, follow_links: bool = False) -> None:
        if path == library:  # the directories are the user's; the library is not
            monkeypatch.setattr(_native, "_current_uid", lambda: uid + 1)
        original(path, directory=directory, follow_links=follow_links)

    monkeypatch.setattr(_native, "_check_private", library_owned_by_someone_else)
    with pytest.warns(UserWarning, match=rf"unsafe cache .*{re.escape(str(library))} is owned by uid {uid}, not by"):
        assert not fused.available()
    _assert_eager_values()


@needs_compiler
def test_unsafe_cache_is_not_built_into(cache):
    """A cache directory writable by others before the first build: nothing is compiled
    into it (a library written there could be swapped before it is loaded)."""
    (cache / "kernels").mkdir(parents=True)
    os.chmod(cache / "kernels", 0o777)
    with pytest.warns(UserWarning, match="unsafe cache"):
        assert not fused.available()
    assert list((cache / "kernels").iterdir()) == []
