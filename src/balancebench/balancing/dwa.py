"""Dynamic Weight Average (Liu, Johns, Davison, CVPR 2019)."""
from __future__ import annotations

import numpy as np

from ._numerics import _safe_ratio, _scaled, _stable_softmax
from ._params import (
    VALUE_PARAMS,
    Param,
    _positive_float,
)
from .base import register
from .shapes import ValueMethod


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
        **VALUE_PARAMS,
    }
    requires_nonnegative = True

    def _configure(self) -> None:
        super()._configure()
        self.min_history = 2

    def _formula(self, h: np.ndarray) -> np.ndarray:
        w = _safe_ratio(h[-1], h[-2], self.params["max_ratio"])
        return h.shape[1] * _stable_softmax(_scaled(w, 1.0 / self.params["temperature"]))

