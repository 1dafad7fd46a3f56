"""Tests of the learned multi-gradient optimizer (ML2O / GML2O, seed 003): balancebench.l2o.

Oracles: the closed-form Pareto set of two diagonal convex quadratics and the min-norm
element of the convex hull of the gradients (Pareto-criticality), MGDA as the baseline,
and bit-for-bit equality of resumed runs.
"""

from __future__ import annotations

import math
import types

import numpy as np
import pytest
import torch

from balancebench.balancing import get_method
from balancebench.balancing.ml2o import GML2O, ML2O
from balancebench.l2o.artifact import ARTIFACT_VERSION, load_optimizer, save_optimizer
from balancebench.l2o.guard import guard, min_norm_direction
from balancebench.l2o.meta import MetaSettings, compare_with_mgda, meta_train
from balancebench.l2o.net import MultiGradientOptimizer, OptimizerSpec
from balancebench.l2o.preprocess import log_sign
from balancebench.l2o.problems import QuadraticFamily


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# --------------------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------------------


def test_log_sign_preprocessing_matches_the_formula():
    g = torch.tensor([3.0, -2e-3, 1e-6, -1e-6, 0.0], dtype=torch.float64)
    f = log_sign(g, p=10.0)
    assert f.shape == (5, 2)
    assert f[0].tolist() == pytest.approx([math.log(3.0) / 10, 1.0])
    assert f[1].tolist() == pytest.approx([math.log(2e-3) / 10, -1.0])
    # below exp(-10) = 4.54e-5: (-1, e^p g)
    assert f[2].tolist() == pytest.approx([-1.0, 1e-6 * math.exp(10)])
    assert f[3].tolist() == pytest.approx([-1.0, -1e-6 * math.exp(10)])
    assert f[4].tolist() == [-1.0, 0.0]
    with pytest.raises(ValueError, match="p must be > 0"):
        log_sign(g, p=0.0)


def test_optimizer_is_coordinatewise_and_ignores_gradient_derivatives():
    torch.manual_seed(0)
    net = MultiGradientOptimizer(OptimizerSpec())
    g = torch.randn(2, 50)
    perm = torch.randperm(50)
    m, _ = net(g, net.init_state(50))
    m_perm, _ = net(g[:, perm], net.init_state(50))
    assert torch.allclose(m[perm], m_perm, atol=1e-6)  # permutation-equivariant: one module per coordinate
    m_small, _ = net(g[:, :7], net.init_state(7))  # any model size
    assert torch.allclose(m_small, m[:7], atol=1e-6)
    gr = g.clone().requires_grad_(True)
    out, _ = net(gr, net.init_state(50))
    (dg,) = torch.autograd.grad(out.sum(), gr, allow_unused=True)
    assert dg is None  # gradient inputs are data: no derivative through them
    with pytest.raises(ValueError, match="2 objectives"):
        net(torch.randn(3, 50), net.init_state(50))


def test_spec_rejects_bad_sizes_naming_the_key():
    with pytest.raises(ValueError, match="l2o.optimizer.specific_hidden"):
        OptimizerSpec(specific_hidden=0)
    with pytest.raises(ValueError, match="unknown l2o.optimizer settings"):
        OptimizerSpec.from_dict({"hidden": 3})


def test_guard_accepts_only_sufficient_descent_and_falls_back_to_min_norm():
    g = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)  # d = (0.5, 0.5), |d|^2 = 0.5
    d, alpha = min_norm_direction(g)
    assert d.tolist() == pytest.approx([0.5, 0.5]) and alpha.tolist() == pytest.approx([0.5, 0.5])
    eta = 0.1
    good = torch.tensor([-0.05, -0.05], dtype=torch.float64)  # <g_i,u> = -0.05 <= -0.5*0.1*0.5 = -0.025
    dec = guard(good, g, eta_max=eta, sigma=0.5, max_step_ratio=2.0)
    assert dec.accepted and torch.equal(dec.update, good)
    for bad in ([-0.2, 0.01], [-0.5, -0.5], [float("nan"), 0.0]):  # ascent for one / too long / not finite
        dec = guard(torch.tensor(bad, dtype=torch.float64), g, eta_max=eta, sigma=0.5, max_step_ratio=2.0)
        assert not dec.accepted
        assert dec.update.tolist() == pytest.approx([-0.05, -0.05])  # -eta d
        assert dec.weights.tolist() == pytest.approx([0.5, 0.5])
    # the trust length caps the fallback: eta = min(eta_max, tau / |d|)
    dec = guard(None, 100 * g, eta_max=1.0, tau=0.01)
    assert float(dec.update.norm()) == pytest.approx(0.01)
    # at a Pareto-critical point (opposite gradients) nothing but the zero step passes
    crit = torch.tensor([[1.0, 2.0], [-1.0, -2.0]], dtype=torch.float64)
    dec = guard(torch.tensor([1e-3, 0.0], dtype=torch.float64), crit, eta_max=1.0)
    assert not dec.accepted and dec.min_norm == 0.0 and float(dec.update.abs().max()) == 0.0


