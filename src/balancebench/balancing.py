"""Loss-balancing methods behind one registry (seed 000 Sec. 2.4, Eq. 4-8, and later methods).

A model is trained on a k-component loss ``L = sum_i lambda_i L_i`` (here component 0 is
the force MSE, component 1 the squared energy error). A *balancing method* decides the
coefficients ``lambda_i`` or, for gradient-based methods, the update direction of the
shared parameters. Every method, from the five of the paper to later ones, is a
:class:`BalancingMethod` registered under a name, built by :func:`get_method`::

    from balancebench.balancing import get_method
    m = get_method("softadapt", beta=0.1, order=1)
    lam = m.coefficients(history)      # history (t, k), oldest first, raw per-period mean losses

Three kinds of method share the interface (``m.kind``):

``"value"``
    needs only the history of loss values. :meth:`BalancingMethod.coefficients` is a pure
    function of the history (plus the parameters): it returns a plain float64 numpy array,
    so the coefficients can never carry autograd gradient (they are data, REFERENCES.md
    sec. 2). Methods: ``constant`` (Eq. 4), ``ratio`` (Eq. 5), ``softadapt`` (Eq. 6),
    ``softadapt_weighted`` (Eq. 7), ``softadapt_normalized`` (Eq. 8), ``dwa``.
``"gradient"``
    needs the per-component gradients of the shared parameters (k backward passes per
    step) and returns the update direction from :meth:`GradientMethod.combine`, the
    "aggregator" of torchjd (matrix of gradient rows -> one vector). Methods: ``mgda``,
    ``pcgrad``.
``"conditioned"``
    a preference-conditioned model (e.g. COSMOS, seed 002): the hooks are declared in
    :class:`ConditionedMethod`; no method of this kind is registered yet.

Cadence: the training loop calls a value method every ``update_every`` ``update_unit``
(``"epoch"`` or ``"step"``); each history row is a mean raw loss over one period chosen by
the loop (one unit, or one whole update period); rates and ratios are per row.
Gradient methods act at every optimisation step.

Adding a method (see ``docs/balancing.md``)::

    @register("my_method")
    class MyMethod(ValueMethod):
        params = {**ValueMethod.params, "alpha": Param(1.0, float, "what alpha does")}
        def _formula(self, h): ...   # h: (t, k) float64, t >= min_history, finite

The module imports numpy only; torch is imported where a torch tensor is handled
(gradient methods, torch histories).
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, ClassVar

import numpy as np

__all__ = [
    "BalancingMethod",
    "ValueMethod",
    "GradientMethod",
    "ConditionedMethod",
    "Param",
    "register",
    "unregister",
    "get_method",
    "available_methods",
    "default_params",
    "backward_difference_stencil",
    "min_norm_weights",
]

_FLOAT_MAX = float(np.finfo(np.float64).max)
_KINDS = ("value", "gradient", "conditioned")
_UPDATE_UNITS = ("epoch", "step")


# --------------------------------------------------------------------------------------
# Parameter declarations and validators
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """One hyperparameter of a method: its default, a validator and a one-line description.

    ``check(value)`` returns the normalised (JSON-serialisable) value or raises
    ``ValueError``/``TypeError`` with a message saying what is expected.
    """

    default: Any
    check: Callable[[Any], Any]
    doc: str = ""


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _finite_float(v: Any) -> float:
    if not _is_number(v) or not math.isfinite(float(v)):
        raise ValueError(f"expected a finite number, got {v!r}")
    return float(v)


def _positive_float(v: Any) -> float:
    v = _finite_float(v)
    if v <= 0:
        raise ValueError(f"expected a number > 0, got {v!r}")
    return v


def _fraction_float(v: Any) -> float:
    v = _finite_float(v)
    if not 0 < v < 1:
        raise ValueError(f"expected a number in (0, 1), got {v!r}")
    return v


def _int(v: Any) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise ValueError(f"expected an integer, got {v!r}")
    return int(v)


def _int_at_least(lo: int, hi: int | None = None) -> Callable[[Any], int]:
    def check(v: Any) -> int:
        v = _int(v)
        if v < lo or (hi is not None and v > hi):
            rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
            raise ValueError(f"expected an integer {rng}, got {v!r}")
        return v

    return check


def _choice(*options: str) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if v not in options:
            raise ValueError(f"expected one of {', '.join(map(repr, options))}, got {v!r}")
        return v

    return check


def _weights(v: Any) -> list[float]:
    if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__"):
        raise ValueError(f"expected a list of non-negative numbers, got {v!r}")
    out = [_finite_float(x) for x in v]
    if not out or any(x < 0 for x in out) or not any(x > 0 for x in out):
        raise ValueError(f"expected a non-empty list of non-negative numbers with at least one > 0, got {v!r}")
    return out


_UPDATE_PARAMS = {
    "update_unit": Param("epoch", _choice(*_UPDATE_UNITS), "when the training loop calls coefficients()"),
    "update_every": Param(1, _int_at_least(1), "call every this many update units"),
}


# --------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------

_REGISTRY: dict[str, type["BalancingMethod"]] = {}


def register(name: str) -> Callable[[type["BalancingMethod"]], type["BalancingMethod"]]:
    """Class decorator: register a :class:`BalancingMethod` subclass under ``name``.

    The name becomes ``cls.name``; registering a taken name raises ``ValueError``.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"a method name must be an identifier string, got {name!r}")

    def deco(cls: type["BalancingMethod"]) -> type["BalancingMethod"]:
        if name in _REGISTRY:
            raise ValueError(f"balancing method {name!r} is already registered ({_REGISTRY[name].__qualname__})")
        if not (isinstance(cls, type) and issubclass(cls, BalancingMethod)):
            raise TypeError(f"@register({name!r}) needs a BalancingMethod subclass, got {cls!r}")
        if cls.kind not in _KINDS:
            raise ValueError(f"method {name!r} declares kind {cls.kind!r}; expected one of {_KINDS}")
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


