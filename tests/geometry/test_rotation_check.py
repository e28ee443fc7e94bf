"""Rotation-matrix inputs are checked (R^T R = I, det +1) at the public boundary; the opt-out works."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from posereg import geometry as g
from posereg.geometry import _rotation_check

F64 = torch.float64
W6 = torch.diag(torch.tensor([1.0, 1, 1, 0.5, 0.5, 0.5], dtype=F64))


def _rotations(n: int, dtype: torch.dtype = F64, seed: int = 0) -> torch.Tensor:
    return g.random_rotation(n, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _t(R: torch.Tensor) -> torch.Tensor:
    return torch.linspace(-1.0, 1.0, 3 * R.shape[0], dtype=R.dtype).view(R.shape[0], 3)


def _homogeneous(R: torch.Tensor) -> torch.Tensor:
    """``[[R, t], [0, 1]]`` built without any check."""
    bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=R.dtype).expand(R.shape[0], 1, 4)
    return torch.cat((torch.cat((R, _t(R)[..., None]), -1), bottom), -2)


# Every public function that takes rotation matrices: name -> (call(R, **kw), argument named in errors).
# R is a (5, 3, 3) batch; the other arguments are built to match it.
CHECKED = {
    "geodesic_distance/R1": (lambda R, **kw: g.geodesic_distance(R, _rotations(5), **kw), "R1"),
    "geodesic_distance/R2": (lambda R, **kw: g.geodesic_distance(_rotations(5), R, **kw), "R2"),
    "matrix_to_rotvec": (lambda R, **kw: g.matrix_to_rotvec(R, **kw), "R"),
    "matrix_to_quaternion": (lambda R, **kw: g.matrix_to_quaternion(R, **kw), "R"),
    "matrix_to_euler": (lambda R, **kw: g.matrix_to_euler(R, "ZYX", **kw), "R"),
    "matrix_to_sixd": (lambda R, **kw: g.matrix_to_sixd(R, **kw), "R"),
    "chordal_mean": (lambda R, **kw: g.chordal_mean(R, **kw), "R"),
    "karcher_mean": (lambda R, **kw: g.karcher_mean(R, max_iterations=3, **kw), "R"),
    "to_homogeneous": (lambda R, **kw: g.to_homogeneous(R, _t(R), **kw), "R"),
    "from_homogeneous": (lambda R, **kw: g.from_homogeneous(_homogeneous(R), **kw), "T[..., :3, :3]"),
    "compose/R1": (lambda R, **kw: g.compose(R, _t(R), _rotations(5), _t(R), **kw), "R1"),
    "compose/R2": (lambda R, **kw: g.compose(_rotations(5), _t(R), R, _t(R), **kw), "R2"),
    "inverse": (lambda R, **kw: g.inverse(R, _t(R), **kw), "R"),
    "transform_points": (lambda R, **kw: g.transform_points(R, _t(R), _t(R)[:, None].expand(5, 4, 3), **kw), "R"),
    "se3_log": (lambda R, **kw: g.se3_log(R, _t(R), **kw), "R"),
    "so3r3_log": (lambda R, **kw: g.so3r3_log(R, _t(R), **kw), "R"),
    "riemannian_log/R1": (lambda R, **kw: g.riemannian_log(R, _t(R), _rotations(5), _t(R), **kw), "R1"),
    "riemannian_log/R2": (lambda R, **kw: g.riemannian_log(_rotations(5), _t(R), R, _t(R), **kw), "R2"),
    "squared_geodesic_distance/R1": (
        lambda R, **kw: g.squared_geodesic_distance(R, _t(R), _rotations(5), _t(R), W6, **kw), "R1"),
    "squared_geodesic_distance/R2": (
        lambda R, **kw: g.squared_geodesic_distance(_rotations(5), _t(R), R, _t(R), W6, **kw), "R2"),
    "world_to_camera": (lambda R, **kw: g.world_to_camera(R, _t(R), _t(R)[:, None] + 5, **kw), "R"),
    "project_points": (lambda R, **kw: g.project_points(R, _t(R), _t(R)[:, None] + 5, **kw), "R"),
}  # fmt: skip

_Q = _rotations(1, seed=9)[0]
# Not rotations: name -> matrix (float64). Each fails R^T R = I or det = +1 by far more than 1e-3.
NOT_ROTATIONS = {
    "reflection": torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=F64)),
    "rotated reflection": _Q @ torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=F64)),
    "minus identity": -torch.eye(3, dtype=F64),
    "odd permutation": torch.eye(3, dtype=F64)[[1, 0, 2]],
    "scaled by 1.01": 1.01 * _Q,
    "scaled by 0.5": 0.5 * _Q,
    "sheared": _Q @ torch.tensor([[1.0, 0.05, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=F64),
    "one entry off by 0.01": _Q + 0.01 * torch.eye(3, dtype=F64)[0].outer(torch.eye(3, dtype=F64)[2]),
    "zero": torch.zeros(3, 3, dtype=F64),
    "singular": torch.diag(torch.tensor([1.0, 1.0, 0.0], dtype=F64)),
}


@pytest.mark.parametrize("kind", sorted(NOT_ROTATIONS))
@pytest.mark.parametrize("function", sorted(CHECKED))
def test_non_rotations_are_refused_and_the_opt_out_works(function, kind):
    call, name = CHECKED[function]
    R = _rotations(5)
    R[3] = NOT_ROTATIONS[kind]
    expected = rf"^{re.escape(name)}: expected rotation matrices of shape \(\.\.\., 3, 3\) .* at index \(3,\) \(1 of 5 matrices\)"
    with pytest.raises(ValueError, match=expected):
        call(R)
    call(R, check_rotation=False)  # the caller vouches for its matrices: no check, no error


@pytest.mark.parametrize("function", sorted(CHECKED))
def test_rotations_pass_and_non_finite_matrices_get_the_finiteness_message(function):
    call, name = CHECKED[function]
    call(_rotations(5))
    R = _rotations(5)
    R[2, 1, 0] = math.nan
    whole = name.split("[")[0]  # from_homogeneous checks all of T for NaN first
    with pytest.raises(ValueError, match=rf"^{re.escape(whole)}: .*finite values, found NaN or inf"):
        call(R)


def test_the_issue_example_and_the_message():
    reflection = torch.diag(torch.tensor([1.0, 1.0, -1.0]))
    with pytest.raises(ValueError) as info:
        g.geodesic_distance(torch.eye(3), reflection)
    assert str(info.value) == (
        "R2: expected rotation matrices of shape (..., 3, 3) (max |R^T R - I| <= 0.001, det +1), got "
        "max |R^T R - I| = 0, det = -1; project_to_so3 gives the nearest rotation, check_rotation=False "
        "skips this check"
    )
    assert float(g.geodesic_distance(torch.eye(3), reflection, check_rotation=False)) == 0.0
    # the projection the message suggests gives an accepted rotation
    g.geodesic_distance(torch.eye(3), g.project_to_so3(1.3 * g.random_rotation(())))


TOLERANCES = {torch.float16: 8 * 2.0**-10, torch.bfloat16: 8 * 2.0**-7, torch.float32: 1e-3, torch.float64: 1e-3}


@pytest.mark.parametrize("dtype", sorted(TOLERANCES, key=str))
def test_tolerance_per_dtype_at_its_boundary(dtype):
    tol = g.rotation_tolerance(dtype)
    assert tol == TOLERANCES[dtype]
    R = _rotations(40, seed=3)
    for factor, accepted in ((0.5, True), (2.0, False)):
        # R diag(s, 1, 1): R^T R = diag(s^2, 1, 1), so max |R^T R - I| = s^2 - 1 = factor * tol
        s = math.sqrt(1 + factor * tol)
        M = (R @ torch.diag(torch.tensor([s, 1.0, 1.0], dtype=F64))).to(dtype)
        if accepted:
            g.check_rotation_matrix(M)
        else:
            with pytest.raises(ValueError, match=r"max \|R\^T R - I\| = "):
                g.check_rotation_matrix(M)


def test_explicit_tolerance_and_its_validation():
    M = _rotations(3) @ torch.diag(torch.tensor([1 + 1e-6, 1.0, 1.0], dtype=F64))
    g.check_rotation_matrix(M)
    with pytest.raises(ValueError, match=r"<= 1e-09"):
        g.check_rotation_matrix(M, tolerance=1e-9)
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="tolerance: expected a positive finite number"):
            g.check_rotation_matrix(M, tolerance=bad)
    with pytest.raises(ValueError, match=r"M: expected a floating-point tensor of shape \(\.\.\., 3, 3\), got shape \(3, 2\)"):
        g.check_rotation_matrix(torch.zeros(3, 2), "M")
    assert g.check_rotation_matrix(torch.zeros(0, 3, 3)).shape == (0, 3, 3)


# Batch sizes on both code paths: one matmul (<= _MATMUL_MAX), and blocks (one, several, partial).
@pytest.mark.parametrize("n", [1, 7, _rotation_check._MATMUL_MAX, _rotation_check._MATMUL_MAX + 1, 5000,
                               2 * _rotation_check._BLOCK + 17])  # fmt: skip
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_both_code_paths_find_every_bad_matrix(n, dtype):
    R = _rotations(n, dtype=dtype, seed=n)
    g.check_rotation_matrix(R)
    for index, bad in ((n - 1, NOT_ROTATIONS["reflection"]), (n // 2, NOT_ROTATIONS["one entry off by 0.01"])):
        M = R.clone()
        M[index] = bad.to(dtype)
        with pytest.raises(ValueError, match=rf"at index \({index},\) \(1 of {n} matrices\)" if n > 1 else "det"):
            g.check_rotation_matrix(M)
    M = R.clone()
    M[n - 1, 2, 2] = math.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        g.check_rotation_matrix(M)


def test_batch_index_and_count_in_several_dimensions():
    R = _rotations(24).view(2, 3, 4, 3, 3).clone()
    R[1, 2, 0] = 2 * R[1, 2, 0]
    R[1, 2, 3] = -R[1, 2, 3]
    with pytest.raises(ValueError, match=r"max \|R\^T R - I\| = 3, det = 8 at index \(1, 2, 0\) \(2 of 24 matrices\)"):
        g.check_rotation_matrix(R)


@settings(max_examples=150, deadline=None)
@given(
    q=st.lists(st.floats(-1, 1), min_size=4, max_size=4).filter(lambda v: sum(x * x for x in v) > 1e-2),
    S=st.lists(st.floats(-1, 1), min_size=9, max_size=9),
    log_eps=st.floats(-7, 0),
    reflect=st.booleans(),
)
def test_check_agrees_with_a_float64_numpy_reference(q, S, log_eps, reflect):
    R = g.quaternion_to_matrix(torch.tensor(q, dtype=F64))
    M = R @ (torch.eye(3, dtype=F64) + 10**log_eps * torch.tensor(S, dtype=F64).view(3, 3))
    if reflect:
        M = -M
    m = M.numpy()
    err = np.abs(m.T @ m - np.eye(3)).max()
    det = np.linalg.det(m)
    assume(abs(err - 1e-3) > 1e-9 and abs(det) > 1e-9)  # away from the boundaries
    expected = err <= 1e-3 and det > 0
    try:
        g.check_rotation_matrix(M)
        accepted = True
    except ValueError:
        accepted = False
    assert accepted == expected
    big = M.expand(_rotation_check._MATMUL_MAX + 3, 3, 3)  # the block code path agrees
    try:
        g.check_rotation_matrix(big)
        assert expected
    except ValueError:
        assert not expected


def test_library_outputs_in_float32_pass_the_default_check():
    gen = torch.Generator().manual_seed(5)
    n = 20_000
    built = {
        "random_rotation": g.random_rotation(n, generator=gen),
        "quaternion_to_matrix": g.quaternion_to_matrix(torch.randn(n, 4, generator=gen)),
        "rotvec_to_matrix": g.rotvec_to_matrix(10 * torch.randn(n, 3, generator=gen)),
        "euler_to_matrix": g.euler_to_matrix(10 * torch.randn(n, 3, generator=gen), "zxz"),
        "sixd_to_matrix": g.sixd_to_matrix(torch.randn(n, 6, generator=gen)),
        "svd9d_to_matrix": g.svd9d_to_matrix(torch.randn(n, 9, generator=gen)),
        "se3_exp": g.se3_exp(torch.randn(n, 6, generator=gen))[0],
    }
    product = built["random_rotation"][:200]
    for k in range(1, 100):  # 100 compositions in float32
        product = product @ built["random_rotation"][200 * k : 200 * (k + 1)]
    built["100 products"] = product
    for name, R in built.items():
        err = float((R.double().mT @ R.double() - torch.eye(3, dtype=F64)).abs().max())
        assert err < 1e-4, name  # far inside the 1e-3 tolerance
        g.check_rotation_matrix(R, name)
        g.check_rotation_matrix(R.double(), name)  # float32 matrices used in float64


def test_skipped_while_compiling(monkeypatch):
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    reflection = NOT_ROTATIONS["reflection"]
    assert torch.equal(g.check_rotation_matrix(reflection), reflection)
    g.matrix_to_rotvec(reflection)


# Gradients in float64 at angles 0 and pi with the check on (the default): gradcheck's 1e-6
# perturbations stay inside the tolerance. Functions of matrices are differentiable at 0 (at pi
# the logarithm's sign flips), maps to matrices and the bilinear pose maps at both.
def _at(angle: float) -> torch.Tensor:
    axis = torch.tensor([1.0, -2.0, 0.5], dtype=F64)
    return g.rotvec_to_matrix(axis / axis.norm() * angle).unsqueeze(0)


GRADCHECKS = {
    "matrix_to_rotvec": (lambda R: g.matrix_to_rotvec(R), (0.0,)),
    "matrix_to_quaternion": (lambda R: g.matrix_to_quaternion(R), (0.0,)),
    "matrix_to_euler": (lambda R: g.matrix_to_euler(R, "xyz"), (0.0,)),
    "squared geodesic_distance": (lambda R: g.geodesic_distance(R, _at(0.0)) ** 2, (0.0,)),
    "se3_log": (lambda R: g.se3_log(R, torch.ones(1, 3, dtype=F64)), (0.0,)),
    "squared_geodesic_distance": (
        lambda R: g.squared_geodesic_distance(R, torch.ones(1, 3, dtype=F64), _at(0.0), torch.zeros(1, 3, dtype=F64), W6),
        (0.0,),
    ),
    "compose": (lambda R: torch.cat([x.flatten() for x in g.compose(R, torch.ones(1, 3, dtype=F64), R, R[:, 0])]),
                (0.0, math.pi)),
    "inverse": (lambda R: g.inverse(R, torch.ones(1, 3, dtype=F64))[1], (0.0, math.pi)),
    "world_to_camera": (lambda R: g.world_to_camera(R, torch.zeros(1, 3, dtype=F64), torch.ones(1, 2, 3, dtype=F64)),
                        (0.0, math.pi)),
    "chordal_mean": (lambda R: g.chordal_mean(R.expand(3, 3, 3)), (0.0, math.pi)),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(GRADCHECKS))
def test_gradcheck_with_the_check_on_at_0_and_pi(name):
    fn, angles = GRADCHECKS[name]
    for angle in angles:
        R = _at(angle).requires_grad_()
        assert torch.autograd.gradcheck(fn, (R,)), (name, angle)


def test_the_check_keeps_its_precision_inside_an_autocast_region():
    """Mixed-precision training calls geometry under autocast, where a float32 ``R^T R`` would be
    computed in bfloat16 and its rounding alone (up to 4e-3) fail the 1e-3 tolerance."""
    R = g.random_rotation((256,), generator=torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert g.check_rotation_matrix(R) is R
        torch.testing.assert_close(g.sixd_to_matrix(g.matrix_to_sixd(R)), R, atol=1e-6, rtol=0)
        with pytest.raises(ValueError, match=r"max \|R\^T R - I\| = 0.0201"):
            g.check_rotation_matrix(R * 1.01)
