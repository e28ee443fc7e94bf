"""Arguments of one call with different dtypes, devices or non-broadcastable batch shapes raise
ValueError in the standard format (never a torch RuntimeError); documented broadcasting works."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from posereg import geometry as g

F32, F64 = torch.float32, torch.float64


def _R(batch: tuple[int, ...], dtype: torch.dtype = F32) -> torch.Tensor:
    return g.random_rotation(batch, generator=torch.Generator().manual_seed(len(batch)), dtype=dtype)


def _v(batch: tuple[int, ...], n: int, dtype: torch.dtype = F32) -> torch.Tensor:
    return torch.linspace(0.1, 0.9, max(1, torch.Size(batch).numel()) * n, dtype=dtype).view(*batch, n)


def _points(batch: tuple[int, ...], dtype: torch.dtype = F32) -> torch.Tensor:
    return _v((*batch, 4), 3, dtype) + torch.tensor([0.0, 0.0, 3.0], dtype=dtype)


W = torch.eye(6)
K = torch.tensor([[2.0, 0.0, 1.0], [0.0, 2.0, 1.0], [0.0, 0.0, 1.0]])

# name -> (function, argument names, builders: (batch, dtype) -> tensor, one per argument;
# None for an argument without a batch shape (W), which is only varied in dtype).
CASES = {
    "geodesic_distance": (g.geodesic_distance, ("R1", "R2"), (_R, _R)),
    "quaternion_multiply": (g.quaternion_multiply, ("p", "q"), (lambda b, d: _v(b, 4, d), lambda b, d: _v(b, 4, d))),
    "quaternion_angle": (g.quaternion_angle, ("q1", "q2"), (lambda b, d: _v(b, 4, d), lambda b, d: _v(b, 4, d))),
    "to_homogeneous": (g.to_homogeneous, ("R", "t"), (_R, lambda b, d: _v(b, 3, d))),
    "compose": (g.compose, ("R1", "t1", "R2", "t2"), (_R, lambda b, d: _v(b, 3, d), _R, lambda b, d: _v(b, 3, d))),
    "inverse": (g.inverse, ("R", "t"), (_R, lambda b, d: _v(b, 3, d))),
    "transform_points": (g.transform_points, ("R", "t", "points"), (_R, lambda b, d: _v(b, 3, d), _points)),
    "se3_log": (g.se3_log, ("R", "t"), (_R, lambda b, d: _v(b, 3, d))),
    "so3r3_log": (g.so3r3_log, ("R", "t"), (_R, lambda b, d: _v(b, 3, d))),
    "riemannian_log": (g.riemannian_log, ("R1", "t1", "R2", "t2"),
                       (_R, lambda b, d: _v(b, 3, d), _R, lambda b, d: _v(b, 3, d))),
    "squared_geodesic_distance": (g.squared_geodesic_distance, ("R1", "t1", "R2", "t2", "W"),
                                  (_R, lambda b, d: _v(b, 3, d), _R, lambda b, d: _v(b, 3, d), None)),
    "metric_inner": (g.metric_inner, ("W", "a", "b"), (None, lambda b, d: _v(b, 6, d), lambda b, d: _v(b, 6, d))),
    "metric_norm": (g.metric_norm, ("W", "xi"), (None, lambda b, d: _v(b, 6, d))),
    "world_to_camera": (g.world_to_camera, ("R", "c", "points"), (_R, lambda b, d: _v(b, 3, d), _points)),
    "project_points": (g.project_points, ("R", "c", "points", "K"),
                       (_R, lambda b, d: _v(b, 3, d), _points, lambda b, d: K.to(d).expand(*b, 3, 3))),
}  # fmt: skip


def _args(builders, batches, dtypes):  # type: ignore[no-untyped-def]
    return [W.to(d) if make is None else make(b, d) for make, b, d in zip(builders, batches, dtypes, strict=True)]


@pytest.mark.parametrize("name", sorted(CASES))
def test_matching_arguments_work(name):
    fn, names, builders = CASES[name]
    fn(*_args(builders, [(4,)] * len(names), [F32] * len(names)))


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_different_dtype_in_any_position_is_a_value_error(name):
    fn, names, builders = CASES[name]
    for k in range(len(names)):
        dtypes = [F32] * len(names)
        dtypes[k] = F64
        with pytest.raises(ValueError, match=r": expected the same dtype and device, got .*torch\.float64/cpu"):
            fn(*_args(builders, [(4,)] * len(names), dtypes))


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if sum(b is not None for b in c[2]) >= 2))
def test_batch_shapes_that_do_not_broadcast_are_a_value_error(name):
    fn, names, builders = CASES[name]
    for k, make in enumerate(builders):
        if make is None:
            continue
        batches = [(4,)] * len(names)
        batches[k] = (5,)
        with pytest.raises(ValueError, match=r": expected broadcastable batch shapes, got .*\(5,\)"):
            fn(*_args(builders, batches, [F32] * len(names)))


@pytest.mark.parametrize("name", sorted(CASES))
def test_broadcasting_batch_shapes_still_broadcast(name):
    """(4, 1) against (1, 3) gives (4, 3): the same as expanding every argument first."""
    fn, names, builders = CASES[name]
    batches = [(4, 1) if k % 2 == 0 else (1, 3) for k in range(len(names))]
    args = _args(builders, batches, [F32] * len(names))
    out = fn(*args)
    expanded = [
        a if make is None else a.expand(4, 3, *a.shape[2:])
        for a, make in zip(args, builders, strict=True)
    ]
    ref = fn(*expanded)
    for o, r in zip(out if isinstance(out, tuple) else (out,), ref if isinstance(ref, tuple) else (ref,), strict=True):
        torch.testing.assert_close(o.expand_as(r), r)


def test_the_message_format():
    with pytest.raises(ValueError) as info:
        g.geodesic_distance(_R((4,)), _R((5,)))
    assert str(info.value) == "R1, R2: expected broadcastable batch shapes, got (4,) and (5,)"
    with pytest.raises(ValueError) as info:
        g.compose(_R(()), _v((), 3), _R((), F64), _v((), 3))
    assert str(info.value) == (
        "R1, t1, R2, t2: expected the same dtype and device, got torch.float32/cpu and torch.float32/cpu "
        "and torch.float64/cpu and torch.float32/cpu"
    )


def test_chordal_mean_weights_that_do_not_broadcast():
    with pytest.raises(ValueError, match=r"weights: expected a shape broadcastable to \(5,\), got \(3,\)"):
        g.chordal_mean(_R((5,)), torch.ones(3))


def test_different_devices_are_a_value_error_before_any_computation():
    # A meta tensor has no data: the mismatch must be caught from dtype and device alone.
    with pytest.raises(ValueError, match=r"R1, R2: expected the same dtype and device, got torch.float32/cpu and torch.float32/meta"):
        g.geodesic_distance(_R((2,)), torch.empty(2, 3, 3, device="meta"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cpu_and_cuda_arguments_are_a_value_error():
    for name, (fn, names, builders) in CASES.items():
        args = _args(builders, [(4,)] * len(names), [F32] * len(names))
        args[-1] = args[-1].cuda()
        with pytest.raises(ValueError, match="same dtype and device"):
            fn(*args)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.sampled_from([0, 1, 2, 3, 5]), max_size=4), min_size=1, max_size=4))
def test_broadcast_shapes_follows_numpy(shapes):
    import numpy as np

    from posereg.geometry._checks import broadcast_shapes

    try:
        expected = np.broadcast_shapes(*map(tuple, shapes))
    except ValueError:
        with pytest.raises(ValueError, match="do not broadcast"):
            broadcast_shapes(*shapes)
        return
    assert broadcast_shapes(*shapes) == expected == tuple(torch.broadcast_shapes(*map(tuple, shapes)))
