"""L-BFGS, the one optimizer driven from the host: within one step it re-evaluates the loss and
gradient (its closure) a data-dependent number of times, with a line search deciding each next
point, so it cannot be one fixed graph. Each evaluation is a run of the gradient graph; the
two-loop recursion and the line search below are torch.optim.LBFGS's, step for step, on flat
float32 vectors."""

from __future__ import annotations

from typing import Callable, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

Closure = Callable[[np.ndarray], tuple[float, np.ndarray]]   # flat params -> (loss, flat gradient)


class LBFGS(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: ClassVar[str] = "lbfgs"
    lr: float = Field(1.0, ge=0.0)
    max_iter: int = Field(20, ge=1)
    max_eval: int | None = Field(None, ge=1)
    tolerance_grad: float = Field(1e-7, ge=0.0)
    tolerance_change: float = Field(1e-9, ge=0.0)
    history_size: int = Field(100, ge=1)
    line_search_fn: Literal["strong_wolfe"] | None = None
    maximize: bool = False

    def evals(self) -> int:
        return self.max_eval if self.max_eval is not None else self.max_iter * 5 // 4


def _dot(a: np.ndarray, b: np.ndarray) -> np.floating:
    return np.dot(a, b)


def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    xmin, xmax = bounds if bounds is not None else ((x1, x2) if x1 <= x2 else (x2, x1))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1 ** 2 - g1 * g2
    if d2_square >= 0:
        d2 = np.sqrt(d2_square)
        if x1 <= x2:
            min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(min_pos, xmin), xmax)
    return (xmin + xmax) / 2.0


def _strong_wolfe(obj, x, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9, max_ls=25):
    d_norm = np.abs(d).max()
    f_new, g_new = obj(x, t, d)
    evals = 1
    gtd_new = _dot(g_new, d)
    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    ls_iter = 0
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f, bracket_g, bracket_gtd = [t_prev, t], [f_prev, f_new], [g_prev, g_new], [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bracket_f, bracket_g, bracket_gtd = [t_prev, t], [f_prev, f_new], [g_prev, g_new], [gtd_prev, gtd_new]
            break
        min_step, max_step = t + 0.01 * (t - t_prev), t * 10
        tmp = t
        t = _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds=(min_step, max_step))
        t_prev, f_prev, g_prev, gtd_prev = tmp, f_new, g_new, gtd_new
        f_new, g_new = obj(x, t, d)
        evals += 1
        gtd_new = _dot(g_new, d)
        ls_iter += 1
    if ls_iter == max_ls:
        bracket, bracket_f, bracket_g = [0, t], [f, f_new], [g, g_new]
    insuf_progress = False
    low, high = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0], bracket[1], bracket_f[1], bracket_gtd[1])
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:
            if insuf_progress or t >= max(bracket) or t <= min(bracket):
                t = max(bracket) - eps if abs(t - max(bracket)) < abs(t - min(bracket)) else min(bracket) + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False
        f_new, g_new = obj(x, t, d)
        evals += 1
        gtd_new = _dot(g_new, d)
        ls_iter += 1
        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low]:
            bracket[high], bracket_f[high], bracket_g[high], bracket_gtd[high] = t, f_new, g_new, gtd_new
            low, high = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high] - bracket[low]) >= 0:
                bracket[high], bracket_f[high] = bracket[low], bracket_f[low]
                bracket_g[high], bracket_gtd[high] = bracket_g[low], bracket_gtd[low]
            bracket[low], bracket_f[low], bracket_g[low], bracket_gtd[low] = t, f_new, g_new, gtd_new
    return bracket_f[low], bracket_g[low], bracket[low], evals


