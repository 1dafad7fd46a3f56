"""CGSchNet: forces are -dE/dx, symmetries hold, the prior is Eq. 3, and it computes what torch_geometric's SchNet computes."""

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from balancebench.tasks.cg_benzene.model import CGSchNet, GraphBatch, ModelConfig, batch_frames
from balancebench.tasks.cg_benzene.neighbors import CutoffTooLargeError, neighbor_list

BOX = np.array([22.0, 22.0, 22.0])


def liquid_like(n=40, seed=0, box=BOX):
    """Random beads kept > 3.5 A apart (so the prior stays moderate)."""
    rng = np.random.default_rng(seed)
    x = []
    while len(x) < n:
        p = rng.uniform(0, 1, 3) * box
        if all(np.linalg.norm((p - q) - box * np.round((p - q) / box)) > 3.5 for q in x):
            x.append(p)
    return torch.tensor(np.array(x), dtype=torch.float64)


def model64(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = ModelConfig(hidden_channels=16, num_filters=16, num_interactions=2, num_gaussians=20, cutoff=8.0, **kw)
    model = CGSchNet(cfg).double()
    model.set_energy_scale(-6.8, 1.3)
    return model


def test_forces_are_minus_finite_difference_gradient():
    model = model64()
    x = liquid_like()
    energy, forces = model.frame_energy_and_forces(x, BOX)
    h = 1e-5
    rng = np.random.default_rng(1)
    for bead, dim in zip(rng.integers(0, len(x), 6), rng.integers(0, 3, 6)):
        xp, xm = x.clone(), x.clone()
        xp[bead, dim] += h
        xm[bead, dim] -= h
        # same neighbour list as the unperturbed frame (no pair crosses the cutoff for h = 1e-5)
        nl = neighbor_list(x, BOX, model.cutoff)
        ep, _ = model.frame_energy_and_forces(xp, BOX, nl)
        em, _ = model.frame_energy_and_forces(xm, BOX, nl)
        fd = -(ep - em).item() / (2 * h)
        assert forces[bead, dim].item() == pytest.approx(fd, rel=1e-5, abs=1e-8)


def test_invariant_to_translation_wrapping_and_permutation():
    model = model64(1)
    x = liquid_like(seed=2)
    e0, f0 = model.frame_energy_and_forces(x, BOX)
    shift = torch.tensor([3.3, -7.1, 11.9], dtype=torch.float64)
    e1, f1 = model.frame_energy_and_forces(x + shift, BOX)
    wrapped = (x + shift) - torch.tensor(BOX) * torch.floor((x + shift) / torch.tensor(BOX))
    e2, f2 = model.frame_energy_and_forces(wrapped + torch.tensor(BOX) * torch.tensor([1.0, 0.0, -2.0]), BOX)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    e3, f3 = model.frame_energy_and_forces(x[perm], BOX)
    for e, f in ((e1, f1), (e2, f2)):
        assert e.item() == pytest.approx(e0.item(), rel=1e-12)
        assert torch.allclose(f, f0, atol=1e-10)
    assert e3.item() == pytest.approx(e0.item(), rel=1e-12)
    assert torch.allclose(f3, f0[perm], atol=1e-10)
    assert f0.sum(0).abs().max() < 1e-10  # Newton's third law: translation invariance


def test_prior_is_equation_3():
    model = model64(use_prior=True)
    x = torch.tensor([[1.0, 1.0, 1.0], [4.5, 1.0, 1.0], [1.0, 6.0, 1.0]], dtype=torch.float64)
    box = np.array([30.0, 30.0, 30.0])
    nl = neighbor_list(x, box, model.cutoff)
    _, pair = model.bead_energies(x, nl)
    r = nl.vectors(x).norm(dim=-1)
    expected = (4.0 / r) ** 12
    assert torch.allclose(pair, expected, rtol=1e-14)
    assert len(nl) == 3  # 3.5, 5.0 and sqrt(3.5^2 + 5^2) A


def test_pairs_beyond_the_cutoff_contribute_nothing():
    """A Verlet list carries pairs out to cutoff + skin: the energy must equal that of the exact list."""
    model = model64(2)
    x = liquid_like(seed=3)
    exact = neighbor_list(x, BOX, model.cutoff)
    skin = neighbor_list(x, BOX, model.cutoff + 2.0)
    assert len(skin) > len(exact)
    e1, f1 = model.frame_energy_and_forces(x, BOX, exact)
    e2, f2 = model.frame_energy_and_forces(x, BOX, skin)
    assert e1.item() == pytest.approx(e2.item(), rel=1e-13)
    assert torch.allclose(f1, f2, atol=1e-12)


def test_batched_frames_equal_single_frames():
    model = model64(3)
    frames = [liquid_like(seed=s) for s in (4, 5, 6)]
    lists = [neighbor_list(x, BOX, model.cutoff) for x in frames]
    energy, forces = model.energy_and_forces(batch_frames(frames, lists))
    for k, x in enumerate(frames):
        e, f = model.frame_energy_and_forces(x, BOX)
        assert energy[k].item() == pytest.approx(e.item(), rel=1e-13)
        assert torch.allclose(forces[k * len(x):(k + 1) * len(x)], f, atol=1e-12)


def test_refuses_cutoff_beyond_half_box():
    model = model64()
    with pytest.raises(CutoffTooLargeError):
        model.frame_energy_and_forces(torch.zeros(3, 3, dtype=torch.float64), np.array([15.0] * 3))


def test_same_numbers_as_torch_geometric_schnet():
    """Copy our weights into torch_geometric's SchNet, wire it to the same neighbour list: equal energies and forces."""
    from balancebench.tasks.cg_benzene.pyg_reference import pyg_schnet_like

    model = model64(4, use_prior=False)
    model.set_energy_scale(0.0, 1.0)
    x = liquid_like(seed=7)
    stock, run = pyg_schnet_like(model, BOX)
    e_ours, f_ours = model.frame_energy_and_forces(x, BOX)
    e_pyg, f_pyg = run(x)
    # torch_geometric computes the softplus shift ln 2 in float32 (0.69314718246 instead of 0.69314718056):
    # that, not the model, limits the agreement to ~1e-8 relative.
    assert e_ours.item() == pytest.approx(e_pyg.item(), rel=2e-8)
    assert torch.allclose(f_ours, f_pyg, rtol=1e-6, atol=1e-7)
    assert not torch.allclose(f_ours, 1.001 * f_pyg, rtol=1e-6, atol=1e-7)


def test_unknown_hyperparameter_is_named():
    with pytest.raises(ValueError, match="num_filterz"):
        ModelConfig.from_dict({"num_filterz": 3})


# -- the explicit-force path (model.explicit_energy_and_forces) against autograd -------------------------------


def _frames_and_lists(model, seeds=(11, 12), reach=0.0):
    frames = [liquid_like(seed=s) for s in seeds]
    lists = [neighbor_list(x, BOX, model.cutoff + reach) for x in frames]
    return frames, lists


@pytest.mark.parametrize("activation", ["ssp", "tanh", "silu"])
@pytest.mark.parametrize("chunk", [64, 1 << 20])
def test_explicit_forces_equal_autograd_forces(activation, chunk, monkeypatch):
    """Same energies and forces as dE/dx by autograd (prior on, Verlet-like list with pairs beyond the cutoff)."""
    import balancebench.tasks.cg_benzene.model as model_module

    monkeypatch.setattr(model_module, "PAIR_CHUNK", chunk)  # 64: many chunks; 2^20: one
    model = model64(5, activation=activation)
    frames, lists = _frames_and_lists(model, reach=1.5)
    graph = batch_frames(frames, lists)
    e_fast, f_fast = model.energy_and_forces(graph)
    e_ref, f_ref = model.energy_and_forces_autograd(graph)
    assert torch.allclose(e_fast, e_ref, rtol=1e-12, atol=0)
    assert ((f_fast - f_ref).norm() / f_ref.norm()).item() < 1e-10  # float64 rounding of large prior terms
    # and a perturbed model (1 % in one filter weight) is told apart
    with torch.no_grad():
        model.interactions[0].mlp[2].weight[0, 0] *= 1.01
    _, f_other = model.energy_and_forces_autograd(graph)
    assert ((f_fast - f_other).norm() / f_ref.norm()).item() > 1e-6


def test_explicit_forces_are_minus_finite_difference_gradient_on_a_verlet_list():
    model = model64(6)
    x = liquid_like(seed=13)
    nl = neighbor_list(x, BOX, model.cutoff + 2.0)
    graph = GraphBatch(x, nl, torch.zeros(len(x), dtype=torch.long), 1)
    _, forces = model.explicit_energy_and_forces(graph)
    h = 1e-5
    for bead, dim in ((0, 0), (7, 1), (23, 2), (39, 0)):
        xp, xm = x.clone(), x.clone()
        xp[bead, dim] += h
        xm[bead, dim] -= h
        ep, _ = model.explicit_energy_and_forces(GraphBatch(xp, nl, graph.frame, 1), forces=False)
        em, _ = model.explicit_energy_and_forces(GraphBatch(xm, nl, graph.frame, 1), forces=False)
        fd = -(ep - em).item() / (2 * h)
        assert forces[bead, dim].item() == pytest.approx(fd, rel=1e-5, abs=1e-8)


@pytest.mark.parametrize("activation", ["ssp", "silu"])
def test_training_gradients_equal_the_double_backward(activation, monkeypatch):
    """The force + energy loss gradient through explicit forces (first-order backward) equals autograd's double
    backward through -dE/dx, parameter by parameter (float64)."""
    import balancebench.tasks.cg_benzene.model as model_module

    monkeypatch.setattr(model_module, "PAIR_CHUNK", 100)
    model = model64(7, activation=activation)
    frames, lists = _frames_and_lists(model, seeds=(14, 15, 16))
    graph = batch_frames(frames, lists)
    target = torch.randn(sum(len(x) for x in frames), 3, generator=torch.Generator().manual_seed(0),
                         dtype=torch.float64)
    params = [p for p in model.parameters()]

    def grads(energy_forces):
        energy, forces = energy_forces(graph, training=True)
        loss = torch.mean((forces - target) ** 2) + 1e-2 * torch.mean((energy + 300.0) ** 2)
        return loss.detach(), torch.autograd.grad(loss, params)

    loss_fast, g_fast = grads(model.energy_and_forces)
    loss_ref, g_ref = grads(model.energy_and_forces_autograd)
    assert loss_fast.item() == pytest.approx(loss_ref.item(), rel=1e-12)
    for (name, _), a, b in zip(model.named_parameters(), g_fast, g_ref):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12 * b.abs().max().item()), name
    assert any(b.abs().max() > 0 for b in g_ref[1:])


