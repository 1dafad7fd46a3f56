"""Shared property tests of the balancing contract, run on every registered method (grouped by kind).

The problem: a tiny energy model E(x) = sum_beads MLP(x) on a few frames, forces by the
double backward F = -dE/dx (create_graph, as CGSchNet), two losses {"force", "energy"}.
A method registered anywhere before collection (tests/balancing_shapes.py registers one of
each shape) gets these tests without a line here.
"""

import copy
import io
from types import SimpleNamespace

import balancing_shapes  # noqa: F401  (registers one toy method of each shape)
import numpy as np
import pytest
import torch

from balancebench.balancing import (
    KINDS,
    BalancingMethod,
    TrainContext,
    available_methods,
    default_params,
    get_method,
    missing_requirements,
)
from balancebench.training import TrainingSettings

COMPONENTS = ("force", "energy")

METHODS = sorted(available_methods(), key=lambda n: (KINDS.index(type(get_method(n)).kind), n))
IDS = [f"{type(get_method(n)).kind}-{n}" for n in METHODS]


class TinyEnergy(torch.nn.Module):
    """E(x) = sum over beads of lin2(tanh(lin1(x))): lin2.bias is reached by the energy loss only (as the real shift)."""

    def __init__(self):
        super().__init__()
        self.lin1 = torch.nn.Linear(3, 8)
        self.lin2 = torch.nn.Linear(8, 1)

    def forward(self, x):
        return self.lin2(torch.tanh(self.lin1(x))).sum(dim=(1, 2))


