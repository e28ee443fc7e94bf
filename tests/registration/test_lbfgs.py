"""posereg's L-BFGS is torch.optim.LBFGS (strong Wolfe, one step) iterate for iterate."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from posereg.registration._lbfgs import minimize_lbfgs

F64 = torch.float64


def _rosenbrock(x: torch.Tensor) -> torch.Tensor:
    return (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()


def _quadratic(seed: int):  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(6, 6, generator=g, dtype=F64)
    H, b = A @ A.T + 0.1 * torch.eye(6, dtype=F64), torch.randn(6, generator=g, dtype=F64)
    return lambda x: 0.5 * x @ H @ x - b @ x


def _with_gradient(f):  # type: ignore[no-untyped-def]
    calls = []

    def objective(x: torch.Tensor) -> tuple[float, torch.Tensor]:
        calls.append(1)
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            value = f(x)
            (gradient,) = torch.autograd.grad(value, x)
        return float(value.detach()), gradient

    return objective, calls


def _torch_lbfgs(f, x0: torch.Tensor, **options) -> tuple[torch.Tensor, int]:  # type: ignore[no-untyped-def]
    x = x0.clone().requires_grad_(True)
    optimiser = torch.optim.LBFGS([x], line_search_fn="strong_wolfe", **options)
    calls = []

    def closure() -> torch.Tensor:
        calls.append(1)
        optimiser.zero_grad()
        value = f(x)
        value.backward()
        return value

    optimiser.step(closure)
    return x.detach(), len(calls)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), problem=st.sampled_from(["rosenbrock", "quadratic"]),
       max_iter=st.integers(1, 40), tolerance_change=st.sampled_from([1e-9, 1e-6, 1e-3]), history_size=st.sampled_from([3, 100]))  # fmt: skip
def test_the_iterates_are_torch_lbfgs_iterates(seed, problem, max_iter, tolerance_change, history_size):
    f = _rosenbrock if problem == "rosenbrock" else _quadratic(seed)
    x0 = torch.randn(6, generator=torch.Generator().manual_seed(seed + 1), dtype=F64)
    options = dict(max_iter=max_iter, max_eval=max_iter, tolerance_grad=1e-9, tolerance_change=tolerance_change,
                   history_size=history_size)  # fmt: skip
    expected, expected_calls = _torch_lbfgs(f, x0, **options)
    objective, calls = _with_gradient(f)
    x, evaluations = minimize_lbfgs(objective, x0, **options)
    assert torch.equal(x, expected)  # the same arithmetic, bit for bit
    assert evaluations == len(calls) == expected_calls
    assert torch.equal(x0, torch.randn(6, generator=torch.Generator().manual_seed(seed + 1), dtype=F64))  # x0 kept


def test_it_minimises_and_stops_at_a_stationary_start():
    objective, _ = _with_gradient(_rosenbrock)
    x, _ = minimize_lbfgs(objective, torch.zeros(6, dtype=F64), max_iter=200, max_eval=400)
    torch.testing.assert_close(x, torch.ones(6, dtype=F64), atol=1e-5, rtol=0)
    at_minimum, calls = _with_gradient(_rosenbrock)
    x, evaluations = minimize_lbfgs(at_minimum, torch.ones(6, dtype=F64))
    assert evaluations == len(calls) == 1 and torch.equal(x, torch.ones(6, dtype=F64))


@pytest.mark.parametrize("max_eval", [1, 2, 5])
def test_the_evaluation_budget_is_kept(max_eval):
    objective, calls = _with_gradient(_rosenbrock)
    _, evaluations = minimize_lbfgs(objective, torch.full((6,), -1.5, dtype=F64), max_iter=50, max_eval=max_eval)
    expected = _torch_lbfgs(_rosenbrock, torch.full((6,), -1.5, dtype=F64), max_iter=50, max_eval=max_eval)[1]
    assert evaluations == len(calls) == expected
