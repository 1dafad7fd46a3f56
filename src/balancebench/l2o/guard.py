"""GML2O's guard: the learned step against the DSSMG step, compared by their merit after the step.

The seed (003, "Mechanism 2") says GML2O compares the ML2O update with a convergent baseline,
DSSMG (dynamic-sampling stochastic multi-gradient), and accepts it "only when it does not
degrade performance", else falls back. The merit and the sample-size schedule are not in the
seed; both are OUR choice (docs/ml2o.md), cited and justified there.

**Unit-free objectives.** Everything below works on f_i / ref_i (w_i = 1 / ref_i, the task's loss
references, e.g. the targets' variances): on the CG task one raw loss is ~1e5 times the other,
and a raw merit or a raw min-norm direction would see one objective only.

**DSSMG step.** With per-objective gradient estimates G_i of the unit-free losses on a sample of n_t
training items (the step's mini-batch plus n_t - b more), the min-norm element of their convex hull
(MGDA; Desideri 2012, Sener & Koltun 2018; the stochastic multi-gradient method of Liu &
Vicente, arXiv 1907.04472)::

    d = sum_i alpha_i G_i,   alpha = argmin_{alpha in simplex} |sum_i alpha_i G_i|^2,
    u_D = -eta d,            eta = min(eta_max, tau / |d|) / 2^j                 (at most tau long)

with j the first of 0, 1, .., j_max (``max_backtracks``) for which the merit below shows the sufficient
decrease M(x + u_D) <= -sigma eta |d|^2 (Armijo backtracking, sigma = ARMIJO_SIGMA; the last j is taken
if none does, as a stochastic batch may not show it). L is unknown: backtracking finds the step the
descent lemma needs instead of assuming eta_max <= 1 / L.

The stochastic multi-gradient d is biased even when every G_i is unbiased (alpha depends on
the noise); the bias vanishes as the sample grows, hence a sample that grows geometrically,
as in dynamic sample-size methods (Byrd, Chin, Nocedal & Wu 2012; Friedlander & Schmidt
2012)::

    n_e = min(n_max, ceil(b * growth^(e - 1)))        (epoch e, mini-batch size b)

**Merit and acceptance.** With f_i(x) the objectives on the MERIT ITEMS before the step (b training
items outside the step's batch, drawn with the run's generator: an independent batch, since the
learned step was computed from the step's own items; the step's batch where the split is too
small), the merit of a candidate y is the worst change of a unit-free objective::

    M(y) = max_i w_i [f_i(y) - f_i(x)]

and the learned candidate x + u_L is ACCEPTED iff it is finite and M(x + u_L) <= M(x + u_D);
otherwise x + u_D is taken.

**Convergence (deterministic gradients, full sample, merit on the same objectives).** Let every
f_i be L-smooth and bounded below. The min-norm element satisfies <w_i g_i, d> >= |d|^2 for
every i, so by the descent lemma the Armijo test holds for every eta <= 2 (1 - sigma) / (L max_i w_i):
backtracking stops at an eta >= eta_low = min(eta_0, (1 - sigma) / (L max_i w_i)) with
M(x + u_D) <= -sigma eta |d|^2. An accepted learned step has w_i [f_i(x + u_L) - f_i(x)] <=
M(x + u_L) <= M(x + u_D) for every i: every objective decreases at least as much as the DSSMG step
guarantees. Either way every step lowers every w_i f_i by at least sigma min(eta_low |d|^2, tau |d|) / 2;
summed over steps this is finite, so with a constant tau |d_t| -> 0: the iterates approach
Pareto-critical points (the statement of the seed's Theorem 4.2, proved here for our criterion).
With mini-batch gradients and an independent merit batch the guarantee is the stochastic method's,
which the growing sample approximates, and the logged merits say whether the decrease was seen;
we claim no more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["GuardDecision", "dssmg_sample_size", "dssmg_step", "fallback_step_size", "merit", "merit_guard",
           "min_norm_direction", "projection_weights"]


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


def dssmg_sample_size(epoch: int, batch: int, growth: float, max_sample: int | None, n_train: int) -> int:
    """n_e = min(n_max, n_train, ceil(b growth^(e - 1))), at least b (module docstring); ``max_sample`` None:
    n_train."""
    if batch < 1 or not growth >= 1.0 or n_train < 1:
        raise ValueError(f"DSSMG needs batch >= 1, growth >= 1, n_train >= 1; got {batch}, {growth}, {n_train}")
    cap = n_train if max_sample is None else min(int(max_sample), n_train)
    want = math.ceil(batch * growth ** max(int(epoch) - 1, 0) - 1e-9)
    return int(max(min(batch, n_train), min(cap, want)))


def dssmg_step(grads: torch.Tensor, eta_max: float = math.inf, tau: float = math.inf):
    """(u_D (P,), alpha (k,), |d|, eta): the DSSMG step from the sample gradients ``grads`` (k, P).

    At least one of ``eta_max`` and ``tau`` must be finite; d = 0 gives the zero step.
    """
    if not (math.isfinite(eta_max) or math.isfinite(tau)):
        raise ValueError("the DSSMG step needs a finite eta_max or tau")
    d, alpha = min_norm_direction(grads)
    dn = float(d.double().norm())
    eta = fallback_step_size(dn, eta_max, tau)
    if not math.isfinite(eta):
        eta = 0.0
    return -eta * d, alpha, dn, eta


#: the sufficient-decrease constant of DSSMG's backtracking: M(x + u_D) <= -ARMIJO_SIGMA eta |d|^2
ARMIJO_SIGMA = 1e-4


def merit(f_after, f_before, weights=None) -> float:
    """M(y) = max_i w_i [f_i(y) - f_i(x)] (module docstring; w_i = 1 by default); inf when a value after the step
    is not finite."""
    after, before = np.asarray(f_after, dtype=np.float64), np.asarray(f_before, dtype=np.float64)
    if after.shape != before.shape:
        raise ValueError(f"merit: {after.shape} objectives after the step, {before.shape} before")
    if not np.isfinite(after).all():
        return math.inf
    w = np.ones(len(after)) if weights is None else np.asarray(weights, dtype=np.float64)
    return float(np.max(w * (after - before)))


@dataclass
class GuardDecision:
    accepted: bool  # whether the learned candidate was taken
    merit_learned: float  # M(x + u_L)
    merit_dssmg: float  # M(x + u_D)


def merit_guard(f_before, f_learned, f_dssmg, weights=None, merit_dssmg: float | None = None) -> GuardDecision:
    """Accept the learned candidate iff it is finite and M(x + u_L) <= M(x + u_D) (``merit_dssmg``: M(x + u_D)
    already computed, ``f_dssmg`` then unused)."""
    m_l = merit(f_learned, f_before, weights)
    m_d = merit_dssmg if merit_dssmg is not None else merit(f_dssmg, f_before, weights)
    return GuardDecision(bool(math.isfinite(m_l) and m_l <= m_d), m_l, m_d)