def _lookup(name: str) -> type["BalancingMethod"]:
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown balancing method {name!r}; available methods: {', '.join(available_methods())}"
        ) from None


def default_params(name: str) -> dict[str, Any]:
    """The parameters of method ``name`` with their defaults (what a config schema mirrors)."""
    return {p: spec.default for p, spec in _lookup(name).params.items()}


def get_method(name: str, **params: Any) -> "BalancingMethod":
    """Build the registered method ``name`` with ``params``.

    Raises ``ValueError`` naming an unknown method (listing the available ones), an
    unknown parameter (listing the valid ones) or an invalid parameter value.
    """
    return _lookup(name)(**params)


# --------------------------------------------------------------------------------------
# Base classes
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


class BalancingMethod:
    """Common interface of every balancing method.

    Class attributes declared by subclasses: ``kind`` (``"value"``, ``"gradient"`` or
    ``"conditioned"``) and ``params`` (name -> :class:`Param`). Instance attributes:
    ``name``, ``kind``, ``update_unit``, ``update_every``, ``backward_passes``,
    ``min_history`` and ``params`` (the validated parameter values).
    """

    name: ClassVar[str] = "<unregistered>"
    kind: ClassVar[str] = "value"
    params: ClassVar[dict[str, Param]] = {}
    #: JSON state format; bump when state_dict changes incompatibly.
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
        self._configure()

    # -- hooks for subclasses ---------------------------------------------------------
    def _configure(self) -> None:
        """Derive attributes from ``self.params`` (called after validation and after load_state_dict)."""
        self.update_unit: str = self.params.get("update_unit", "step")
        self.update_every: int = self.params.get("update_every", 1)
        self.backward_passes: int = 1
        self.min_history: int = 0

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    # -- public interface -------------------------------------------------------------
    def initial_coefficients(self, k: int) -> np.ndarray:
        """Coefficients used while the history is shorter than ``min_history`` (default: all ones)."""
        return np.ones(_check_k(k), dtype=np.float64)

    def coefficients(self, history: Any) -> np.ndarray:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state: method name, parameters and any internal state (e.g. RNG)."""
        return {
            "method": self.name,
            "version": self.state_version,
            "params": {k: (list(v) if isinstance(v, list) else v) for k, v in self.params.items()},
            "state": self._extra_state(),
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

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


def _check_k(k: Any) -> int:
    k = _int(k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return k


class ValueMethod(BalancingMethod):
    """A method whose coefficients depend only on the loss history.

    Subclasses implement ``_formula(h)`` for a float64 history ``h`` of shape (t, k)
    with ``t >= min_history``. :meth:`coefficients` handles conversion (torch tensors are
    detached, never differentiated), the short-history rule, the finiteness check of the
    rows the formula reads and a final guarantee that the result is finite.
    """

    kind: ClassVar[str] = "value"
    params: ClassVar[dict[str, Param]] = dict(_UPDATE_PARAMS)
    #: whether the formula needs non-negative losses (ratios, loss-weighted softmax)
    requires_nonnegative: ClassVar[bool] = False

    def _configure(self) -> None:
        super()._configure()
        self.update_unit = self.params["update_unit"]
        self.update_every = self.params["update_every"]

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


class GradientMethod(BalancingMethod):
    """A method that maps the per-component gradients of the shared parameters to one update direction.

    The training loop computes ``grads`` (k, P), row i = dL_i/dtheta of the shared
    parameters (``n_components`` = k backward passes per step), calls
    :meth:`combine` and writes the returned (P,) vector into the parameters' ``.grad``
    before the optimiser step. :meth:`coefficients` returns ones (the logged total loss is
    the plain sum of the raw components); ``last_weights`` holds the effective weights w of
    the last direction ``d = sum_i w_i g_i`` for logging (None before the first call).
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

    def coefficients(self, history: Any) -> np.ndarray:
        return self.initial_coefficients(_to_numpy_history(history).shape[1])

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


