"""The fused pair operations (balancebench.tasks.cg_benzene.pair_kernels) against their eager expressions and their adjoints."""

import pytest
import torch

from balancebench.tasks.cg_benzene import pair_kernels
from balancebench.tasks.cg_benzene.model import CGSchNet, ModelConfig, batch_frames
from balancebench.tasks.cg_benzene.neighbors import neighbor_list

if not pair_kernels.available():  # no C++ compiler here: the eager expressions run everywhere
    pytest.skip(f"fused pair kernels unavailable: {pair_kernels.status()}", allow_module_level=True)


def random_pairs(n=40, p=300, f=7, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    i = torch.randint(0, n, (p,), generator=g)
    j = (i + 1 + torch.randint(0, n - 1, (p,), generator=g)) % n  # i != j, repeated pairs allowed
    return (torch.randn(p, f, generator=g, dtype=dtype), torch.randn(n, f, generator=g, dtype=dtype),
            torch.randn(n, f, generator=g, dtype=dtype), i, j)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fused_operations_equal_the_eager_expressions(dtype):
    w, x, y, i, j = random_pairs(dtype=dtype)
    eager_conv = torch.zeros_like(x).index_add(0, i, w * x[j]).index_add(0, j, w * x[i])
    eager_cross = x[i] * y[j] + x[j] * y[i]
    tol = dict(rtol=1e-13, atol=1e-13) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(pair_kernels.pair_conv(w, x, i, j), eager_conv, **tol)
    torch.testing.assert_close(pair_kernels.pair_cross(x, y, i, j), eager_cross, **tol)
    torch.testing.assert_close(pair_kernels.pair_dot(x, y, w, i, j), (eager_cross * w).sum(-1), **tol)
    half = len(i) // 2  # a list in two chunks through base: the sums of the whole list, in the same order
    chunked = pair_kernels.pair_conv(w[half:], x, i[half:], j[half:], pair_kernels.pair_conv(w[:half], x, i[:half],
                                                                                           j[:half]))
    assert torch.equal(chunked, pair_kernels.pair_conv(w, x, i, j))
    with pair_kernels.use_kernels(False):  # the fallback is the eager expression itself
        torch.testing.assert_close(pair_kernels.pair_conv(w, x, i, j), eager_conv, rtol=0, atol=0)


def test_backward_and_double_backward_are_the_adjoints():
    """gradcheck and gradgradcheck (float64): conv and cross differentiate into each other, twice over."""
    w, x, y, i, j = random_pairs(n=6, p=15, f=3)
    for t in (w, x, y):
        t.requires_grad_(True)
    base = torch.randn_like(x, requires_grad=True)
    assert torch.autograd.gradcheck(lambda w, x, b: pair_kernels.pair_conv(w, x, i, j, b), (w, x, base))
    assert torch.autograd.gradcheck(lambda a, b: pair_kernels.pair_cross(a, b, i, j), (x, y))
    assert torch.autograd.gradgradcheck(lambda w, x: pair_kernels.pair_conv(w, x, i, j), (w, x))
    assert torch.autograd.gradgradcheck(lambda a, b: pair_kernels.pair_cross(a, b, i, j), (x, y))


def test_pair_dot_is_differentiated_by_its_fused_adjoint_twice_over():
    """pair_dot's backward is one fused pass (pair_dot_adjoint); gradcheck and gradgradcheck in float64,
    and the adjoint equals the eager one (conv, conv, cross) it replaces."""
    d, x, y, i, j = random_pairs(n=6, p=15, f=3)
    for t in (d, x, y):
        t.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b, d: pair_kernels.pair_dot(a, b, d, i, j), (x, y, d))
    assert torch.autograd.gradgradcheck(lambda a, b, d: pair_kernels.pair_dot(a, b, d, i, j), (x, y, d))
    g = torch.randn(len(i), dtype=torch.float64, requires_grad=True)
    fused = pair_kernels.pair_dot_adjoint(g, x, y, d, i, j)
    with pair_kernels.use_kernels(False):
        eager = pair_kernels.pair_dot_adjoint(g, x, y, d, i, j)
    for a, b in zip(fused, eager):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-13)
    assert torch.autograd.gradcheck(lambda g, a, b, d: pair_kernels.pair_dot_adjoint(g, a, b, d, i, j), (g, x, y, d))


