"""The base class of each shape of balancing method (value, learned, gradient, conditioned, optimizer) on
the contract of :mod:`.base`."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from ._params import VALUE_PARAMS, Param, _int_at_least
from .base import BalancingMethod, TrainContext, _to_numpy_history, backward_via_objective, loss_vector

_positive_count = _int_at_least(1)


def _optional_count(v: Any) -> int | None:
    return None if v is None else _positive_count(v)

# --------------------------------------------------------------------------------------
# value: coefficients from the loss history
# --------------------------------------------------------------------------------------


class ValueMethod(BalancingMethod):
    """A method whose coefficients depend only on the loss history.

    Pure part: subclasses implement ``_formula(h)`` for a float64 history ``h`` of shape
    (t, k) with ``t >= min_history``. :meth:`coefficients` handles conversion (torch
    tensors are detached, never differentiated), the short-history rule, the finiteness
    check of the rows the formula reads and a final guarantee that the result is finite.

    Training part (shared by every value method): the method keeps the history (one row
    per ``update_unit``: the step's losses, or the epoch's mean training losses) and the
    current coefficients lambda, recomputed whenever the history length is a multiple of
    ``update_every``. ``loss_scale``: ``"raw"`` (default) feeds and combines the raw
    losses; ``"target_variance"`` divides every loss by ``context.references`` first
    (unit-free: L~_i = L_i / Var_i), so the step minimises ``sum_i lambda_i L_i / Var_i``.
    Logged: ``coef_<c>`` = lambda_i / s_i, the weight applied to the raw loss (s_i = 1 or
    Var_i), and with ``target_variance`` also ``lambda_<c>`` = lambda_i.
    """

    kind: ClassVar[str] = "value"
    params: ClassVar[dict[str, Param]] = dict(VALUE_PARAMS)
    #: whether the formula needs non-negative losses (ratios, loss-weighted softmax)
    requires_nonnegative: ClassVar[bool] = False

    def _configure(self) -> None:
        super()._configure()
        self.update_unit = self.params["update_unit"]
        self.update_every = self.params["update_every"]
        self.loss_scale = self.params.get("loss_scale", "raw")
        self.history: list[list[float]] = []
        self.current: np.ndarray | None = None
        refs = getattr(self, "_refs", None)  # kept from setup() when load_state_dict reconfigures
        self._scale: np.ndarray | None = None if refs is None else self._scale_from(refs)

    def _window(self) -> int:
        """How many of the newest rows the formula reads."""
        return self.min_history

    def coefficients(self, history: Any) -> np.ndarray:
        """Coefficients (k,) float64 for the next period from ``history`` (t, k), oldest row first.

        If ``t < min_history`` returns :meth:`initial_coefficients`. Raises ``ValueError`` if a
        row the formula reads is non-finite (a diverged run: stop training, do not re-weight)
        or, for methods with ``requires_nonnegative``, negative.
        """
        h = _to_numpy_history(history)
        t, k = h.shape
        if t < self.min_history:
            return self.initial_coefficients(k)
        window = h[t - self._window():] if self._window() > 0 else h[:0]
        if not np.all(np.isfinite(window)):
            raise ValueError(f"{self.name}: the loss history holds non-finite values in the rows used: {window!r}")
        if self.requires_nonnegative and np.any(window < 0):
            raise ValueError(f"{self.name}: losses must be non-negative, got {window!r}")
        lam = np.asarray(self._formula(h), dtype=np.float64)
        if lam.shape != (k,) or not np.all(np.isfinite(lam)):  # a bug in a formula, never silently passed on
            raise RuntimeError(f"{self.name}: formula returned {lam!r} for history {window!r}")
        return lam

    def _formula(self, h: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # -- training ------------------------------------------------------------------------
    def _scale_from(self, refs: dict) -> np.ndarray:
        """1 / s_i: ones for ``raw``, 1 / Var_i for ``target_variance``."""
        components, references = refs
        if self.loss_scale == "raw":
            return np.ones(len(components))
        ref = np.array([references.get(c, math.nan) for c in components], dtype=np.float64)
        if not np.all(np.isfinite(ref) & (ref > 0)):
            raise ValueError(f"{self.name}: loss_scale 'target_variance' needs positive finite references "
                             f"for {components}, got {references}")
        return 1.0 / ref

    def setup(self, context: TrainContext) -> None:
        k = len(context.components)
        self._refs = (tuple(context.components), dict(context.references))
        self._scale = self._scale_from(self._refs)
        if self.current is None:  # not restored from a state_dict
            self.current = np.asarray(self.initial_coefficients(k), dtype=np.float64)

    def _push(self, row: np.ndarray) -> None:
        self.history.append([float(x) for x in row])
        if len(self.history) % self.update_every == 0:
            self.current = np.asarray(self.coefficients(np.asarray(self.history)), dtype=np.float64)

    backward = backward_via_objective

    def objective(self, losses: dict, context: TrainContext):
        """sum_k c_k L_k with this step's coefficients c (data, never differentiated)."""
        vec = loss_vector(losses, context.components)
        applied = self.current * self._scale  # weights of the raw losses: data, never differentiated
        import torch

        total = (torch.as_tensor(applied, dtype=vec.dtype, device=vec.device) * vec).sum()
        self.record_weights(context, applied)
        if self.loss_scale != "raw":
            self.record_weights(context, self.current, prefix="lambda")
        if self.update_unit == "step":
            self._push(vec.detach().double().cpu().numpy() * self._scale)
        return total

    def end_epoch(self, train_means: dict[str, float], context: TrainContext) -> None:
        if self.update_unit == "epoch":
            self._push(np.array([train_means[c] for c in context.components], dtype=np.float64) * self._scale)

    def log_values(self) -> dict[str, float]:
        out = super().log_values()
        refs = getattr(self, "_refs", None)
        if refs is not None and self.current is not None and self._scale is not None:
            components = refs[0]
            if math.isnan(out.get(f"coef_{components[0]}", math.nan)):
                out.update({f"coef_{c}": float(x) for c, x in zip(components, self.current * self._scale)})
        return out

    def _extra_state(self) -> dict[str, Any]:
        return {"history": [list(r) for r in self.history],
                "current": None if self.current is None else [float(x) for x in self.current]}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.history = [list(r) for r in state.get("history", [])]
        cur = state.get("current")
        self.current = None if cur is None else np.asarray(cur, dtype=np.float64)