def test_geometry_cache_is_used_and_invalidated_when_positions_change():
    model = model64(8)
    frames, lists = _frames_and_lists(model)
    e1, f1 = model.energy_and_forces(batch_frames(frames, lists))
    assert all(hasattr(nl, "_geometry") for nl in lists)
    cached = lists[0]._geometry[1]
    e2, f2 = model.energy_and_forces(batch_frames(frames, lists))
    assert lists[0]._geometry[1] is cached and torch.equal(e1, e2) and torch.equal(f1, f2)
    with torch.no_grad():
        frames[0][3] += 0.05  # in place: the version counter moves, the cache must not be used
    e3, f3 = model.energy_and_forces(batch_frames(frames, lists))
    e_ref, f_ref = model.energy_and_forces_autograd(batch_frames(frames, lists))
    assert lists[0]._geometry[1] is not cached
    assert torch.allclose(e3, e_ref, rtol=1e-12) and torch.allclose(f3, f_ref, atol=1e-10)
    assert not torch.allclose(e3, e1, rtol=1e-12)


def test_every_energy_path_builds_h0_through_initial_features(monkeypatch):
    """initial_features is the one place h0 is made: shifting it moves both paths' energies identically."""
    model = model64(9)
    frames, lists = _frames_and_lists(model, seeds=(17,))
    graph = batch_frames(frames, lists)
    e_base, _ = model.energy_and_forces(graph)
    original = CGSchNet.initial_features

    def shifted(self, species, batch):
        return original(self, species, batch) + 0.3

    monkeypatch.setattr(CGSchNet, "initial_features", shifted)
    e_fast, f_fast = model.energy_and_forces(graph)
    e_ref, f_ref = model.energy_and_forces_autograd(graph)
    assert not torch.allclose(e_fast, e_base, rtol=1e-6)
    assert torch.allclose(e_fast, e_ref, rtol=1e-12) and torch.allclose(f_fast, f_ref, atol=1e-10)


