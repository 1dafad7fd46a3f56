"""COSMOS (seed 002): the conditioned model is a conservative force field at every fixed r, r matters,
Eq. 5 is what is minimised, a vertex reproduces a constant-weight training, bad settings are refused."""

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from balancebench.balancing import get_method
from balancebench.pareto import model_errors
from balancebench.tasks.cg_benzene.model import CGSchNet, ModelConfig
from balancebench.tasks.cg_benzene.training_data import FrameSet
from balancebench.training import Trainer, TrainingSettings, train_model

MODEL = {"hidden_channels": 16, "num_filters": 16, "num_interactions": 2, "num_gaussians": 16, "cutoff": 7.5, "prior_sigma": 3.5}


def conditioned_atoms(preference, seed=0, n_side=3, spacing=5.6):
    """A conditioned SchNet (random weights) on a bead lattice through CGCalculator at ``preference``."""
    from balancebench.tasks.cg_benzene.simulation import CGCalculator, atoms_from_frame

    torch.manual_seed(seed)
    model = CGSchNet(ModelConfig(**dict(MODEL, prior_sigma=4.0), preference_dim=2))
    model.set_energy_scale(-6.85, 0.3)
    rng = np.random.default_rng(seed)
    grid = np.array([(i, j, k) for i in range(n_side) for j in range(n_side) for k in range(n_side)], float)
    positions = grid * spacing + rng.normal(scale=0.3, size=grid.shape)
    calc = CGCalculator(model, skin=1.0, preference=preference)
    return atoms_from_frame(positions, np.full(3, n_side * spacing), calculator=calc)


# -- the model -----------------------------------------------------------------------------------
@pytest.mark.parametrize("preference", [[0.9, 0.1], [0.2, 0.8]])
def test_forces_are_minus_the_finite_difference_gradient_at_fixed_preference(preference):
    from ase.calculators.fd import calculate_numerical_forces

    atoms = conditioned_atoms(preference)
    analytic = atoms.get_forces()
    numeric = calculate_numerical_forces(atoms, eps=1e-4)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7)
    assert np.abs(analytic).max() > 1e-3


def test_changing_the_preference_changes_energies_and_forces():
    a, b = conditioned_atoms([0.9, 0.1]), conditioned_atoms([0.2, 0.8])
    assert abs(a.get_potential_energy() - b.get_potential_energy()) > 1e-4
    assert np.abs(a.get_forces() - b.get_forces()).max() > 1e-4
    # the same r twice: the same numbers (r is the only difference)
    c = conditioned_atoms([0.9, 0.1])
    assert a.get_potential_energy() == c.get_potential_energy()


def test_per_frame_preferences_match_one_preference_per_batch(lj_dataset):
    torch.manual_seed(0)
    model = CGSchNet(ModelConfig(**MODEL, preference_dim=2))
    frames = FrameSet(lj_dataset, [0, 1], 7.5, "cpu", torch.float64)
    model = model.double()
    r = torch.tensor([[0.7, 0.3], [0.1, 0.9]], dtype=torch.float64)
    graph, _, _ = frames.batch([0, 1])
    graph.extras["preference"] = r
    both = model(graph)
    for k in range(2):
        g, _, _ = frames.batch([k])
        g.extras["preference"] = r[k]
        torch.testing.assert_close(model(g)[0], both[k])


def test_nve_conserves_energy_at_fixed_preference():
    from test_simulation import nve_total_energies

    atoms = conditioned_atoms([0.3, 0.7], seed=1)
    e_tot = nve_total_energies(atoms, 340.0, 1.0, 20)
    assert np.ptp(e_tot) < 2e-3 * len(atoms), np.ptp(e_tot)  # the same bound as the unconditioned model's test
    assert abs(np.polyfit(np.arange(len(e_tot)), e_tot, 1)[0] * len(e_tot)) < 1e-3 * len(atoms)


