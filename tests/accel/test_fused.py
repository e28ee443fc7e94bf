"""The fused C kernels agree with the eager functions (values and gradients), whatever torch's
thread count, and fall back to the eager formulas where they do not apply."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from posereg import geometry as g
from posereg.accel import _native, fused

from ..geometry.conftest import DTYPES, TOL, adversarial_rotvecs, random_rotvecs

# (fused function, eager function, input maker (batch, dtype, generator) -> tensor)
CONVERSIONS = {
    "rotvec_to_matrix": (fused.rotvec_to_matrix, g.rotvec_to_matrix,
                         lambda b, dt, gen: 2 * torch.randn(*b, 3, generator=gen, dtype=dt)),
    "quaternion_to_matrix": (fused.quaternion_to_matrix, g.quaternion_to_matrix,
                             lambda b, dt, gen: torch.randn(*b, 4, generator=gen, dtype=dt)),
    "matrix_to_rotvec": (fused.matrix_to_rotvec, g.matrix_to_rotvec,
                         lambda b, dt, gen: g.random_rotation(b, generator=gen, dtype=dt)),
}  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    """Every test here builds into (and loads from) a fresh cache of its own, not the user's,
    with the kernels' load decided afresh, and forgotten again afterwards."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POSEREG_CACHE_DIR", str(tmp_path_factory.mktemp("posereg-cache")))
        fused.reset()
        yield
        fused.reset()


@pytest.fixture(scope="module")
def built_kernels():
    """The tests below test the kernels, not the fallback: where a C compiler exists, the
    build must succeed (the fallback tests at the end run everywhere)."""
    if _native.native_disabled():
        pytest.skip("POSEREG_NO_NATIVE is set: posereg.accel.fused runs the eager formulas")
    if _native._compiler() is None:
        pytest.skip("no C compiler: posereg.accel.fused runs the eager formulas here")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fused.available(), "the C kernels did not build on this machine"


needs_kernels = pytest.mark.usefixtures("built_kernels")


@needs_kernels
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(CONVERSIONS))
@pytest.mark.parametrize("batch", [(), (0,), (7,), (3, 5), (2, 1, 600)])
def test_conversions_match_eager(name, batch, dtype):
    fast, eager, make = CONVERSIONS[name]
    x = make(batch, dtype, torch.Generator().manual_seed(len(batch)))
    out = fast(x)
    ref = eager(x)
    assert out.shape == ref.shape and out.dtype == dtype
    torch.testing.assert_close(out, ref, atol=4 * TOL[dtype], rtol=0)


@needs_kernels
@pytest.mark.parametrize("dtype", DTYPES)
def test_adversarial_angles_against_scipy(dtype):
    v = adversarial_rotvecs()
    R = Rotation.from_rotvec(v).as_matrix()
    t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=dtype)  # noqa: E731
    assert np.abs(fused.rotvec_to_matrix(t(v)).double().numpy() - R).max() <= TOL[dtype]
    q = Rotation.from_rotvec(v).as_quat()[:, [3, 0, 1, 2]]
    assert np.abs(fused.quaternion_to_matrix(t(q)).double().numpy() - R).max() <= TOL[dtype]
    log = fused.matrix_to_rotvec(t(R)).double().numpy()
    err = np.minimum(np.abs(log - v), np.abs(log + v))  # at pi both signs are logarithms
    assert err.max() <= TOL[dtype]
    base = Rotation.random(len(v), random_state=3)
    d = fused.geodesic_distance(t(base.as_matrix()), t((base * Rotation.from_rotvec(v)).as_matrix()))
    assert np.abs(d.double().numpy() - np.linalg.norm(v, axis=1)).max() <= TOL[dtype]