def test_filter_table_error_shrinks_as_h_to_the_fourth():
    """Cubic Hermite table of W(r) = f(r) C(r): values O(h^4), derivatives O(h^3), both tiny at h = 0.005 A."""
    from balancebench.tasks.cg_benzene.model import FilterTable

    model = model64(10)
    r = torch.linspace(0.5, model.cutoff - 1e-6, 2001, dtype=torch.float64)
    d = r[:, None] - model.offsets[None, :]
    rbf = torch.exp(model.gamma * d * d)
    drbf = 2 * model.gamma * d * rbf
    env = 0.5 * (torch.cos(r * math.pi / model.cutoff) + 1)
    denv = -0.5 * math.pi / model.cutoff * torch.sin(r * math.pi / model.cutoff)
    block = model.interactions[1]
    with torch.no_grad():
        z = rbf @ block.mlp[0].weight.t() + block.mlp[0].bias
        f = block.mlp[2](block.mlp[1](z))
        df = (torch.sigmoid(z) * (drbf @ block.mlp[0].weight.t())) @ block.mlp[2].weight.t()
        w, dw = f * env[:, None], df * env[:, None] + f * denv[:, None]
    errors = []
    for h in (0.08, 0.04, 0.005):
        wt, dwt = FilterTable(model, h).filter(1, r)
        errors.append(((wt - w).abs().max() / w.abs().max()).item())
        if h == 0.005:
            assert ((dwt - dw).abs().max() / dw.abs().max()).item() < 1e-7
    assert errors[0] / errors[1] > 10  # ~16 for O(h^4)
    assert errors[2] < 1e-9


