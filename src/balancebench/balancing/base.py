"""The balancing-method contract, the registry and the base class of each shape.

Every method, whatever its shape, is a :class:`BalancingMethod` that owns its update.
The trainer calls, per run::

    method.setup(context)                                   # once: own parameters, state
    opt = method.make_optimizer(context.model_params, settings)   # Adam by default, None if the method steps itself
    # per step
    method.prepare_batch(graph, context, training=True)     # e.g. a preference vector in graph.extras
    losses = {name: L_name for name in task.loss_names}     # differentiable scalars
    method.backward(losses, context)                        # fills .grad of model_params (+ own params)
    method.step(context)                                    # default: context.optimizer.step()
    # per epoch
    row.update(method.log_values())                         # coef_<loss> (+ extras)
    method.end_epoch(train_means, context)                  # value methods update their coefficients

and never branches on ``method.kind``, which is descriptive only. Shapes (``kind``):

``value``        coefficients from the history of losses (:class:`ValueMethod`; pure ``coefficients(history)``)
``learned``      own ``nn.Parameter`` s trained beside the model (:class:`LearnedMethod`)
``gradient``     per-loss gradients -> one direction (:class:`GradientMethod`; pure ``combine(grads, losses)``)
``conditioned``  a preference vector fed to the model each batch (:class:`ConditionedMethod`)
``optimizer``    owns the parameter update itself (:class:`OptimizerMethod`)
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ._params import VALUE_PARAMS, Param, _int, _int_at_least

KINDS = ("value", "learned", "gradient", "conditioned", "optimizer")


# --------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------

_REGISTRY: dict[str, type[BalancingMethod]] = {}


def register(name: str) -> Callable[[type[BalancingMethod]], type[BalancingMethod]]:
    """Class decorator: register a :class:`BalancingMethod` subclass under ``name``.

    The name becomes ``cls.name``; registering a taken name raises ``ValueError``.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"a method name must be an identifier string, got {name!r}")

    def deco(cls: type[BalancingMethod]) -> type[BalancingMethod]:
        if name in _REGISTRY:
            raise ValueError(f"balancing method {name!r} is already registered ({_REGISTRY[name].__qualname__})")
        if not (isinstance(cls, type) and issubclass(cls, BalancingMethod)):
            raise TypeError(f"@register({name!r}) needs a BalancingMethod subclass, got {cls!r}")
        if cls.kind not in KINDS:
            raise ValueError(f"method {name!r} declares kind {cls.kind!r}; expected one of {KINDS}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def unregister(name: str) -> None:
    """Remove a registered method (for tests and interactive experiments)."""
    _REGISTRY.pop(name, None)


def available_methods() -> list[str]:
    """Names of all registered methods, sorted."""
    return sorted(_REGISTRY)


def _lookup(name: str) -> type[BalancingMethod]:
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown balancing method {name!r}; available methods: {', '.join(available_methods())}"
        ) from None


def default_params(name: str) -> dict[str, Any]:
    """The parameters of method ``name`` with their defaults (what a config schema mirrors)."""
    return {p: spec.default for p, spec in _lookup(name).params.items()}


def get_method(name: str, **params: Any) -> BalancingMethod:
    """Build the registered method ``name`` with ``params``.

    Raises ``ValueError`` naming an unknown method (listing the available ones), an
    unknown parameter (listing the valid ones) or an invalid parameter value.
    """
    return _lookup(name)(**params)


def missing_requirements(name: str) -> list[str]:
    """Optional Python modules method ``name`` needs and that are not installed (empty: it can run)."""
    return [m for m in _lookup(name).requires if importlib.util.find_spec(m) is None]


# --------------------------------------------------------------------------------------
# Training context
# --------------------------------------------------------------------------------------


@dataclass
class TrainContext:
    """What the trainer hands a method (one per run; ``optimizer``, ``epoch``, ``step`` are updated by it).

    ``references``: fixed loss references from the task (:meth:`balancebench.tasks.base.Task.loss_references`,
    e.g. the variances of the targets over the training data, in the units of each loss). ``generator``: a CPU generator seeded from
    the run seed, the method's only RNG (the trainer checkpoints its state). ``epoch`` is
    1-based during an epoch; ``step`` counts optimisation steps of the run.
    """

    model: Any
    model_params: list
    components: tuple[str, ...]
    references: dict[str, float]
    generator: Any
    settings: Any
    optimizer: Any = None
    epoch: int = 0
    step: int = 0


# --------------------------------------------------------------------------------------
# Base class
# --------------------------------------------------------------------------------------