# --------------------------------------------------------------------------------------
# the method on analytic problems (a local loop with the trainer's call order)
# --------------------------------------------------------------------------------------


def _context(params, lr=0.05, epoch=1):
    settings = types.SimpleNamespace(learning_rate=lr, lr_decay=1.0)
    return types.SimpleNamespace(model=None, model_params=params, components=("force", "energy"), references={},
                                 generator=torch.Generator().manual_seed(0), settings=settings, optimizer=None,
                                 epoch=epoch, step=0)


def _bad_artifact(path, seed=3):
    """A deliberately bad learned module: random weights, inflated, with a constant push on every coordinate."""
    torch.manual_seed(seed)
    net = MultiGradientOptimizer(OptimizerSpec())
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(3.0)
        net.out.bias.fill_(2.0)
    save_optimizer(net, path, {"note": "random"})
    return path


def _run_method(method, problem, steps, epoch=1, x=None):
    x = torch.nn.Parameter(problem.start().clone() if x is None else x)
    ctx = _context([x], epoch=epoch)
    method.setup(ctx)
    for _ in range(steps):
        f = problem._values(x.reshape(1, -1))[0]
        x.grad = None
        method.backward({"force": f[0], "energy": f[1]}, ctx)
        method.step(ctx)
    return x.detach(), ctx


def _min_norm(problem, x):
    g = problem.per_problem_grads(x.reshape(-1))[0]
    return float(min_norm_direction(g)[0].norm())


def test_gml2o_reaches_a_pareto_critical_point_with_a_random_learned_module(tmp_path):
    path = str(_bad_artifact(tmp_path / "bad.pt"))
    family = QuadraticFamily(dim=5, batch=1, curvature=(0.5, 2.0), scale=(1.0, 1.0), start_spread=3.0, lr=0.05)
    sigma, ratio = 0.5, 2.0
    for start in range(4):
        problem = family.sample(torch.Generator().manual_seed(100 + start))
        eta_max = min(1.0, sigma / ratio**2) / float(problem.smoothness()[0])  # the convergence rule (guard.py)
        d0 = _min_norm(problem, problem.start())
        gml2o = GML2O(optimizer_path=path, max_step_size=eta_max, sigma=sigma, max_step_ratio=ratio)
        x, _ = _run_method(gml2o, problem, 1500)
        assert _min_norm(problem, x) < 1e-6 * d0, start
        # the point is on the known Pareto set: x = x*(lam) for the lam that makes the scalarised gradient vanish
        g = problem.per_problem_grads(x.reshape(-1))[0].double()
        lam = float(min_norm_direction(g)[1][0])
        assert torch.allclose(x.double(), problem.pareto_point(lam)[0], atol=1e-5)
        logs = gml2o.log_values()
        assert 0.0 <= logs["acceptance"] < 1.0 and {"coef_force", "coef_energy"} <= set(logs)
        # the same bad module unguarded goes nowhere near the front: the guard carried GML2O
        x_bad, _ = _run_method(ML2O(optimizer_path=path), problem, 300)
        assert _min_norm(problem, x_bad) > 1e-2 * d0


def test_gml2o_decreases_every_objective_at_every_step(tmp_path):
    path = str(_bad_artifact(tmp_path / "bad.pt", seed=4))
    family = QuadraticFamily(dim=6, batch=1, curvature=(0.2, 5.0), scale=(0.1, 10.0), lr=0.05)
    problem = family.sample(torch.Generator().manual_seed(7))
    eta_max = 0.125 / float(problem.smoothness()[0])
    method = GML2O(optimizer_path=path, max_step_size=eta_max)
    x = torch.nn.Parameter(problem.start().clone())
    ctx = _context([x])
    method.setup(ctx)
    prev = problem._values(x.detach().reshape(1, -1))[0]
    for _ in range(200):
        f = problem._values(x.reshape(1, -1))[0]
        method.backward({"force": f[0], "energy": f[1]}, ctx)
        method.step(ctx)
        now = problem._values(x.detach().reshape(1, -1))[0]
        assert torch.all(now <= prev + 1e-12)
        prev = now


