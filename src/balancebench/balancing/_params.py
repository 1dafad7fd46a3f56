"""Hyperparameter declarations of balancing methods and their validators."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


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



_UPDATE_UNITS = ("epoch", "step")
UPDATE_PARAMS = {
    "update_unit": Param("epoch", _choice(*_UPDATE_UNITS), "when the training loop calls coefficients()"),
    "update_every": Param(1, _int_at_least(1), "call every this many update units"),
}
LOSS_SCALE_PARAM = Param(
    "raw", _choice("raw", "target_variance"),
    "losses the method sees and combines: raw (kcal/mol units) or divided by the target variance over the "
    "training frames (unit-free)",
)
#: parameters of every value method: cadence and the unit-free option
VALUE_PARAMS = {**UPDATE_PARAMS, "loss_scale": LOSS_SCALE_PARAM}
