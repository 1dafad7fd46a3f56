"""Many seeds in one process: the batched (vmapped) evaluation and lockstep training equal single-seed runs."""

import numpy as np
import pytest
import torch

from balancebench.balancing import available_methods, default_params, get_method, missing_requirements
from balancebench.multiseed import MultiSeedTrainer
from balancebench.tasks.cg_benzene.batched import batched_energy_and_forces, pad_geometry
from balancebench.tasks.cg_benzene.model import ModelConfig
from balancebench.training import Trainer, TrainingSettings

MODEL = dict(hidden_channels=12, num_filters=12, num_interactions=2, num_gaussians=12, cutoff=7.5,
             prior_sigma=3.5, prior_exponent=12.0)
TRAINING = dict(max_epochs=3, batch_size=5, learning_rate=3e-3, lr_decay=0.9, patience=5, dtype="float64",
                device="cpu")


@pytest.mark.parametrize("filter_table", [None, 0.02])
def test_batched_evaluation_equals_each_model_alone(lj_dataset, filter_table):
    """Exact and tabulated models (the tabulated one alone builds its table from its batch's closest pair on,
    vmapped the whole table: the same rows to rounding)."""
    torch.set_num_threads(1)
    config = ModelConfig(**MODEL, filter_table=filter_table)
    trainers = [Trainer(lj_dataset, config, TrainingSettings(**TRAINING), get_method("constant"), s)
                for s in (1, 2, 3)]
    graphs = [t.train_data.batch(order)[0] for t, order in zip(trainers, ([0, 1, 2], [5, 3, 9], [7, 8, 4]))]
    pairs = [len(g.neighbors) for g in graphs]
    assert len(set(pairs)) > 1  # different pair counts: padding is exercised
    batched = batched_energy_and_forces([t.model for t in trainers], graphs, training=True)
    loss = 0.0
    for t, g, (e, f) in zip(trainers, graphs, batched):
        e1, f1 = t.model.energy_and_forces(g)
        assert torch.allclose(e, e1, rtol=1e-12) and torch.allclose(f, f1, rtol=1e-10, atol=1e-10)
        loss = loss + (f**2).mean() + 1e-3 * (e**2).mean()
    loss.backward()
    for t, g in zip(trainers, graphs):
        batched_grads = [p.grad.clone() for p in t.model.parameters()]
        t.model.zero_grad()
        e, f = t.model.energy_and_forces(g, training=True)
        ((f**2).mean() + 1e-3 * (e**2).mean()).backward()
        for a, p in zip(batched_grads, t.model.parameters()):
            assert torch.allclose(a, p.grad, rtol=1e-9, atol=1e-12)


def test_padding_pairs_are_inert(lj_dataset):
    trainer = Trainer(lj_dataset, ModelConfig(**MODEL), TrainingSettings(**TRAINING), get_method("constant"), 0)
    graph = trainer.train_data.batch([0, 1])[0]
    geom = trainer.model.batch_geometry(graph)
    e0, f0 = trainer.model.explicit_energy_and_forces(graph, geom)
    e1, f1 = trainer.model.explicit_energy_and_forces(graph, pad_geometry(geom, len(geom.i) + 37))
    # equal to rounding, not bit for bit: the filter's matmul over 37 more rows may round a row differently
    assert torch.allclose(e0, e1, rtol=1e-14, atol=0) and torch.allclose(f0, f1, rtol=0, atol=1e-13)


@pytest.mark.parametrize("method,params", [("softadapt", {}), ("constant", {"weights": [1.0, 0.05]}),
                                           ("mgda", {}), ("pcgrad", {}), ("uncertainty", {}), ("gradnorm", {})])
def test_lockstep_training_gives_each_seed_its_single_run_weights(lj_dataset, method, params):
    """Per-seed weights, logs and method states of a multi-seed run equal training each seed alone (float64, CPU).

    Value (softadapt, constant), gradient (mgda, pcgrad: one autograd.grad per loss) and learned
    (uncertainty, gradnorm: own parameters and optimizer) methods all go through their own backward/step.
    """
    torch.set_num_threads(1)
    seeds = [4, 5, 6]
    multi = MultiSeedTrainer(lj_dataset, ModelConfig(**MODEL), TrainingSettings(**TRAINING), method, params, seeds)
    results = multi.run()
    for seed, trainer, result in zip(seeds, multi.trainers, results):
        alone = Trainer(lj_dataset, ModelConfig(**MODEL), TrainingSettings(**TRAINING), get_method(method, **params),
                        seed)
        ref = alone.run()
        assert result.status == ref.status and result.best_epoch == ref.best_epoch
        a, b = trainer.model.state_dict(), alone.model.state_dict()
        for k in a:
            assert torch.allclose(a[k], b[k], rtol=1e-9, atol=1e-12), (seed, k)
        assert len(result.log) == len(ref.log) and result.log[0].keys() == ref.log[0].keys()
        for mine, theirs in zip(result.log, ref.log):
            for col in mine:
                if col != "seconds":
                    np.testing.assert_allclose(mine[col], theirs[col], rtol=1e-9, atol=1e-12, err_msg=col)
        for name, value in trainer.method.state_dict()["state"].items():
            if isinstance(value, torch.Tensor):
                assert torch.allclose(value, alone.method.state_dict()["state"][name], rtol=1e-9, atol=1e-12), name
    # the seeds did train apart
    w = [t.model.state_dict()["lin2.weight"] for t in multi.trainers]
    assert not torch.allclose(w[0], w[1])