def test_calculator_refuses_a_missing_or_wrong_preference():
    from balancebench.tasks.cg_benzene.simulation import CGCalculator

    with pytest.raises(ValueError, match="preference must have length 2"):
        conditioned_atoms([0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match="preference_dim"):
        conditioned_atoms(None)
    with pytest.raises(ValueError, match="non-negative"):
        CGSchNet(ModelConfig(**MODEL, preference_dim=2)).fix_preference([-1.0, 2.0])
    with pytest.raises(ValueError, match="not preference-conditioned"):
        CGCalculator(CGSchNet(ModelConfig(**MODEL)), preference=[0.5, 0.5])


def test_conditioned_model_without_preference_refuses_to_guess(lj_dataset):
    model = CGSchNet(ModelConfig(**MODEL, preference_dim=2))
    frames = FrameSet(lj_dataset, [0], 7.5, "cpu", torch.float32)
    graph, _, _ = frames.batch([0])
    with pytest.raises(ValueError, match="preference_dim = 2"):
        model(graph)


def test_unconditioned_model_is_unchanged_by_the_fusion_option():
    torch.manual_seed(3)
    plain = CGSchNet(ModelConfig(**MODEL))
    torch.manual_seed(3)
    cond = CGSchNet(ModelConfig(**MODEL, preference_dim=2))
    shared = plain.state_dict()
    assert all(torch.equal(shared[k], cond.state_dict()[k]) for k in shared)  # same init of the shared weights
    assert set(cond.state_dict()) - set(shared) == {"preference.lin.weight", "preference.lin.bias"}


# -- the method ----------------------------------------------------------------------------------
@pytest.mark.parametrize("params, field", [
    ({"alpha": 0.0}, "alpha"), ({"alpha": -1.0}, "alpha"), ({"alpha": [1.0, 0.0]}, "alpha"),
    ({"alpha": [1.0, 1.0, 1.0]}, "alpha"), ({"penalty": -0.1}, "penalty"),
    ({"eval_preference": [0.5]}, "eval_preference"), ({"fixed_preference": [-1, 2]}, "fixed_preference"),
    ({"loss_scale": "rms"}, "loss_scale"), ({"test_rays": 0}, "test_rays"),
])
def test_bad_settings_are_refused_naming_the_setting(params, field):
    with pytest.raises(ValueError, match=f"parameter '{field}' of balancing method 'cosmos'"):
        get_method("cosmos", **params)


def context(seed=0, references=None):
    return SimpleNamespace(components=("force", "energy"), references=references or {"force": 4.0, "energy": 100.0},
                           generator=torch.Generator().manual_seed(seed), epoch=1, step=0,
                           settings=SimpleNamespace(learning_rate=1e-3))


def test_dirichlet_preferences_are_reproducible_and_follow_alpha():
    m = get_method("cosmos", alpha=[0.5, 2.0])
    draws = [m.sample_preference(context(7).generator) for _ in range(1)]
    g1, g2 = context(7).generator, context(7).generator
    a = np.array([m.sample_preference(g1) for _ in range(4000)])
    b = np.array([m.sample_preference(g2) for _ in range(4000)])
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a.sum(axis=1), 1.0)
    assert (a >= 0).all()
    np.testing.assert_allclose(a.mean(axis=0), [0.2, 0.8], atol=0.02)  # E[r] = alpha / sum(alpha)
    assert draws[0].shape == (2,)


def test_backward_is_the_gradient_of_eq5_on_normalised_losses():
    m = get_method("cosmos", penalty=2.0)
    ctx = context(1)
    m.setup(ctx)
    graph = SimpleNamespace(extras={})
    m.prepare_batch(graph, ctx, training=True)
    r = graph.extras["preference"].numpy()
    theta = torch.tensor([1.5, -0.7], dtype=torch.float64, requires_grad=True)
    losses = {"force": theta[0] ** 2 * 4.0, "energy": (theta[1] - 2.0) ** 2 * 100.0}
    m.backward(losses, ctx)
    got = theta.grad.clone()
    # by hand: L~ = (theta0^2, (theta1 - 2)^2); J = r.L~ - 2 r.L~ / (|r||L~|)
    t = theta.detach().clone().requires_grad_(True)
    ln = torch.stack([t[0] ** 2, (t[1] - 2.0) ** 2])
    rt = torch.as_tensor(r)
    j = rt @ ln - 2.0 * (rt @ ln) / (rt.norm() * ln.norm())
    j.backward()
    torch.testing.assert_close(got, t.grad)
    values = m.log_values()
    assert values["coef_force"] == pytest.approx(r[0]) and values["coef_energy"] == pytest.approx(r[1])
    assert 0 < values["cosine"] <= 1


