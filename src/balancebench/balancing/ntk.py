"""NTK weights (Wang, Yu & Perdikaris, "When and why PINNs fail to train: a neural tangent kernel perspective",
J. Comput. Phys. 449, 110768 (2022); code PredictiveIntelligenceLab/PINNsNTK; REFERENCES.md sec. 6.3):

    lambda_i = Tr(K) / Tr(K_ii),   Tr(K) = sum_j Tr(K_jj),   K_ii = J_i J_i^T,

J_i the Jacobian of term i's per-point errors with respect to all parameters, estimated on the step's batch and
recomputed every ``every`` iterations (the paper: 100), no moving average, lambda = 1 before the first. We use the
mean diagonal Tr(K_ii) / N_i (N_i the term's points), which is the paper's trace when every term has the same
number of points (the paper's 300 per term) and keeps a term from weighing more because it has more points.

Where the per-point errors come from: a task may add, beside each named loss L_i, the tensor
``losses[f"{name}@points"]`` = e with L_i = mean(e^2) (the task pinn does); then Tr(K_ii) = sum_n |grad e_n|^2, one
batched backward pass per term (``torch.autograd.grad(..., is_grads_batched=True)``, a loop if that fails). Without
them each term is one output e_i = sqrt(L_i) (N_i = 1, PhysicsNeMo-Sym's proxy |grad sqrt(L_i)|), which is what a
task gives that exposes only its scalar losses. The weights are computed before the step's update and apply to it.
The counted work (balancebench.timing) includes the kernel passes of the update steps.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ._params import Param, _int_at_least
from .base import BalancingMethod, TrainContext, loss_vector, register

POINTS_SUFFIX = "@points"


def kernel_diagonal_mean(errors, params) -> float:
    """mean_n |d e_n / d theta|^2 (the mean diagonal of J J^T) of a per-point error vector."""
    import torch

    e = errors.reshape(-1)
    n = e.numel()
    try:
        eye = torch.eye(n, dtype=e.dtype, device=e.device)
        rows = torch.autograd.grad(e, params, grad_outputs=eye, retain_graph=True, allow_unused=True,
                                   is_grads_batched=True)
        total = sum(float((r.detach().double() ** 2).sum()) for r in rows if r is not None)
    except RuntimeError:  # an op without a batching rule: one backward pass per point
        total = 0.0
        for i in range(n):
            g = torch.autograd.grad(e[i], params, retain_graph=True, allow_unused=True)
            total += sum(float((x.detach().double() ** 2).sum()) for x in g if x is not None)
    return total / n


def ntk_weights(diagonals: np.ndarray) -> np.ndarray:
    """lambda_i = sum_j d_j / d_i (d: the terms' mean kernel diagonals); a zero d_i gets the largest finite
    weight of the others (1 if none)."""
    d = np.asarray(diagonals, dtype=np.float64)
    total = d.sum()
    lam = np.where(d > 0, total / np.where(d > 0, d, 1.0), np.nan)
    finite = lam[np.isfinite(lam)]
    return np.where(np.isfinite(lam), lam, finite.max() if finite.size else 1.0)


@register("ntk")
class NTK(BalancingMethod):
    """NTK weights lambda_i = Tr(K) / Tr(K_ii) from the per-term neural tangent kernel blocks of the step's batch,
    updated every ``every`` steps (the formula, the estimate and its cost: module docstring)."""

    kind: ClassVar[str] = "gradient"
    params: ClassVar[dict[str, Param]] = {
        "every": Param(100, _int_at_least(1), "recompute the weights every this many iterations (paper: 100)"),
    }

    def _configure(self) -> None:
        super()._configure()
        self.update_unit, self.update_every = "step", self.params["every"]
        if not hasattr(self, "lam"):
            self.lam: np.ndarray | None = None

    def setup(self, context: TrainContext) -> None:
        if self.lam is None:
            self.lam = np.ones(len(context.components))

    def diagonals(self, losses: dict, components, params) -> np.ndarray:
        import torch

        out = []
        for name in components:
            e = losses.get(name + POINTS_SUFFIX)
            if e is None:
                e = torch.sqrt(losses[name].clamp_min(0.0)).reshape(1)
            out.append(kernel_diagonal_mean(e, params))
        return np.asarray(out)

    def backward(self, losses: dict, context: TrainContext) -> None:
        import torch

        vec = loss_vector(losses, context.components)
        if context.step % self.params["every"] == 0:
            self.lam = ntk_weights(self.diagonals(losses, context.components, context.model_params))
        self.record_weights(context, self.lam)
        (torch.as_tensor(self.lam, dtype=vec.dtype, device=vec.device) * vec).sum().backward()

    def _extra_state(self) -> dict[str, Any]:
        return {"lam": None if self.lam is None else [float(x) for x in self.lam]}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        lam = state.get("lam")
        self.lam = None if lam is None else np.asarray(lam, dtype=np.float64)