# --------------------------------------------------------------------------------------
# meta-training: a real learning check against MGDA, resumes
# --------------------------------------------------------------------------------------

SMALL_META = {"episodes": 16, "unroll": 20, "unrolls_per_episode": 5, "meta_lr": 3e-3,
              "families": {"quadratic": {"dim": 10, "batch": 8}}}
HELDOUT = [100, 101, 102]


def _beats_mgda(net, settings):
    """Pooled over the 24 held-out problems (3 batches of 8), against MGDA at its best step factor on them: a
    lower mean and median final loss and a win on at least two problems in three. Pooled, not per batch:
    meta-training's rounding differs between CPUs, and on one CPU a batch came out a tie (0.573 vs 0.572) while
    the pool gave 0.42 vs 0.81 and 79 % wins; an untrained optimizer gives 2.5 vs 0.81 and no win."""
    r = compare_with_mgda(net, settings._families["quadratic"], HELDOUT, 100)
    ok = (r["ml2o_final"] < r["mgda_final"] and r["ml2o_median"] < r["mgda_median"]
          and r["ml2o_wins"] >= 2 / 3)
    return ok, r


@pytest.fixture(scope="module")
def meta_trained():
    threads = torch.get_num_threads()  # module scope: set up before the function-scoped _one_thread
    torch.set_num_threads(1)
    settings = MetaSettings.from_dict(SMALL_META)
    net, record = meta_train(OptimizerSpec(), settings)
    torch.set_num_threads(threads)
    return net, record, settings


def test_meta_trained_ml2o_beats_mgda_on_heldout_problems(meta_trained):
    net, record, settings = meta_trained
    ok, per_seed = _beats_mgda(net, settings)
    assert ok, per_seed
    assert record["curve"][-1]["meta_loss"] < record["curve"][0]["meta_loss"]


def test_without_meta_training_ml2o_does_not_beat_mgda():
    settings = MetaSettings.from_dict({**SMALL_META, "episodes": 0})
    net, record = meta_train(OptimizerSpec(), settings)
    assert record["curve"] == []
    ok, per_seed = _beats_mgda(net, settings)
    assert not ok, per_seed


class _Killed(Exception):
    pass


def test_killed_meta_training_resumes_bit_identically(tmp_path):
    d = {"episodes": 4, "unroll": 5, "unrolls_per_episode": 2,
         "families": {"quadratic": {"dim": 4, "batch": 3, "noise": 0.1}}}
    spec = OptimizerSpec(specific_hidden=6, shared_hidden=5)
    ref, ref_rec = meta_train(spec, MetaSettings.from_dict(d))

    def kill(episode, row):
        if episode == 2:
            raise _Killed

    ckpt = tmp_path / "meta.ckpt"
    with pytest.raises(_Killed):
        meta_train(spec, MetaSettings.from_dict(d), checkpoint=ckpt, progress=kill)
    net, rec = meta_train(spec, MetaSettings.from_dict(d), checkpoint=ckpt)
    assert rec["resumed_from_episode"] == 2
    assert rec["curve"] == ref_rec["curve"]
    for (k, a), (_, b) in zip(ref.state_dict().items(), net.state_dict().items()):
        assert torch.equal(a, b), k
    # other settings do not pick up the checkpoint
    _, other = meta_train(spec, MetaSettings.from_dict({**d, "seed": 1}), checkpoint=ckpt)
    assert other["resumed_from_episode"] == 0


def test_meta_settings_reject_bad_input():
    with pytest.raises(ValueError, match="unknown l2o.meta settings"):
        MetaSettings.from_dict({"epochs": 3})
    with pytest.raises(ValueError, match="unknown l2o meta-training family"):
        MetaSettings.from_dict({"families": {"rosenbrock": {}}})
    with pytest.raises(ValueError, match="quadratic.curvature"):
        MetaSettings.from_dict({"families": {"quadratic": {"curvature": [2.0, 1.0]}}})


# --------------------------------------------------------------------------------------
# the artifact
# --------------------------------------------------------------------------------------