class ConditionedMethod(BalancingMethod):
    """Hooks for a preference-conditioned model (e.g. COSMOS, Ruchte & Grabocka 2021; seed 002).

    Such a method trains one model that takes a preference vector r on the simplex as an
    extra input. Per step the training loop draws preferences with
    :meth:`sample_preferences`, feeds them to the model and minimises
    :meth:`conditioned_loss`. Not implemented yet: subclasses provide both hooks.
    """

    kind: ClassVar[str] = "conditioned"

    def _configure(self) -> None:
        super()._configure()
        self.update_unit = "step"
        self.update_every = 1

    def coefficients(self, history: Any) -> np.ndarray:
        return self.initial_coefficients(_to_numpy_history(history).shape[1])

    def sample_preferences(self, n: int, k: int, generator: Any = None):
        """(n, k) preference vectors on the simplex (torch tensor), drawn from ``generator``."""
        raise NotImplementedError

    def conditioned_loss(self, losses: Any, preferences: Any):
        """Scalar training loss (torch, differentiable) from the raw losses (n, k) under ``preferences`` (n, k)."""
        raise NotImplementedError


# --------------------------------------------------------------------------------------
# Numerics shared by the value methods
# --------------------------------------------------------------------------------------


def _stable_softmax(z: np.ndarray) -> np.ndarray:
    """softmax(z) with the max subtracted; z is clipped to the finite range first (no NaN from inf - inf).

    The sum is >= 1 (the largest term is exp(0)), so no epsilon is needed in the denominator
    (the softadapt package adds 1e-8; the difference is below 1e-8 relative).
    """
    z = np.clip(np.asarray(z, dtype=np.float64), -_FLOAT_MAX, _FLOAT_MAX)
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(z - z.max())
    return e / e.sum()


def _scaled(x: np.ndarray, factor: float) -> np.ndarray:
    """factor * x, saturating at +-float max instead of overflowing to inf."""
    with np.errstate(over="ignore", invalid="ignore"):
        y = factor * x
    return np.clip(np.nan_to_num(y, nan=0.0, posinf=_FLOAT_MAX, neginf=-_FLOAT_MAX), -_FLOAT_MAX, _FLOAT_MAX)


def _safe_ratio(num: np.ndarray, den: np.ndarray, cap: float) -> np.ndarray:
    """num / den for non-negative arrays with 0/0 -> 1, x/0 -> cap (x > 0), and every result capped at ``cap``."""
    num = np.asarray(num, dtype=np.float64)
    den = np.broadcast_to(np.asarray(den, dtype=np.float64), num.shape)
    out = np.empty_like(num)
    zero = den == 0
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        out[~zero] = num[~zero] / den[~zero]
    out[zero] = np.where(num[zero] == 0, 1.0, cap)
    return np.minimum(out, cap)