def test_a_table_from_r_min_on_reads_the_full_tables_rows():
    """A training step builds its table from (one below) the closest pair's interval on: the rows it reads are the
    full table's (to float64 rounding: the matrix products see fewer rows), and a distance below its first node is
    refused rather than extrapolated."""
    from balancebench.tasks.cg_benzene.model import FilterTable

    model = model64(10)
    full, part = FilterTable(model, 0.01), FilterTable(model, 0.01, r_min=3.0)
    assert part.first == 299 and len(part.rows[0]) == len(full.rows[0]) - 299
    r = torch.linspace(3.0, model.cutoff - 1e-6, 777, dtype=torch.float64)
    for block in range(len(model.interactions)):
        torch.testing.assert_close(part.rows[block], full.rows[block][part.first:], rtol=1e-13, atol=1e-15)
        for a, b in zip(part.filter(block, r), full.filter(block, r)):
            torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-13 * b.abs().max().item())
    with pytest.raises(ValueError, match="below this table's first node"):
        part.filter(0, torch.tensor([2.5], dtype=torch.float64))


def test_geometry_cache_budget_is_released_with_the_frames():
    import gc

    import balancebench.tasks.cg_benzene.model as model_module

    model = model64(11)
    before = model_module._geometry_cache_used[0]
    frames, lists = _frames_and_lists(model, seeds=(18,))
    model.energy_and_forces(batch_frames(frames, lists))
    size = lists[0]._geometry[1].nbytes()
    assert model_module._geometry_cache_used[0] == before + size
    with torch.no_grad():
        frames[0][0] += 0.01  # stale entry replaced: the budget is not charged twice
    model.energy_and_forces(batch_frames(frames, lists))
    assert model_module._geometry_cache_used[0] == before + size
    del frames, lists
    gc.collect()
    assert model_module._geometry_cache_used[0] == before


@pytest.mark.parametrize("spacing,bound", [(0.005, 1e-6), (0.02, 1e-5)])
def test_tabulated_model_is_the_exact_model_within_its_bound(spacing, bound):
    """model.filter_table: energies, forces and force-loss gradients of the tabulated model (training path, the
    table differentiated through) against the exact filter network with the same weights (float64)."""
    import dataclasses

    exact = model64(12)
    tabulated = CGSchNet(dataclasses.replace(exact.config, filter_table=spacing)).double()
    tabulated.load_state_dict(exact.state_dict())
    frames, lists = _frames_and_lists(exact, seeds=(21, 22))
    out = {}
    for name, model in (("exact", exact), ("table", tabulated)):
        energy, forces = model.energy_and_forces(batch_frames(frames, lists), training=True)
        grads = torch.autograd.grad(forces.pow(2).sum() + energy.pow(2).sum(), list(model.parameters()))
        out[name] = (energy.detach(), forces.detach(), grads)
    (e0, f0, g0), (e1, f1, g1) = out["exact"], out["table"]
    assert ((e1 - e0).abs() / e0.abs()).max() < bound
    assert (f1 - f0).norm() / f0.norm() < bound
    assert max(((a - b).norm() / b.norm()).item() for a, b in zip(g1, g0)) < 10 * bound
    assert (f1 - f0).abs().max() > 0  # a different model, not the exact path under another name


def test_filter_table_setting_is_validated():
    with pytest.raises(ValueError, match="model.filter_table"):
        ModelConfig.from_dict({"filter_table": -1.0})
    with pytest.raises(ValueError, match="model.filter_table"):
        ModelConfig.from_dict({"filter_table": True})
    assert ModelConfig.from_dict({"filter_table": 0.02}).filter_table == 0.02


_STEP_FAULTS = """
import ctypes, resource, sys, torch
from balancebench.runtime import keep_freed_memory
# the control: glibc's mmap threshold held at its initial 128 KiB (its dynamic rise is left to chance), so
# every block below is mapped and unmapped, as glibc's default does in a training step much of the time
assert ctypes.CDLL("libc.so.6").mallopt(-3, 128 << 10)
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def step():  # a demo step's (pairs x filters) temporaries, allocated and freed
    blocks = [torch.ones(13000 * 32) for _ in range(12)]
    del blocks
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_step_memory_is_reused_not_page_faulted_again():
    """keep_freed_memory (called by fast_cpu_math in training and MD): a repeated step's blocks come back from
    the heap instead of fresh pages (mapped anew, each of its 12 x 406 pages is faulted again every step)."""
    def faults(mode):
        run = subprocess.run([sys.executable, "-c", _STEP_FAULTS, mode], capture_output=True, text=True, check=True)
        return float(run.stdout.split()[-1])

    pages = 12 * 13000 * 32 * 4 / 4096
    assert faults("mapped") > 0.9 * pages
    assert faults("keep") < 0.05 * pages
