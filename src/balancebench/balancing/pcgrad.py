"""Projecting conflicting gradients (Yu et al., NeurIPS 2020)."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from ._params import Param, _choice, _int_at_least
from .base import register
from .mgda import _gram, _torch_like
from .shapes import GradientMethod


@register("pcgrad")
class PCGrad(GradientMethod):
    """Projecting conflicting gradients (Yu et al., NeurIPS 2020, "Gradient surgery for multi-task learning", Alg. 1).

    For each i: g_i^PC = g_i; for j != i in a random order, if g_i^PC . g_j < 0 then
    g_i^PC -= (g_i^PC . g_j) / |g_j|^2 g_j (projection onto the normal plane of the
    ORIGINAL g_j). Direction d = sum_i g_i^PC (``reduction="sum"``, the paper's and
    LibMTL's) or the mean. One random order per i is drawn with ``torch.randperm`` from a
    CPU ``torch.Generator`` seeded by ``seed`` (default 0) and saved in state_dict, so a
    resumed run draws the same orders. Computed on the Gram matrix in float64:
    d = w @ G with effective weights w (``last_weights``).
    """

    params = {
        **GradientMethod.params,
        "seed": Param(0, _int_at_least(0), "seed of the task-order generator"),
        "reduction": Param("sum", _choice("sum", "mean"), "sum or mean of the projected gradients"),
    }

    def _configure(self) -> None:
        import torch

        super()._configure()
        self._gen = torch.Generator(device="cpu")
        self._gen.manual_seed(self.params["seed"])

    def _extra_state(self) -> dict[str, Any]:
        return {"rng_state": base64.b64encode(self._gen.get_state().numpy().tobytes()).decode("ascii")}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        import torch

        if "rng_state" in state:
            raw = np.frombuffer(base64.b64decode(state["rng_state"]), dtype=np.uint8).copy()
            self._gen.set_state(torch.from_numpy(raw))

    def _projection_matrix(self, gram: np.ndarray) -> np.ndarray:
        """C (k, k) with g_i^PC = sum_j C[i, j] g_j."""
        import torch

        k = gram.shape[0]
        c = np.eye(k)
        for i in range(k):
            for j in torch.randperm(k, generator=self._gen).tolist():
                if j == i or not gram[j, j] > 0:
                    continue
                dot = float(c[i] @ gram[:, j])
                if dot < 0:
                    c[i, j] -= dot / gram[j, j]
        return c

    def projected_gradients(self, grads: Any):
        """The k projected gradients g_i^PC (k, P) (advances the generator like :meth:`combine`)."""
        g = self._check_grads(grads)
        c = self._projection_matrix(_gram(g))
        return (_torch_like(c, g) @ g.double()).to(g.dtype)

    def combine(self, grads: Any, losses: Any = None):
        g = self._check_grads(grads)
        w = self._projection_matrix(_gram(g)).sum(axis=0)
        if self.params["reduction"] == "mean":
            w = w / g.shape[0]
        self.last_weights = w
        return (g.double().T @ _torch_like(w, g)).to(g.dtype)