@needs_kernels
@pytest.mark.parametrize("dtype", DTYPES)
def test_geodesic_distance_and_gradient_match_eager(dtype):
    gen = torch.Generator().manual_seed(1)
    R1 = g.random_rotation((5, 40), generator=gen, dtype=dtype)
    R2 = g.random_rotation((5, 40), generator=gen, dtype=dtype)
    # angles 0 and pi, where the distance has a subgradient, included
    R2[0, 0] = R1[0, 0]
    R2[0, 1] = R1[0, 1] @ g.rotvec_to_matrix(torch.tensor([0.0, math.pi, 0.0], dtype=dtype))
    weights = torch.rand(5, 40, generator=gen, dtype=dtype)
    grads = []
    for fn in (fused.geodesic_distance, g.geodesic_distance):
        a, b = R1.clone().requires_grad_(), R2.clone().requires_grad_()
        d = fn(a, b)
        (d * weights).sum().backward()
        grads.append((d.detach(), a.grad, b.grad))
    # At angles 0 and pi the distance has a cusp (like |x|): u = sum_k a_k x b_k is rounding
    # noise whose direction picks the subgradient, differently in the two implementations.
    # Both stay finite and bounded there; elsewhere they agree.
    smooth = torch.ones(5, 40, dtype=torch.bool)
    smooth[0, :2] = False
    for mine, ref in zip(grads[0], grads[1], strict=True):
        assert torch.isfinite(mine).all() and mine.abs().max() < 10
        torch.testing.assert_close(mine[smooth], ref[smooth], atol=1e-3 if dtype == torch.float32 else 1e-10, rtol=0)


@needs_kernels
@pytest.mark.parametrize("side", [0, 1])
def test_geodesic_gradient_of_one_side_only(side):
    """A loss against a fixed target asks for one gradient; the backward kernel then skips
    the other (a NULL output) and gives the same values as when both are asked for."""
    gen = torch.Generator().manual_seed(4)
    n = 70_005  # over PARALLEL_MIN: the skipped side is skipped in every thread's blocks
    R = [g.random_rotation((n,), generator=gen) for _ in range(2)]
    weights = torch.rand(n, generator=gen)
    both = [r.clone().requires_grad_() for r in R]
    (fused.geodesic_distance(*both) * weights).sum().backward()
    one = [r.clone().requires_grad_(i == side) for i, r in enumerate(R)]
    (fused.geodesic_distance(*one) * weights).sum().backward()
    assert one[1 - side].grad is None
    assert torch.equal(one[side].grad, both[side].grad)


