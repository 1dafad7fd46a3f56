"""Fused pair operations of the explicit-force step, compiled once per machine (C++, torch.utils.cpp_extension).

For a half neighbour list (i_p, j_p) and per-bead features of width F (elementwise products over F)::

    pair_conv(w, x)_n  = base_n + sum_{p: i_p = n} w_p x_{j_p} + sum_{p: j_p = n} w_p x_{i_p}   (N, F)
    pair_cross(a, b)_p = a_{i_p} b_{j_p} + a_{j_p} b_{i_p}                                (P, F)

``pair_conv`` is the continuous-filter convolution of both directions of the half list (and, with
g = dE/dm for x, the hand back-propagation through it); ``pair_cross`` is the pair term of dE/dr_ij.
(``base``, default 0, is what the pairs are added to, in pair order: chunks of a pair list summed
through it give the sums of the whole list.) Each is the other's adjoint, so their autograd backward
passes are themselves these two operations (and a force loss, or a gradient method's second backward,
differentiates through them again)::

    conv:  dL/dw = pair_cross(dL/dm, x),   dL/dx = pair_conv(w, dL/dm)
    cross: dL/da = pair_conv(dL/dc, b),    dL/db = pair_conv(dL/dc, a)

Eagerly each costs two gathers, two products and two scatters over (P, F) tensors, and the step was
bound by such passes (docs/training.md); fused, it is one pass over the pairs. The loops run in pair
order on one thread: deterministic, equal to the eager expressions up to the order of the sums
(tests/test_pair_kernels.py: 1e-15 relative in float64).

``table_filter`` evaluates a tabulated filter (:class:`~balancebench.model.FilterTable`) and
``table_adjoint`` is its adjoint in the table's coefficients, again each other's backward.

The extension is built on first use with the system C++ compiler and ninja (``scripts/setup.sh`` builds
it ahead) into torch's extension cache (``TORCH_EXTENSIONS_DIR``, default ~/.cache/torch_extensions),
keyed by a hash of the source. Without a compiler, or with ``BALANCEBENCH_PAIR_KERNELS=0``, the same
operations run as eager torch expressions (the path before; same numbers to rounding). The fused path
serves CPU tensors outside ``torch.func`` transforms; CUDA tensors and ``torch.func.vmap``
(balancebench.multiseed) take the eager expressions.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
from pathlib import Path

import torch

SOURCE = Path(__file__).parent / "csrc" / "pair_ops.cpp"
ENV = "BALANCEBENCH_PAIR_KERNELS"  # 0: eager expressions only; 1: the fused kernels are required; unset: if built
_log = logging.getLogger(__name__)
_state: dict = {"module": None, "error": None, "tried": False, "enabled": None}
_lock = threading.Lock()


def _extension_name() -> str:
    digest = hashlib.sha256(SOURCE.read_bytes() + torch.__version__.encode()).hexdigest()[:12]
    return f"balancebench_pair_ops_{digest}"


def build(verbose: bool = False):
    """Compile (or load from torch's extension cache) the fused operations; returns the module or raises."""
    from torch.utils.cpp_extension import load

    return load(name=_extension_name(), sources=[str(SOURCE)], extra_cflags=["-O3"], verbose=verbose)


def _module():
    """The compiled module, or None (built once per process; a failure is logged once and remembered)."""
    if not _state["tried"]:
        with _lock:
            if not _state["tried"]:
                try:
                    _state["module"] = build()
                except Exception as err:  # noqa: BLE001 - no compiler, no ninja, a failed build: eager instead
                    _state["error"] = f"{type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err) else ''}"
                    if os.environ.get(ENV) == "1":
                        raise RuntimeError(f"{ENV}=1 but the fused pair kernels could not be built: "
                                           f"{_state['error']}") from err
                    _log.warning("fused pair kernels unavailable (%s); using the eager expressions", _state["error"])
                _state["tried"] = True
    return _state["module"]


def enabled() -> bool:
    """Whether the fused kernels are used (``use_kernels`` overrides the environment for a block of code)."""
    if _state["enabled"] is not None:
        return _state["enabled"]
    return os.environ.get(ENV, "") != "0"


@contextlib.contextmanager
def use_kernels(flag: bool):
    """Within the block, use the fused kernels (True, when they build) or the eager expressions (False)."""
    before = _state["enabled"]
    _state["enabled"] = bool(flag)
    try:
        yield
    finally:
        _state["enabled"] = before


def available() -> bool:
    """The fused kernels are enabled and built (building them if needed)."""
    return enabled() and _module() is not None


def status() -> str:
    """A line for provenance and logs: which implementation the pair operations use here."""
    if not enabled():
        return f"eager ({ENV}=0)"
    return "fused (C++)" if _module() is not None else f"eager (fused kernels unavailable: {_state['error']})"


def _fused(*tensors: torch.Tensor) -> bool:
    if not available():
        return False
    for t in tensors:
        if t.device.type != "cpu" or torch._C._functorch.is_functorch_wrapped_tensor(t):
            return False
    return True


class _PairConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w, x, i, j, base):
        ctx.save_for_backward(w, x, i, j)
        return _module().pair_conv(w, x, i, j, base)

    @staticmethod
    def backward(ctx, grad_m):
        w, x, i, j = ctx.saved_tensors
        # through the dispatching functions: a batched backward (torch.func.vmap over it, as torchjd's batched
        # Jacobians do) takes the eager expressions
        grad_w = pair_cross(grad_m, x, i, j) if ctx.needs_input_grad[0] else None
        grad_x = pair_conv(w, grad_m, i, j) if ctx.needs_input_grad[1] else None
        return grad_w, grad_x, None, None, (grad_m if ctx.needs_input_grad[4] else None)