# --------------------------------------------------------------------------------------
# learned: own parameters trained with the model
# --------------------------------------------------------------------------------------


class LearnedMethod(BalancingMethod):
    """A method with its own trainable weights (``nn.Parameter`` s created in :meth:`setup`).

    By default they join the model's Adam (:meth:`BalancingMethod.make_optimizer`); a
    method with its own weight optimizer overrides :meth:`make_optimizer` and :meth:`step`
    and keeps that optimizer's state in :meth:`state_dict`. Per step: 1 backward pass
    unless the method declares more.
    """

    kind: ClassVar[str] = "learned"

    def _configure(self) -> None:
        super()._configure()
        self.update_unit = "step"
        self.update_every = 1


# --------------------------------------------------------------------------------------
# gradient: per-loss gradients -> one direction
# --------------------------------------------------------------------------------------


def per_loss_gradients(vec, params) -> Any:
    """(k, P) matrix of dL_i/dtheta over ``params`` (flattened, concatenated); k backward passes.

    Parameters a loss does not reach (e.g. another loss's output head or shift) get zeros.
    """
    import torch

    rows = []
    for i in range(len(vec)):
        g = torch.autograd.grad(vec[i], params, retain_graph=i < len(vec) - 1, allow_unused=True)
        rows.append(torch.cat([(gi if gi is not None else torch.zeros_like(p)).reshape(-1)
                               for gi, p in zip(g, params)]))
    return torch.stack(rows)


def write_direction(direction, params) -> None:
    """Write the flat (P,) ``direction`` into ``.grad`` of ``params``."""
    offset = 0
    for p in params:
        p.grad = direction[offset:offset + p.numel()].view_as(p).to(p.dtype)
        offset += p.numel()


