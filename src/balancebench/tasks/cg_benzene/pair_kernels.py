"""Fused pair operations of the explicit-force step, compiled once per machine (C++, torch.utils.cpp_extension).

For a half neighbour list (i_p, j_p) and per-bead features of width F (elementwise products over F)::

    pair_conv(w, x)_n  = base_n + sum_{p: i_p = n} w_p x_{j_p} + sum_{p: j_p = n} w_p x_{i_p}   (N, F)
    pair_cross(a, b)_p = a_{i_p} b_{j_p} + a_{j_p} b_{i_p}                                (P, F)
    pair_dot(a, b, d)_p = sum_f pair_cross(a, b)_pf d_pf                                  (P,)

``pair_conv`` is the continuous-filter convolution of both directions of the half list (and, with
g = dE/dm for x, the hand back-propagation through it); ``pair_cross`` is the pair term of dE/dr_ij
and ``pair_dot`` that term contracted with dW/dr over the filters (one pass, no (P, F) temporary).
(``base``, default 0, is what the pairs are added to, in pair order: chunks of a pair list summed
through it give the sums of the whole list.) Each is the other's adjoint, so their autograd backward
passes are themselves these two operations (and a force loss, or a gradient method's second backward,
differentiates through them again)::

    conv:  dL/dw = pair_cross(dL/dm, x),   dL/dx = pair_conv(w, dL/dm)
    cross: dL/da = pair_conv(dL/dc, b),    dL/db = pair_conv(dL/dc, a)
    dot:   with W = dL/ds d:  dL/da = pair_conv(W, b),  dL/db = pair_conv(W, a),  dL/dd = dL/ds pair_cross(a, b)

(the dot's backward is itself one fused pass, ``pair_dot_adjoint``, whose own backward is written with
the three operations above).

Eagerly each costs two gathers, two products and two scatters over (P, F) tensors, and the step was
bound by such passes (docs/training.md); fused, it is one pass over the pairs. The loops run in pair
order on one thread: deterministic, equal to the eager expressions up to the order of the sums
(tests/test_pair_kernels.py: 1e-15 relative in float64).

``table_filter`` evaluates a tabulated filter (:class:`~balancebench.tasks.cg_benzene.model.FilterTable`) and
``table_adjoint`` is its adjoint in the table's coefficients, again each other's backward.

The extension is built on first use with the system C++ compiler and ninja (``scripts/setup.sh`` builds
it ahead) into torch's extension cache (``TORCH_EXTENSIONS_DIR``, default ~/.cache/torch_extensions),
keyed by a hash of the source (its text and path), the torch version and the compiler flags
(:data:`CFLAGS`: the loops over the features vectorized by OpenMP SIMD directives, no threads). By default it
is compiled for the CPU it is built on (``-march=native``: AVX2/AVX-512 and FMA where present, as ATen's own
kernels pick at run time; the key then holds the CPU's model and flags, so nodes of different CPUs sharing a
cache each build their own); ``BALANCEBENCH_PAIR_KERNELS_ARCH=portable`` builds baseline code instead (the
fallback, too, when the compiler refuses ``-march=native``). :func:`status` says which. Without a compiler, or with
``BALANCEBENCH_PAIR_KERNELS=0``, the same operations run as eager torch expressions (the path before;
same numbers to rounding). The fused path serves CPU tensors outside ``torch.func`` transforms; CUDA
tensors, ``torch.func.vmap`` (balancebench.multiseed, torchjd's batched Jacobians) and batched
``torch.autograd.grad`` take the eager expressions.
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
CFLAGS = ["-O3", "-fopenmp-simd"]
NATIVE_CFLAGS = ["-march=native"]  # the build machine's vector units (AVX2/AVX-512, FMA) when ARCH_ENV is "native"
ENV = "BALANCEBENCH_PAIR_KERNELS"  # 0: eager expressions only; 1: the fused kernels are required; unset: if built
ARCH_ENV = "BALANCEBENCH_PAIR_KERNELS_ARCH"  # "native" (default): code for this CPU; "portable": for any x86-64
_log = logging.getLogger(__name__)
_state: dict = {"module": None, "error": None, "tried": False, "enabled": None, "arch": None}
_lock = threading.Lock()


def cpu_identity() -> str:
    """The CPU's model and instruction-set flags (/proc/cpuinfo; the platform's processor name elsewhere)."""
    import platform

    try:
        fields = {}
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
        model = fields.get("model name") or fields.get("CPU part") or platform.processor()
        return f"{model} | {fields.get('flags') or fields.get('Features', '')}"
    except OSError:
        return f"{platform.machine()} {platform.processor()}"


def _extension_name(flags: list[str]) -> str:
    # the path too: torch's build files name the source, so two checkouts sharing one cache under one name
    # would rebuild each other's copy (~40 s) whenever they alternate; with -march=native the CPU too, so nodes
    # of different CPU models sharing one cache (a cluster's home directory) each get a build of their own
    key = [SOURCE.read_bytes(), torch.__version__.encode(), " ".join(flags).encode(), str(SOURCE.resolve()).encode()]
    if "-march=native" in flags:
        key.append(cpu_identity().encode())
    digest = hashlib.sha256(b"\0".join(key)).hexdigest()[:12]
    return f"balancebench_pair_ops_{digest}"


def build(verbose: bool = False, arch: str | None = None):
    """Compile (or load from torch's extension cache) the fused operations; returns the module or raises.

    ``arch`` (default: the environment's ``BALANCEBENCH_PAIR_KERNELS_ARCH``, else "native"): "native" compiles
    for this CPU (``-march=native``: AVX2/AVX-512 and FMA where it has them; 1.1-1.2x the training step of the
    portable build, benchmarks/bench_model.py), falling back to the portable build when the compiler refuses;
    "portable" compiles for the architecture's baseline (one build for every CPU model of a shared cache)."""
    from torch.utils.cpp_extension import load

    arch = arch or os.environ.get(ARCH_ENV, "native") or "native"
    if arch not in ("native", "portable"):
        raise ValueError(f"{ARCH_ENV} must be 'native' or 'portable', got {arch!r}")
    if arch == "native":
        flags = CFLAGS + NATIVE_CFLAGS
        try:
            module = load(name=_extension_name(flags), sources=[str(SOURCE)], extra_cflags=flags, verbose=verbose)
            _state["arch"] = "native"
            return module
        except Exception as err:  # noqa: BLE001 - e.g. a compiler without -march=native: the portable build
            _log.warning("pair kernels: the -march=native build failed (%s); building portable code",
                         str(err).strip().splitlines()[-1] if str(err) else type(err).__name__)
    module = load(name=_extension_name(CFLAGS), sources=[str(SOURCE)], extra_cflags=CFLAGS, verbose=verbose)
    _state["arch"] = "portable"
    return module


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
    if _module() is None:
        return f"eager (fused kernels unavailable: {_state['error']})"
    return f"fused (C++, {_state['arch']}{': ' + cpu_identity().split(' | ')[0] if _state['arch'] == 'native' else ''})"


def _fused(*tensors: torch.Tensor) -> bool:
    """Whether these operands take the fused path: CPU tensors, outside any torch.func transform (an
    autograd.Function without vmap rules may not run inside one, even on unbatched operands such as the
    saved tensors of a backward that torchjd vmaps), and no batched operand of the older vmap behind
    ``torch.autograd.grad(..., is_grads_batched=True)``."""
    if not available() or torch._C._are_functorch_transforms_active():
        return False
    functorch = torch._C._functorch
    for t in tensors:
        if t.device.type != "cpu" or functorch.is_functorch_wrapped_tensor(t) or functorch.is_legacy_batchedtensor(t):
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


class _PairDot(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, d, i, j):
        ctx.save_for_backward(a, b, d, i, j)
        return _module().pair_dot(a, b, d, i, j)

    @staticmethod
    def backward(ctx, grad_s):
        a, b, d, i, j = ctx.saved_tensors
        grad_a, grad_b, grad_d = pair_dot_adjoint(grad_s, a, b, d, i, j)
        return grad_a, grad_b, grad_d, None, None


class _PairDotAdjoint(torch.autograd.Function):
    """(dL/da, dL/db, dL/dd) of pair_dot for cotangents g (P,), in one pass; differentiable again."""

    @staticmethod
    def forward(ctx, g, a, b, d, i, j):
        ctx.save_for_backward(g, a, b, d, i, j)
        grad_a, grad_b, grad_d = _module().pair_dot_adjoint(g, a, b, d, i, j)
        return grad_a, grad_b, grad_d

    @staticmethod
    def backward(ctx, cot_a, cot_b, cot_d):
        # the outputs are conv(g d, b), conv(g d, a) and g cross(a, b): their adjoints, through the dispatching ops
        g, a, b, d, i, j = ctx.saved_tensors
        w = g[:, None] * d
        grad_w = torch.zeros_like(d)
        grad_g, grad_a, grad_b = torch.zeros_like(g), torch.zeros_like(a), torch.zeros_like(b)
        if cot_a is not None:
            grad_w = grad_w + pair_cross(cot_a, b, i, j)
            grad_b = pair_conv(w, cot_a, i, j, grad_b)
        if cot_b is not None:
            grad_w = grad_w + pair_cross(cot_b, a, i, j)
            grad_a = pair_conv(w, cot_b, i, j, grad_a)
        if cot_d is not None:
            grad_g = grad_g + pair_dot(a, b, cot_d, i, j)
            w_d = g[:, None] * cot_d
            grad_a = pair_conv(w_d, b, i, j, grad_a)
            grad_b = pair_conv(w_d, a, i, j, grad_b)
        grad_g = grad_g + (grad_w * d).sum(-1)
        return grad_g, grad_a, grad_b, g[:, None] * grad_w, None, None


def pair_dot(a: torch.Tensor, b: torch.Tensor, d: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
    """s_p = sum_f (a_{i_p} b_{j_p} + a_{j_p} b_{i_p})_f d_pf: (N, F), (N, F), (P, F) -> (P,)."""
    if _fused(a, b, d, i, j):
        return _PairDot.apply(a, b, d, i, j)
    return (pair_cross(a, b, i, j) * d).sum(-1)


def pair_dot_adjoint(g: torch.Tensor, a: torch.Tensor, b: torch.Tensor, d: torch.Tensor, i: torch.Tensor,
                     j: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The adjoint of :func:`pair_dot` for cotangents g (P,): (dL/da (N, F), dL/db (N, F), dL/dd (P, F))."""
    if _fused(g, a, b, d, i, j):
        return _PairDotAdjoint.apply(g, a, b, d, i, j)
    w = g[:, None] * d
    return pair_conv(w, b, i, j), pair_conv(w, a, i, j), g[:, None] * pair_cross(a, b, i, j)


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


__all__ = ["ENV", "available", "build", "enabled", "pair_conv", "pair_cross", "pair_dot", "pair_dot_adjoint",
           "status", "table_adjoint", "table_filter", "use_kernels"]
