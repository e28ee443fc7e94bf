"""float16 and bfloat16: every public function returns the input's dtype, with values of the
float64 computation on the same (rounded) inputs to the half dtype's precision."""

from __future__ import annotations

import math

import pytest
import torch

from posereg import geometry as g

HALF = (torch.float16, torch.bfloat16)
F64 = torch.float64


def _inputs(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    R = g.random_rotation(6, generator=gen, dtype=F64)
    return {
        "R": R,
        "R2": g.random_rotation(6, generator=gen, dtype=F64),
        "v": torch.randn(6, 3, generator=gen, dtype=F64),
        "q": torch.randn(6, 4, generator=gen, dtype=F64),
        "t": torch.randn(6, 3, generator=gen, dtype=F64),
        "xi": torch.randn(6, 6, generator=gen, dtype=F64),
        "M": torch.randn(6, 3, 3, generator=gen, dtype=F64),
        "points": torch.randn(6, 5, 3, generator=gen, dtype=F64) + torch.tensor([0.0, 0.0, 4.0], dtype=F64),
        "W": torch.diag(torch.tensor([2.0, 2.0, 2.0, 0.5, 0.5, 0.5], dtype=F64)),
        "K": torch.tensor([[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]], dtype=F64),
    }


# name -> function of the inputs dict; rotation-taking functions get **kw (check_rotation=False
# for the float64 reference: a rotation rounded to bfloat16 is off by up to 7e-3, more than
# float64's tolerance of 1e-3, and is exactly the input the half call saw).
FUNCTIONS = {
    "hat": lambda x, **kw: g.hat(x["v"]),
    "vee": lambda x, **kw: g.vee(g.hat(x["v"])),
    "rotvec_to_matrix": lambda x, **kw: g.rotvec_to_matrix(x["v"]),
    "matrix_to_rotvec": lambda x, **kw: g.matrix_to_rotvec(x["R"], **kw),
    "geodesic_distance": lambda x, **kw: g.geodesic_distance(x["R"], x["R2"], **kw),
    "project_to_so3": lambda x, **kw: g.project_to_so3(x["M"]),
    "chordal_mean": lambda x, **kw: g.chordal_mean(x["R"], **kw),
    "karcher_mean": lambda x, **kw: g.karcher_mean(x["R"][:3] @ g.rotvec_to_matrix(0.1 * x["v"][:3]), **kw),
    "quaternion_to_matrix": lambda x, **kw: g.quaternion_to_matrix(x["q"]),
    "matrix_to_quaternion": lambda x, **kw: g.matrix_to_quaternion(x["R"], **kw),
    "canonicalize_quaternion": lambda x, **kw: g.canonicalize_quaternion(x["q"]),
    "quaternion_conjugate": lambda x, **kw: g.quaternion_conjugate(x["q"]),
    "quaternion_multiply": lambda x, **kw: g.quaternion_multiply(x["q"], x["q"].flip(0)),
    "rotvec_to_quaternion": lambda x, **kw: g.rotvec_to_quaternion(x["v"]),
    "quaternion_to_rotvec": lambda x, **kw: g.quaternion_to_rotvec(x["q"]),
    "quaternion_angle": lambda x, **kw: g.quaternion_angle(x["q"], x["q"].flip(0)),
    "euler_to_quaternion": lambda x, **kw: g.euler_to_quaternion(x["v"], "XYZ"),
    "euler_to_matrix": lambda x, **kw: g.euler_to_matrix(x["v"], "zxz"),
    "matrix_to_euler": lambda x, **kw: g.matrix_to_euler(x["R"], "ZYX", **kw),
    "to_homogeneous": lambda x, **kw: g.to_homogeneous(x["R"], x["t"], **kw),
    "from_homogeneous": lambda x, **kw: g.from_homogeneous(g.to_homogeneous(x["R"], x["t"], check_rotation=False), **kw),
    "compose": lambda x, **kw: g.compose(x["R"], x["t"], x["R2"], x["t"].flip(0), **kw),
    "inverse": lambda x, **kw: g.inverse(x["R"], x["t"], **kw),
    "transform_points": lambda x, **kw: g.transform_points(x["R"], x["t"], x["points"], **kw),
    "so3_right_jacobian": lambda x, **kw: g.so3_right_jacobian(x["v"]),
    "so3_right_jacobian_inverse": lambda x, **kw: g.so3_right_jacobian_inverse(0.5 * x["v"]),
    "se3_exp": lambda x, **kw: g.se3_exp(x["xi"]),
    "se3_log": lambda x, **kw: g.se3_log(x["R"], x["t"], **kw),
    "so3r3_exp": lambda x, **kw: g.so3r3_exp(x["xi"]),
    "so3r3_log": lambda x, **kw: g.so3r3_log(x["R"], x["t"], **kw),
    "metric_inner": lambda x, **kw: g.metric_inner(x["W"], x["xi"], x["xi"].flip(0)),
    "metric_norm": lambda x, **kw: g.metric_norm(x["W"], x["xi"]),
    "riemannian_log": lambda x, **kw: g.riemannian_log(x["R"], x["t"], x["R2"], x["t"].flip(0), **kw),
    "squared_geodesic_distance": lambda x, **kw: g.squared_geodesic_distance(
        x["R"], x["t"], x["R2"], x["t"].flip(0), x["W"], **kw),
    "world_to_camera": lambda x, **kw: g.world_to_camera(x["R"], x["t"], x["points"], **kw),
    "project_points": lambda x, **kw: g.project_points(x["R"], 0.1 * x["t"], x["points"], x["K"], **kw)[0],
    "sixd_to_matrix": lambda x, **kw: g.sixd_to_matrix(x["xi"]),
    "matrix_to_sixd": lambda x, **kw: g.matrix_to_sixd(x["R"], **kw),
    "svd9d_to_matrix": lambda x, **kw: g.svd9d_to_matrix(x["M"].flatten(-2)),
}  # fmt: skip
TAKES_ROTATIONS = {
    "matrix_to_rotvec", "geodesic_distance", "chordal_mean", "karcher_mean", "matrix_to_quaternion",
    "matrix_to_euler", "to_homogeneous", "from_homogeneous", "compose", "inverse", "transform_points",
    "se3_log", "so3r3_log", "riemannian_log", "squared_geodesic_distance", "world_to_camera",
    "project_points", "matrix_to_sixd",
}


def test_every_public_function_is_in_the_table():
    tensor_functions = {
        n for n in g.__all__ if callable(getattr(g, n)) and not n[0].isupper()
    } - {"check_rotation_matrix", "rotation_tolerance", "is_block_isotropic"} - {
        n for n in g.__all__ if n.startswith(("random_", "super_"))
    }
    assert tensor_functions == set(FUNCTIONS)


def _flat(out: object) -> list[torch.Tensor]:
    return list(out) if isinstance(out, tuple) else [out]  # type: ignore[arg-type]


@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_half_in_half_out_with_float64_values(name, dtype):
    x = {k: v.to(dtype) for k, v in _inputs().items()}
    out = _flat(FUNCTIONS[name](x))
    kw = {"check_rotation": False} if name in TAKES_ROTATIONS else {}
    ref = _flat(FUNCTIONS[name]({k: v.double() for k, v in x.items()}, **kw))
    eps = torch.finfo(dtype).eps
    for o, r in zip(out, ref, strict=True):
        assert o.dtype == dtype and o.shape == r.shape
        assert torch.isfinite(o).all()
        # rounding the float64 value to the half dtype: <= eps/2 relative; a little slack
        # for float32's own rounding, amplified a few times in the least conditioned formulas
        torch.testing.assert_close(o.double(), r, atol=2 * eps, rtol=2 * eps)


@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_half_gradients_are_half_and_finite(dtype):
    x = _inputs(1)
    R1 = x["R"].to(dtype).requires_grad_()
    q = x["q"].to(dtype).requires_grad_()
    (g.geodesic_distance(R1, x["R2"].to(dtype)).sum() + g.quaternion_to_matrix(q).sum()).backward()
    for p in (R1, q):
        assert p.grad.dtype == dtype and torch.isfinite(p.grad).all()
    M = x["M"].to(dtype).requires_grad_()
    g.project_to_so3(M).sum().backward()
    assert M.grad.dtype == dtype and torch.isfinite(M.grad).all()


@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_half_metric_checks_and_the_issue_quaternion(dtype):
    assert g.is_block_isotropic(torch.eye(6, dtype=dtype))
    with pytest.raises(ValueError, match="positive definite"):
        g.is_block_isotropic(-torch.eye(6, dtype=dtype))
    # the issue: a float16 quaternion of norm 1e-3 gave an all-NaN matrix
    q = torch.tensor([1e-3, 0.0, 0.0, 0.0], dtype=dtype)
    assert torch.equal(g.quaternion_to_matrix(q), torch.eye(3, dtype=dtype))


SAMPLERS = {
    "random_rotation": lambda dt, gen: g.random_rotation((4, 5), generator=gen, dtype=dt),
    "random_rotation_with_angle": lambda dt, gen: g.random_rotation_with_angle(20, 0.5, 2.0, generator=gen, dtype=dt),
    "random_euler_rotation": lambda dt, gen: g.random_euler_rotation(20, [-1, 0, -1], [1, 1, 1], generator=gen, dtype=dt),
    "super_fibonacci_rotations": lambda dt, gen: g.super_fibonacci_rotations(20, dtype=dt),
}  # fmt: skip


@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_samplers_round_float32_rotations_once(name, dtype):
    R = SAMPLERS[name](dtype, torch.Generator().manual_seed(3))
    ref = SAMPLERS[name](torch.float32, torch.Generator().manual_seed(3))
    assert R.dtype == dtype
    assert torch.equal(R, ref.to(dtype))
    g.check_rotation_matrix(R)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_samplers_refuse_non_floating_dtypes(name):
    with pytest.raises(ValueError, match=r"dtype: expected a floating-point torch.dtype, got torch.int64"):
        SAMPLERS[name](torch.int64, torch.Generator().manual_seed(0))


def test_no_silent_dtype_change_for_float32_and_float64():
    """The helpers that build sign factors from Python floats must not promote float16 to
    float32 (the original bug), nor float64 results to anything else."""
    for dtype in (torch.float32, torch.float64, *HALF):
        R = g.random_rotation(3, dtype=dtype)
        for out in (g.matrix_to_rotvec(R), g.matrix_to_quaternion(R), g.matrix_to_euler(R, "xyz"),
                    g.quaternion_to_rotvec(g.matrix_to_quaternion(R)), g.so3r3_log(R, R[:, 0])):  # fmt: skip
            assert out.dtype == dtype
    assert not math.isnan(float(g.geodesic_distance(torch.eye(3, dtype=torch.bfloat16), torch.eye(3, dtype=torch.bfloat16))))
