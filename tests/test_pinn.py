"""The task pinn (docs/pinn.md): residuals vanish on exact solutions, the Cole-Hopf reference solves Burgers, the
config is checked before any job, points are seeded and a resumed run redraws them, and one tiny Snakemake run."""

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from balancebench.balancing import get_method
from balancebench.config import ConfigError, validate_config
from balancebench.tasks.base import get_task
from balancebench.tasks.pinn.problems import burgers1d, burgers_cole_hopf, helmholtz2d, klein_gordon, make_problem
from balancebench.training import Trainer, TrainingSettings

REPO = Path(__file__).resolve().parents[1]


def _points(problem, n=200, seed=0):
    rng = np.random.default_rng(seed)
    lo, hi = np.asarray(problem.lower), np.asarray(problem.upper)
    return torch.as_tensor(lo + (hi - lo) * rng.random((n, 2)), dtype=torch.float64).requires_grad_(True)


@pytest.mark.parametrize("problem", [helmholtz2d(), helmholtz2d(k=2.5), klein_gordon()], ids=lambda p: p.name)
def test_residual_vanishes_on_the_exact_solution(problem):
    X = _points(problem)
    r = problem.residual(problem.exact(X), X)
    scale = torch.stack([t.abs() for t in problem.residual_terms(problem.exact(X), X)]).max()
    assert float(r.detach().abs().max()) < 1e-8 * max(1.0, float(scale.detach()))
    for loss in problem.loss_names[1:]:  # and every condition holds on its edge
        for piece in problem.pieces(loss):
            Xe = _points(problem, 50, 1).detach().clone()
            Xe[:, piece.dim] = piece.value
            Xe.requires_grad_(True)
            u = problem.exact(Xe)
            value = u if piece.order == 0 else torch.autograd.grad(u.sum(), Xe, create_graph=True)[0][:, piece.dim]
            assert float((value - piece.target(Xe)).abs().max()) < 1e-8


def test_burgers_residual_vanishes_on_an_exact_cole_hopf_solution():
    """u = -2 nu phi_x / phi with phi = 2 + exp(-nu pi^2 t) cos(pi x) (phi solves the heat equation)."""
    problem = burgers1d()
    nu = problem.params["nu"]
    X = _points(problem)
    x, t = X[:, 0], X[:, 1]
    phi = 2 + torch.exp(-nu * math.pi ** 2 * t) * torch.cos(math.pi * x)
    phi_x = -math.pi * torch.exp(-nu * math.pi ** 2 * t) * torch.sin(math.pi * x)
    assert float(problem.residual(-2 * nu * phi_x / phi, X).abs().max()) < 1e-8


def test_cole_hopf_reference_solves_burgers_and_meets_its_conditions():
    nu = 0.01 / math.pi
    rng = np.random.default_rng(1)
    x, t, h = rng.uniform(-0.95, 0.95, 60), rng.uniform(0.05, 1.0, 60), 1e-4

    def u(a, b):
        return burgers_cole_hopf(a, b, nu)

    u_t = (u(x, t + h) - u(x, t - h)) / (2 * h)
    u_x = (u(x + h, t) - u(x - h, t)) / (2 * h)
    u_xx = (u(x + h, t) - 2 * u(x, t) + u(x - h, t)) / h ** 2
    residual = u_t + u(x, t) * u_x - nu * u_xx
    scale = np.abs(u_t) + np.abs(u(x, t) * u_x) + np.abs(nu * u_xx)
    assert np.max(np.abs(residual) / (scale + 1e-3)) < 1e-3
    xs = np.linspace(-1, 1, 101)
    assert np.allclose(u(xs, np.zeros_like(xs)), -np.sin(np.pi * xs), atol=1e-12)
    ts = np.linspace(0, 1, 11)
    assert np.allclose(u(np.ones_like(ts), ts), 0, atol=1e-10) and np.allclose(u(-np.ones_like(ts), ts), 0,
                                                                               atol=1e-10)
    # converged in the number of quadrature nodes
    grid_x = np.linspace(-1, 1, 256)
    assert np.allclose(burgers_cole_hopf(grid_x, np.ones(256), nu, 100), u(grid_x, np.ones(256)), atol=1e-10)


