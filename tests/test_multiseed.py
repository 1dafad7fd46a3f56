"""Many seeds in one process: the batched (vmapped) evaluation and lockstep training equal single-seed runs."""

import numpy as np
import pytest
import torch

from balancebench.balancing import get_method
from balancebench.model import ModelConfig
from balancebench.multiseed import MultiSeedTrainer, batched_energy_and_forces, pad_geometry
from balancebench.training import Trainer, TrainingSettings

MODEL = dict(hidden_channels=12, num_filters=12, num_interactions=2, num_gaussians=12, cutoff=7.5,
             prior_sigma=3.5, prior_exponent=12.0)
TRAINING = dict(max_epochs=3, batch_size=5, learning_rate=3e-3, lr_decay=0.9, patience=5, dtype="float64",
                device="cpu")


def test_batched_evaluation_equals_each_model_alone(lj_dataset):
    torch.set_num_threads(1)
    trainers = [Trainer(lj_dataset, ModelConfig(**MODEL), TrainingSettings(**TRAINING), get_method("constant"), s)
                for s in (1, 2, 3)]
    graphs = [t.train_frames.batch(order)[0] for t, order in zip(trainers, ([0, 1, 2], [5, 3, 9], [7, 8, 4]))]
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
    graph = trainer.train_frames.batch([0, 1])[0]
    geom = trainer.model.batch_geometry(graph)
    e0, f0 = trainer.model.explicit_energy_and_forces(graph, geom)
    e1, f1 = trainer.model.explicit_energy_and_forces(graph, pad_geometry(geom, len(geom.i) + 37))
    assert torch.equal(e0, e1) and torch.allclose(f0, f1, rtol=0, atol=1e-13)


@pytest.mark.parametrize("method,params", [("softadapt", {}), ("constant", {"weights": [1.0, 0.05]}),
                                           ("mgda", {})])
def test_lockstep_training_gives_each_seed_its_single_run_weights(lj_dataset, method, params):
    """Per-seed weights (and logs) of a multi-seed run equal training each seed alone (float64, CPU)."""
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
        np.testing.assert_allclose([r["val_force"] for r in result.log], [r["val_force"] for r in ref.log],
                                   rtol=1e-9)
    # the seeds did train apart
    w = [t.model.state_dict()["lin2.weight"] for t in multi.trainers]
    assert not torch.allclose(w[0], w[1])


def test_mismatched_batches_are_refused(lj_dataset):
    trainers = [Trainer(lj_dataset, ModelConfig(**MODEL), TrainingSettings(**TRAINING), get_method("constant"), s)
                for s in (1, 2)]
    graphs = [trainers[0].train_frames.batch([0, 1])[0], trainers[1].train_frames.batch([0, 1, 2])[0]]
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
