"""COSMOS: one preference-conditioned model for the whole force/energy trade-off (Ruchte & Grabocka 2021, seed 002).

Algorithm 1 of the seed, per optimisation step (one batch):

1. draw one preference r ~ Dir(alpha) for the batch (r_k >= 0, sum_k r_k = 1), from the run's generator;
2. feed r to the model (``graph.extras["preference"]``; :class:`balancebench.model.PreferenceFusion`);
3. minimise Eq. 5 on the normalised losses ``L~_k = L_k / ref_k``::

       J(theta; r) = r . L~  -  lambda * (r . L~) / (|r| |L~|)

   (the second term is lambda times the cosine between r and the loss vector; it pulls each r's solution
   onto its own ray so that the front spreads instead of collapsing to linear scalarisation's knee).

Normalisation (``loss_scale``): ``target_variance`` divides L_F by Var(F) ((kcal/mol/A)^2) and L_E by
Var(E) ((kcal/mol)^2) of the training targets (``context.references``), so both are 1 - R^2-like,
dimensionless and O(1): r, the Dirichlet sampling and the cosine then mean the same for force and
energy (REFERENCES.md sec. 4, "Scale"). ``none`` is the released code (raw losses), for comparison.

Defaults are the reference code's generic settings (github ruchtem/cosmos, settings.py; Multi-MNIST):
alpha = 1.2, lambda = 2. Its other settings: Adult/COMPAS alpha 0.5, lambda 0.01; CelebA alpha 1,
lambda 3. Evaluation (not training) uses ``eval_preference`` (default the middle ray (1/2, 1/2)):
with the target-variance normalisation the trainer's method-independent criterion
MSE_F/Var(F) + MSE_E/Var(E) is exactly 2 r . L~ at that ray, so early stopping selects the
weights that are best at the middle of the front.

``fixed_preference`` replaces the sampling by one constant r (an ablation and a test: at a vertex with
lambda = 0 COSMOS is a constant-weight training of a model with one extra, constant input).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from balancebench.balancing import BalancingMethod, Param, _choice, _finite_float, register

COMPONENTS = ("force", "energy")


def _alpha(v: Any) -> list[float]:
    """One positive number (symmetric Dirichlet) or one per component (force, energy)."""
    values = [v] if not isinstance(v, (list, tuple)) else list(v)
    if len(values) not in (1, len(COMPONENTS)):
        raise ValueError(f"expected one number > 0 or {len(COMPONENTS)} (force, energy), got {v!r}")
    out = [_finite_float(x) for x in values]
    if any(x <= 0 for x in out):
        raise ValueError(f"the Dirichlet concentration must be > 0, got {v!r}")
    return out * len(COMPONENTS) if len(out) == 1 else out


def _penalty(v: Any) -> float:
    v = _finite_float(v)
    if v < 0:
        raise ValueError(f"lambda (the cosine penalty of Eq. 5) must be >= 0, got {v!r}")
    return v


def _simplex(v: Any) -> list[float]:
    if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__"):
        raise ValueError(f"expected {len(COMPONENTS)} non-negative numbers with a positive sum, got {v!r}")
    out = [_finite_float(x) for x in v]
    if len(out) != len(COMPONENTS) or any(x < 0 for x in out) or sum(out) <= 0:
        raise ValueError(f"expected {len(COMPONENTS)} non-negative numbers (force, energy) with a positive sum, "
                         f"got {v!r}")
    return [x / sum(out) for x in out]


def _optional_simplex(v: Any):
    return None if v is None else _simplex(v)


def cosmos_objective(losses, preference, penalty: float):
    """(J, cosine) of Eq. 5 for a loss vector (k,) (torch, differentiable) and a preference (k,)."""
    import torch

    r = preference.to(dtype=losses.dtype, device=losses.device)
    linear = torch.dot(r, losses)
    cosine = linear / (torch.linalg.vector_norm(r) * torch.linalg.vector_norm(losses)).clamp_min(1e-30)
    return linear - penalty * cosine, cosine


@register("cosmos")
class Cosmos(BalancingMethod):
    """COSMOS (seed 002): Dirichlet preferences per batch, Eq. 5 on normalised losses; see the module docstring."""

    kind: ClassVar[str] = "conditioned"
    preference_dim: ClassVar[int] = len(COMPONENTS)
    params: ClassVar[dict[str, Param]] = {
        "alpha": Param(1.2, _alpha, "Dirichlet concentration of the sampled preferences (seed code default 1.2)"),
        "penalty": Param(2.0, _penalty, "lambda of Eq. 5, weight of the cosine term (seed code default 2)"),
        "loss_scale": Param("target_variance", _choice("target_variance", "none"),
                            "normalise each loss by its target variance (context.references) or use raw losses"),
        "eval_preference": Param([0.5, 0.5], _simplex, "r used outside training (validation, early stopping)"),
        "fixed_preference": Param(None, _optional_simplex, "train at this one r instead of sampling (ablation)"),
    }

    def _configure(self) -> None:
        super()._configure()
        self.update_unit, self.update_every = "step", 1
        self.backward_passes = 1
        self._current = None  # r of the current batch (float64 torch tensor)
        self._epoch = None
        self._sum_r = np.zeros(len(COMPONENTS))
        self._sum_cos = 0.0
        self._n = 0

    # -- pure helpers ----------------------------------------------------------------------
    def coefficients(self, history: Any) -> np.ndarray:
        """The evaluation preference (a conditioned method has no history-driven coefficients)."""
        return np.asarray(self.params["eval_preference"], dtype=np.float64)

    def sample_preference(self, generator) -> np.ndarray:
        """One r ~ Dir(alpha) (k,), float64; the only draw is one integer from the torch ``generator``."""
        import torch

        if self.params["fixed_preference"] is not None:
            return np.asarray(self.params["fixed_preference"], dtype=np.float64)
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        return np.random.default_rng(seed).dirichlet(self.params["alpha"])

    def _scales(self, context, components) -> list[float]:
        if self.params["loss_scale"] == "none":
            return [1.0] * len(components)
        refs = getattr(context, "references", None) or {}
        missing = [c for c in components if not (c in refs and np.isfinite(refs[c]) and refs[c] > 0)]
        if missing:
            raise ValueError(f"cosmos with loss_scale 'target_variance' needs positive references for {missing}; "
                             f"got {refs!r}")
        return [float(refs[c]) for c in components]

    # -- the training contract ---------------------------------------------------------------
    def setup(self, context) -> None:
        self._scale_values = self._scales(context, tuple(getattr(context, "components", COMPONENTS)))

    def parameters(self) -> list:
        return []

    def make_optimizer(self, model_params, settings):
        import torch

        return torch.optim.Adam(list(model_params), lr=settings.learning_rate)

    def prepare_batch(self, graph, context, training: bool) -> None:
        """Write this batch's r into ``graph.extras["preference"]``: sampled when training, else eval_preference."""
        import torch

        if training:
            epoch = getattr(context, "epoch", None)
            if epoch != self._epoch:  # a new epoch: the logged means start afresh
                self._epoch, self._sum_r, self._sum_cos, self._n = epoch, np.zeros(len(COMPONENTS)), 0.0, 0
            r = self.sample_preference(context.generator)
        else:
            r = np.asarray(self.params["eval_preference"], dtype=np.float64)
        self._current = torch.as_tensor(r, dtype=torch.float64)
        graph.extras["preference"] = self._current

    def backward(self, losses: dict, context) -> None:
        """Gradient of Eq. 5 at this batch's r into the model parameters' .grad (one backward pass)."""
        import torch

        if self._current is None:
            raise RuntimeError("cosmos.backward called before prepare_batch: the batch has no preference")
        components = tuple(getattr(context, "components", COMPONENTS))
        vector = torch.stack([losses[c] for c in components])
        scales = torch.as_tensor(getattr(self, "_scale_values", None) or self._scales(context, components),
                                 dtype=vector.dtype, device=vector.device)
        objective, cosine = cosmos_objective(vector / scales, self._current, self.params["penalty"])
        objective.backward()
        self._sum_r += self._current.numpy()
        self._sum_cos += float(cosine.detach())
        self._n += 1

    def step(self, context) -> None:
        context.optimizer.step()

    def end_epoch(self, train_means: dict, context) -> None:
        pass

    def log_values(self) -> dict[str, float]:
        """Epoch means of the applied r (coef_force, coef_energy = pref_force, pref_energy) and of the cosine."""
        if self._n == 0:
            r, cos = np.asarray(self.params["eval_preference"]), float("nan")
        else:
            r, cos = self._sum_r / self._n, self._sum_cos / self._n
        return {"coef_force": float(r[0]), "coef_energy": float(r[1]), "pref_force": float(r[0]),
                "pref_energy": float(r[1]), "cosine": float(cos)}

    def _extra_state(self) -> dict[str, Any]:
        return {"epoch": self._epoch, "sum_r": self._sum_r.tolist(), "sum_cos": self._sum_cos, "n": self._n}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self._epoch = state.get("epoch")
        self._sum_r = np.asarray(state.get("sum_r", [0.0] * len(COMPONENTS)), dtype=np.float64)
        self._sum_cos = float(state.get("sum_cos", 0.0))
        self._n = int(state.get("n", 0))