@needs_kernels
def test_gradcheck_float64():
    gen = torch.Generator().manual_seed(2)
    v = torch.as_tensor(random_rotvecs(6, 3, max_angle=3.0), dtype=torch.float64).requires_grad_()
    R1 = g.random_rotation((6,), generator=gen, dtype=torch.float64)
    # perturbed rotations: the distance is defined for any matrices, away from 0 and pi
    R2 = (g.rotvec_to_matrix(torch.full((6, 3), 0.7, dtype=torch.float64)) @ R1).requires_grad_()
    R1 = R1.requires_grad_()
    q = torch.randn(6, 4, generator=gen, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(fused.rotvec_to_matrix, (v,))
    assert torch.autograd.gradcheck(fused.quaternion_to_matrix, (q,))
    assert torch.autograd.gradcheck(fused.matrix_to_rotvec, (g.rotvec_to_matrix(v.detach()).requires_grad_(),))
    assert torch.autograd.gradcheck(fused.geodesic_distance, (R1, R2))


@needs_kernels
def test_broadcasting_and_non_contiguous_inputs():
    gen = torch.Generator().manual_seed(4)
    R1 = g.random_rotation((3, 1), generator=gen, dtype=torch.float64).requires_grad_()
    R2 = g.random_rotation((1, 4), generator=gen, dtype=torch.float64)
    d = fused.geodesic_distance(R1, R2)
    torch.testing.assert_close(d, g.geodesic_distance(R1, R2))
    d.sum().backward()
    assert R1.grad.shape == R1.shape
    ref = R1.detach().clone().requires_grad_()
    g.geodesic_distance(ref, R2).sum().backward()
    torch.testing.assert_close(R1.grad, ref.grad)
    Rt = g.random_rotation((6,), generator=gen, dtype=torch.float64).mT  # transposed view
    torch.testing.assert_close(fused.matrix_to_rotvec(Rt), g.matrix_to_rotvec(Rt))
    v = torch.randn(3, 8, generator=gen, dtype=torch.float64).T  # (8, 3) non-contiguous
    torch.testing.assert_close(fused.rotvec_to_matrix(v), g.rotvec_to_matrix(v))


@needs_kernels
def test_results_do_not_depend_on_torch_threads():
    n = 70_005  # above PARALLEL_MIN (_kernels.c): the blocks are split over OpenMP threads at 2
    gen = torch.Generator().manual_seed(5)
    v = torch.randn(n, 3, generator=gen)
    q = torch.randn(n, 4, generator=gen)
    R1, R2 = g.random_rotation((n,), generator=gen), g.random_rotation((n,), generator=gen)
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            a = R1.clone().requires_grad_()
            d = fused.geodesic_distance(a, R2)
            d.sum().backward()
            results.append((fused.rotvec_to_matrix(v), fused.quaternion_to_matrix(q), fused.matrix_to_rotvec(R1),
                            d.detach(), a.grad))  # fmt: skip
    finally:
        torch.set_num_threads(before)
    for one, two in zip(*results, strict=True):
        assert torch.equal(one, two)


@needs_kernels
def test_nan_in_the_last_thread_block_is_caught():
    """The checksum is reduced over the OpenMP team: a NaN in the last block still reaches
    the eager fallback, which raises."""
    n = 70_005
    bad = torch.randn(n, 3)
    bad[-1, 2] = math.nan
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with pytest.raises(ValueError, match="NaN or inf"):
            fused.rotvec_to_matrix(bad)
    finally:
        torch.set_num_threads(before)


@needs_kernels
def test_openmp_build_shares_torchs_runtime():
    """With OpenMP, the kernels run on a team of the requested size for large batches only,
    and the one ``libgomp.so.1`` in the process (the SONAME the kernels link) is torch's: no
    second copy with its own pool. (Other packages may load renamed copies of their own, e.g.
    scikit-learn's ``libgomp-<hash>.so``; those are not what the kernels bind to.)"""
    k = _native.kernels()
    if not k.openmp:
        pytest.skip("this build has no OpenMP (torch does not use GNU OpenMP here)")
    assert k.team_size(100, 2) == 1
    assert k.team_size(1_000_000, 1) == 1
    assert k.team_size(1_000_000, 2) == 2
    maps = Path("/proc/self/maps")
    if maps.is_file():
        runtimes = {line.split()[-1] for line in maps.read_text().splitlines() if "/libgomp.so" in line}
        assert len(runtimes) == 1 and Path(next(iter(runtimes))).parent == Path(torch.__file__).parent / "lib"


@needs_kernels
def test_bad_input_raises_like_eager():
    with pytest.raises(ValueError, match=r"rotvec: .*\(\.\.\., 3\)"):
        fused.rotvec_to_matrix(torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"R: .*\(\.\.\., 3, 3\)"):
        fused.matrix_to_rotvec(torch.zeros(4, 3, 2))
    with pytest.raises(ValueError, match="NaN or inf"):
        fused.geodesic_distance(torch.full((3, 3), float("nan")), torch.eye(3))
    with pytest.raises(ValueError, match="NaN or inf"):
        fused.geodesic_distance(torch.eye(3), torch.eye(3).index_put((torch.tensor(1), torch.tensor(2)), torch.tensor(math.inf)))
    bad = torch.zeros(5, 3)
    bad[3, 1] = math.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        fused.rotvec_to_matrix(bad)
    with pytest.raises(ValueError, match="non-zero"):
        fused.quaternion_to_matrix(torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 0]]))


@needs_kernels
def test_unsupported_dtype_uses_eager():
    v = torch.randn(10, 3, dtype=torch.bfloat16)
    assert torch.equal(fused.rotvec_to_matrix(v), g.rotvec_to_matrix(v))


def test_missing_kernels_fall_back_to_eager(monkeypatch):
    monkeypatch.setattr(fused, "kernels", lambda: None)
    gen = torch.Generator().manual_seed(6)
    R1, R2 = g.random_rotation((9,), generator=gen), g.random_rotation((9,), generator=gen)
    assert torch.equal(fused.geodesic_distance(R1, R2), g.geodesic_distance(R1, R2))
    assert not fused.available()


