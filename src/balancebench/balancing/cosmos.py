"""COSMOS: one preference-conditioned model for the whole trade-off of two losses (Ruchte & Grabocka 2021, seed 002).

Algorithm 1 of the seed, per optimisation step (one batch):

1. draw one preference r ~ Dir(alpha) for the batch (r_k >= 0, sum_k r_k = 1), from the run's generator;
2. feed r to the model (``graph.extras["preference"]``; :class:`balancebench.tasks.cg_benzene.model.PreferenceFusion`);
3. minimise Eq. 5 on the normalised losses ``L~_k = L_k / ref_k``::

       J(theta; r) = r . L~  -  lambda * (r . L~) / (|r| |L~|)

   (the second term is lambda times the cosine between r and the loss vector; it pulls each r's solution
   onto its own ray so that the front spreads instead of collapsing to linear scalarisation's knee).

Normalisation (``loss_scale``): ``target_variance`` divides each loss L_i by its reference ref_i from the
task (``context.references``, e.g. the variance of its training targets, in its units), so both are 1 - R^2-like,
dimensionless and O(1): r, the Dirichlet sampling and the cosine then mean the same for both
losses (REFERENCES.md sec. 4, "Scale"). ``raw`` is the released code (raw losses), for comparison.

Defaults are the reference code's generic settings (github ruchtem/cosmos, settings.py; Multi-MNIST):
alpha = 1.2, lambda = 2. Its other settings: Adult/COMPAS alpha 0.5, lambda 0.01; CelebA alpha 1,
lambda 3. Evaluation (not training) uses ``eval_preference`` (default the middle ray (1/2, 1/2)):
with the target-variance normalisation the trainer's method-independent criterion
sum_i val_i / ref_i is exactly 2 r . L~ at that ray, so early stopping selects the
weights that are best at the middle of the front.

Where the preferences go (``ratio_range``, ``sampling``). The seed draws r ~ Dir(alpha) and evaluates 25 rays with
angles in [0.1, pi/2 - 0.1], i.e. preference ratios rho = r_2 / r_1 in [0.1, 10]. A task whose useful trade-off
lies outside that (on the benzene demo the grid's best weight of the second loss, 1e-3, is rho = w ref_2 / ref_1
~ 0.005, which Dir(1.2, 1.2) draws with probability ~0.002; docs/cosmos.md) needs another draw. With ``ratio_range = [rho_lo, rho_hi]``:

* training (``sampling: log_ratio``, the default when a range is given): ln rho ~ U(ln rho_lo, ln rho_hi), then
  r = (1, rho) / (1 + rho) (equal effort per decade of the ratio; the draw is one integer from the run's
  generator, as for the Dirichlet);
* the test rays after training: ``test_rays`` ratios evenly spaced in ln rho over the same range
  (:func:`balancebench.pareto.log_ratio_rays`).

Without a range (``sampling: dirichlet``, the seed's) r ~ Dir(alpha) and the seed's circle rays.
``sampling: dirichlet`` with a range keeps the seed's training draw and only moves the test rays (an ablation).

``fixed_preference`` replaces the sampling by one constant r (an ablation and a test: at a vertex with
lambda = 0 COSMOS is a constant-weight training of a model with one extra, constant input).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from ._params import Param, _choice, _finite_float, _int_at_least
from .base import loss_vector, register
from .shapes import ConditionedMethod

K = 2  # COSMOS here conditions on two losses (the 2-objective trade-off of the seed's Multi-MNIST experiments)


def _alpha(v: Any) -> list[float]:
    """One positive number (symmetric Dirichlet) or one per loss."""
    values = [v] if not isinstance(v, (list, tuple)) else list(v)
    if len(values) not in (1, K):
        raise ValueError(f"expected one number > 0 or {K} (one per loss), got {v!r}")
    out = [_finite_float(x) for x in values]
    if any(x <= 0 for x in out):
        raise ValueError(f"the Dirichlet concentration must be > 0, got {v!r}")
    return out * K if len(out) == 1 else out


def _penalty(v: Any) -> float:
    v = _finite_float(v)
    if v < 0:
        raise ValueError(f"lambda (the cosine penalty of Eq. 5) must be >= 0, got {v!r}")
    return v


def _simplex(v: Any) -> list[float]:
    if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__"):
        raise ValueError(f"expected {K} non-negative numbers with a positive sum, got {v!r}")
    out = [_finite_float(x) for x in v]
    if len(out) != K or any(x < 0 for x in out) or sum(out) <= 0:
        raise ValueError(f"expected {K} non-negative numbers (one per loss) with a positive sum, "
                         f"got {v!r}")
    return [x / sum(out) for x in out]


def _optional_simplex(v: Any):
    return None if v is None else _simplex(v)


def _optional_ratio_range(v: Any):
    """null, or [rho_lo, rho_hi] with 0 < rho_lo <= rho_hi: preference ratios r_2 / r_1."""
    if v is None:
        return None
    from balancebench.pareto import check_ratio_range

    if isinstance(v, (str, bytes)) or not hasattr(v, "__len__") or len(v) != 2:
        raise ValueError(f"expected null or two numbers 0 < low <= high (ratios r_2 / r_1), got {v!r}")
    return list(check_ratio_range(v, "the preference ratio range"))


def cosmos_objective(losses, preference, penalty: float):
    """(J, cosine) of Eq. 5 for a loss vector (k,) (torch, differentiable) and a preference (k,)."""
    import torch

    r = preference.to(dtype=losses.dtype, device=losses.device)
    linear = torch.dot(r, losses)
    cosine = linear / (torch.linalg.vector_norm(r) * torch.linalg.vector_norm(losses)).clamp_min(1e-30)
    return linear - penalty * cosine, cosine


@register("cosmos")
class Cosmos(ConditionedMethod):
    """COSMOS (seed 002): Dirichlet preferences per batch, Eq. 5 on normalised losses; see the module docstring."""

    required_losses = K  # a task with another number of losses is refused before any job (config._check_task)

    preference_dim: ClassVar[int] = K
    params: ClassVar[dict[str, Param]] = {
        "alpha": Param(1.2, _alpha, "Dirichlet concentration of the sampled preferences (seed code default 1.2)"),
        "penalty": Param(2.0, _penalty, "lambda of Eq. 5, weight of the cosine term (seed code default 2)"),
        "loss_scale": Param("target_variance", _choice("target_variance", "raw"),
                            "divide each loss by its target variance (context.references) or use the raw losses"),
        "eval_preference": Param([0.5, 0.5], _simplex, "r used outside training (validation, early stopping)"),
        "fixed_preference": Param(None, _optional_simplex, "train at this one r instead of sampling (ablation)"),
        "test_rays": Param(25, _int_at_least(1), "K test rays of the front written after training (seed: 25)"),
        "ratio_range": Param(None, _optional_ratio_range,
                             "[rho_lo, rho_hi]: preference ratios r_2 / r_1 the test rays (log-spaced) and, with "
                             "sampling log_ratio, the training draw (log-uniform) cover; null: the seed's"),
        "sampling": Param("auto", _choice("auto", "dirichlet", "log_ratio"),
                          "training draw: dirichlet (Dir(alpha), the seed's), log_ratio (ln rho uniform over "
                          "ratio_range), auto (log_ratio if ratio_range is set, else dirichlet)"),
    }

    def _configure(self) -> None:
        super()._configure()
        if self.params["sampling"] == "log_ratio" and self.params["ratio_range"] is None:
            raise ValueError("parameter 'sampling' of balancing method 'cosmos': log_ratio needs ratio_range "
                             "(the preference ratios to draw from)")
        self.backward_passes = 1
        refs = getattr(self, "_refs", None)  # kept from setup() when load_state_dict reconfigures
        self._scale = None if refs is None else self._scales(refs)

    def _scales(self, refs: dict) -> list[float]:
        if self.params["loss_scale"] == "raw":
            return [1.0] * K
        names = list(refs)[:K]
        missing = [c for c in names if not (np.isfinite(refs[c]) and refs[c] > 0)] or ([] if len(names) == K else ["?"])
        if missing:
            raise ValueError(f"cosmos with loss_scale 'target_variance' needs positive references for {missing}; "
                             f"got {refs!r}")
        return [float(refs[c]) for c in names]

    # -- pure helpers ----------------------------------------------------------------------
    @property
    def sampling(self) -> str:
        """The training draw in effect: ``dirichlet`` or ``log_ratio`` (``auto`` resolved by ``ratio_range``)."""
        mode = self.params["sampling"]
        if mode == "auto":
            return "log_ratio" if self.params["ratio_range"] is not None else "dirichlet"
        return mode

    def sample_preference(self, generator) -> np.ndarray:
        """One r (k,), float64: r ~ Dir(alpha), or r = (1, rho) / (1 + rho) with ln rho ~ U(ln rho_lo, ln rho_hi)
        (``sampling``); the only draw is one integer from the torch ``generator``."""
        import torch

        if self.params["fixed_preference"] is not None:
            return np.asarray(self.params["fixed_preference"], dtype=np.float64)
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        rng = np.random.default_rng(seed)
        if self.sampling == "log_ratio":
            from balancebench.pareto import ratio_preference

            lo, hi = self.params["ratio_range"]
            return ratio_preference(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        return rng.dirichlet(self.params["alpha"])

    def test_preferences(self) -> np.ndarray:
        """(test_rays, 2) preferences of the front written after training: log-spaced ratios over ``ratio_range``
        (:func:`balancebench.pareto.log_ratio_rays`), or the seed's circle rays without a range."""
        from balancebench.pareto import circle_points, log_ratio_rays

        k = int(self.params["test_rays"])
        rng = self.params["ratio_range"]
        return circle_points(k) if rng is None else log_ratio_rays(k, rng)

    def sample_preferences(self, n: int, k: int, generator: Any = None):
        import torch

        if k != self.preference_dim:
            raise ValueError(f"cosmos is defined here for {self.preference_dim} losses, got k = {k}")
        return torch.as_tensor(np.stack([self.sample_preference(generator) for _ in range(n)]), dtype=torch.float64)

    def evaluation_preference(self, k: int):
        import torch

        return torch.as_tensor(self.params["eval_preference"], dtype=torch.float64)

    def conditioned_loss(self, losses, preferences):
        """Mean over rows of Eq. 5 for normalised losses (n, k) under preferences (n, k)."""
        import torch

        return torch.stack([cosmos_objective(l, r, self.params["penalty"])[0]
                            for l, r in zip(losses, preferences)]).mean()

    # -- the training contract ---------------------------------------------------------------
    def setup(self, context) -> None:
        if len(context.components) != K:
            raise ValueError(f"cosmos is defined here for {K} losses, got {tuple(context.components)}")
        refs = dict(getattr(context, "references", None) or {})
        self._refs = {c: refs.get(c, math.nan) for c in context.components}
        self._scale = self._scales(self._refs)

    def objective(self, losses: dict, context):
        """Eq. 5 at this batch's r; ``backward`` (ConditionedMethod's) puts its gradient into the model
        parameters' .grad in one backward pass."""
        import torch

        if self._preference is None:
            raise RuntimeError("cosmos.backward called before prepare_batch: the batch has no preference")
        if self._scale is None:
            self.setup(context)
        vector = loss_vector(losses, context.components)
        scale = torch.as_tensor(self._scale, dtype=vector.dtype, device=vector.device)
        objective, cosine = cosmos_objective(vector / scale, self._preference, self.params["penalty"])
        r = self._preference.detach().cpu()
        self.record_weights(context, r)  # coef_<loss>: the epoch mean of r
        self.record_weights(context, r, prefix="pref")
        self.record(context, cosine=float(cosine.detach()))
        return objective