def _config(**pinn):
    return {"task": "pinn", "pinn": pinn, "training": {"batch_size": 1},
            "balancing": {"variants": {"constant": {"method": "constant"}, "lra": {"method": "lra"}}}}


@pytest.mark.parametrize("pinn, field", [
    ({"problem": "poisson"}, r"pinn\.problem"),
    ({"problem": "helmholtz2d", "k": 0}, r"pinn\.k"),
    ({"problem": "helmholtz2d", "k": -1.0}, r"pinn\.k"),
    ({"problem": "burgers1d", "nu": 0.0}, r"pinn\.nu"),
    ({"problem": "burgers1d", "points_per_term": 0}, r"pinn\.points_per_term"),
    ({"problem": "klein_gordon", "iterations_per_epoch": 0}, r"pinn\.iterations_per_epoch"),
])
def test_a_bad_pinn_section_is_named_before_any_job(pinn, field):
    with pytest.raises(ConfigError, match=rf"config error at {field}"):
        validate_config(_config(**pinn))


def test_an_iteration_count_below_a_methods_update_period_is_named():
    config = _config(problem="helmholtz2d", iterations_per_epoch=20)
    config["training"]["max_epochs"] = 2
    config["balancing"]["variants"]["ntk"] = {"method": "ntk"}  # every 100 iterations (the paper's)
    with pytest.raises(ConfigError, match=r"config error at balancing\.variants\.ntk\.params\.every: ntk updates "
                                          r"its weights every 100 iterations, but the training runs 40"):
        validate_config(config)
    config["balancing"]["variants"]["ntk"]["params"] = {"every": 40}
    validate_config(config)  # LRA's 10 and NTK's 40 both fit in 40 iterations


@pytest.mark.parametrize("method", ["gml2o", "dssmg"])
def test_methods_that_evaluate_other_items_are_refused_on_the_pinn(method):
    config = _config(problem="helmholtz2d")
    config["balancing"]["variants"]["x"] = {"method": method}
    with pytest.raises(ConfigError, match=rf"config error at balancing\.variants\.x\.method: {method} evaluates"):
        validate_config(config)


def test_batch_size_other_than_one_is_named():
    config = _config(problem="helmholtz2d")
    config["training"]["batch_size"] = 8
    with pytest.raises(ConfigError, match=r"config error at training\.batch_size"):
        validate_config(config)


def test_loss_names_follow_the_problem():
    validate_config(_config(problem="burgers1d"))
    assert get_task("pinn").loss_names == ("residual", "boundary", "initial")
    validate_config(_config(problem="helmholtz2d"))
    assert get_task("pinn").loss_names == ("residual", "boundary")


@pytest.fixture
def tiny_dataset(tmp_path):
    config = validate_config({**_config(problem="klein_gordon", iterations_per_epoch=3, points_per_term=16,
                                        validation_points=20, test_grid=[9, 9]), "seed": 4})
    task = get_task("pinn")
    task.make_dataset(config, tmp_path / "pinn.npz")
    return task, task.read_dataset(tmp_path / "pinn.npz")


def _trainer(task, dataset, seed, max_epochs, checkpoint=None):
    settings = TrainingSettings(max_epochs=max_epochs, batch_size=1, patience=99, lr_decay=0.9, dtype="float64")
    return Trainer(dataset, {"hidden": 8, "layers": 2}, settings, get_method("relobralo", rho=0.5), seed,
                   checkpoint=checkpoint, task=task)


@pytest.mark.parametrize("method", ["constant", "lra", "lra_mean", "gradnorm"])
def test_seeds_trained_together_equal_each_seed_alone(tiny_dataset, tmp_path, method):
    """training.multiseed on the PINN (one job per variant): every seed's weights and log equal its lone run's,
    bit for bit, single-objective methods (one summed backward) and gradient methods alike."""
    from balancebench.multiseed import train_seeds
    from balancebench.training import train_model

    task, ds = tiny_dataset
    model = {"hidden": 8, "layers": 2}
    training = {"max_epochs": 2, "batch_size": 1, "patience": 99, "lr_decay": 0.9, "dtype": "float64"}
    params = {"every": 2} if method in ("lra", "ntk") else {}
    train_seeds(ds, model, training, method, params, [1, 2], [tmp_path / "m1", tmp_path / "m2"], task=task)
    for seed in (1, 2):
        train_model(ds, model, training, method, params, seed, tmp_path / f"a{seed}", task=task)
        together = torch.load(tmp_path / f"m{seed}" / "model.pt", weights_only=True)
        alone = torch.load(tmp_path / f"a{seed}" / "model.pt", weights_only=True)
        assert all(torch.equal(together[k], alone[k]) for k in alone), (method, seed)
        cols = lambda p: [line.split(",")[2:] for line in (p / "train_log.csv").read_text().splitlines()]  # noqa: E731
        assert cols(tmp_path / f"m{seed}") == cols(tmp_path / f"a{seed}")  # all but epoch and seconds