def test_evaluation_uses_the_middle_ray_and_log_values_average_the_epoch():
    m = get_method("cosmos")
    ctx = context(2)
    m.setup(ctx)
    graph = SimpleNamespace(extras={})
    m.prepare_batch(graph, ctx, training=False)
    np.testing.assert_array_equal(graph.extras["preference"].numpy(), [0.5, 0.5])
    rs = []
    for _ in range(5):
        m.prepare_batch(graph, ctx, training=True)
        rs.append(graph.extras["preference"].numpy())
        x = torch.ones(2, dtype=torch.float64, requires_grad=True)
        m.backward({"force": x[0] * 2, "energy": x[1] * 3}, ctx)
    assert m.log_values()["coef_force"] == pytest.approx(np.mean(rs, axis=0)[0])
    state = m.state_dict()
    fresh = get_method("cosmos")
    fresh.load_state_dict(state)
    assert fresh.log_values() == m.log_values()
    ctx.epoch = 2  # a new epoch starts a new mean
    m.prepare_batch(graph, ctx, training=True)
    m.backward({"force": x[0] * 2, "energy": x[1] * 3}, ctx)
    assert m.log_values()["coef_force"] == pytest.approx(graph.extras["preference"].numpy()[0])


def test_target_variance_scaling_needs_references():
    m = get_method("cosmos")
    with pytest.raises(ValueError, match="references"):
        m.setup(SimpleNamespace(components=("force", "energy"), references={"force": 1.0}))
    get_method("cosmos", loss_scale="raw").setup(SimpleNamespace(components=("force", "energy"), references={}))


# -- training ------------------------------------------------------------------------------------
def tiny_training(dataset, seed, epochs, method):
    """``epochs`` epochs of :meth:`Trainer.train_step` (the contract's step, no early stopping); returns
    (trainer, validation (f_F, f_E) at r = (1, 0) for a conditioned model)."""
    trainer = Trainer(dataset, ModelConfig(**MODEL), TrainingSettings(batch_size=4, learning_rate=3e-3),
                      method, seed)
    for epoch in range(1, epochs + 1):
        trainer.context.epoch = epoch
        order = np.random.default_rng([seed, epoch]).permutation(len(trainer.train_data))
        for b in range(0, len(order), 4):
            trainer.train_step(order[b:b + 4])
    refs = trainer.context.references
    pref = [1.0, 0.0] if method.preference_dim else None
    errors = model_errors(trainer.task, trainer.model, trainer.val_data, 8, trainer.loss_settings, pref)
    return trainer, np.array(errors) / [refs["force"], refs["energy"]]


def test_a_vertex_with_no_penalty_reproduces_constant_weight_training(lj_dataset):
    """r fixed at the force vertex (1, 0), lambda = 0: Eq. 5 is L_F / Var(F), i.e. the constant method at
    weights (1, 0) (Adam is invariant to the 1/Var(F) scale) on a model with one constant extra input.
    Its validation force error lies within the spread of two seeds of the plain training."""
    torch.set_num_threads(1)
    plain = [tiny_training(lj_dataset, seed, 6, get_method("constant", weights=[1.0, 0.0]))[1][0] for seed in (0, 1)]
    vertex = tiny_training(lj_dataset, 0, 6, get_method("cosmos", fixed_preference=[1.0, 0.0], penalty=0.0))[1][0]
    spread = abs(plain[0] - plain[1])
    assert abs(vertex - plain[0]) < max(2.0 * spread, 0.1 * plain[0]), (vertex, plain)
    untrained = tiny_training(lj_dataset, 0, 0, get_method("constant", weights=[1.0, 0.0]))[1][0]
    assert vertex < 0.5 * untrained  # it learned, like the plain one


def test_cosmos_training_gives_a_preference_ordered_front(lj_dataset):
    """After a short COSMOS training the energy error falls from the force-heavy to the energy-heavy ray (the
    force error of this LJ set moves less: it is learned first at every r)."""
    from balancebench.pareto import evaluate_front

    torch.set_num_threads(1)
    trainer, _ = tiny_training(lj_dataset, 0, 10, get_method("cosmos"))
    front = evaluate_front(trainer.task, trainer.model, trainer.val_data, trainer.context.references, rays=5,
                           loss_settings=trainer.loss_settings)
    assert front["f_energy"].iloc[-1] < front["f_energy"].iloc[0]
    assert front["f_energy"].iloc[0] > 1.05 * front["f_energy"].iloc[-1]
    assert np.isfinite(front[["f_force", "f_energy"]].to_numpy()).all()


