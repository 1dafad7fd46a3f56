"""The GML2O guard and its fallback: a sufficient-descent test against the min-norm multi-gradient step.

Our choice (docs/ml2o.md; the seed only says "a guarding criterion" and a convergent
stochastic multi-gradient fallback). With the objectives' gradients g_1..g_k, the
min-norm element of their convex hull (MGDA; Desideri 2012, Sener & Koltun 2018; the
stochastic multi-gradient method of Liu & Vicente, arXiv 1907.04472, uses it with
stochastic gradients)::

    d = sum_i alpha_i g_i,   alpha = argmin_{alpha in simplex} |sum_i alpha_i g_i|^2,

the fallback step is u_fb = -eta d (eta: the fallback step size). A learned update u is
ACCEPTED iff

    (a) max_i <g_i, u> <= -sigma * eta * |d|^2      (every objective's linearisation falls at
                                                      least sigma times what the fallback guarantees:
                                                      <g_i, -eta d> <= -eta |d|^2 for every i)
    (b) |u| <= C * eta * |d|                          (no longer than C fallback steps)

and u is finite; otherwise u_fb is applied. At a Pareto-critical point (d = 0) only u = 0
passes, so the method stays there.

Convergence (deterministic gradients): if every f_i is L-smooth and bounded below and
eta <= min(1, sigma / C^2) / L, then every step, accepted or not, satisfies
f_i(x + u) <= f_i(x) - (min(1, sigma) / 2) eta |d|^2 for all i (descent lemma with (a), (b)
or with <g_i, d> >= |d|^2), so sum_t |d_t|^2 is finite and |d_t| -> 0: the iterates reach
Pareto-critical points. With stochastic gradients the guarantee is that of the stochastic
multi-gradient method (diminishing eta), which the training schedule only approximates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from balancebench.balancing import min_norm_weights

__all__ = ["min_norm_direction", "GuardDecision", "guard", "projection_weights"]


def min_norm_direction(grads: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
    """(d (P,), alpha (k,)): the min-norm element of conv{g_i} of the rows of ``grads`` (k, P), float64 Gram."""
    g = grads.detach()
    gram = (g.double() @ g.double().T).cpu().numpy()
    alpha = min_norm_weights(gram)
    d = (torch.as_tensor(alpha, dtype=torch.float64, device=g.device) @ g.double()).to(g.dtype)
    return d, alpha


@dataclass
class GuardDecision:
    update: torch.Tensor  # the applied update (P,)
    accepted: bool  # whether the learned update passed
    weights: np.ndarray  # effective weights of the applied update (docs: projection or MGDA alpha)
    min_norm: float  # |d|, the Pareto-criticality measure at x


def projection_weights(update: torch.Tensor, grads: torch.Tensor) -> np.ndarray:
    """Weights w with update ~ -sum_i w_i g_i (least squares), L1-normalised: w / sum_i |w_i|.

    For a positive combination of the gradients they are that combination's simplex
    weights; a component opposite to a gradient shows as a negative weight. All zeros if
    the update is zero or the gradients vanish.
    """
    g = grads.detach().double()
    gram = (g @ g.T).cpu().numpy()
    rhs = -(g @ update.detach().double()).cpu().numpy()
    w = np.linalg.lstsq(gram, rhs, rcond=None)[0]
    s = float(np.abs(w).sum())
    return w / s if s > 0 and np.isfinite(s) else np.zeros(len(w))


def guard(learned: torch.Tensor | None, grads: torch.Tensor, eta: float, sigma: float = 0.5,
          max_step_ratio: float = 2.0) -> GuardDecision:
    """Accept ``learned`` (P,) or fall back to -eta d (module docstring). ``learned=None`` always falls back."""
    if not eta > 0:
        raise ValueError(f"the fallback step size must be > 0, got {eta!r}")
    d, alpha = min_norm_direction(grads)
    dn2 = float(d.double() @ d.double())
    if learned is not None and bool(torch.isfinite(learned).all()):
        u = learned.detach().to(grads.dtype)
        descent = float((grads.detach().double() @ u.double()).max())
        length = float(u.double().norm())
        if descent <= -sigma * eta * dn2 and length <= max_step_ratio * eta * dn2 ** 0.5:
            return GuardDecision(u, True, projection_weights(u, grads), dn2 ** 0.5)
    return GuardDecision(-eta * d, False, alpha, dn2 ** 0.5)