@pytest.mark.parametrize("method,merged", [("softadapt", True), ("uncertainty", True), ("cosmos", True),
                                           ("mgda", False), ("gradnorm", False)])
def test_one_objective_methods_share_one_backward_pass(lj_dataset, monkeypatch, method, merged):
    """Methods whose update is one objective's gradient (single_objective) take one backward pass through the
    batched graph for all seeds (no per-seed slice); the others go through a slice per seed."""
    import balancebench.tasks.cg_benzene.batched as multiseed

    torch.set_num_threads(1)
    slices, passes, plain_backward = [], [], torch.Tensor.backward
    monkeypatch.setattr(multiseed._SeedSlice, "apply", lambda *a, _apply=multiseed._SeedSlice.apply:
                        slices.append(a[1]) or _apply(*a))
    monkeypatch.setattr(torch.Tensor, "backward", lambda self, *a, **k: passes.append(1) or
                        plain_backward(self, *a, **k))
    training = dict(TRAINING, max_epochs=1, batch_size=8)
    multi = MultiSeedTrainer(lj_dataset, ModelConfig(**MODEL), TrainingSettings(**training), method, {}, [1, 2, 3])
    assert get_method(method).single_objective() is merged
    multi.run()
    steps = multi.trainers[0].context.step
    assert steps > 0 and all(t.context.step == steps for t in multi.trainers)
    if merged:
        assert slices == [] and len(passes) == steps  # one backward pass per step for the three seeds
    else:
        assert len(slices) == 3 * steps


# A method whose lockstep run differs from the single-seed run for a cause not found yet: kept visible as a strict
# xfail (the test fails once it is fixed, so the mark goes). LRA was one (issue 26): it set p.grad to a gradient
# that came through the vmapped graph as a transposed view, and the fused Adam step applied it in the parameter's
# layout; it now writes the gradient in the parameter's layout (balancing/lra.py).
LOCKSTEP_OPEN: set[str] = set()


@pytest.mark.parametrize("method", [
    pytest.param(m, marks=pytest.mark.xfail(strict=True, reason="LRA in lockstep differs from alone: open, issue 26"))
    if m in LOCKSTEP_OPEN else m for m in available_methods() if not m.startswith("test_")])
def test_every_registered_method_trains_lockstep_as_alone(lj_dataset, tmp_path, method):
    """Every registered method goes through its own backward/step in lockstep, with no branch on its kind
    (torchjd's batched Jacobians vmap over the seed slice's backward; ml2o / gml2o step the parameters
    themselves): 2 seeds, 2 epochs equal single runs."""
    if missing_requirements(method):
        pytest.skip(f"{method} needs the optional packages {missing_requirements(method)}")
    torch.set_num_threads(1)
    model = dict(MODEL, hidden_channels=8, num_filters=8, num_interactions=1, num_gaussians=8)
    training = dict(TRAINING, max_epochs=2, batch_size=8)
    params = {}
    if "optimizer_path" in default_params(method):  # ml2o / gml2o: a learned optimizer (random here)
        from balancebench.l2o import MultiGradientOptimizer, OptimizerSpec, save_optimizer

        torch.manual_seed(0)
        params["optimizer_path"] = str(tmp_path / "optimizer.pt")
        save_optimizer(MultiGradientOptimizer(OptimizerSpec()), params["optimizer_path"])
    multi = MultiSeedTrainer(lj_dataset, ModelConfig(**model), TrainingSettings(**training), method, params, [4, 5])
    results = multi.run()
    for seed, trainer, result in zip([4, 5], multi.trainers, results):
        alone = Trainer(lj_dataset, ModelConfig(**model), TrainingSettings(**training),
                        get_method(method, **params), seed)
        ref = alone.run()
        assert result.status == ref.status and len(result.log) == len(ref.log)
        a, b = trainer.model.state_dict(), alone.model.state_dict()
        assert all(torch.allclose(a[k], b[k], rtol=1e-9, atol=1e-12) for k in a), (method, seed)
        for mine, theirs in zip(result.log, ref.log):
            np.testing.assert_allclose([mine[c] for c in mine if c != "seconds"],
                                       [theirs[c] for c in mine if c != "seconds"], rtol=1e-9, atol=1e-12)


