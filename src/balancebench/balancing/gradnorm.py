"""GradNorm (Chen, Badrinarayanan, Lee, Rabinovich, ICML 2018, "GradNorm: gradient normalization for adaptive
loss balancing in deep multitask networks", Alg. 1)."""

from __future__ import annotations

import copy
from typing import Any, ClassVar

from ._params import Param, _finite_float, _positive_float
from .base import TrainContext, adam, loss_vector, register
from .shapes import LearnedMethod


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError(f"expected a parameter name (string), got {v!r}")
    return v


@register("gradnorm")
class GradNorm(LearnedMethod):
    """Learned weights w_i that equalise the training rates of the gradient norms (Chen et al. 2018, Alg. 1).

    Per step, with W the last shared layer (``layer``; default the model's last
    2-dimensional parameter, e.g. the output layer every prediction of the CG SchNet passes through):

    * model update from L = sum_i w_i L_i (w detached);
    * G_i = |grad_W w_i L_i| = w_i |grad_W L_i|, G_bar = mean_i G_i;
    * L~_i = L_i(t) / L_i(0) with L(0) the losses of the first step, r_i = L~_i / mean_j L~_j;
    * L_grad = sum_i |G_i - G_bar r_i^alpha|, the target G_bar r_i^alpha held constant;
    * w takes one step of its own Adam (lr ``weight_lr``) on dL_grad/dw, then
      w <- max(w, ``min_weight``) and w <- K w / sum_j w_j (renormalised to sum K).

    |grad_W L_i| is computed without a graph: G_i is linear in w_i, so dG_i/dw_i =
    |grad_W L_i| exactly, and the gradient never needs a third derivative through a
    double backward (a loss on a derivative of the model, as on the CG task). ``alpha`` 1.5 (the paper's choice for its regression tasks).
    w starts at ones (float64). Logged: ``coef_<c>`` = w_i applied (epoch mean).
    Backward passes per step: K (one per loss, restricted to W) + 1.
    """

    params: ClassVar[dict[str, Param]] = {
        "alpha": Param(1.5, _finite_float, "restoring strength alpha of the rates (Chen et al.: 1.5 for regression)"),
        "weight_lr": Param(1e-3, _positive_float, "Adam learning rate of the weights w (not decayed)"),
        "min_weight": Param(1e-6, _positive_float, "floor of every w_i before renormalisation (keeps w > 0)"),
        "layer": Param("", _str, "name of the shared parameter W in model.named_parameters(); '' = last 2-D one"),
    }

    def _configure(self) -> None:
        super()._configure()
        for attr in ("weight", "_opt", "_layer", "initial_losses"):
            if not hasattr(self, attr):
                setattr(self, attr, None)
        self.backward_passes = (2 if self.weight is None else len(self.weight)) + 1

    def setup(self, context: TrainContext) -> None:
        import torch

        k = len(context.components)
        self.backward_passes = k + 1
        named = [(n, p) for n, p in context.model.named_parameters() if p.requires_grad]
        want = self.params["layer"]
        if want:
            match = [p for n, p in named if n == want]
            if not match:
                raise ValueError(f"gradnorm: parameter 'layer' = {want!r} is not a trainable parameter of the model; "
                                 f"valid: {[n for n, _ in named]}")
            self._layer = match[0]
        elif callable(getattr(context.model, "last_shared_parameter", None)):  # the task's model says (hook)
            self._layer = context.model.last_shared_parameter()
        else:
            matrices = [p for _, p in named if p.ndim == 2]
            if not matrices:
                raise ValueError("gradnorm: the model has no 2-D parameter to use as the last shared layer; "
                                 "set parameter 'layer'")
            self._layer = matrices[-1]
        self.weight = torch.nn.Parameter(torch.ones(k, dtype=torch.float64, device=self._layer.device))

    def parameters(self) -> list:
        return [self.weight]

    def make_optimizer(self, model_params, settings):
        self._opt = adam([self.weight], lr=self.params["weight_lr"])
        return adam(list(model_params), lr=settings.learning_rate)

    def backward(self, losses: dict, context: TrainContext) -> None:
        import torch

        vec = loss_vector(losses, context.components)
        k = len(vec)
        norms, w_dev = [], self.weight.device
        detached = vec.detach().double().to(w_dev)
        if self.initial_losses is None:
            self.initial_losses = detached.clone()
        for i in range(k):  # |grad_W L_i|, no graph kept: one backward pass per loss, down to W only
            (gw,) = torch.autograd.grad(vec[i], self._layer, retain_graph=True, allow_unused=True)
            norms.append(torch.zeros((), dtype=torch.float64, device=w_dev) if gw is None
                         else gw.detach().double().norm())
        norms = torch.stack(norms)
        w = self.weight
        g = w * norms  # G_i = w_i |grad_W L_i|
        ratio = detached / self.initial_losses.clamp_min(1e-300)
        target = (g.mean() * (ratio / ratio.mean()) ** self.params["alpha"]).detach()
        (self.weight.grad,) = torch.autograd.grad((g - target).abs().sum(), w)
        applied = w.detach()
        self.record_weights(context, applied)
        (applied.to(dtype=vec.dtype, device=vec.device) * vec).sum().backward()

    def step(self, context: TrainContext) -> None:
        import torch

        context.optimizer.step()
        self._opt.step()
        with torch.no_grad():
            self.weight.clamp_(min=self.params["min_weight"])
            self.weight.mul_(len(self.weight) / self.weight.sum())

    def _extra_state(self) -> dict[str, Any]:
        return {"weight": None if self.weight is None else self.weight.detach().clone(),
                "initial_losses": None if self.initial_losses is None else self.initial_losses.clone(),
                "optimizer": None if self._opt is None else copy.deepcopy(self._opt.state_dict())}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        import torch

        if state.get("weight") is not None:
            if self.weight is None:
                self.weight = torch.nn.Parameter(state["weight"].detach().clone().double())
            else:
                with torch.no_grad():
                    self.weight.copy_(state["weight"])
        init = state.get("initial_losses")
        self.initial_losses = None if init is None else init.clone()
        if state.get("optimizer") is not None and self._opt is not None:
            self._opt.load_state_dict(state["optimizer"])