def test_artifact_round_trip_and_refusals(tmp_path):
    torch.manual_seed(0)
    net = MultiGradientOptimizer(OptimizerSpec(specific_hidden=4, shared_hidden=3))
    path = tmp_path / "opt.pt"
    save_optimizer(net, path, {"episodes": 1})
    back, rec = load_optimizer(path, n_objectives=2, expected_spec={"specific_hidden": 4, "shared_hidden": 3})
    assert rec == {"episodes": 1}
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), back.state_dict().values()))
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_optimizer(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match=r"opt.pt was meta-trained for 2 objectives; this training has 3"):
        load_optimizer(path, n_objectives=3)
    with pytest.raises(ValueError, match=r"opt.pt does not match.*shared_hidden: artifact 3 vs expected 20"):
        load_optimizer(path, expected_spec={"specific_hidden": 4})
    obj = torch.load(path, weights_only=True)
    obj["version"] = ARTIFACT_VERSION + 1
    torch.save(obj, tmp_path / "new.pt")
    with pytest.raises(ValueError, match=rf"new.pt has version {ARTIFACT_VERSION + 1}, this code reads version"):
        load_optimizer(tmp_path / "new.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt is not a learned optimizer artifact"):
        load_optimizer(tmp_path / "other.pt")
    # the method refuses it at setup, naming the file
    three = MultiGradientOptimizer(OptimizerSpec(n_objectives=3))
    save_optimizer(three, tmp_path / "three.pt")
    x = torch.nn.Parameter(torch.zeros(3))
    with pytest.raises(ValueError, match="three.pt was meta-trained for 3 objectives; this training has 2"):
        ML2O(optimizer_path=str(tmp_path / "three.pt")).setup(_context([x]))
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        GML2O(optimizer_path=str(tmp_path / "nowhere.pt")).setup(_context([x]))


def test_method_parameters_are_validated():
    with pytest.raises(ValueError, match="max_step_size"):
        GML2O(max_step_size=-1.0)
    with pytest.raises(ValueError, match="unknown parameter 'beta'"):
        ML2O(beta=0.1)
    m = GML2O()
    assert m.kind == "optimizer" and m.backward_passes == 2 and m.make_optimizer([], None) is None


# --------------------------------------------------------------------------------------
# a killed ML2O / GML2O training resumes bit-identically (small SchNet on a LJ bead liquid)
# --------------------------------------------------------------------------------------


def _schnet_run(cls, path, frames, steps, kill_at=None, tmp=None):
    from balancebench.tasks.cg_benzene.model import CGSchNet, ModelConfig
    from balancebench.tasks.cg_benzene.training_data import fit_energy_scale, loss_components

    torch.manual_seed(0)
    model = CGSchNet(ModelConfig(hidden_channels=8, num_filters=8, num_interactions=1, num_gaussians=10, cutoff=7.5))
    model.set_energy_scale(*fit_energy_scale(model, frames))
    method = cls(optimizer_path=path, learning_rate=1e-3)
    params = list(model.parameters())
    ctx = _context(params, lr=1e-3)
    method.setup(ctx)
    start = 0
    if kill_at is None and tmp is not None and (tmp / "ckpt.pt").exists():  # resume
        state = torch.load(tmp / "ckpt.pt", weights_only=False)
        model.load_state_dict(state["model"])
        method.load_state_dict(state["method"])
        start = state["step"]
    for s in range(start, steps):
        ctx.epoch = 1 + s // 3
        idx = [(2 * s) % len(frames), (2 * s + 1) % len(frames)]
        graph, f_ref, e_ref = frames.batch(idx)
        losses = loss_components(model, graph, f_ref, e_ref, "total", frames.n_beads, training=True)
        for p in params:
            p.grad = None
        method.backward(losses, ctx)
        method.step(ctx)
        if kill_at is not None and s + 1 == kill_at:
            torch.save({"model": model.state_dict(), "method": method.state_dict(), "step": s + 1}, tmp / "ckpt.pt")
            return None, method
    return model.state_dict(), method


@pytest.mark.parametrize("cls", [ML2O, GML2O])
def test_killed_ml2o_training_resumes_bit_identically(cls, tmp_path, lj_dataset, meta_trained):
    from balancebench.tasks.cg_benzene.training_data import FrameSet

    net, record, _ = meta_trained
    path = str(tmp_path / "opt.pt")
    save_optimizer(net, path, record)
    frames = FrameSet(lj_dataset, lj_dataset.split["train"][:8], 7.5, torch.device("cpu"), torch.float32)
    ref, ref_method = _schnet_run(cls, path, frames, 8)
    _schnet_run(cls, path, frames, 8, kill_at=4, tmp=tmp_path)
    again, method = _schnet_run(cls, path, frames, 8, tmp=tmp_path)
    for k in ref:
        assert torch.equal(ref[k], again[k]), k
    assert method.log_values() == ref_method.log_values()
    if cls is GML2O:
        assert 0.0 <= method.log_values()["acceptance"] <= 1.0
    # resuming with another artifact is refused
    other = MultiGradientOptimizer(OptimizerSpec())
    save_optimizer(other, path)
    with pytest.raises(ValueError, match="another learned optimizer"):
        _schnet_run(cls, path, frames, 8, tmp=tmp_path)


