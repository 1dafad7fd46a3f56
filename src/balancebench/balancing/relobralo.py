"""ReLoBRaLo, relative loss balancing with random lookback (Bischof & Kraus, "Multi-objective loss balancing for
physics-informed deep learning", arXiv 2110.09813; code rbischof/relative_balancing ``src/update_rules.py``,
``src/train.py``; REFERENCES.md sec. 6.2). With m terms, per step t:

    lambda_hat_i(t; t') = m softmax_i( L_i(t) / (T L_i(t') + 1e-12) )
    lambda_i(t) = alpha [ rho lambda_i(t-1) + (1 - rho) lambda_hat_i(t; 0) ] + (1 - alpha) lambda_hat_i(t; t-1),

rho ~ Bernoulli(E[rho]) drawn every step (from ``context.generator``), loss sum_i lambda_i(t) L_i(t) with lambda
data (never differentiated). Defaults are the code's argparse defaults: T = 1, alpha = 0.999, E[rho] = 1 (no
random lookback unless set); the values the paper tuned are not verified here (REFERENCES.md). The code's start:
step 0 keeps lambda = 1 (alpha = 1), step 1 takes lambda = lambda_hat(1; 0) (alpha = 0), and "L(0)" of the
lookback is the loss of step 1, not of the untrained model; all of it kept. The softmax subtracts its maximum
(the same value, no overflow). One backward pass.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ._numerics import _stable_softmax
from ._params import Param, _finite_float, _positive_float
from .base import BalancingMethod, TrainContext, backward_via_objective, loss_vector, register


def _probability(v: Any) -> float:
    v = _finite_float(v)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"expected a number in [0, 1], got {v!r}")
    return v


def relobralo_hat(losses: np.ndarray, lookback: np.ndarray, temperature: float) -> np.ndarray:
    """lambda_hat(t; t') = m softmax(L(t) / (T L(t') + 1e-12))."""
    return len(losses) * _stable_softmax(losses / (temperature * lookback + 1e-12))


@register("relobralo")
class ReLoBRaLo(BalancingMethod):
    """Relative loss balancing with random lookback (Bischof & Kraus 2021): softmax of loss ratios against the
    previous step and, with a random lookback, the first step (the update rule and its defaults: module docstring)."""

    kind: ClassVar[str] = "value"
    params: ClassVar[dict[str, Param]] = {
        "temperature": Param(1.0, _positive_float, "softmax temperature T"),
        "alpha": Param(0.999, _probability, "exponential decay of the history"),
        "rho": Param(1.0, _probability, "E[rho], the probability of keeping the history (saudade)"),
    }

    def _configure(self) -> None:
        super()._configure()
        self.update_unit, self.update_every = "step", 1
        for attr, value in (("t", 0), ("lam", None), ("prev", None), ("init", None)):
            if not hasattr(self, attr):
                setattr(self, attr, value)

    def update(self, losses: np.ndarray, rho: float) -> np.ndarray:
        """The weights of this step from its losses (and the state), advancing the state (pure numpy)."""
        p = self.params
        m = len(losses)
        if self.t == 0 or self.lam is None:
            self.lam, self.init = np.ones(m), np.ones(m)
        elif self.t == 1:
            self.lam = relobralo_hat(losses, self.prev, p["temperature"])
            self.init = losses.copy()
        else:
            history = rho * self.lam + (1.0 - rho) * relobralo_hat(losses, self.init, p["temperature"])
            self.lam = p["alpha"] * history + (1.0 - p["alpha"]) * relobralo_hat(losses, self.prev, p["temperature"])
        self.prev = losses.copy()
        self.t += 1
        return self.lam

    backward = backward_via_objective

    def objective(self, losses: dict, context: TrainContext):
        import torch

        vec = loss_vector(losses, context.components)
        u = float(torch.rand((), generator=context.generator, dtype=torch.float64))
        rho = 1.0 if u < self.params["rho"] else 0.0
        lam = self.update(vec.detach().double().cpu().numpy(), rho)
        self.record_weights(context, lam)
        return (torch.as_tensor(lam, dtype=vec.dtype, device=vec.device) * vec).sum()

    def _extra_state(self) -> dict[str, Any]:
        def lst(a):
            return None if a is None else [float(x) for x in a]

        return {"t": self.t, "lam": lst(self.lam), "prev": lst(self.prev), "init": lst(self.init)}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.t = int(state.get("t", 0))
        for key in ("lam", "prev", "init"):
            v = state.get(key)
            setattr(self, key, None if v is None else np.asarray(v, dtype=np.float64))