def test_train_model_writes_the_front_and_the_chosen_preference_that_simulation_uses(lj_dataset, tmp_path):
    """train_model on COSMOS: front.csv (K rays, a non-dominated subset), hparams["preference"] = the ray with
    the lowest criterion, the log's coef columns = epoch means of r; the calculator runs at that r."""
    import json

    import pandas as pd

    from balancebench.tasks.cg_benzene.simulation import CGCalculator, atoms_from_frame

    result = train_model(lj_dataset, MODEL, {"max_epochs": 2, "batch_size": 8, "patience": 5}, "cosmos",
                         {"test_rays": 7}, seed=0, out_dir=tmp_path, threads=1, variant="cosmos")
    assert result.status == "completed", result.reason
    front = pd.read_csv(tmp_path / "front.csv")
    assert len(front) == 7 and front["non_dominated"].any()
    hparams = json.loads((tmp_path / "hparams.json").read_text())
    best = front.loc[front["criterion"].idxmin()]
    assert hparams["preference"] == pytest.approx([best["pref_force"], best["pref_energy"]])
    assert hparams["model"]["preference_dim"] == 2
    log = pd.read_csv(tmp_path / "train_log.csv")
    np.testing.assert_allclose(log["coef_force"] + log["coef_energy"], 1.0, rtol=1e-12)
    assert {"pref_force", "cosine"} <= set(log.columns)
    calc = CGCalculator.from_checkpoint(tmp_path)
    assert calc.preference == pytest.approx(hparams["preference"])
    atoms = atoms_from_frame(lj_dataset.positions[0], lj_dataset.box[0], calculator=calc)
    other = atoms_from_frame(lj_dataset.positions[0], lj_dataset.box[0],
                             calculator=CGCalculator.from_checkpoint(tmp_path, preference=[0.05, 0.95]))
    assert np.isfinite(atoms.get_potential_energy())
    assert atoms.get_potential_energy() != other.get_potential_energy()
    with pytest.raises(ValueError, match="length 2"):
        CGCalculator.from_checkpoint(tmp_path, preference=[1.0])


# -- where the preferences go (issue 25) ----------------------------------------------------------
def test_the_seeds_dirichlet_rarely_reaches_the_demo_grids_preference_ratio():
    """Dir(1.2, 1.2) draws r_E = Beta(1.2, 1.2); P(r_E <= 0.005) = I_0.005(1.2, 1.2) ~ 0.002 (issue 25's figure),
    and the method's draws agree with that probability (binomial count, 20,000 draws)."""
    from scipy import stats

    p = stats.beta(1.2, 1.2).cdf(0.005)
    assert 0.0015 < p < 0.0025
    m = get_method("cosmos")
    assert m.sampling == "dirichlet"
    g = context(11).generator
    r_e = np.array([m.sample_preference(g)[1] for _ in range(20000)])
    assert stats.binomtest(int((r_e <= 0.005).sum()), len(r_e), p).pvalue > 1e-3


def test_log_ratio_sampling_is_log_uniform_over_the_range():
    """sampling log_ratio (auto with a range): ln(r_E / r_F) ~ U(ln lo, ln hi); checked by a Kolmogorov-Smirnov test
    against that uniform law, the range's ends, reproducibility, and P(rho <= 0.005) = ln(50) / ln(1e5) = 0.34."""
    from scipy import stats

    lo, hi = 1e-4, 10.0
    m = get_method("cosmos", ratio_range=[lo, hi])
    assert m.sampling == "log_ratio"
    g1, g2 = context(3).generator, context(3).generator
    a = np.array([m.sample_preference(g1) for _ in range(5000)])
    np.testing.assert_array_equal(a, np.array([m.sample_preference(g2) for _ in range(5000)]))
    np.testing.assert_allclose(a.sum(axis=1), 1.0)
    log_rho = np.log(a[:, 1] / a[:, 0])
    assert log_rho.min() >= math.log(lo) - 1e-12 and log_rho.max() <= math.log(hi) + 1e-12
    assert stats.kstest(log_rho, stats.uniform(math.log(lo), math.log(hi) - math.log(lo)).cdf).pvalue > 1e-3
    p = math.log(0.005 / lo) / math.log(hi / lo)
    assert p == pytest.approx(0.3398, abs=1e-4)
    assert stats.binomtest(int((a[:, 1] / a[:, 0] <= 0.005).sum()), len(a), p).pvalue > 1e-3
    # the seed's draw with the wider rays (an ablation): Dirichlet training, log-spaced test rays
    d = get_method("cosmos", ratio_range=[lo, hi], sampling="dirichlet")
    assert d.sampling == "dirichlet"
    np.testing.assert_allclose(d.test_preferences(), m.test_preferences())