# --------------------------------------------------------------------------------------
# through the real Trainer (the contract's call order, checkpoints and log)
# --------------------------------------------------------------------------------------

TINY_MODEL = {"hidden_channels": 8, "num_filters": 8, "num_interactions": 1, "num_gaussians": 10, "cutoff": 7.5,
              "prior_sigma": 3.5, "prior_exponent": 12.0}
TINY_TRAINING = {"max_epochs": 3, "batch_size": 8, "learning_rate": 2e-3, "lr_decay": 0.9, "patience": 10}


@pytest.mark.parametrize("name", ["ml2o", "gml2o"])
def test_trainer_runs_logs_acceptance_and_resumes_a_killed_run_bit_identically(name, tmp_path, lj_dataset,
                                                                               meta_trained):
    import pandas as pd

    from balancebench.tasks.cg_benzene.model import ModelConfig
    from balancebench.training import Trainer, TrainingSettings, train_model

    net, record, _ = meta_trained
    path = str(tmp_path / "optimizer.pt")
    save_optimizer(net, path, record)
    params = {"optimizer_path": path}
    result = train_model(lj_dataset, TINY_MODEL, TINY_TRAINING, name, params, seed=4, out_dir=tmp_path / "ref",
                         threads=1)
    assert result.status in ("completed", "diverged") and result.reason
    log = pd.read_csv(tmp_path / "ref" / "train_log.csv")
    assert {"coef_force", "coef_energy", "min_norm"} <= set(log.columns)
    if name == "gml2o":
        assert "acceptance" in log.columns and log["acceptance"].between(0, 1).all()
        assert result.status == "completed", result.reason  # the guard keeps every step a min-norm-bounded one
    np.testing.assert_allclose(log["lr"], [2e-3 * 0.9**e for e in range(len(log))])

    def trainer(ckpt):
        return Trainer(lj_dataset, ModelConfig(**TINY_MODEL), TrainingSettings(**TINY_TRAINING),
                       get_method(name, **params), seed=4, checkpoint=ckpt)

    def kill(row):
        if row["epoch"] == 2:
            raise _Killed

    straight = trainer(None)
    straight.run()
    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(_Killed):
        trainer(ckpt).run(progress=kill)
    resumed = trainer(ckpt)
    res = resumed.run()
    assert res.resumed_from == 2
    for (k, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k
    assert pd.DataFrame(straight.log).drop(columns="seconds").equals(pd.DataFrame(resumed.log).drop(columns="seconds"))


# --------------------------------------------------------------------------------------
# the Snakemake rule
# --------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_rule_meta_train_l2o_writes_the_artifact_and_its_record(repo, tmp_path):
    import json
    import subprocess
    import sys

    import yaml

    config = yaml.safe_load((repo / "tests" / "data" / "tiny.yaml").read_text())
    results = tmp_path / "results"
    config["results_dir"] = str(results)
    config["l2o"] = {"optimizer": {"specific_hidden": 6, "shared_hidden": 5},
                     "meta": {"episodes": 3, "unroll": 5, "unrolls_per_episode": 2, "heldout_seeds": 1,
                              "heldout_steps": 10,
                              "families": {"quadratic": {"dim": 4, "batch": 2, "weight": 1.0},
                                           "lj_schnet": {"n_frames": 12, "weight": 1.0}}}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    target = results / "l2o" / "optimizer.pt"
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--nolock", str(target), "--cores", "1",
                           "--configfile", str(path)], cwd=repo, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    _, record = load_optimizer(target, n_objectives=2, expected_spec={"specific_hidden": 6, "shared_hidden": 5})
    assert record["episodes"] == 3 and len(record["curve"]) == 3
    assert {r["family"] for r in record["curve"]} <= {"quadratic", "lj_schnet"}
    on_disk = json.loads((results / "l2o" / "optimizer.json").read_text())
    assert on_disk["artifact_version"] == ARTIFACT_VERSION and on_disk["meta_training_seconds"] > 0
    assert on_disk["spec"]["n_objectives"] == 2 and on_disk["heldout_quadratic"]["problems"] == 2
    assert not (results / "checkpoints" / "l2o" / "meta.pt").exists()
