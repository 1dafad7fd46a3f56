"""The learned multi-gradient optimizer (ML2O, seed 003, arXiv 2311.00559): coordinate-wise LSTM modules.

For k objectives with gradients g_1..g_k of the same P parameters, every coordinate j is
processed independently by the SAME small networks (coordinate-wise, Andrychowicz et al.
2016), so one optimizer serves a model of any size::

    r_i = sqrt( vhat_i ),  v_i <- rho v_i + (1 - rho) mean_j g_i[j]^2,  vhat_i = v_i / (1 - rho^t)
    a_i = specific_i( pre(g_i[j] / r_i) )              i = 1..k, LSTMCell(2 -> H_s) each
    b   = shared( [a_1, .., a_k, pre(u_prev[j] / lr)] ) LSTMCell(k H_s + 2 -> H)
    m_j = w . b + c                                     linear output (the update in units of lr)
    u[j] = lr * m_j                                     the parameter update (theta <- theta + u)

``pre`` is :func:`~balancebench.l2o.preprocess.log_sign` (p = 10). Scale-free inputs (issue 25, our
choice): each objective's gradient is divided by its running RMS over the coordinates (an exponential
average with decay rho = ``rms_decay`` and Adam's bias correction, counted per objective from its first
nonzero gradient, so at that step r_i is exactly the RMS of g_i), so multiplying one objective by any constant leaves the first update unchanged; the relative
sizes of the coordinates within one objective and the objective's progress against its own recent scale
are kept. The update is in units of lr, the parameters' scale (below), never of the gradients. With
``input_scaling: none`` the raw gradients enter (the first version). The seed gives the
shape (specific modules per objective, a shared module, LSTMs); the rest is OUR choice
(docs/ml2o.md): one LSTM layer per module, the previous APPLIED update (divided by lr, so
scale-free) as the explicit history input of the shared module (after a GML2O fallback
the module sees the step that was really taken), the recurrent states as the implicit
history, and an update that is a multiple of the learning rate lr (units of the
parameters, like Adam's step), so the same module works at any gradient scale.

The state is a dict of (P, H) tensors; the inputs are detached (no derivatives of the
gradients are ever taken: that would be a third derivative of a model trained on its derivatives).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from balancebench.l2o.preprocess import log_sign
from balancebench.settings import settings_from_section

__all__ = ["MultiGradientOptimizer", "OptimizerSpec"]


@dataclass(frozen=True)
class OptimizerSpec:
    """Sizes of the learned optimizer (config ``l2o.optimizer``; recorded in the artifact)."""

    n_objectives: int = 2
    specific_hidden: int = 20  # H_s, per specific module
    shared_hidden: int = 20  # H, the shared module
    preprocess_p: float = 10.0
    history: str = "previous_update"  # previous_update | none
    input_scaling: str = "running_rms"  # running_rms | none
    rms_decay: float = 0.9  # rho of the running mean square of each objective's gradient

    def __post_init__(self) -> None:
        if not isinstance(self.n_objectives, int) or self.n_objectives < 1:
            raise ValueError(f"l2o.optimizer.n_objectives must be an integer >= 1, got {self.n_objectives!r}")
        for name in ("specific_hidden", "shared_hidden"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"l2o.optimizer.{name} must be an integer >= 1, got {v!r}")
        if not self.preprocess_p > 0:
            raise ValueError(f"l2o.optimizer.preprocess_p must be > 0, got {self.preprocess_p!r}")
        if self.history not in ("previous_update", "none"):
            raise ValueError(f"l2o.optimizer.history must be 'previous_update' or 'none', got {self.history!r}")
        if self.input_scaling not in ("running_rms", "none"):
            raise ValueError(f"l2o.optimizer.input_scaling must be 'running_rms' or 'none', got {self.input_scaling!r}")
        rho = self.rms_decay
        if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not 0 <= rho < 1:
            raise ValueError(f"l2o.optimizer.rms_decay must be in [0, 1), got {self.rms_decay!r}")

    @classmethod
    def from_dict(cls, d: dict) -> OptimizerSpec:
        return settings_from_section(cls, d, "l2o.optimizer")

    def to_dict(self) -> dict:
        return asdict(self)


class MultiGradientOptimizer(nn.Module):
    """Specific LSTM per objective, shared LSTM, linear output; see the module docstring."""

    def __init__(self, spec: OptimizerSpec):
        super().__init__()
        self.spec = spec
        k, hs, h = spec.n_objectives, spec.specific_hidden, spec.shared_hidden
        self.specific = nn.ModuleList(nn.LSTMCell(2, hs) for _ in range(k))
        extra = 2 if spec.history == "previous_update" else 0
        self.shared = nn.LSTMCell(k * hs + extra, h)
        self.out = nn.Linear(h, 1)

    def init_state(self, n_coords: int, dtype=torch.float32, device=None) -> dict[str, torch.Tensor]:
        """Zero recurrent state for ``n_coords`` coordinates (and a zero previous update)."""
        z = lambda width: torch.zeros(n_coords, width, dtype=dtype, device=device)
        state = {}
        for i in range(self.spec.n_objectives):
            state[f"h{i}"], state[f"c{i}"] = z(self.spec.specific_hidden), z(self.spec.specific_hidden)
        state["h"], state["c"] = z(self.spec.shared_hidden), z(self.spec.shared_hidden)
        state["prev"] = torch.zeros(n_coords, dtype=dtype, device=device)
        state["mean_square"] = torch.zeros(self.spec.n_objectives, dtype=torch.float64, device=device)
        state["steps"] = torch.zeros(self.spec.n_objectives, dtype=torch.float64, device=device)
        return state

    def scaled_inputs(self, grads: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """(g_i / r_i (k, P), the updated running mean squares) per the module docstring; zeros for an objective
        whose gradient has been zero so far. Identity with ``input_scaling: none``."""
        if self.spec.input_scaling == "none":
            return grads, {}
        rho = float(self.spec.rms_decay)
        g = grads.detach()
        square = g.double().pow(2).mean(dim=1)
        seen = square > 0  # an objective's counter starts at its first nonzero gradient (no inflated early inputs)
        ms = torch.where(seen | (state["steps"] > 0), rho * state["mean_square"] + (1.0 - rho) * square,
                         state["mean_square"])
        steps = state["steps"] + (seen | (state["steps"] > 0)).double()
        vhat = torch.where(steps > 0, ms / (1.0 - rho ** steps.clamp_min(1.0)), torch.zeros_like(ms))
        scale = torch.where(vhat > 0, vhat.rsqrt(), torch.zeros_like(vhat))
        return (g.double() * scale[:, None]).to(g.dtype), {"mean_square": ms, "steps": steps}

    def forward(self, grads: torch.Tensor, state: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        """(update multiples m (P,), new state) from the detached gradients ``grads`` (k, P).

        The caller multiplies m by lr and writes the applied update (divided by lr) into
        ``state["prev"]`` via :meth:`record_applied` (GML2O may apply another step).
        """
        k = self.spec.n_objectives
        if grads.ndim != 2 or grads.shape[0] != k:
            raise ValueError(f"the learned optimizer was built for {k} objectives; got gradients of shape "
                             f"{tuple(grads.shape)}")
        dtype = self.out.weight.dtype
        scaled, running = self.scaled_inputs(grads.detach(), state)
        g = scaled.to(dtype)
        new, feats = dict(running), []
        for i, cell in enumerate(self.specific):
            h, c = cell(log_sign(g[i], self.spec.preprocess_p), (state[f"h{i}"], state[f"c{i}"]))
            new[f"h{i}"], new[f"c{i}"] = h, c
            feats.append(h)
        if self.spec.history == "previous_update":
            feats.append(log_sign(state["prev"], self.spec.preprocess_p))
        h, c = self.shared(torch.cat(feats, dim=1), (state["h"], state["c"]))
        new["h"], new["c"] = h, c
        new["prev"] = state["prev"]
        for key in ("mean_square", "steps"):
            new.setdefault(key, state[key])
        return self.out(h).squeeze(-1), new

    @staticmethod
    def record_applied(state: dict, applied_over_lr: torch.Tensor) -> dict:
        """The state with the applied update (in units of lr, detached) as the next history input."""
        state = dict(state)
        state["prev"] = applied_over_lr.detach().to(state["prev"].dtype)
        return state

    @staticmethod
    def detach_state(state: dict) -> dict:
        """The state cut from the autograd graph (truncated backpropagation through time)."""
        return {k: v.detach() for k, v in state.items()}