def _to_numpy_history(history: Any) -> np.ndarray:
    """(t, k) float64 numpy copy of ``history`` (numpy, nested lists or a torch tensor, detached)."""
    if hasattr(history, "detach") and hasattr(history, "cpu"):  # torch.Tensor, never differentiated
        history = history.detach().cpu().double().numpy()
    h = np.array(history, dtype=np.float64, copy=True)
    if h.ndim != 2 or h.shape[1] < 1:
        raise ValueError(
            f"history must have shape (t, k) with k >= 1 components, oldest row first; got shape {h.shape} "
            "(an empty history is np.empty((0, k)))"
        )
    return h


def _check_k(k: Any) -> int:
    k = _int(k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return k


def loss_vector(losses: dict, components) -> Any:
    """torch (k,) stack of ``losses`` in the order of ``components``; names a missing component."""
    import torch

    missing = [c for c in components if c not in losses]
    if missing:
        raise KeyError(f"losses lack the component(s) {missing}; got {sorted(losses)}")
    return torch.stack([losses[c] for c in components])


def adam(params: list, lr: float):
    """torch's Adam in its fused form (one kernel over all parameters: ~0.15 ms a step for the demo model against
    ~0.6 ms for the per-parameter loop on one CPU thread; same update, deterministic), where torch offers it (CPU
    and CUDA floating-point parameters); the per-parameter loop elsewhere."""
    import torch

    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.Adam(params, lr=lr, fused=fused or None)


def backward_via_objective(self, losses: dict, context: TrainContext) -> None:
    """``backward`` of a method whose update direction is the gradient of one scalar, :meth:`objective`: one
    backward pass. A method assigns ``backward = backward_via_objective`` and implements ``objective``;
    balancebench.multiseed then sums the seeds' objectives (disjoint parameters: each seed gets exactly its
    own gradient) and runs a single backward pass through the batched graph for all of them."""
    self.objective(losses, context).backward()


class BalancingMethod:
    """Common interface of every balancing method (see the module docstring for the call order).

    Class attributes declared by subclasses: ``kind``, ``params`` (name -> :class:`Param`),
    ``preference_dim`` (> 0: the model takes a preference vector of this length) and
    ``requires`` (optional modules; :func:`missing_requirements`). Instance attributes:
    ``name``, ``kind``, ``update_unit``, ``update_every``, ``backward_passes`` (declared
    backward passes per step), ``min_history`` and ``params`` (the validated values).

    Logging helper: :meth:`record` accumulates per-step values (e.g. the applied weights
    ``coef_<loss>``) and :meth:`log_values` returns their mean over the current epoch.
    """

    name: ClassVar[str] = "<unregistered>"
    kind: ClassVar[str] = "value"
    params: ClassVar[dict[str, Param]] = {}
    preference_dim: ClassVar[int] = 0
    requires: ClassVar[tuple[str, ...]] = ()
    #: state format; bump when state_dict changes incompatibly.
    state_version: ClassVar[int] = 1

    def __init__(self, **params: Any) -> None:
        spec = type(self).params
        unknown = sorted(set(params) - set(spec))
        if unknown:
            valid = ", ".join(spec) or "(none)"
            raise ValueError(
                f"unknown parameter {unknown[0]!r} for balancing method {self.name!r}; valid parameters: {valid}"
            )
        values: dict[str, Any] = {}
        for key, p in spec.items():
            raw = params.get(key, p.default)
            try:
                values[key] = p.check(raw)
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"invalid value for parameter {key!r} of balancing method {self.name!r}: {exc}"
                ) from None
        self.params: dict[str, Any] = values
        self._log_epoch: int | None = None
        self._log_sums: dict[str, float] = {}
        self._log_counts: dict[str, int] = {}
        self._configure()

    # -- hooks for subclasses ---------------------------------------------------------
    def _configure(self) -> None:
        """Derive attributes from ``self.params`` (called after validation and after load_state_dict).

        Must not create tensors made in :meth:`setup` (an optimizer may hold them).
        """
        self.update_unit: str = self.params.get("update_unit", "step")
        self.update_every: int = self.params.get("update_every", 1)
        self.backward_passes: int = 1
        self.min_history: int = 0

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    # -- training contract --------------------------------------------------------------
    def setup(self, context: TrainContext) -> None:
        """Once per run, before the optimizer is built: create own parameters and state."""

    def parameters(self) -> list:
        """The method's own trainable ``nn.Parameter`` s (the trainer zeroes their grads every step)."""
        return []

    def make_optimizer(self, model_params, settings):
        """Adam over the model's parameters and :meth:`parameters`, lr ``settings.learning_rate``."""
        return adam(list(model_params) + list(self.parameters()), lr=settings.learning_rate)

    def prepare_batch(self, graph: Any, context: TrainContext, training: bool) -> None:
        """Called before the losses of every batch (training and evaluation); default: nothing."""

    def backward(self, losses: dict, context: TrainContext) -> None:
        """Fill ``.grad`` of ``context.model_params`` (and own parameters) from ``losses``; no optimizer step."""
        raise NotImplementedError(f"{type(self).__name__} does not implement backward()")

    def objective(self, losses: dict, context: TrainContext):
        """The scalar whose gradient is this step's update (the step's bookkeeping done); implemented by the
        methods whose ``backward`` is :func:`backward_via_objective` (:meth:`single_objective`)."""
        raise NotImplementedError(f"{type(self).__name__}.backward is not the gradient of one objective")

    @classmethod
    def single_objective(cls) -> bool:
        """True when ``backward`` is the gradient of :meth:`objective` (one backward pass of one scalar)."""
        return cls.backward is backward_via_objective

    def step(self, context: TrainContext) -> None:
        """Apply the update: default ``context.optimizer.step()``."""
        context.optimizer.step()

    def end_epoch(self, train_means: dict[str, float], context: TrainContext) -> None:
        """Once per completed epoch with the epoch's mean raw training losses; default: nothing."""

    def record(self, context: TrainContext, **values: float) -> None:
        """Accumulate per-step log values for the epoch mean reported by :meth:`log_values`."""
        if self._log_epoch != context.epoch:
            self._log_epoch, self._log_sums, self._log_counts = context.epoch, {}, {}
        for key, v in values.items():
            self._log_sums[key] = self._log_sums.get(key, 0.0) + float(v)
            self._log_counts[key] = self._log_counts.get(key, 0) + 1

    def record_weights(self, context: TrainContext, weights: Any, prefix: str = "coef") -> None:
        """:meth:`record` ``{prefix}_{component}`` for a (k,) vector of weights."""
        w = np.asarray(weights.detach().cpu().double() if hasattr(weights, "detach") else weights, dtype=np.float64)
        self.record(context, **{f"{prefix}_{c}": float(x) for c, x in zip(context.components, w.reshape(-1))})

    def log_values(self) -> dict[str, float]:
        """Epoch means of the recorded values (``coef_<loss>`` and any extras); the trainer writes NaN for a
        ``coef_<loss>`` a method did not record."""
        return {k: self._log_sums[k] / self._log_counts[k] for k in self._log_sums}

    # -- pure interface kept from the first version ---------------------------------------
    def initial_coefficients(self, k: int) -> np.ndarray:
        """Coefficients used while the history is shorter than ``min_history`` (default: all ones)."""
        return np.ones(_check_k(k), dtype=np.float64)

    def coefficients(self, history: Any) -> np.ndarray:
        """Shapes other than ``value``: ones (the weights of the raw components before the method acts)."""
        return self.initial_coefficients(_to_numpy_history(history).shape[1])

    def state_dict(self) -> dict[str, Any]:
        """Method name, parameters and the state needed to resume bit for bit (JSON-able for value methods;
        learned methods hold torch tensors, which ``torch.save`` keeps)."""
        return {
            "method": self.name,
            "version": self.state_version,
            "params": {k: (list(v) if isinstance(v, list) else v) for k, v in self.params.items()},
            "state": self._extra_state(),
            "log": {"epoch": self._log_epoch, "sums": dict(self._log_sums), "counts": dict(self._log_counts)},
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (parameters included, re-validated) into this object."""
        if d.get("method") != self.name:
            raise ValueError(f"state_dict is for method {d.get('method')!r}, not {self.name!r}")
        if d.get("version") != self.state_version:
            raise ValueError(f"state_dict version {d.get('version')!r} != {self.state_version} for {self.name!r}")
        fresh = type(self)(**d.get("params", {}))
        self.params = fresh.params
        self._configure()
        self._load_extra_state(d.get("state", {}))
        log = d.get("log") or {}
        self._log_epoch = log.get("epoch")
        self._log_sums, self._log_counts = dict(log.get("sums", {})), dict(log.get("counts", {}))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


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
        "n_components": Param(2, _int_at_least(1), "k, the number of loss components (and backward passes)"),
    }

    def _configure(self) -> None:
        super()._configure()
        self.update_unit = "step"
        self.update_every = 1
        self.backward_passes = self.params["n_components"]
        self.min_history = 0
        self.last_weights: np.ndarray | None = None

    def setup(self, context: TrainContext) -> None:
        if len(context.components) != self.backward_passes:
            raise ValueError(f"{self.name}: n_components={self.backward_passes} but the loss has "
                             f"{len(context.components)} components {context.components}")

    def _check_grads(self, grads: Any):
        import torch

        if not isinstance(grads, torch.Tensor) or grads.ndim != 2:
            raise ValueError(f"{self.name}: grads must be a torch.Tensor of shape (k, P)")
        if grads.shape[0] != self.backward_passes:
            raise ValueError(
                f"{self.name}: got {grads.shape[0]} gradient rows but n_components={self.backward_passes}; "
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
