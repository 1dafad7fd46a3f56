"""One toy balancing method of each shape, registered from the test suite with the public API only.

Importing this module registers them (names start with ``test_shape_``); no training, rule or
schema code knows them. tests/test_balancing_contract.py runs the shared property tests on
them and tests/test_training.py trains each for two epochs through ``train_model``.
"""

import numpy as np
import torch

from balancebench.balancing import (
    ConditionedMethod,
    GradientMethod,
    LearnedMethod,
    OptimizerMethod,
    Param,
    ValueMethod,
    available_methods,
    loss_vector,
    per_loss_gradients,
    register,
    write_direction,
)

SHAPES = {
    "value": "test_shape_value",
    "learned": "test_shape_learned",
    "gradient": "test_shape_gradient",
    "conditioned": "test_shape_conditioned",
    "optimizer": "test_shape_optimizer",
}

if SHAPES["value"] not in available_methods():

    @register(SHAPES["value"])
    class InverseLast(ValueMethod):
        """Toy value method: lambda_i = k (1 / L_i(t-1)) / sum_j (1 / L_j(t-1)), the newest row only."""

        params = {"floor": Param(1e-12, float, "smallest loss"), **ValueMethod.params}
        requires_nonnegative = True

        def _configure(self):
            super()._configure()
            self.min_history = 1

        def _formula(self, h):
            inv = 1.0 / np.maximum(h[-1], self.params["floor"])
            return len(inv) * inv / inv.sum()

    @register(SHAPES["learned"])
    class SigmoidWeights(LearnedMethod):
        """Toy learned method: w_i = 2 sigmoid(z_i), loss sum_i w_i L_i / Var_i + sum_i (w_i - 1)^2, z in Adam."""

        def setup(self, context):
            self.z = torch.nn.Parameter(torch.zeros(len(context.components), dtype=torch.float64))
            self.ref = torch.tensor([context.references[c] for c in context.components], dtype=torch.float64)

        def parameters(self):
            return [self.z]

        def backward(self, losses, context):
            w = 2 * torch.sigmoid(self.z)
            vec = loss_vector(losses, context.components).double()
            ((w * vec / self.ref).sum() + ((w - 1) ** 2).sum()).backward()
            self.record_weights(context, w.detach() / self.ref)

        def _extra_state(self):
            return {"z": self.z.detach().clone()}

        def _load_extra_state(self, state):
            with torch.no_grad():
                self.z.copy_(state["z"])

    @register(SHAPES["gradient"])
    class NormalizedSum(GradientMethod):
        """Toy gradient method: d = sum_i g_i / |g_i| (unit gradients summed), last_weights = 1 / |g_i|."""

        def combine(self, grads, losses=None):
            g = self._check_grads(grads).double()
            w = 1.0 / g.norm(dim=1).clamp_min(1e-300)
            self.last_weights = w.numpy()
            return (w @ g).to(grads.dtype)

    @register(SHAPES["conditioned"])
    class RandomPreference(ConditionedMethod):
        """Toy conditioned method: r ~ Dirichlet(1, ..., 1) per batch from the context generator, loss sum r_i L_i / Var_i.

        preference_dim stays 0 (the model ignores graph.extras["preference"]): the shape's hooks are what is tested.
        """

        def setup(self, context):
            self.ref = torch.tensor([context.references[c] for c in context.components], dtype=torch.float64)

        def sample_preferences(self, n, k, generator=None):
            e = -torch.log(torch.rand(n, k, generator=generator, dtype=torch.float64))
            return e / e.sum(dim=1, keepdim=True)

        def conditioned_loss(self, losses, preferences):
            return (preferences * losses / self.ref.to(losses.dtype)).sum()

    @register(SHAPES["optimizer"])
    class NormalizedDescent(OptimizerMethod):
        """Toy optimizer method: theta <- theta - lr_t g / |g|, g the gradient of sum_i L_i / Var_i, lr_t = lr decay^(e-1)."""

        def setup(self, context):
            self.ref = torch.tensor([context.references[c] for c in context.components])

        def backward(self, losses, context):
            vec = loss_vector(losses, context.components)
            grads = per_loss_gradients(vec, context.model_params)
            d = (grads / self.ref.to(grads.dtype)[:, None]).sum(0)
            write_direction(d, context.model_params)
            self.record_weights(context, 1.0 / self.ref)

        def step(self, context):
            s = context.settings
            lr = s.learning_rate * s.lr_decay ** max(context.epoch - 1, 0)
            grads = [p.grad for p in context.model_params]
            norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads)).clamp_min(1e-30)
            with torch.no_grad():
                for p, g in zip(context.model_params, grads):
                    p.sub_((lr * g / norm).to(p.dtype))
            self.record(context, step_norm=float(norm))