def test_failed_build_warns_and_returns_none(monkeypatch, tmp_path):
    monkeypatch.setenv("POSEREG_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("POSEREG_NO_NATIVE", raising=False)
    monkeypatch.setattr(_native, "_configurations", lambda: [(("-definitely-not-a-flag",), ())])
    try:
        if _native._compiler() is not None:
            fused.reset()
            with pytest.warns(UserWarning, match="building the C kernels failed"):
                assert _native.kernels() is None
        monkeypatch.setattr(_native, "_compiler", lambda: None)
        fused.reset()
        with pytest.warns(UserWarning, match="no C compiler"):
            assert not fused.available()
    finally:
        fused.reset()


@needs_kernels
def test_build_is_cached_by_content(monkeypatch, tmp_path):
    monkeypatch.setenv("POSEREG_CACHE_DIR", str(tmp_path))
    flags, libs = _native._configurations()[-1]  # the plainest build: quick
    compiler = _native._compiler()
    first = _native._build(compiler, flags, libs)
    mtime = first.stat().st_mtime_ns
    assert _native._build(compiler, flags, libs) == first and first.stat().st_mtime_ns == mtime
    assert first.parent == tmp_path / "kernels" and list(first.parent.iterdir()) == [first]  # no temporary left
    plain = _native.Kernels(first, flags)
    v = torch.randn(33, 3, dtype=torch.float64)
    out = torch.empty(33, 3, 3, dtype=torch.float64)
    check = plain.fn("rotvec_to_matrix", torch.float64)(v.data_ptr(), out.data_ptr(), 33, 1)
    assert math.isclose(check, float((v * v).sum()), rel_tol=1e-12)
    torch.testing.assert_close(out, g.rotvec_to_matrix(v), atol=1e-12, rtol=0)


def _error(fn):  # type: ignore[no-untyped-def]
    try:
        fn()
    except ValueError as e:
        return str(e)
    return None


@needs_kernels
@pytest.mark.parametrize("dtype", DTYPES)
def test_rotation_check_and_mismatches_raise_like_eager(dtype):
    """The eager functions refuse non-rotations and mismatched arguments with a ValueError; the
    fused ones give the same message, and with ``check_rotation=False`` the same values."""
    R = g.random_rotation(6, generator=torch.Generator().manual_seed(8), dtype=dtype)
    bad = R.clone()
    bad[4] = bad[4] @ torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=dtype))  # a reflection
    other = torch.float64 if dtype == torch.float32 else torch.float32
    cases = [
        lambda m: m.geodesic_distance(R, bad),
        lambda m: m.geodesic_distance(bad, R),
        lambda m: m.matrix_to_rotvec(bad),
        lambda m: m.matrix_to_rotvec(1.1 * R),
        lambda m: m.geodesic_distance(R, R.to(other)),
        lambda m: m.geodesic_distance(R[:4], R[:5]),
        lambda m: m.geodesic_distance(R, torch.empty(6, 3, 3, dtype=dtype, device="meta")),
    ]
    for case in cases:
        message = _error(lambda: case(g))
        assert message is not None and _error(lambda: case(fused)) == message
    # values off SO(3) (a reflection sits on atan2's 0/0, where rounding decides: not compared)
    scaled = 1.1 * R
    for a, b in ((R, scaled), (scaled, R)):
        torch.testing.assert_close(fused.geodesic_distance(a, b, check_rotation=False),
                                   g.geodesic_distance(a, b, check_rotation=False), atol=4 * TOL[dtype], rtol=0)  # fmt: skip
    for M in (scaled, bad):
        torch.testing.assert_close(fused.matrix_to_rotvec(M, check_rotation=False),
                                   g.matrix_to_rotvec(M, check_rotation=False), atol=4 * TOL[dtype], rtol=0)  # fmt: skip


@needs_kernels
@pytest.mark.parametrize("dtype", DTYPES)
def test_small_quaternions_give_eager_values_and_errors(dtype):
    """Where ``|q|^2`` is subnormal in the kernel the eager function takes over (it rescales
    exactly); quaternions the eager function refuses are refused with its message."""
    tiny = torch.finfo(dtype).tiny
    u = torch.randn(50, 4, generator=torch.Generator().manual_seed(9), dtype=dtype)
    for power in (0.3, 0.45, 0.5, 0.505, 0.51, 0.52, 0.55, 0.57, 0.6, 0.8, 0.95):  # |q|^2 subnormal: 0.5-0.59
        q = u * tiny**power
        out = fused.quaternion_to_matrix(q)
        torch.testing.assert_close(out, g.quaternion_to_matrix(q), atol=4 * TOL[dtype], rtol=0)
        torch.testing.assert_close(out, g.quaternion_to_matrix(u), atol=4 * TOL[dtype], rtol=0)
    for small in (tiny / 4, 0.0):
        q = u.clone()
        q[7] = small * u[7] / u[7].abs().max()
        message = _error(lambda: g.quaternion_to_matrix(q))  # noqa: B023
        assert message is not None and "at index (7,)" in message
        assert _error(lambda: fused.quaternion_to_matrix(q)) == message  # noqa: B023
