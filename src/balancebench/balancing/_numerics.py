"""Numerics shared by the value methods: overflow-free softmax, guarded ratios, backward-difference rates."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from ._params import _int_at_least

_FLOAT_MAX = float(np.finfo(np.float64).max)

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

