"""Uncertainty weighting (Kendall, Gal, Cipolla, CVPR 2018, "Multi-task learning using uncertainty to weigh
losses for scene geometry and semantics")."""

from __future__ import annotations

from typing import Any, ClassVar

from ._params import Param, _finite_float
from .base import TrainContext, backward_via_objective, loss_vector, register
from .shapes import LearnedMethod


@register("uncertainty")
class UncertaintyWeighting(LearnedMethod):
    """L = sum_i [ 0.5 exp(-s_i) L_i + 0.5 s_i ], s_i = log sigma_i^2 learned with the model.

    Kendall et al. Eq. 7 for regression losses, 1/(2 sigma^2) L + log sigma, written with
    s = log sigma^2 for stability (the form of torchjd's ``UW`` scalarizer and of LibMTL's
    ``UW``). The s_i (float64, initialised to ``init``, default 0: unit weights 0.5) are
    ``nn.Parameter`` s in the model's Adam (same learning rate and decay). At a fixed loss
    the optimum is s_i = log L_i, i.e. weight 0.5 / L_i: scale-free. Logged:
    ``coef_<c>`` = 0.5 exp(-s_i) (the weight applied to the raw loss) and
    ``log_var_<c>`` = s_i, epoch means. 1 backward pass per step.
    """

    params: ClassVar[dict[str, Param]] = {
        "init": Param(0.0, _finite_float, "initial s_i = log sigma_i^2 of every component"),
    }

    def _configure(self) -> None:
        super()._configure()
        if not hasattr(self, "log_var"):
            self.log_var = None

    def setup(self, context: TrainContext) -> None:
        import torch

        k = len(context.components)
        device = context.model_params[0].device if context.model_params else None
        self.log_var = torch.nn.Parameter(torch.full((k,), self.params["init"], dtype=torch.float64, device=device))

    def parameters(self) -> list:
        return [self.log_var]

    def weights(self):
        """0.5 exp(-s) (k,), detached."""
        import torch

        return (0.5 * torch.exp(-self.log_var)).detach()

    backward = backward_via_objective

    def objective(self, losses: dict, context: TrainContext):
        """sum_k 0.5 exp(-s_k) L_k + 0.5 s_k (Kendall et al.), differentiable in the model and s."""
        import torch

        vec = loss_vector(losses, context.components)
        s = self.log_var
        total = (0.5 * torch.exp(-s) * vec.double() + 0.5 * s).sum()
        self.record_weights(context, self.weights())
        self.record_weights(context, s.detach(), prefix="log_var")
        return total

    def _extra_state(self) -> dict[str, Any]:
        return {"log_var": None if self.log_var is None else self.log_var.detach().clone()}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        import torch

        value = state.get("log_var")
        if value is None:
            return
        if self.log_var is None:
            self.log_var = torch.nn.Parameter(value.detach().clone().double())
        else:
            with torch.no_grad():
                self.log_var.copy_(value)