def backward_difference_stencil(order: int) -> tuple[float, ...]:
    """Coefficients c (oldest first, length order+1) of the backward difference
    ``s(t) = sum_j c_j L(t - order + j)`` that estimates dL/dt at the NEWEST point t with
    error O(h^order) (one history row = one unit of time).

    order 1: (-1, 1); order 2: (1/2, -2, 3/2); order 3: (-1/3, 3/2, -3, 11/6);
    order 4: (1/4, -4/3, 3, -4, 25/12). Exact for polynomials of degree <= order.
    (The softadapt package uses forward stencils, which estimate the slope at the
    OLDEST point of its window: a stale rate.) Solved exactly in rational arithmetic.
    """
    order = _int_at_least(1)(order)
    n = order + 1
    offsets = [Fraction(j - order) for j in range(n)]  # -order ... 0
    # Vandermonde system: sum_j c_j d_j^p = [p == 1], p = 0..order
    a = [[d**p for d in offsets] + [Fraction(int(p == 1))] for p in range(n)]
    for col in range(n):  # Gauss-Jordan, exact
        piv = next(r for r in range(col, n) if a[r][col] != 0)
        a[col], a[piv] = a[piv], a[col]
        a[col] = [x / a[col][col] for x in a[col]]
        for r in range(n):
            if r != col and a[r][col] != 0:
                f = a[r][col]
                a[r] = [x - f * y for x, y in zip(a[r], a[col])]
    return tuple(float(a[r][n]) for r in range(n))


def _rates(h: np.ndarray, order: int) -> np.ndarray:
    """s_i(t) from the newest order+1 rows; the window is scaled by its largest |value| so huge
    losses cannot overflow in the stencil, and the result saturates at the float range."""
    window = h[-(order + 1):]
    scale = float(np.max(np.abs(window)))
    if scale == 0.0:
        return np.zeros(h.shape[1])
    c = np.asarray(backward_difference_stencil(order))
    return _scaled(c @ (window / scale), scale)


# --------------------------------------------------------------------------------------
# Value-based methods of the paper (seed 000 Sec. 2.4.1, Eq. 4-8)
# --------------------------------------------------------------------------------------


@register("constant")
class Constant(ValueMethod):
    """Eq. 4: lambda_i(t) = A_i, fixed hyperparameters (tuned by grid search in the paper).

    ``weights``: the k non-negative A_i (default [1.0, 1.0]); min_history 0, so
    :meth:`initial_coefficients` is the same vector. A history whose k differs from
    ``len(weights)`` raises ValueError.
    """

    params = {"weights": Param([1.0, 1.0], _weights, "the k non-negative coefficients A_i"), **_UPDATE_PARAMS}

    def initial_coefficients(self, k: int) -> np.ndarray:
        k = _check_k(k)
        w = self.params["weights"]
        if len(w) != k:
            raise ValueError(f"constant: {len(w)} weights {w} for a loss with k={k} components")
        return np.asarray(w, dtype=np.float64)

    def _formula(self, h: np.ndarray) -> np.ndarray:
        return self.initial_coefficients(h.shape[1])


@register("ratio")
class Ratio(ValueMethod):
    """Eq. 5: lambda_i(t) = L_i(t-1) / L_ref(t-1), lambda_ref = 1 (seed 000; REFERENCES.md sec. 2).

    ``reference``: index of the reference component k of Eq. 5 (default -1, the last one:
    the energy term of the benchmark). ``max_coefficient`` (default 1e6) caps every
    coefficient. Guard for L_ref(t-1) -> 0: a coefficient is min(L_i / L_ref,
    max_coefficient); if L_ref(t-1) == 0 exactly, lambda_i = 1 where L_i(t-1) == 0 too
    (equal losses) and max_coefficient otherwise. min_history 1; initial coefficients
    all ones (the value for equal losses). Losses must be non-negative.
    """

    params = {
        "reference": Param(-1, _int, "index of the reference loss component k (negative counts from the end)"),
        "max_coefficient": Param(1e6, _positive_float, "upper bound of every coefficient (guards L_ref -> 0)"),
        **_UPDATE_PARAMS,
    }
    requires_nonnegative = True

    def _configure(self) -> None:
        super()._configure()
        self.min_history = 1

    def _ref(self, k: int) -> int:
        r = self.params["reference"]
        if not -k <= r < k:
            raise ValueError(f"ratio: reference={r} is not a component index for k={k}")
        return r % k

    def initial_coefficients(self, k: int) -> np.ndarray:
        self._ref(_check_k(k))
        return np.ones(k, dtype=np.float64)

    def _formula(self, h: np.ndarray) -> np.ndarray:
        last = h[-1]
        ref = self._ref(len(last))
        cap = self.params["max_coefficient"]
        lam = _safe_ratio(last, last[ref], cap)
        lam[ref] = 1.0
        return lam


