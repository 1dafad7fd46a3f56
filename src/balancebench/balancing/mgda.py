"""Multiple-gradient descent (Sener & Koltun, NeurIPS 2018) and its min-norm solver."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._params import Param, _choice, _fraction_float, _int_at_least
from .base import _to_numpy_history, register
from .shapes import GradientMethod


def _gram(grads) -> np.ndarray:
    """Gram matrix G G^T (k, k) in float64 numpy."""
    g = grads.double()
    return (g @ g.T).cpu().numpy()


def _min_norm_2(v11: float, v12: float, v22: float) -> float:
    """gamma in [0, 1] minimising |gamma a + (1 - gamma) b|^2 given a.a, a.b, b.b (Sener & Koltun 2018, Alg. 1)."""
    den = v11 + v22 - 2.0 * v12
    if not den > 1e-12 * max(v11 + v22, 1e-300):  # a ~ b: every gamma gives the same vector
        return 0.5
    return float(min(1.0, max(0.0, (v22 - v12) / den)))


def min_norm_weights(gram: np.ndarray, max_iter: int = 250, tol: float = 1e-10) -> np.ndarray:
    """alpha on the simplex minimising alpha^T M alpha (the min-norm element of the convex hull of the rows).

    k = 1: [1]; k = 2: closed form; k > 2: Frank-Wolfe with exact line search, started
    from the best pair (Sener & Koltun 2018, MinNormSolver), stopped when the duality gap
    alpha^T M alpha - min_i (M alpha)_i <= tol * max(alpha^T M alpha, max diag M * 1e-12).
    """
    m = np.asarray(gram, dtype=np.float64)
    k = m.shape[0]
    if k == 1:
        return np.ones(1)
    if k == 2:
        g = _min_norm_2(m[0, 0], m[0, 1], m[1, 1])
        return np.array([g, 1.0 - g])
    best, alpha = math.inf, None
    for i in range(k):  # best pair as the start (as the reference solver)
        for j in range(i + 1, k):
            g = _min_norm_2(m[i, i], m[i, j], m[j, j])
            cost = g * g * m[i, i] + 2 * g * (1 - g) * m[i, j] + (1 - g) ** 2 * m[j, j]
            if cost < best:
                best, alpha = cost, np.zeros(k)
                alpha[i], alpha[j] = g, 1.0 - g
    floor = 1e-12 * float(np.max(np.diag(m)))
    for _ in range(max_iter):
        grad = m @ alpha
        t = int(np.argmin(grad))
        v11 = float(alpha @ grad)
        if v11 - grad[t] <= tol * max(v11, floor):
            break
        gamma = _min_norm_2(v11, float(grad[t]), float(m[t, t]))
        new = gamma * alpha
        new[t] += 1.0 - gamma
        if np.array_equal(new, alpha):
            break
        alpha = new
    return alpha


@register("mgda")
class MGDA(GradientMethod):
    """Multiple-gradient descent (Sener & Koltun, NeurIPS 2018, "Multi-task learning as multi-objective optimization").

    d = sum_i alpha_i g_i with alpha = argmin_{alpha in simplex} |sum_i alpha_i g~_i|^2,
    g~_i = g_i / n_i. Closed form for k = 2, Frank-Wolfe for k > 2 (:func:`min_norm_weights`).
    ``normalize``: n_i = 1 (``"none"``, default: d is exactly the min-norm element, a
    common descent direction or 0 at a Pareto-stationary point), |g_i| (``"l2"``), L_i
    (``"loss"``) or L_i |g_i| (``"loss+"``), as the reference code; as there, alpha is
    applied to the raw gradients. A zero or non-finite normaliser is replaced by 1.
    ``max_iter`` (250) and ``tol`` (1e-10) control Frank-Wolfe. ``last_weights`` = alpha.
    """

    params = {
        **GradientMethod.params,
        "normalize": Param("none", _choice("none", "l2", "loss", "loss+"), "gradient normalisation before the solve"),
        "max_iter": Param(250, _int_at_least(1), "Frank-Wolfe iterations (k > 2)"),
        "tol": Param(1e-10, _fraction_float, "Frank-Wolfe relative duality-gap tolerance"),
    }

    def combine(self, grads: Any, losses: Any = None):
        g = self._check_grads(grads)
        k = g.shape[0]
        gram = _gram(g)
        mode = self.params["normalize"]
        n = np.ones(k)
        if mode in ("l2", "loss+"):
            n *= np.sqrt(np.clip(np.diag(gram), 0.0, None))
        if mode in ("loss", "loss+"):
            if losses is None:
                raise ValueError(f"mgda: normalize={mode!r} needs the losses")
            n *= _to_numpy_history(_as_row(losses))[0]
        n = np.where(np.isfinite(n) & (n > 0), n, 1.0)
        alpha = min_norm_weights(gram / np.outer(n, n), self.params["max_iter"], self.params["tol"])
        self.last_weights = alpha
        return (g.double().T @ _torch_like(alpha, g)).to(g.dtype)


def _as_row(x: Any):
    if hasattr(x, "detach"):
        return x.detach().reshape(1, -1)
    return np.asarray(x, dtype=np.float64).reshape(1, -1)


def _torch_like(a: np.ndarray, ref):
    import torch

    return torch.as_tensor(a, dtype=torch.float64, device=ref.device)