def test_bad_indices_are_refused_not_written():
    w, x, _, i, j = random_pairs()
    bad = j.clone()
    bad[3] = len(x)
    with pytest.raises(RuntimeError, match="j out of range"):
        pair_kernels.pair_conv(w, x, i, bad)


def test_model_energies_forces_and_loss_gradients_do_not_depend_on_the_kernels():
    """The explicit-force step with the fused kernels equals the eager one (float64, to rounding)."""
    torch.manual_seed(3)
    model = CGSchNet(ModelConfig(hidden_channels=8, num_filters=8, num_interactions=2, num_gaussians=8,
                                 cutoff=5.0)).double()
    box = torch.full((3,), 11.0, dtype=torch.float64)
    frames = [torch.rand(20, 3, dtype=torch.float64) * 11.0 for _ in range(2)]
    lists = [neighbor_list(x, box, 5.0) for x in frames]
    out = {}
    for fused in (True, False):
        with pair_kernels.use_kernels(fused):
            model.zero_grad()
            energy, forces = model.energy_and_forces(batch_frames(frames, lists), training=True)
            (energy.pow(2).sum() + forces.pow(2).sum()).backward()
            out[fused] = (energy.detach(), forces.detach(), [p.grad.clone() for p in model.parameters()])
    torch.testing.assert_close(out[True][0], out[False][0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out[True][1], out[False][1], rtol=1e-10, atol=1e-10)
    for a, b in zip(out[True][2], out[False][2]):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)
    assert pair_kernels.status().startswith("fused (C++, ")


def test_a_native_build_is_keyed_by_the_cpu_and_a_portable_one_is_not(monkeypatch):
    """-march=native code must not be loaded on another CPU model sharing the cache (illegal instructions)."""
    native, portable = pair_kernels.CFLAGS + pair_kernels.NATIVE_CFLAGS, pair_kernels.CFLAGS
    names = {}
    for cpu in ("AMD EPYC | avx2 avx512f", "Intel Xeon | avx2"):
        monkeypatch.setattr(pair_kernels, "cpu_identity", lambda cpu=cpu: cpu)
        names[cpu] = (pair_kernels._extension_name(native), pair_kernels._extension_name(portable))
    (a_native, a_portable), (b_native, b_portable) = names.values()
    assert a_native != b_native and a_portable == b_portable and a_native != a_portable
    monkeypatch.setenv(pair_kernels.ARCH_ENV, "skylake")
    with pytest.raises(ValueError, match="native' or 'portable"):
        pair_kernels.build()


def test_the_environment_switches_the_kernels_off(monkeypatch):
    monkeypatch.setenv(pair_kernels.ENV, "0")
    assert not pair_kernels.enabled() and pair_kernels.status().startswith("eager")