class _SoftAdaptBase(ValueMethod):
    """Shared parameters and rates of the SoftAdapt family (Heydari, Thompson, Mehmood 2019, arXiv:1912.12355)."""

    params = {
        "beta": Param(0.1, _finite_float, "softmax temperature beta (> 0 favours the worst-performing loss)"),
        "order": Param(1, _int_at_least(1, 10), "finite-difference order of the rates s_i (backward stencil)"),
        **_UPDATE_PARAMS,
    }

    def _configure(self) -> None:
        super()._configure()
        self.min_history = self.params["order"] + 1

    def initial_coefficients(self, k: int) -> np.ndarray:
        k = _check_k(k)
        return np.full(k, 1.0 / k)

    def rates(self, history: Any) -> np.ndarray:
        """s_i(t) for the newest row of ``history`` (needs at least order+1 rows)."""
        h = _to_numpy_history(history)
        if len(h) < self.min_history:
            raise ValueError(
                f"{self.name}: rates of order {self.params['order']} need {self.min_history} rows, got {len(h)}"
            )
        return _rates(h, self.params["order"])


@register("softadapt")
class SoftAdapt(_SoftAdaptBase):
    """Eq. 6: lambda_i = exp(beta s_i) / sum_j exp(beta s_j), s_i(t) the rate of change of L_i.

    s = backward_difference_stencil(order) applied to the newest order+1 rows (order 1:
    s_i = L_i(t) - L_i(t-1); order 2: (3 L(t) - 4 L(t-1) + L(t-2)) / 2). Softmax with the
    max subtracted (no overflow). Coefficients sum to 1; min_history = order + 1; initial
    coefficients 1/k each (the value for equal rates).
    """

    def _formula(self, h: np.ndarray) -> np.ndarray:
        return _stable_softmax(_scaled(_rates(h, self.params["order"]), self.params["beta"]))


@register("softadapt_weighted")
class SoftAdaptWeighted(_SoftAdaptBase):
    """Eq. 7: lambda_i = L_i(t) exp(beta s_i) / sum_j L_j(t) exp(beta s_j), L(t) the newest row.

    Computed as the normalised product of L / max(L) and the stable softmax (scale-free, no
    overflow for huge losses). A loss at exactly zero gets coefficient 0 (the formula); if
    every newest loss is zero the coefficients are uniform 1/k. Losses must be non-negative.
    """

    requires_nonnegative = True

    def _formula(self, h: np.ndarray) -> np.ndarray:
        k = h.shape[1]
        cur = h[-1]
        top = float(cur.max())
        if top == 0.0:
            return np.full(k, 1.0 / k)
        p = (cur / top) * _stable_softmax(_scaled(_rates(h, self.params["order"]), self.params["beta"]))
        total = p.sum()
        if not total > 0:  # every non-zero loss has an underflowed softmax factor
            p = (cur > 0).astype(np.float64)
            total = p.sum()
        return p / total