def test_each_seed_differentiates_its_own_losses_repeatedly(lj_dataset):
    """Per-seed autograd.grad on the batched outputs, twice (as gradient methods do), equals the model alone;
    the other seeds' parameters get nothing."""
    torch.set_num_threads(1)
    trainers = [Trainer(lj_dataset, ModelConfig(**MODEL), TrainingSettings(**TRAINING), get_method("constant"), s)
                for s in (1, 2)]
    graphs = [t.train_data.batch(order)[0] for t, order in zip(trainers, ([0, 1, 2], [5, 3, 9]))]
    batched = batched_energy_and_forces([t.model for t in trainers], graphs, training=True)
    for t, g, (e, f) in zip(trainers, graphs, batched):
        params = [p for p in t.model.parameters() if p.requires_grad]
        e1, f1 = t.model.energy_and_forces(g, training=True)
        for mine, alone in (((f**2).mean(), (f1**2).mean()), ((e**2).mean(), (e1**2).mean())):
            got = torch.autograd.grad(mine, params, allow_unused=True)
            want = torch.autograd.grad(alone, params, allow_unused=True, retain_graph=True)
            for a, b, p in zip(got, want, params):
                a, b = (torch.zeros_like(p) if x is None else x for x in (a, b))
                assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)
    other = [p for p in trainers[1].model.parameters()]
    (batched[0][1] ** 2).sum().backward()
    assert all(p.grad is None for p in other)


def test_per_seed_extras_are_vmapped_and_foreign_ones_refused(lj_dataset):
    """A tensor extra that differs per seed (a conditioned method's preference) rides along the seed axis;
    a differing non-tensor extra cannot be batched and is refused by name."""
    trainers = [Trainer(lj_dataset, ModelConfig(**MODEL), TrainingSettings(**TRAINING), get_method("constant"), s)
                for s in (1, 2)]
    graphs = [t.train_data.batch([0, 1])[0] for t in trainers]
    for g, r in zip(graphs, ([0.3, 0.7], [0.9, 0.1])):
        g.extras["preference"] = torch.tensor(r, dtype=torch.float64)
    batched = batched_energy_and_forces([t.model for t in trainers], graphs, training=False)
    for t, g, (e, f) in zip(trainers, graphs, batched):
        e1, f1 = t.model.energy_and_forces(g)
        assert torch.allclose(e, e1, rtol=1e-12) and torch.allclose(f, f1, rtol=1e-10, atol=1e-10)
    graphs[0].extras["tag"], graphs[1].extras["tag"] = "a", "b"
    with pytest.raises(ValueError, match="'tag'"):
        batched_energy_and_forces([t.model for t in trainers], graphs)


def test_mismatched_batches_are_refused(lj_dataset):
    trainers = [Trainer(lj_dataset, ModelConfig(**MODEL), TrainingSettings(**TRAINING), get_method("constant"), s)
                for s in (1, 2)]
    graphs = [trainers[0].train_data.batch([0, 1])[0], trainers[1].train_data.batch([0, 1, 2])[0]]
    with pytest.raises(ValueError, match="equal frame and bead counts"):
        batched_energy_and_forces([t.model for t in trainers], graphs)


def test_train_seeds_writes_what_train_model_writes(lj_dataset, tmp_path):
    import json

    import pandas as pd

    from balancebench.multiseed import train_seeds
    from balancebench.training import train_model

    training = dict(TRAINING, max_epochs=1)
    train_seeds(lj_dataset, MODEL, training, "softadapt", {}, [7, 8], [tmp_path / "m7", tmp_path / "m8"], threads=1)
    for seed in (7, 8):
        train_model(lj_dataset, MODEL, training, "softadapt", {}, seed, tmp_path / f"s{seed}", threads=1)
        a = torch.load(tmp_path / f"m{seed}" / "model.pt", weights_only=True)
        b = torch.load(tmp_path / f"s{seed}" / "model.pt", weights_only=True)
        assert all(torch.allclose(a[k], b[k], rtol=1e-9, atol=1e-12) for k in a)
        assert json.loads((tmp_path / f"m{seed}" / "hparams.json").read_text()) == \
            json.loads((tmp_path / f"s{seed}" / "hparams.json").read_text())
        sa, sb = (json.loads((tmp_path / f"{p}{seed}" / "status.json").read_text()) for p in "ms")
        assert sa["status"] == sb["status"] and sa["best_epoch"] == sb["best_epoch"]
        la, lb = (pd.read_csv(tmp_path / f"{p}{seed}" / "train_log.csv") for p in "ms")
        np.testing.assert_allclose(la["val_force"], lb["val_force"], rtol=1e-9)
