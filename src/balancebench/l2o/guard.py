"""The GML2O guard and its fallback: a sufficient-descent test against the min-norm multi-gradient step.

Our choice (docs/ml2o.md; the seed only says "a guarding criterion" and a convergent
stochastic multi-gradient fallback). With the objectives' gradients g_1..g_k, the
min-norm element of their convex hull (MGDA; Desideri 2012, Sener & Koltun 2018; the
stochastic multi-gradient method of Liu & Vicente, arXiv 1907.04472, uses it with
stochastic gradients)::

    d = sum_i alpha_i g_i,   alpha = argmin_{alpha in simplex} |sum_i alpha_i g_i|^2,

the fallback step is u_fb = -eta d with the step size

    eta = min(eta_max, tau / |d|)                   (a min-norm step, at most tau long)

(eta_max: the largest step size, units weight/gradient, inf allowed; tau: the trust
length, units of the weights). A learned update u is ACCEPTED iff u is finite and

    (a) max_i <g_i, u> <= -sigma * eta * |d|^2      (every objective's linearisation falls at
                                                      least sigma times what the fallback guarantees:
                                                      <g_i, -eta d> <= -eta |d|^2 for every i)
    (b) |u| <= C * eta * |d|                          (at most C times the fallback's length)

otherwise u_fb is applied. At a Pareto-critical point (d = 0) only u = 0 passes.

Convergence (deterministic gradients): let every f_i be L-smooth and bounded below and
eta_max <= min(1, sigma / C^2) / L. By the descent lemma, with (a), (b) for an accepted
step or <g_i, d> >= |d|^2 for the fallback, every step gives, for all i,

    f_i(x + u) <= f_i(x) - (min(1, sigma) / 2) * min(eta_max |d|^2, tau |d|),

so the sum over steps of min(eta_max |d_t|^2, tau_t |d_t|) is finite. With a constant tau
(or any tau_t with sum_t tau_t = inf) this implies liminf |d_t| = 0 (|d_t| -> 0 for
constant tau): the iterates approach Pareto-critical points. With eta_max = inf (L
unknown, the default in training) the same bound holds while |d| >= tau L C^2 / sigma,
i.e. the iterates reach |d| = O(tau): the guarantee tightens as the learning rate
decays. With stochastic gradients the guarantee is the stochastic multi-gradient
method's (diminishing steps), which the training schedule only approximates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["GuardDecision", "fallback_step_size", "guard", "min_norm_direction", "projection_weights"]


def min_norm_direction(grads: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
    """(d (P,), alpha (k,)): the min-norm element of conv{g_i} of the rows of ``grads`` (k, P), float64 Gram."""
    from balancebench.balancing.mgda import (
        min_norm_weights,  # here: balancing imports this package
    )

    g = grads.detach()
    gram = (g.double() @ g.double().T).cpu().numpy()
    alpha = min_norm_weights(gram)
    d = (torch.as_tensor(alpha, dtype=torch.float64, device=g.device) @ g.double()).to(g.dtype)
    return d, alpha


@dataclass
class GuardDecision:
    update: torch.Tensor  # the applied update (P,)
    eta: float  # the fallback step size at this point
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


def fallback_step_size(d_norm: float, eta_max: float, tau: float) -> float:
    """eta = min(eta_max, tau / |d|) (inf-safe; eta_max if d = 0)."""
    if not eta_max > 0 or not tau > 0:
        raise ValueError(f"the fallback needs eta_max > 0 and tau > 0, got {eta_max!r}, {tau!r}")
    return float(eta_max) if d_norm <= 0 else float(min(eta_max, tau / d_norm))


def guard(learned: torch.Tensor | None, grads: torch.Tensor, eta_max: float = math.inf, tau: float = math.inf,
          sigma: float = 0.5, max_step_ratio: float = 2.0) -> GuardDecision:
    """Accept ``learned`` (P,) or fall back to -eta d (module docstring). ``learned=None`` always falls back.

    At least one of ``eta_max`` and ``tau`` must be finite.
    """
    if not (math.isfinite(eta_max) or math.isfinite(tau)):
        raise ValueError("the fallback needs a finite eta_max or tau")
    d, alpha = min_norm_direction(grads)
    dn2 = float(d.double() @ d.double())
    eta = fallback_step_size(dn2 ** 0.5, eta_max, tau)
    if not math.isfinite(eta):  # d = 0 and eta_max = inf: the fallback is the zero step
        eta = 0.0
    if learned is not None and bool(torch.isfinite(learned).all()):
        u = learned.detach().to(grads.dtype)
        descent = float((grads.detach().double() @ u.double()).max())
        length = float(u.double().norm())
        if descent <= -sigma * eta * dn2 and length <= max_step_ratio * eta * dn2 ** 0.5:
            return GuardDecision(u, eta, True, projection_weights(u, grads), dn2 ** 0.5)
    return GuardDecision(-eta * d, eta, False, alpha, dn2 ** 0.5)