@register("softadapt_normalized")
class SoftAdaptNormalized(_SoftAdaptBase):
    """Eq. 8: lambda_i = softmax_i(beta s_i / sum_l s_l).

    The plain (signed) sum of the paper is the default (``normalizer="sum"``). Two
    consequences, both kept because they are the paper's formula:

    * when every loss decreases (sum s < 0) the division flips the signs, so with beta > 0
      the FASTEST-decreasing loss gets the largest weight, the opposite of Eq. 6;
      ``normalizer="abs_sum"`` divides by sum_l |s_l| instead and keeps Eq. 6's ordering;
    * the sum can vanish while the rates do not. If |sum s| <= ``zero_sum_tol`` * sum |s|
      (default 1e-8), or every rate is 0, the normalised rates are undefined and
      ``zero_sum`` decides: ``"uniform"`` (default) returns 1/k each, ``"unnormalized"``
      falls back to Eq. 6 (softmax of beta s).
    """

    params = {
        **_SoftAdaptBase.params,
        "normalizer": Param("sum", _choice("sum", "abs_sum"), "divide s by sum(s) (Eq. 8) or by sum(|s|)"),
        "zero_sum": Param("uniform", _choice("uniform", "unnormalized"), "what to do when sum(s) ~ 0"),
        "zero_sum_tol": Param(1e-8, _fraction_float, "|sum s| <= tol * sum|s| counts as a zero sum"),
    }

    def _formula(self, h: np.ndarray) -> np.ndarray:
        k = h.shape[1]
        s = _rates(h, self.params["order"])
        beta = self.params["beta"]
        top = float(np.max(np.abs(s)))
        u = s / top if top > 0 else s  # in [-1, 1]: the sums below cannot overflow
        mag = float(np.sum(np.abs(u)))
        den = mag if self.params["normalizer"] == "abs_sum" else float(np.sum(u))
        if mag == 0.0 or abs(den) <= self.params["zero_sum_tol"] * mag:
            if self.params["zero_sum"] == "uniform":
                return np.full(k, 1.0 / k)
            return _stable_softmax(_scaled(s, beta))
        return _stable_softmax(_scaled(u / den, beta))  # u / den = s / sum(s)


# --------------------------------------------------------------------------------------
# Later value-based method
# --------------------------------------------------------------------------------------


@register("dwa")
class DWA(ValueMethod):
    """Dynamic Weight Average (Liu, Johns, Davison, CVPR 2019, "End-to-end multi-task learning with attention").

    lambda_i(t) = k exp(w_i / T) / sum_j exp(w_j / T), w_i = L_i(t-1) / L_i(t-2), i.e. the
    two newest history rows. ``temperature`` T (default 2). min_history 2; initial
    coefficients all ones (the paper's w = 1 for the first two epochs). Guard: the ratio
    follows :class:`Ratio` (0/0 -> 1, x/0 -> max_ratio, capped at ``max_ratio``, default
    1e6). Losses must be non-negative. Coefficients sum to k.
    """

    params = {
        "temperature": Param(2.0, _positive_float, "softmax temperature T"),
        "max_ratio": Param(1e6, _positive_float, "cap of L_i(t-1)/L_i(t-2) (guards L_i(t-2) -> 0)"),
        **_UPDATE_PARAMS,
    }
    requires_nonnegative = True

    def _configure(self) -> None:
        super()._configure()
        self.min_history = 2

    def _formula(self, h: np.ndarray) -> np.ndarray:
        w = _safe_ratio(h[-1], h[-2], self.params["max_ratio"])
        return h.shape[1] * _stable_softmax(_scaled(w, 1.0 / self.params["temperature"]))


# --------------------------------------------------------------------------------------
# Gradient-based methods
# --------------------------------------------------------------------------------------


def _gram(grads) -> np.ndarray:
    """Gram matrix G G^T (k, k) in float64 numpy."""
    g = grads.double()
    return (g @ g.T).cpu().numpy()


def _min_norm_2(v11: float, v12: float, v22: float) -> float:
    """gamma in [0, 1] minimising |gamma a + (1 - gamma) b|^2 given a.a, a.b, b.b (Sener & Koltun 2018, Alg. 1)."""
    den = v11 + v22 - 2.0 * v12
    if not den > 1e-12 * max(v11 + v22, 1e-300):  # a ~ b: every gamma gives the same vector
        return 0.5
    return float(min(1.0, max(0.0, (v22 - v12) / den)))


