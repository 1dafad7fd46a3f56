"""SoftAdapt family (seed 000 Eq. 6-8; Heydari, Thompson, Mehmood 2019, arXiv:1912.12355)."""
from __future__ import annotations

from typing import Any

import numpy as np

from ._numerics import _rates, _scaled, _stable_softmax
from ._params import (
    VALUE_PARAMS,
    Param,
    _choice,
    _finite_float,
    _fraction_float,
    _int_at_least,
)
from .base import _check_k, _to_numpy_history, register
from .shapes import ValueMethod


class _SoftAdaptBase(ValueMethod):
    """Shared parameters and rates of the SoftAdapt family (Heydari, Thompson, Mehmood 2019, arXiv:1912.12355)."""

    params = {
        "beta": Param(0.1, _finite_float, "softmax temperature beta (> 0 favours the worst-performing loss)"),
        "order": Param(1, _int_at_least(1, 10), "finite-difference order of the rates s_i (backward stencil)"),
        **VALUE_PARAMS,
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