class LBFGSState:
    """What torch keeps between steps: the search direction, the step length, the curvature pairs."""

    def __init__(self):
        self.n_iter = 0
        self.func_evals = 0
        self.d = self.t = self.prev_flat_grad = self.prev_loss = None
        self.old_dirs: list[np.ndarray] = []
        self.old_stps: list[np.ndarray] = []
        self.ro: list = []
        self.H_diag = 1

    def arrays(self) -> dict[str, np.ndarray]:
        """The state as named arrays, for a checkpoint."""
        out = {"n_iter": np.asarray(self.n_iter), "func_evals": np.asarray(self.func_evals),
               "H_diag": np.asarray(self.H_diag, np.float32), "history": np.asarray(len(self.old_dirs))}
        for key in ("d", "t", "prev_flat_grad", "prev_loss"):
            if getattr(self, key) is not None:
                out[key] = np.asarray(getattr(self, key))
        if self.old_dirs:
            out["old_dirs"], out["old_stps"] = np.stack(self.old_dirs), np.stack(self.old_stps)
            out["ro"] = np.asarray(self.ro, np.float32)
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], size: int, history_size: int, refuse) -> "LBFGSState":
        """The state a checkpoint holds, for `size` flat params and at most `history_size` pairs;
        anything else is `refuse(message)`d (a located error at the checkpoint)."""
        def get(key: str, shape: tuple, kind: str, optional: bool = False) -> np.ndarray | None:
            if key not in arrays:
                if optional:
                    return None
                raise refuse(f"the checkpoint has no L-BFGS state '{key}'")
            a = arrays[key]
            if a.shape != shape or a.dtype.kind != kind or (kind == "f" and not np.isfinite(a).all()):
                raise refuse(f"the checkpoint's L-BFGS state '{key}' is {a.dtype}{list(a.shape)}, where this run "
                             f"needs {'finite floats' if kind == 'f' else 'integers'} of shape {list(shape)}")
            return np.array(a)

        s = cls()
        counts = [int(get(key, (), "i")) for key in ("n_iter", "func_evals", "history")]
        if not all(0 <= n < 2**62 for n in counts) or counts[2] > history_size:
            raise refuse(f"the checkpoint's L-BFGS counts {counts} (iterations, evaluations, pairs) are not of "
                         f"this run, which keeps at most {history_size} pairs")
        (s.n_iter, s.func_evals, pairs) = counts
        s.H_diag = np.float32(get("H_diag", (), "f"))
        s.d, s.prev_flat_grad = (get(key, (size,), "f", optional=True) for key in ("d", "prev_flat_grad"))
        for key in ("t", "prev_loss"):
            value = get(key, (), "f", optional=True)
            if value is not None:
                setattr(s, key, float(value))     # Python numbers, which keep float32 float32
        if pairs:
            s.old_dirs, s.old_stps = (list(get(key, (pairs, size), "f")) for key in ("old_dirs", "old_stps"))
            s.ro = [np.float32(r) for r in get("ro", (pairs,), "f")]
        return s


def lbfgs_step(opt: LBFGS, state: LBFGSState, x: np.ndarray, closure: Closure) -> tuple[np.ndarray, float]:
    """One torch.optim.LBFGS step from flat params `x`: the new params and the loss at `x`."""
    x = np.array(x)
    sign = -1.0 if opt.maximize else 1.0

    def evaluate(at):
        loss, grad = closure(at)
        return sign * float(loss), sign * np.asarray(grad)

    orig_loss, flat_grad = evaluate(x)
    loss = orig_loss
    current_evals = 1
    state.func_evals += 1
    if np.abs(flat_grad).max() <= opt.tolerance_grad:
        return x, sign * orig_loss
    max_eval = opt.evals()
    n_iter = 0
    while n_iter < opt.max_iter:
        n_iter += 1
        state.n_iter += 1
        if state.n_iter == 1:
            d = -flat_grad
            state.old_dirs, state.old_stps, state.ro, state.H_diag = [], [], [], 1
        else:
            y = flat_grad - state.prev_flat_grad
            s = state.d * state.t
            ys = _dot(y, s)
            if ys > 1e-10:
                if len(state.old_dirs) == opt.history_size:
                    state.old_dirs.pop(0)
                    state.old_stps.pop(0)
                    state.ro.pop(0)
                state.old_dirs.append(y)
                state.old_stps.append(s)
                state.ro.append(1.0 / ys)
                state.H_diag = ys / _dot(y, y)
            al = [None] * len(state.old_dirs)
            q = -flat_grad
            for i in range(len(state.old_dirs) - 1, -1, -1):
                al[i] = _dot(state.old_stps[i], q) * state.ro[i]
                q = q - state.old_dirs[i] * al[i]
            r = q * state.H_diag
            for i in range(len(state.old_dirs)):
                be_i = _dot(state.old_dirs[i], r) * state.ro[i]
                r = r + state.old_stps[i] * (al[i] - be_i)
            d = r
        state.d = d
        state.prev_flat_grad = np.array(flat_grad)
        state.prev_loss = prev_loss = loss
        t = min(1.0, 1.0 / np.abs(flat_grad).sum()) * opt.lr if state.n_iter == 1 else opt.lr
        gtd = _dot(flat_grad, d)
        if gtd > -opt.tolerance_change:
            state.t = t
            break
        evals = 0
        if opt.line_search_fn is not None:
            loss, flat_grad, t, evals = _strong_wolfe(
                lambda at, step, direction: evaluate(at + step * direction), x, t, d, loss, flat_grad, gtd,
                max_ls=max_eval - current_evals)
            x = x + t * d
            converged = np.abs(flat_grad).max() <= opt.tolerance_grad
        else:
            x = x + t * d
            converged = False
            if n_iter != opt.max_iter:
                loss, flat_grad = evaluate(x)
                converged = np.abs(flat_grad).max() <= opt.tolerance_grad
                evals = 1
        state.t = t
        current_evals += evals
        state.func_evals += evals
        if (n_iter == opt.max_iter or current_evals >= max_eval or converged
                or np.abs(d * t).max() <= opt.tolerance_change or abs(loss - prev_loss) < opt.tolerance_change):
            break
    return x, sign * orig_loss