def test_test_rays_follow_the_range_or_the_seed():
    from balancebench.pareto import circle_points, log_ratio_rays, preference_ratio

    np.testing.assert_allclose(get_method("cosmos", test_rays=7).test_preferences(), circle_points(7))
    rays = get_method("cosmos", test_rays=6, ratio_range=[1e-3, 100.0]).test_preferences()
    np.testing.assert_allclose(rays, log_ratio_rays(6, (1e-3, 100.0)))
    np.testing.assert_allclose(np.log10(preference_ratio(rays)), [-3, -2, -1, 0, 1, 2], atol=1e-12)


@pytest.mark.parametrize("params, field", [
    ({"ratio_range": [0.0, 1.0]}, "ratio_range"), ({"ratio_range": [2.0, 1.0]}, "ratio_range"),
    ({"ratio_range": [1.0]}, "ratio_range"), ({"ratio_range": "wide"}, "ratio_range"),
    ({"sampling": "beta"}, "sampling"), ({"sampling": "log_ratio"}, "sampling"),  # log_ratio needs a range
])
def test_bad_ray_settings_are_refused_naming_the_setting(params, field):
    with pytest.raises(ValueError, match=f"parameter '{field}' of balancing method 'cosmos'"):
        get_method("cosmos", **params)


def test_the_demo_configs_range_covers_the_grids_preference_ratios():
    """config/config.yaml: the cosmos variant's ratio range covers every energy weight of the constant grid as a
    ratio r_E / r_F = w_E Var(E) / Var(F) (variances of the demo data, docs/cosmos.md: 85.8 and 17.8), with a
    factor 2 to spare on each side (the ratio moves with the data's variances)."""
    import yaml

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "config.yaml").read_text())
    lo, hi = config["balancing"]["variants"]["cosmos"]["params"]["ratio_range"]
    grid = config["balancing"]["searches"]["grid"]
    assert grid["parameter"] == "energy_weight"
    ratios = np.asarray(grid["values"]) * 85.8 / 17.8
    assert ratios.min() == pytest.approx(0.00482, rel=1e-3)
    assert lo <= ratios.min() / 2 and ratios.max() * 2 <= hi


def test_train_model_with_a_ratio_range_writes_log_spaced_rays(lj_dataset, tmp_path):
    """train_model's front uses the method's rays (log-spaced over ratio_range) and records them in hparams."""
    import json

    import pandas as pd

    from balancebench.pareto import log_ratio_rays

    result = train_model(lj_dataset, MODEL, {"max_epochs": 1, "batch_size": 8, "patience": 5}, "cosmos",
                         {"test_rays": 4, "ratio_range": [1e-3, 1.0]}, seed=0, out_dir=tmp_path, threads=1,
                         variant="cosmos")
    assert result.status == "completed", result.reason
    front = pd.read_csv(tmp_path / "front.csv")
    np.testing.assert_allclose(front[["pref_force", "pref_energy"]].to_numpy(), log_ratio_rays(4, (1e-3, 1.0)))
    hparams = json.loads((tmp_path / "hparams.json").read_text())
    np.testing.assert_allclose(hparams["test_preferences"], log_ratio_rays(4, (1e-3, 1.0)))
    log = pd.read_csv(tmp_path / "train_log.csv")
    ratio = log["coef_energy"] / log["coef_force"]  # epoch means of r: inside the range's simplex segment
    assert (log["coef_energy"] <= 0.5 + 1e-12).all() and (ratio > 0).all()
