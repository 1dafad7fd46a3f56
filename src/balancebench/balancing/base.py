"""The balancing-method contract and the registry (the base class of each shape: :mod:`.shapes`).

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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ._params import Param, _int

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

    ``losses_at(indices=None, training=False)``: the named differentiable losses of the training items
    ``indices`` (None: the current step's mini-batch, ``batch_indices``) at the model's current parameters,
    for methods that evaluate more than the step's batch or a candidate step (GML2O's DSSMG sample and merit);
    it does not call ``prepare_batch``. ``n_train``: the number of training items. Both are set by the trainer
    (None / 0 where a caller has no data, e.g. analytic tests).
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
    losses_at: Any = None
    n_train: int = 0
    batch_indices: Any = None


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
    ``preference_dim`` (> 0: the model takes a preference vector of this length),
    ``evaluates_other_items`` (True: the method evaluates losses of training items outside the step's batch and
    at candidate weights, through ``TrainContext.losses_at``) and ``requires`` (optional modules;
    :func:`missing_requirements`). Instance attributes:
    ``name``, ``kind``, ``update_unit``, ``update_every``, ``backward_passes`` (declared
    backward passes per step), ``min_history`` and ``params`` (the validated values).

    Logging helper: :meth:`record` accumulates per-step values (e.g. the applied weights
    ``coef_<loss>``) and :meth:`log_values` returns their mean over the current epoch.
    """

    name: ClassVar[str] = "<unregistered>"
    kind: ClassVar[str] = "value"
    params: ClassVar[dict[str, Param]] = {}
    preference_dim: ClassVar[int] = 0
    evaluates_other_items: ClassVar[bool] = False
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