def min_norm_weights(gram: np.ndarray, max_iter: int = 250, tol: float = 1e-10) -> np.ndarray:
    """alpha on the simplex minimising alpha^T M alpha (the min-norm element of the convex hull of the rows).

    k = 1: [1]; k = 2: closed form; k > 2: Frank-Wolfe with exact line search, started
    from the best pair (Sener & Koltun 2018, MinNormSolver), stopped when the duality gap
    alpha^T M alpha - min_i (M alpha)_i <= tol * max(alpha^T M alpha, max diag M * 1e-12).
    """
    m = np.asarray(gram, dtype=np.float64)
    k = m.shape[0]
    if k == 1:
        return np.ones(1)
    if k == 2:
        g = _min_norm_2(m[0, 0], m[0, 1], m[1, 1])
        return np.array([g, 1.0 - g])
    best, alpha = math.inf, None
    for i in range(k):  # best pair as the start (as the reference solver)
        for j in range(i + 1, k):
            g = _min_norm_2(m[i, i], m[i, j], m[j, j])
            cost = g * g * m[i, i] + 2 * g * (1 - g) * m[i, j] + (1 - g) ** 2 * m[j, j]
            if cost < best:
                best, alpha = cost, np.zeros(k)
                alpha[i], alpha[j] = g, 1.0 - g
    floor = 1e-12 * float(np.max(np.diag(m)))
    for _ in range(max_iter):
        grad = m @ alpha
        t = int(np.argmin(grad))
        v11 = float(alpha @ grad)
        if v11 - grad[t] <= tol * max(v11, floor):
            break
        gamma = _min_norm_2(v11, float(grad[t]), float(m[t, t]))
        new = gamma * alpha
        new[t] += 1.0 - gamma
        if np.array_equal(new, alpha):
            break
        alpha = new
    return alpha


@register("mgda")
class MGDA(GradientMethod):
    """Multiple-gradient descent (Sener & Koltun, NeurIPS 2018, "Multi-task learning as multi-objective optimization").

    d = sum_i alpha_i g_i with alpha = argmin_{alpha in simplex} |sum_i alpha_i g~_i|^2,
    g~_i = g_i / n_i. Closed form for k = 2, Frank-Wolfe for k > 2 (:func:`min_norm_weights`).
    ``normalize``: n_i = 1 (``"none"``, default: d is exactly the min-norm element, a
    common descent direction or 0 at a Pareto-stationary point), |g_i| (``"l2"``), L_i
    (``"loss"``) or L_i |g_i| (``"loss+"``), as the reference code; as there, alpha is
    applied to the raw gradients. A zero or non-finite normaliser is replaced by 1.
    ``max_iter`` (250) and ``tol`` (1e-10) control Frank-Wolfe. ``last_weights`` = alpha.
    """

    params = {
        **GradientMethod.params,
        "normalize": Param("none", _choice("none", "l2", "loss", "loss+"), "gradient normalisation before the solve"),
        "max_iter": Param(250, _int_at_least(1), "Frank-Wolfe iterations (k > 2)"),
        "tol": Param(1e-10, _fraction_float, "Frank-Wolfe relative duality-gap tolerance"),
    }

    def combine(self, grads: Any, losses: Any = None):
        g = self._check_grads(grads)
        k = g.shape[0]
        gram = _gram(g)
        mode = self.params["normalize"]
        n = np.ones(k)
        if mode in ("l2", "loss+"):
            n *= np.sqrt(np.clip(np.diag(gram), 0.0, None))
        if mode in ("loss", "loss+"):
            if losses is None:
                raise ValueError(f"mgda: normalize={mode!r} needs the losses")
            n *= _to_numpy_history(_as_row(losses))[0]
        n = np.where(np.isfinite(n) & (n > 0), n, 1.0)
        alpha = min_norm_weights(gram / np.outer(n, n), self.params["max_iter"], self.params["tol"])
        self.last_weights = alpha
        return (g.double().T @ _torch_like(alpha, g)).to(g.dtype)


def _as_row(x: Any):
    if hasattr(x, "detach"):
        return x.detach().reshape(1, -1)
    return np.asarray(x, dtype=np.float64).reshape(1, -1)


def _torch_like(a: np.ndarray, ref):
    import torch

    return torch.as_tensor(a, dtype=torch.float64, device=ref.device)


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