def test_table_filter_equals_its_eager_form_and_is_differentiated_by_its_adjoint():
    g = torch.Generator().manual_seed(5)
    coeffs = torch.randn(9, 4 * 3, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randint(0, 9, (20,), generator=g)
    t = torch.rand(20, generator=g, dtype=torch.float64)
    w, dw = pair_kernels.table_filter(coeffs, k, t, 50.0)
    with pair_kernels.use_kernels(False):
        w0, dw0 = pair_kernels.table_filter(coeffs, k, t, 50.0)
    torch.testing.assert_close(w, w0, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(dw, dw0, rtol=1e-13, atol=1e-13)
    assert torch.autograd.gradcheck(lambda c: pair_kernels.table_filter(c, k, t, 50.0), (coeffs,))
    assert torch.autograd.gradgradcheck(lambda c: pair_kernels.table_filter(c, k, t, 50.0), (coeffs,))


@pytest.mark.parametrize("operation", ["conv", "cross", "dot"])
def test_a_batched_backward_through_the_fused_operations_takes_the_eager_path(operation):
    """torchjd's Jacobians vmap over the backward of a fused forward (is_grads_batched): no autograd.Function
    may run inside the transform, and each row equals a backward of its own."""
    d, x, y, i, j = random_pairs(n=6, p=15, f=3)
    for t in (d, x, y):
        t.requires_grad_(True)
    out = {"conv": lambda: pair_kernels.pair_conv(d, x, i, j), "cross": lambda: pair_kernels.pair_cross(x, y, i, j),
           "dot": lambda: pair_kernels.pair_dot(x, y, d, i, j)}[operation]()
    rows = torch.randn(4, *out.shape, dtype=out.dtype)
    batched = torch.autograd.grad(out, (d, x, y), rows, is_grads_batched=True, retain_graph=True, allow_unused=True)
    for k in range(len(rows)):
        single = torch.autograd.grad(out, (d, x, y), rows[k], retain_graph=True, allow_unused=True)
        for b, s in zip(batched, single):
            if s is not None:
                torch.testing.assert_close(b[k], s, rtol=1e-12, atol=1e-12)


_PORTABLE_RUN = """
import hashlib, sys, torch
from balancebench.tasks.cg_benzene import pair_kernels
from balancebench.tasks.cg_benzene.model import CGSchNet, ModelConfig, batch_frames
from balancebench.tasks.cg_benzene.neighbors import neighbor_list
torch.manual_seed(3)
model = CGSchNet(ModelConfig(hidden_channels=8, num_filters=8, num_interactions=2, num_gaussians=8, cutoff=5.0))
box = torch.full((3,), 11.0)
frames = [torch.rand(20, 3) * 11.0 for _ in range(2)]
lists = [neighbor_list(x, box, 5.0) for x in frames]
with pair_kernels.use_kernels(sys.argv[1] == "fused"):
    energy, forces = model.energy_and_forces(batch_frames(frames, lists), training=True)
    (energy.pow(2).sum() + forces.pow(2).sum()).backward()
values = [energy.detach(), forces.detach()] + [p.grad for p in model.parameters()]
print(pair_kernels.status())
print(hashlib.sha256(b"".join(v.contiguous().numpy().tobytes() for v in values)).hexdigest())
torch.save(values, sys.argv[2])
"""


@pytest.mark.slow
def test_the_portable_build_is_the_reproducibility_mode(tmp_path):
    """BALANCEBENCH_PAIR_KERNELS_ARCH=portable (docs/training.md, "Reproducibility mode"): the baseline x86-64
    build (no -march=native: SSE2, no FMA to contract into) gives bit-identical float32 energies, forces and
    gradients in two fresh processes, equal to the eager expressions to rounding, from a cache entry that
    does not depend on the CPU model (previous test). That another CPU model gives the same bits is argued
    (the same instructions), not tested here: no second CPU model is at hand."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, BALANCEBENCH_PAIR_KERNELS_ARCH="portable", BALANCEBENCH_PAIR_KERNELS="1",
               OMP_NUM_THREADS="1")
    script = tmp_path / "run.py"
    script.write_text(_PORTABLE_RUN)
    runs = []
    for k, mode in enumerate(("fused", "fused", "eager")):
        proc = subprocess.run([sys.executable, str(script), mode, str(tmp_path / f"{k}.pt")], env=env,
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr
        status, digest = proc.stdout.split("\n")[-3:-1]
        runs.append((status, digest, torch.load(tmp_path / f"{k}.pt")))
    assert runs[0][0] == runs[1][0] == "fused (C++, portable)"
    assert runs[0][1] == runs[1][1]  # bit-identical across processes
    for fused, eager in zip(runs[0][2], runs[2][2]):
        torch.testing.assert_close(fused, eager, rtol=1e-3, atol=1e-4)  # float32 sums in another order (1e-4 seen)