def problem(seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(6, 4, 3, generator=gen, dtype=torch.float64)
    f_ref = torch.randn(6, 4, 3, generator=gen, dtype=torch.float64)
    e_ref = 3.0 * torch.randn(6, generator=gen, dtype=torch.float64)
    return x, f_ref, e_ref


def losses_of(model, x, f_ref, e_ref, frames):
    xb = x[frames].clone().requires_grad_(True)
    energy = model(xb)
    (grad,) = torch.autograd.grad(energy.sum(), xb, create_graph=True)
    return {"force": torch.mean((-grad - f_ref[frames]) ** 2), "energy": torch.mean((energy - e_ref[frames]) ** 2)}


_L2O_ARTIFACT: list = []


def method_params(name) -> dict:
    """Defaults, except that ml2o / gml2o read a (random) learned-optimizer artifact written once here."""
    if "optimizer_path" not in default_params(name):
        return {}
    if not _L2O_ARTIFACT:
        import tempfile

        from balancebench.l2o import MultiGradientOptimizer, OptimizerSpec, save_optimizer

        torch.manual_seed(0)
        path = f"{tempfile.mkdtemp()}/optimizer.pt"
        save_optimizer(MultiGradientOptimizer(OptimizerSpec()), path)
        _L2O_ARTIFACT.append(path)
    return {"optimizer_path": _L2O_ARTIFACT[0]}


def make(name, seed=0):
    if missing_requirements(name):
        pytest.skip(f"{name} needs the optional packages {missing_requirements(name)}")
    torch.manual_seed(seed)
    model = TinyEnergy().double()
    x, f_ref, e_ref = problem()
    method = get_method(name, **method_params(name))
    ctx = TrainContext(model=model, model_params=[p for p in model.parameters() if p.requires_grad],
                       components=COMPONENTS, references={"force": float(f_ref.var()), "energy": float(e_ref.var())},
                       generator=torch.Generator().manual_seed(seed),
                       settings=TrainingSettings(learning_rate=1e-2, lr_decay=0.9))
    method.setup(ctx)
    ctx.optimizer = method.make_optimizer(ctx.model_params, ctx.settings)
    return SimpleNamespace(model=model, method=method, ctx=ctx, data=(x, f_ref, e_ref))


BATCHES = [[0, 1, 2], [3, 4, 5], [1, 3, 5], [0, 2, 4], [2, 3, 4], [0, 1, 5]]


def train_steps(run, batches, epoch_of=lambda i: 1 + i // 2, via_objective=False):
    """Steps as the Trainer takes them; end_epoch after every second step. ``via_objective``: the backward as
    multi-seed training takes it for a single-objective method, ``objective(...).backward()``."""
    out = []
    for i, frames in enumerate(batches):
        run.ctx.epoch = epoch_of(i)
        graph = SimpleNamespace(extras={})
        # what the Trainer offers (TrainContext.losses_at): the losses of any training items at the current weights
        run.ctx.batch_indices, run.ctx.n_train = list(frames), len(run.data[0])
        run.ctx.losses_at = lambda indices=None, training=False, now=list(frames): losses_of(
            run.model, *run.data, now if indices is None else list(indices))
        run.method.prepare_batch(graph, run.ctx, training=True)
        losses = losses_of(run.model, *run.data, frames)
        for p in [*run.ctx.model_params, *run.method.parameters()]:
            p.grad = None
        if via_objective:
            run.method.objective(losses, run.ctx).backward()
        else:
            run.method.backward(losses, run.ctx)
        grads = [None if p.grad is None else p.grad.clone() for p in run.ctx.model_params]
        run.method.step(run.ctx)
        run.ctx.step += 1
        out.append((losses, grads))
        if i % 2 == 1:
            run.method.end_epoch({c: float(losses[c].detach()) for c in COMPONENTS}, run.ctx)
    return out


def snapshot(run) -> bytes:
    buf = io.BytesIO()
    torch.save({"model": run.model.state_dict(), "method": run.method.state_dict(),
                "optimizer": None if run.ctx.optimizer is None else run.ctx.optimizer.state_dict(),
                "generator": run.ctx.generator.get_state(), "step": run.ctx.step}, buf)
    return buf.getvalue()


def restore(run, blob: bytes) -> None:
    state = torch.load(io.BytesIO(blob), weights_only=False)
    run.model.load_state_dict(state["model"])
    run.method.load_state_dict(state["method"])
    if run.ctx.optimizer is not None:
        run.ctx.optimizer.load_state_dict(state["optimizer"])
    run.ctx.generator.set_state(state["generator"])
    run.ctx.step = state["step"]


def flat_state(method: BalancingMethod) -> list:
    """Every number in a state_dict, in a fixed order (tensors as tensors) for bit-wise comparison."""
    out = []

    def walk(v):
        if isinstance(v, dict):
            for k in sorted(v, key=str):
                walk(v[k])
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x)
        else:
            out.append(v)

    walk(method.state_dict())
    return out


def same(a, b) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if isinstance(x, torch.Tensor):
            if not (isinstance(y, torch.Tensor) and x.shape == y.shape and torch.equal(x, y)):
                return False
        elif x != y and not (isinstance(x, float) and np.isnan(x) and np.isnan(y)):
            return False
    return True


@pytest.mark.parametrize("name", METHODS, ids=IDS)
def test_declares_its_shape_and_cost(name):
    m = get_method(name)
    assert m.kind in KINDS and isinstance(m.backward_passes, int) and m.backward_passes >= 1
    assert isinstance(m.preference_dim, int) and m.preference_dim >= 0


@pytest.mark.parametrize("name", METHODS, ids=IDS)
def test_one_step_gives_finite_detached_gradients_of_the_right_shape(name):
    run = make(name)
    before = [p.detach().clone() for p in run.ctx.model_params]
    (losses, grads), = train_steps(run, BATCHES[:1])
    assert any(g is not None for g in grads)
    for p, g in zip(run.ctx.model_params, grads):
        if g is not None:
            assert g.shape == p.shape and torch.isfinite(g).all()
            assert g.grad_fn is None and not g.requires_grad  # coefficients and weights never carry a graph
    for p in run.method.parameters():
        assert p.grad is None or (p.grad.shape == p.shape and torch.isfinite(p.grad).all())
    after = [p.detach() for p in run.ctx.model_params]
    assert any(not torch.equal(a, b) for a, b in zip(before, after)), "the step did not move the model"
    assert all(torch.isfinite(p).all() for p in after)
    values = run.method.log_values()
    assert {"coef_force", "coef_energy"} <= set(values)
    assert all(isinstance(v, float) and np.isfinite(v) for v in values.values()), values


@pytest.mark.parametrize("name", METHODS, ids=IDS)
def test_a_single_objective_method_steps_the_same_through_its_objective(name):
    """single_objective(): backward is the gradient of objective (multi-seed training sums the seeds' objectives
    for one backward pass), so three steps through objective().backward() give the same gradients, model and
    state bit for bit; any other method refuses objective()."""
    run = make(name)
    if not type(run.method).single_objective():
        with pytest.raises(NotImplementedError):
            run.method.objective(losses_of(run.model, *run.data, [0, 1]), run.ctx)
        return
    other = make(name)
    plain = train_steps(run, BATCHES[:3])
    merged = train_steps(other, BATCHES[:3], via_objective=True)
    for (_, a), (_, b) in zip(plain, merged):
        assert all((x is None and y is None) or torch.equal(x, y) for x, y in zip(a, b))
    assert all(torch.equal(x, y) for x, y in zip(run.model.state_dict().values(), other.model.state_dict().values()))
    assert same(flat_state(run.method), flat_state(other.method))


@pytest.mark.parametrize("name", METHODS, ids=IDS)
def test_state_dict_survives_torch_save_and_restores_every_number(name):
    run = make(name)
    train_steps(run, BATCHES[:3])
    blob = snapshot(run)
    other = make(name, seed=1)
    restore(other, blob)
    assert same(flat_state(run.method), flat_state(other.method))


@pytest.mark.parametrize("name", METHODS, ids=IDS)
def test_resume_from_a_checkpoint_is_bit_identical(name):
    """4 steps straight == 2 steps, checkpoint, a fresh process-like object restored, 2 more steps."""
    straight = make(name)
    train_steps(straight, BATCHES[:4])
    first = make(name)
    train_steps(first, BATCHES[:2])
    blob = snapshot(first)
    resumed = make(name, seed=7)  # other initial weights and generator: only the checkpoint can make it agree
    restore(resumed, blob)
    train_steps(resumed, BATCHES[2:4], epoch_of=lambda i: 2 + i // 2)
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
    assert same(flat_state(straight.method), flat_state(resumed.method))


@pytest.mark.parametrize("name", METHODS, ids=IDS)
def test_state_dict_is_a_copy_not_a_view(name):
    run = make(name)
    train_steps(run, BATCHES[:2])
    state = copy.deepcopy(run.method.state_dict())
    frozen = flat_state(run.method)
    train_steps(run, BATCHES[2:3])
    run.method.load_state_dict(state)
    assert same(frozen, flat_state(run.method))