def test_a_diverging_pinn_is_recorded_diverged_with_its_iteration(tiny_dataset, tmp_path):
    """lr 1e4: the run stops as diverged, its reason names the epoch and the step (= the iteration on the PINN);
    the log's failed epoch has no finite validation error to pass on, and the metrics say failed, never NaN."""
    from balancebench.training import train_model

    task, ds = tiny_dataset
    result = train_model(ds, {"hidden": 8, "layers": 2}, {"max_epochs": 20, "batch_size": 1, "patience": 99,
                                                          "learning_rate": 1e4, "dtype": "float64"},
                         "constant", {}, 1, tmp_path / "m", task=task)
    assert result.status == "diverged" and ", step " in result.reason and "epoch" in result.reason, result.reason
    import json

    assert json.loads((tmp_path / "m" / "status.json").read_text())["status"] == "diverged"


def test_the_dataset_holds_grid_reference_and_unit_free_scales(tiny_dataset):
    task, ds = tiny_dataset
    assert ds.grid.shape == (81, 2) and np.allclose(ds.reference, make_problem(ds.section).reference(ds.grid))
    assert set(ds.references) == {"residual", "boundary", "initial"} and min(ds.references.values()) > 0


def test_points_are_fixed_by_the_seed_and_a_resumed_run_reproduces_a_straight_one(tiny_dataset, tmp_path):
    task, ds = tiny_dataset
    a, b, c = _trainer(task, ds, 1, 1), _trainer(task, ds, 1, 1), _trainer(task, ds, 2, 1)
    pa, pb, pc = (task.batch_points(t.model, t.train_data.batch([0]))["residual"] for t in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)
    a.train_step([0])
    assert not torch.equal(task.batch_points(a.model, a.train_data.batch([0]))["residual"], pa)  # fresh each step
    straight = _trainer(task, ds, 3, 3)
    straight.run()
    ckpt = tmp_path / "ckpt.pt"
    first = _trainer(task, ds, 3, 3, ckpt)

    def kill_after_epoch_2(row):
        if row["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        first.run(progress=kill_after_epoch_2)
    resumed = _trainer(task, ds, 3, 3, ckpt)
    result = resumed.run()
    assert result.resumed_from == 2
    for x, y in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(x, y)


def test_evaluate_gives_every_metric(tiny_dataset):
    task, ds = tiny_dataset
    trainer = _trainer(task, ds, 1, 2)
    trainer.run()
    values = task.evaluate(trainer.model, ds, {}, {"pinn": ds.section})
    assert set(values) == {m.name for m in task.metrics}
    assert values["rel_l2"][1] == "completed" and values["rel_l2"][0] > 0
    assert values["iterations_to_target"][1] in ("completed", "censored")
    assert values["t_it"][1] == "missing"  # no counted work outside the workflow


@pytest.mark.e2e
def test_tiny_pinn_run_through_snakemake(tmp_path):
    """Helmholtz (two losses) and Burgers (three) in one multi-task run (config key tasks): each ranked, the
    three-loss run through the Pareto stage (3-d hypervolume) and the timing calibration (constant: A_i = 1
    for each loss), each run's loss names its own although both are the task pinn in one process."""
    results, burgers = tmp_path / "results", tmp_path / "burgers"
    helmholtz = yaml.safe_load((REPO / "tests" / "data" / "pinn_tiny.yaml").read_text())
    helmholtz["results_dir"] = str(results)
    three = {**helmholtz, "results_dir": str(burgers),
             "pinn": {**helmholtz["pinn"], "problem": "burgers1d", "test_grid": [11, 11]},
             "balancing": {"variants": {"constant": {"method": "constant"}, "relobralo": {"method": "relobralo"},
                                        "random_weights": {"method": "random_weights"}}}}
    # its hypervolume reference point: the task's, (1, 1, 1)
    (tmp_path / "helmholtz.yaml").write_text(yaml.safe_dump(helmholtz))
    (tmp_path / "burgers.yaml").write_text(yaml.safe_dump(three))
    (tmp_path / "tasks.yaml").write_text(yaml.safe_dump({"tasks": {"helmholtz": str(tmp_path / "helmholtz.yaml"),
                                                                   "burgers": str(tmp_path / "burgers.yaml")},
                                                         "cross_task": {"results_dir": str(tmp_path / "cross")}}))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--nolock", "--cores", "2", "--configfile",
                           str(tmp_path / "tasks.yaml")], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = pd.read_csv(results / "metrics" / "metrics.csv")
    for metric in ("rel_l2", "max_abs_error", "residual_mse", "boundary_error", "t_it", "failed"):
        rows = table[table["metric"] == metric]
        assert len(rows) == 6 and (rows["status"] == "completed").all(), metric
    assert set(table.loc[table["metric"] == "iterations_to_target", "status"]) <= {"completed", "censored"}
    for variant in ("constant", "lra", "random_weights"):
        for seed in (1, 2):
            run = results / "models" / variant / f"seed{seed}"
            with np.load(run / "prediction.npz") as pred:
                assert pred["prediction"].shape == pred["reference"].shape == (441,)
            assert (run / "prediction.png").exists()
            log = pd.read_csv(run / "train_log.csv")
            assert {"coef_residual", "coef_boundary"} <= set(log) and "coef_initial" not in log
    assert sorted(pd.read_csv(results / "stats" / "ranking.csv")["method"]) == ["constant", "lra", "random_weights"]
    # the anchors in the claims table (issue 26): LRA vs the plain PINN checked, ReLoBRaLo not in this config
    claims = pd.read_csv(results / "claims.csv", keep_default_na=False).set_index("claim")
    assert list(claims.index) == ["pinn_lra_beats_plain", "pinn_relobralo_matches_lra"]
    assert claims.loc["pinn_lra_beats_plain", "status"] == "checked"
    assert claims.loc["pinn_lra_beats_plain", "verdict"] in ("reproduced", "not reproduced", "reversed")
    assert claims.loc["pinn_lra_beats_plain", "test"].startswith("Mann-Whitney U")
    assert claims.loc["pinn_relobralo_matches_lra", "status"] == "not run"
    assert "no relobralo variant" in claims.loc["pinn_relobralo_matches_lra", "why"]
    # the three-loss run: its own losses, a 3-d hypervolume per model, ranked
    for variant in ("constant", "relobralo", "random_weights"):
        log = pd.read_csv(burgers / "models" / variant / "seed1" / "train_log.csv")
        assert {"coef_residual", "coef_boundary", "coef_initial"} <= set(log)
    hv = pd.read_csv(burgers / "pareto" / "hypervolume.csv")
    assert len(hv) == 6 and (hv["value"].dropna() >= 0).all()
    assert sorted(pd.read_csv(burgers / "stats" / "ranking.csv")["method"]) == ["constant", "random_weights",
                                                                               "relobralo"]
    # across the two problems: constant and random_weights ran in both
    assert sorted(pd.read_csv(tmp_path / "cross" / "blocks.csv", index_col="run").columns) == ["constant",
                                                                                           "random_weights"]


def test_a_two_loss_method_is_refused_on_a_three_loss_problem_before_any_job():
    config = yaml.safe_load((REPO / "tests" / "data" / "pinn_tiny.yaml").read_text())
    config["pinn"]["problem"] = "burgers1d"
    config["balancing"]["variants"]["cosmos"] = {"method": "cosmos"}
    with pytest.raises(ConfigError, match=r"balancing\.variants\.cosmos\.method: cosmos is defined for 2 losses; "
                                          r"the task 'pinn' has \['residual', 'boundary', 'initial'\]"):
        validate_config(config)
    config["pinn"]["problem"] = "helmholtz2d"  # two losses: COSMOS is refused only for the model's missing input
    with pytest.raises(ConfigError, match=r"balancing\.variants\.cosmos\.method: .*conditioning"):
        validate_config(config)