class GradientMethod(BalancingMethod):
    """A method that maps the per-component gradients of the shared parameters to one update direction.

    :meth:`backward` computes ``grads`` (k, P), row i = dL_i/dtheta of the shared
    parameters (``n_components`` = k backward passes per step), calls :meth:`combine`
    and writes the returned (P,) vector into the parameters' ``.grad``; the shared Adam
    then steps. :meth:`coefficients` returns ones; ``last_weights`` holds the effective
    weights w of the last direction ``d = sum_i w_i g_i`` (None before the first call),
    logged as ``coef_<c>`` (epoch mean).
    """

    kind: ClassVar[str] = "gradient"
    params: ClassVar[dict[str, Param]] = {
        "n_components": Param(None, _optional_count, "k, the number of loss components (and backward passes); "
                              "null: the task's number of losses, set at setup"),
    }

    def _configure(self) -> None:
        super()._configure()
        self.update_unit = "step"
        self.update_every = 1
        # k backward passes per step: as configured, else 2 until setup learns the task's k
        self.backward_passes = self.params["n_components"] or 2
        self.min_history = 0
        self.last_weights: np.ndarray | None = None

    def setup(self, context: TrainContext) -> None:
        configured = self.params["n_components"]
        if configured is not None and len(context.components) != configured:
            raise ValueError(f"{self.name}: n_components={configured} but the loss has "
                             f"{len(context.components)} components {context.components}")
        self.backward_passes = len(context.components)

    def _check_grads(self, grads: Any):
        import torch

        if not isinstance(grads, torch.Tensor) or grads.ndim != 2:
            raise ValueError(f"{self.name}: grads must be a torch.Tensor of shape (k, P)")
        configured = self.params["n_components"]
        if configured is not None and grads.shape[0] != configured:
            raise ValueError(
                f"{self.name}: got {grads.shape[0]} gradient rows but n_components={configured}; "
                "pass n_components=k to get_method"
            )
        return grads.detach()

    def combine(self, grads: Any, losses: Any = None):
        """Update direction (P,) (same dtype and device as ``grads``, no autograd graph)."""
        raise NotImplementedError

    def backward(self, losses: dict, context: TrainContext) -> None:
        vec = loss_vector(losses, context.components)
        grads = per_loss_gradients(vec, context.model_params)
        write_direction(self.combine(grads, vec.detach()), context.model_params)
        if self.last_weights is not None:
            self.record_weights(context, self.last_weights)


# --------------------------------------------------------------------------------------
# conditioned: a preference vector fed to the model
# --------------------------------------------------------------------------------------


class ConditionedMethod(BalancingMethod):
    """A preference-conditioned model (e.g. COSMOS, Ruchte & Grabocka 2021; seed 002).

    The model takes a preference vector r on the simplex (``preference_dim`` = k > 0 makes
    the trainer build it so). Default wiring: :meth:`prepare_batch` draws one r per batch
    with :meth:`sample_preferences` from ``context.generator`` when training (the
    :meth:`evaluation_preference` otherwise) and writes it to ``graph.extras["preference"]``;
    :meth:`backward` minimises :meth:`conditioned_loss` of the losses under that r.
    Subclasses provide ``sample_preferences`` and ``conditioned_loss``.
    """

    kind: ClassVar[str] = "conditioned"

    def _configure(self) -> None:
        super()._configure()
        self.update_unit = "step"
        self.update_every = 1
        self._preference = None

    def sample_preferences(self, n: int, k: int, generator: Any = None):
        """(n, k) preference vectors on the simplex (torch tensor), drawn from ``generator``."""
        raise NotImplementedError

    def conditioned_loss(self, losses: Any, preferences: Any):
        """Scalar training loss (torch, differentiable) from the raw losses (n, k) under ``preferences`` (n, k)."""
        raise NotImplementedError

    def evaluation_preference(self, k: int):
        """The fixed r used when not training (default: 1/k each)."""
        import torch

        return torch.full((k,), 1.0 / k, dtype=torch.float64)

    def prepare_batch(self, graph: Any, context: TrainContext, training: bool) -> None:
        k = len(context.components)
        r = self.sample_preferences(1, k, context.generator)[0] if training else self.evaluation_preference(k)
        positions = getattr(graph, "positions", None)
        if positions is not None:
            r = r.to(device=positions.device)
        self._preference = r
        graph.extras["preference"] = r

    backward = backward_via_objective

    def objective(self, losses: dict, context: TrainContext):
        vec = loss_vector(losses, context.components)
        r = self._preference.to(dtype=vec.dtype, device=vec.device)
        self.record_weights(context, r)
        self.record_weights(context, r, prefix="pref")
        return self.conditioned_loss(vec[None], r[None])


# --------------------------------------------------------------------------------------
# optimizer: the method owns the parameter update
# --------------------------------------------------------------------------------------


class OptimizerMethod(BalancingMethod):
    """A method that applies the parameter update itself (e.g. ML2O / GML2O, seed 003).

    :meth:`make_optimizer` returns None (the trainer then has no shared optimizer and no
    learning-rate scheduler; ``context.optimizer`` is None); :meth:`backward` computes what
    the method needs (e.g. per-loss gradients with :func:`per_loss_gradients`) and
    :meth:`step` changes ``context.model_params`` in place under ``torch.no_grad()``.
    """

    kind: ClassVar[str] = "optimizer"

    def _configure(self) -> None:
        super()._configure()
        self.update_unit = "step"
        self.update_every = 1

    def make_optimizer(self, model_params, settings):
        return None

    def step(self, context: TrainContext) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement step()")