class _PairCross(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, i, j):
        ctx.save_for_backward(a, b, i, j)
        return _module().pair_cross(a, b, i, j)

    @staticmethod
    def backward(ctx, grad_c):
        a, b, i, j = ctx.saved_tensors
        grad_a = pair_conv(grad_c, b, i, j) if ctx.needs_input_grad[0] else None
        grad_b = pair_conv(grad_c, a, i, j) if ctx.needs_input_grad[1] else None
        return grad_a, grad_b, None, None


def pair_conv(w: torch.Tensor, x: torch.Tensor, i: torch.Tensor, j: torch.Tensor,
              base: torch.Tensor | None = None) -> torch.Tensor:
    """m_n = base_n + sum_{p: i_p = n} w_p x_{j_p} + sum_{p: j_p = n} w_p x_{i_p}: (P, F), (N, F) -> (N, F)."""
    if base is None:
        base = torch.zeros_like(x)
    if _fused(w, x, i, j, base):
        return _PairConv.apply(w, x, i, j, base)
    return base.index_add(0, i, w * x.index_select(0, j)).index_add(0, j, w * x.index_select(0, i))


def pair_cross(a: torch.Tensor, b: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
    """c_p = a_{i_p} b_{j_p} + a_{j_p} b_{i_p}: (N, F), (N, F) -> (P, F)."""
    if _fused(a, b, i, j):
        return _PairCross.apply(a, b, i, j)
    return a.index_select(0, i) * b.index_select(0, j) + a.index_select(0, j) * b.index_select(0, i)


class _TableEval(torch.autograd.Function):
    @staticmethod
    def forward(ctx, coeffs, k, t, inv_h):
        ctx.save_for_backward(k, t)
        ctx.inv_h, ctx.n = inv_h, coeffs.shape[0]
        w, dw = _module().table_eval(coeffs, k, t, inv_h)
        return w, dw

    @staticmethod
    def backward(ctx, grad_w, grad_dw):
        k, t = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None, None
        grad_w = torch.zeros_like(grad_dw) if grad_w is None else grad_w
        grad_dw = torch.zeros_like(grad_w) if grad_dw is None else grad_dw
        return table_adjoint(grad_w, grad_dw, k, t, ctx.inv_h, ctx.n), None, None, None


class _TableAdjoint(torch.autograd.Function):
    @staticmethod
    def forward(ctx, grad_w, grad_dw, k, t, inv_h, n):
        ctx.save_for_backward(k, t)
        ctx.inv_h = inv_h
        return _module().table_adjoint(grad_w, grad_dw, k, t, inv_h, n)

    @staticmethod
    def backward(ctx, grad_coeffs):
        k, t = ctx.saved_tensors
        w, dw = table_filter(grad_coeffs, k, t, ctx.inv_h)
        return w, dw, None, None, None, None


def table_filter(coeffs: torch.Tensor, k: torch.Tensor, t: torch.Tensor, inv_h: float
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(W, dW/dr) (P, F) of a cubic table: row k of ``coeffs`` (n, 4F) is [a0, a1, a2, a3] of interval k, t in
    [0, 1] the position in it, W = a0 + t (a1 + t (a2 + t a3)), dW/dr = (a1 + t (2 a2 + 3 t a3)) / h."""
    if _fused(coeffs, k, t):
        return _TableEval.apply(coeffs, k, t, float(inv_h))
    a0, a1, a2, a3 = coeffs.index_select(0, k).chunk(4, dim=1)
    x = t[:, None]
    w = a0 + x * (a1 + x * (a2 + x * a3))
    dw = inv_h * (a1 + x * (2 * a2 + 3 * x * a3))
    return w, dw


def table_adjoint(grad_w: torch.Tensor, grad_dw: torch.Tensor, k: torch.Tensor, t: torch.Tensor, inv_h: float,
                  n: int) -> torch.Tensor:
    """The adjoint of :func:`table_filter` in its coefficients: dL/dcoeffs (n, 4F) from dL/dW and dL/d(dW/dr)."""
    if _fused(grad_w, grad_dw, k, t):
        return _TableAdjoint.apply(grad_w, grad_dw, k, t, float(inv_h), int(n))
    x = t[:, None]
    d = inv_h * grad_dw
    rows = torch.cat([grad_w, grad_w * x + d, grad_w * x * x + 2 * x * d, grad_w * x * x * x + 3 * x * x * d], 1)
    return torch.zeros(n, rows.shape[1], dtype=rows.dtype, device=rows.device).index_add(0, k, rows)


__all__ = ["ENV", "available", "build", "enabled", "pair_conv", "pair_cross", "status", "table_adjoint",
           "table_filter", "use_kernels"]
