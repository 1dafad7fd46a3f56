"""seed 000 Eq. 4: constant coefficients."""
from __future__ import annotations

import numpy as np

from ._params import (
    VALUE_PARAMS,
    Param,
    _weights,
)
from .base import _check_k, register


def _optional_weights(v):
    return None if v is None else _weights(v)
from .shapes import ValueMethod


@register("constant")
class Constant(ValueMethod):
    """Eq. 4: lambda_i(t) = A_i, fixed hyperparameters (tuned by grid search in the paper).

    ``weights``: the k non-negative A_i (default null: A_i = 1 for each of the task's k losses); min_history
    0, so :meth:`initial_coefficients` is the same vector. A history whose k differs from ``len(weights)``
    raises ValueError.
    """

    params = {"weights": Param(None, _optional_weights, "the k non-negative coefficients A_i (null: all 1)"),
              **VALUE_PARAMS}

    def initial_coefficients(self, k: int) -> np.ndarray:
        k = _check_k(k)
        w = self.params["weights"]
        if w is None:
            return np.ones(k, dtype=np.float64)
        if len(w) != k:
            raise ValueError(f"constant: {len(w)} weights {w} for a loss with k={k} components")
        return np.asarray(w, dtype=np.float64)

    def _formula(self, h: np.ndarray) -> np.ndarray:
        return self.initial_coefficients(h.shape[1])

