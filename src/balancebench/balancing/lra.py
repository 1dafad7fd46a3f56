"""Learning-rate annealing (LRA; Wang, Teng & Perdikaris, "Understanding and mitigating gradient flow pathologies
in physics-informed neural networks", SIAM J. Sci. Comput. 43(5) A3055 (2021), Alg. 1) and its mean/mean form.

``lra`` follows the paper's code (REFERENCES.md sec. 6.1, ``Helmholtz2D_model_tf.py``, modes M2/M4): the first
loss (``reference``, the PDE residual on the task pinn) keeps weight 1; every ``every`` = 10 iterations, for every
other term i

    lambda_hat_i = max_l max |dL_r/dW_l|  /  mean_l mean |d(lambda_i L_i)/dW_l|
    lambda_i    <- beta lambda_i + (1 - beta) lambda_hat_i,          beta = 0.9, lambda_i(0) = 1,

W_l the weight matrices (the 2-D parameters; no biases), the denominator the mean of the per-layer means, and the
gradient of the *already weighted* term (the code feeds lambda through a placeholder), so the fixed point is
lambda* = sqrt(max|grad L_r| / mean|grad L_i|). The Klein-Gordon script applies the same rule to each of its
weighted terms (initial and boundary): here every term but the reference has its own lambda.

One difference from the code, forced by the method contract: the code evaluates the gradients after the Adam
step of an update iteration (same batch, new weights); here they are the step's own gradients before its update
(one Adam step earlier). As in the code the new lambda applies from the next iteration.

``lra_mean`` is the mean/mean form of NVIDIA PhysicsNeMo-Sym's ``LRAnnealing`` (REFERENCES.md sec. 6.1, its
defaults): lambda_hat_i = mean|grad L_r| / (mean|grad L_i| + 1e-8) over all parameters (one global mean),
gradients of the unweighted terms (fixed point = the ratio), every step, beta = 0.99. Every knob is a parameter, so
rbischof/relative_balancing's variant is ``lra_mean`` with ``beta: 0.999``.

Cost: on an update iteration one backward pass per term (k), else one.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ._params import Param, _choice, _fraction_float, _int, _int_at_least
from .base import BalancingMethod, TrainContext, loss_vector, register


def _nonneg_float(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not np.isfinite(v) or v < 0:
        raise ValueError(f"expected a finite number >= 0, got {v!r}")
    return float(v)


def _index(v: Any) -> int:
    return _int(v)


def gradient_statistic(grads: list, stat: str, reduction: str) -> float:
    """max or mean of |g| over a list of gradient tensors: ``layer_mean`` averages the per-tensor statistic (the
    paper's code, for the mean), ``global`` pools every entry (max is the same either way)."""

    absg = [g.detach().abs().double() for g in grads]
    if stat == "max":
        return float(max(float(a.max()) for a in absg))
    if reduction == "layer_mean":
        return float(np.mean([float(a.mean()) for a in absg]))
    total = sum(float(a.sum()) for a in absg)
    return total / sum(a.numel() for a in absg)


@register("lra")
class LRA(BalancingMethod):
    """Learning-rate annealing as the paper's code: max|grad L_r| / mean|grad (lambda_i L_i)| over the weight
    matrices, moving average beta = 0.9, every 10 iterations (module docstring)."""

    kind: ClassVar[str] = "gradient"
    params: ClassVar[dict[str, Param]] = {
        "reference": Param(0, _index, "index of the term whose weight stays 1 (the PDE residual)"),
        "every": Param(10, _int_at_least(1), "update every this many iterations"),
        "beta": Param(0.9, _fraction_float, "share of the old weight kept by the moving average"),
        "numerator": Param("max", _choice("max", "mean"), "statistic of |grad L_ref|"),
        "parameters": Param("weights", _choice("weights", "all"), "weight matrices only (the code) or all"),
        "reduction": Param("layer_mean", _choice("layer_mean", "global"),
                           "mean of per-layer means (the code) or one mean over all entries"),
        "weighted_denominator": Param(True, lambda v: bool(v) if isinstance(v, bool) else _bad_bool(v),
                                      "the denominator's gradient is of lambda_i L_i (the code) or of L_i"),
        "eps": Param(0.0, _nonneg_float, "added to the denominator"),
    }

    def _configure(self) -> None:
        super()._configure()
        self.update_unit, self.update_every = "step", self.params["every"]
        if not hasattr(self, "lam"):
            self.lam: np.ndarray | None = None
        self.backward_passes = 2 if self.lam is None else len(self.lam)

    def setup(self, context: TrainContext) -> None:
        k = len(context.components)
        ref = self.params["reference"]
        if not -k <= ref < k:
            raise ValueError(f"{self.name}: reference {ref} is not a loss index of {context.components}")
        self._ref = ref % k
        self.backward_passes = k
        if self.lam is None:
            self.lam = np.ones(k)

    def _selected(self, context: TrainContext) -> list[int]:
        if self.params["parameters"] == "all":
            return list(range(len(context.model_params)))
        return [i for i, p in enumerate(context.model_params) if p.ndim >= 2]

    def weight_update(self, grads: list[list], lam: np.ndarray, selected: list[int]) -> np.ndarray:
        """The new weights from per-term gradients ``grads[i][j]`` (term i, parameter j) of the unweighted terms
        and the current weights ``lam`` (pure; the tests' hand computation)."""
        p = self.params
        ref = self._ref
        num = gradient_statistic([grads[ref][j] for j in selected], p["numerator"], p["reduction"])
        new = lam.copy()
        for i in range(len(lam)):
            if i == ref:
                continue
            den = gradient_statistic([grads[i][j] for j in selected], "mean", p["reduction"])
            if p["weighted_denominator"]:
                den *= lam[i]
            den += p["eps"]
            if den > 0 and np.isfinite(num / den):
                new[i] = p["beta"] * lam[i] + (1.0 - p["beta"]) * num / den
        return new

    def backward(self, losses: dict, context: TrainContext) -> None:
        import torch

        vec = loss_vector(losses, context.components)
        params = context.model_params
        applied = self.lam.copy()
        if context.step % self.params["every"] == 0:
            grads = []
            for i in range(len(vec)):
                g = torch.autograd.grad(vec[i], params, retain_graph=i < len(vec) - 1, allow_unused=True)
                grads.append([torch.zeros_like(q) if gi is None else gi for gi, q in zip(g, params)])
            for j, q in enumerate(params):
                # in the parameter's own layout (autograd's gradient layout contract, which .backward() keeps):
                # a gradient that came through a vmapped graph (multi-seed training) can be a transposed view,
                # and the fused Adam step then applied it as if it had the parameter's strides (a transposed
                # update of every square weight matrix: tests/test_multiseed.py's open LRA case)
                total = sum(float(applied[i]) * grads[i][j] for i in range(len(vec))).detach()
                q.grad = torch.empty_like(q).copy_(total)
            self.lam = self.weight_update(grads, self.lam, self._selected(context))
        else:
            (torch.as_tensor(applied, dtype=vec.dtype, device=vec.device) * vec).sum().backward()
        self.record_weights(context, applied)

    def _extra_state(self) -> dict[str, Any]:
        return {"lam": None if self.lam is None else [float(x) for x in self.lam]}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        lam = state.get("lam")
        self.lam = None if lam is None else np.asarray(lam, dtype=np.float64)


def _bad_bool(v: Any):
    raise ValueError(f"expected true or false, got {v!r}")


@register("lra_mean")
class LRAMean(LRA):
    """The mean/mean form: mean|grad L_r| / mean|grad L_i| over all parameters, every step, beta = 0.99
    (PhysicsNeMo-Sym ``LRAnnealing`` defaults; module docstring)."""

    params: ClassVar[dict[str, Param]] = {
        **LRA.params,
        "every": Param(1, _int_at_least(1), "update every this many iterations"),
        "beta": Param(0.99, _fraction_float, "share of the old weight kept by the moving average"),
        "numerator": Param("mean", _choice("max", "mean"), "statistic of |grad L_ref|"),
        "parameters": Param("all", _choice("weights", "all"), "weight matrices only or all parameters"),
        "reduction": Param("global", _choice("layer_mean", "global"), "one mean over all entries"),
        "weighted_denominator": Param(False, LRA.params["weighted_denominator"].check,
                                      "gradients of the unweighted terms"),
        "eps": Param(1e-8, _nonneg_float, "added to the denominator"),
    }
