"""Random loss weights, the control: a fresh weight vector w ~ Dirichlet(1, ..., 1) (uniform on the simplex, sum 1)
every step, loss sum_i w_i L_i (Lin, Ye, Xu, Shi, Zhang, "Reasonable effectiveness of random weighting: a litmus
test for multi-task learning", TMLR 2022: random loss weighting, RLW; they draw from several distributions,
Dirichlet among them). A method that does not beat it has not shown that its weights carry information.

w_i = e_i / sum_j e_j, e_i = -log U_i, U_i uniform from the run's generator (``context.generator``, checkpointed:
a resumed run draws the same weights). One backward pass.
"""

from __future__ import annotations

from typing import ClassVar

from .base import BalancingMethod, TrainContext, backward_via_objective, loss_vector, register


@register("random_weights")
class RandomWeights(BalancingMethod):
    """The random-weights control: w ~ Dirichlet(1, ..., 1) drawn afresh every step from the run's generator,
    loss sum_i w_i L_i (module docstring: the litmus test a balancing method must pass)."""

    kind: ClassVar[str] = "value"

    def _configure(self) -> None:
        super()._configure()
        self.update_unit, self.update_every = "step", 1

    @staticmethod
    def draw(k: int, generator=None):
        import torch

        e = -torch.log1p(-torch.rand(k, generator=generator, dtype=torch.float64))  # -log(1 - U) > 0
        return e / e.sum()

    backward = backward_via_objective

    def objective(self, losses: dict, context: TrainContext):

        vec = loss_vector(losses, context.components)
        w = self.draw(len(vec), context.generator)
        self.record_weights(context, w)
        return (w.to(dtype=vec.dtype, device=vec.device) * vec).sum()
