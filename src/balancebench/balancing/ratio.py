"""seed 000 Eq. 5: the ratio method, as printed and inverted."""
from __future__ import annotations

import numpy as np

from ._numerics import _safe_ratio
from ._params import (
    VALUE_PARAMS,
    Param,
    _choice,
    _int,
    _positive_float,
)
from .base import _check_k, register
from .shapes import ValueMethod


@register("ratio")
class Ratio(ValueMethod):
    """Eq. 5: lambda_i(t) = L_i(t-1) / L_ref(t-1), lambda_ref = 1 (seed 000; REFERENCES.md sec. 2).

    ``form``: ``"printed"`` (default) is Eq. 5 as printed above; it multiplies a large loss
    by its own size and so amplifies the imbalance. ``"inverse"`` is lambda_i(t) =
    L_ref(t-1) / L_i(t-1), under which every weighted term lambda_i L_i equals L_ref (equal
    contributions), the likely intent of the paper (REFERENCES.md sec. 5); guards as below
    with numerator and denominator swapped (L_i = 0 -> max_coefficient, 0/0 -> 1).

    ``reference``: index of the reference component k of Eq. 5 (default -1, the last one:
    the second loss of cg_benzene's Eq. 2). ``max_coefficient`` (default 1e6) caps every
    coefficient. Guard for L_ref(t-1) -> 0: a coefficient is min(L_i / L_ref,
    max_coefficient); if L_ref(t-1) == 0 exactly, lambda_i = 1 where L_i(t-1) == 0 too
    (equal losses) and max_coefficient otherwise. min_history 1; initial coefficients
    all ones (the value for equal losses). Losses must be non-negative.
    """

    params = {
        "form": Param("printed", _choice("printed", "inverse"),
                      "printed: lambda_i = L_i / L_ref (Eq. 5 as printed); inverse: L_ref / L_i (equal contributions)"),
        "reference": Param(-1, _int, "index of the reference loss component k (negative counts from the end)"),
        "max_coefficient": Param(1e6, _positive_float, "upper bound of every coefficient (guards L_ref -> 0)"),
        **VALUE_PARAMS,
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
        if self.params["form"] == "inverse":
            lam = _safe_ratio(np.full_like(last, last[ref]), last, cap)
        else:
            lam = _safe_ratio(last, last[ref], cap)
        lam[ref] = 1.0
        return lam

