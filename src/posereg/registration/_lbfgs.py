"""L-BFGS with a strong-Wolfe line search, as a function of one flat parameter vector.

The algorithm and its arithmetic are ``torch.optim.LBFGS``'s (``line_search_fn='strong_wolfe'``,
one ``step``; itself after minFunc and torch7's ``lswolfe.lua``), step for step, so the iterates
are the same (tested). Written out because ``torch.optim.Optimizer.__init__`` imports
``torch._dynamo`` the first time an optimiser is built in a process: 1.4 s of every
``posereg register`` call, whose refinement has six parameters and needs none of it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["minimize_lbfgs"]

Objective = Callable[[Tensor], tuple[float, Tensor]]


def minimize_lbfgs(
    objective: Objective,
    x: Tensor,
    *,
    max_iter: int = 20,
    max_eval: int | None = None,
    tolerance_grad: float = 1e-7,
    tolerance_change: float = 1e-9,
    history_size: int = 100,
    lr: float = 1.0,
) -> tuple[Tensor, int]:
    """Minimise ``objective`` from ``x``: what one ``torch.optim.LBFGS(...).step(closure)`` does.

    Args:
        objective: ``x (n,) -> (value, gradient (n,))``, the gradient detached.
        x: ``(n,)`` start (not modified).
        max_iter, max_eval, tolerance_grad, tolerance_change, history_size, lr: as
            ``torch.optim.LBFGS`` (``max_eval`` defaults to ``max_iter * 5 // 4``).

    Returns:
        The last point and the number of objective evaluations.
    """
    max_eval = max_iter * 5 // 4 if max_eval is None else max_eval
    x = x.detach().clone()
    loss, flat_grad = objective(x)
    evaluations = 1
    if flat_grad.abs().max() <= tolerance_grad:
        return x, evaluations
    old_dirs: list[Tensor] = []
    old_stps: list[Tensor] = []
    ro: list[Tensor] = []
    al: list[Tensor | None] = [None] * history_size
    H_diag: Tensor | float = 1
    d = t = prev_flat_grad = None
    n_iter = 0
    while n_iter < max_iter:
        n_iter += 1
        if n_iter == 1:
            d = flat_grad.neg()
        else:
            y = flat_grad.sub(prev_flat_grad)
            s = d.mul(t)
            ys = y.dot(s)
            if ys > 1e-10:  # update the memory
                if len(old_dirs) == history_size:  # forget the oldest pair
                    del old_dirs[0], old_stps[0], ro[0]
                old_dirs.append(y)
                old_stps.append(s)
                ro.append(1.0 / ys)
                H_diag = ys / y.dot(y)
            # The two-loop recursion: the inverse-Hessian estimate times the gradient.
            q = flat_grad.neg()
            for i in range(len(old_dirs) - 1, -1, -1):
                al[i] = old_stps[i].dot(q) * ro[i]
                q.add_(old_dirs[i], alpha=-al[i])
            d = r = torch.mul(q, H_diag)
            for i in range(len(old_dirs)):
                be_i = old_dirs[i].dot(r) * ro[i]
                r.add_(old_stps[i], alpha=al[i] - be_i)  # type: ignore[operator]
        prev_flat_grad = flat_grad.clone()
        prev_loss = loss
        t = min(1.0, 1.0 / flat_grad.abs().sum()) * lr if n_iter == 1 else lr
        gtd = flat_grad.dot(d)
        if gtd > -tolerance_change:
            break
        loss, flat_grad, t, ls_evaluations = _strong_wolfe(objective, x, t, d, loss, flat_grad, gtd,
                                                          max_ls=max_eval - evaluations)  # fmt: skip
        x = x.add(d, alpha=t)
        evaluations += ls_evaluations
        if n_iter == max_iter or evaluations >= max_eval or flat_grad.abs().max() <= tolerance_grad:
            break
        if d.mul(t).abs().max() <= tolerance_change or abs(loss - prev_loss) < tolerance_change:
            break
    return x, evaluations


def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):  # type: ignore[no-untyped-def]
    """The minimiser of the cubic through two points with values and slopes, within ``bounds``."""
    xmin_bound, xmax_bound = bounds if bounds is not None else ((x1, x2) if x1 <= x2 else (x2, x1))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1**2 - g1 * g2
    if d2_square >= 0:
        d2 = d2_square.sqrt()
        if x1 <= x2:
            min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(min_pos, xmin_bound), xmax_bound)
    return (xmin_bound + xmax_bound) / 2.0


def _strong_wolfe(objective: Objective, x: Tensor, t, d: Tensor, f, g: Tensor, gtd, c1: float = 1e-4,  # type: ignore[no-untyped-def]
                  c2: float = 0.9, tolerance_change: float = 1e-9, max_ls: int = 25):  # fmt: skip
    """A step ``t`` along ``d`` from ``x`` meeting the strong Wolfe conditions (bracket, then zoom):
    ``(value, gradient, t, evaluations)`` there."""
    d_norm = d.abs().max()
    g = g.clone()
    f_new, g_new = objective(x.add(d, alpha=t))
    evaluations = 1
    gtd_new = g_new.dot(d)
    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    ls_iter = 0
    while ls_iter < max_ls:  # bracket an interval containing a point satisfying the conditions
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f, bracket_g, bracket_gtd = [t_prev, t], [f_prev, f_new], [g_prev, g_new.clone()], [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bracket_f, bracket_g, bracket_gtd = [t_prev, t], [f_prev, f_new], [g_prev, g_new.clone()], [gtd_prev, gtd_new]
            break
        min_step, max_step = t + 0.01 * (t - t_prev), t * 10
        tmp = t
        t = _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds=(min_step, max_step))
        t_prev, f_prev, g_prev, gtd_prev = tmp, f_new, g_new.clone(), gtd_new
        f_new, g_new = objective(x.add(d, alpha=t))
        evaluations += 1
        gtd_new = g_new.dot(d)
        ls_iter += 1
    if ls_iter == max_ls:
        bracket, bracket_f, bracket_g = [0, t], [f, f_new], [g, g_new]
    # Zoom: shrink the bracket until a point satisfies the conditions.
    insufficient_progress = False
    low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0], bracket[1], bracket_f[1], bracket_gtd[1])
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:  # close to a boundary
            if insufficient_progress or t >= max(bracket) or t <= min(bracket):
                t = max(bracket) - eps if abs(t - max(bracket)) < abs(t - min(bracket)) else min(bracket) + eps
                insufficient_progress = False
            else:
                insufficient_progress = True
        else:
            insufficient_progress = False
        f_new, g_new = objective(x.add(d, alpha=t))
        evaluations += 1
        gtd_new = g_new.dot(d)
        ls_iter += 1
        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low_pos]:
            bracket[high_pos], bracket_f[high_pos], bracket_g[high_pos], bracket_gtd[high_pos] = t, f_new, g_new.clone(), gtd_new
            low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high_pos] - bracket[low_pos]) >= 0:
                bracket[high_pos], bracket_f[high_pos] = bracket[low_pos], bracket_f[low_pos]
                bracket_g[high_pos], bracket_gtd[high_pos] = bracket_g[low_pos], bracket_gtd[low_pos]
            bracket[low_pos], bracket_f[low_pos], bracket_g[low_pos], bracket_gtd[low_pos] = t, f_new, g_new.clone(), gtd_new
    return bracket_f[low_pos], bracket_g[low_pos], bracket[low_pos], evaluations
