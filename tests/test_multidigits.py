"""The multidigits task (issue 24): its data builder, learnability, the TaylorGLO loss of seed 001 Eq. 2, COSMOS's
conditioning hook, the config checks, and one tiny run through Snakemake."""

import copy
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from balancebench.config import ConfigError, validate_config
from balancebench.tasks.base import get_task
from balancebench.tasks.multidigits import data as md
from balancebench.tasks.multidigits.losses import SEED_TABLE2_THETA, taylorglo_loss, taylorglo_terms
from balancebench.tasks.multidigits.model import DigitsInput, TwoDigitNet

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "data" / "multidigits_tiny.yaml"
SMALL = {"canvas": 12, "overlap": "max", "n_train": 600, "n_validation": 200, "n_test": 300,
         "source_fractions": {"validation": 0.2, "test": 0.2}}


@pytest.fixture(scope="module")
def small():
    return md.build(SMALL, seed=3)


def test_data_is_deterministic_and_its_splits_disjoint_in_source_images(small, tmp_path):
    again = md.build(SMALL, seed=3)
    assert np.array_equal(small.images, again.images) and np.array_equal(small.labels, again.labels)
    assert not np.array_equal(small.labels, md.build(SMALL, seed=4).labels)
    used = {s: set(small.sources[small.split[s]].ravel()) for s in md.SPLITS}
    assert not used["train"] & used["validation"] and not used["train"] & used["test"]
    assert not used["validation"] & used["test"]
    assert {s: len(i) for s, i in small.split.items()} == {"train": 600, "validation": 200, "test": 300}
    assert small.images.shape[1:] == (12, 12) and 0 <= small.images.min() and small.images.max() <= 1
    assert (small.labels[:, 0] != small.labels[:, 1]).all()  # partners of another class (ParetoMTL)
    md.write(small, tmp_path / "d.npz")
    back = md.read(tmp_path / "d.npz")
    assert np.array_equal(back.images, small.images) and back.provenance["seed"] == 3
    assert back.provenance["sklearn"] and back.provenance["sizes"]["test"] == 300


def test_composite_places_left_upper_left_and_right_lower_right():
    left, right = np.full((8, 8), 0.25), np.full((8, 8), 0.5)
    img = md.compose(left, right, 12, "max")
    assert img[0, 0] == 0.25 and img[11, 11] == 0.5 and img[5, 5] == 0.5 and img[0, 11] == 0
    assert md.compose(left, right, 12, "sum")[5, 5] == 0.75
    with pytest.raises(ValueError, match="canvas 8"):
        md.compose(left, right, 8)


def test_both_tasks_are_learnable_by_a_linear_model(small):
    from sklearn.linear_model import LogisticRegression

    x = small.images.reshape(len(small.images), -1)
    tr, te = small.split["train"], small.split["test"]
    for j in (0, 1):
        clf = LogisticRegression(max_iter=300).fit(x[tr], small.labels[tr, j])
        assert clf.score(x[te], small.labels[te, j]) > 0.5  # chance: 0.1


def test_taylorglo_equals_eq2_term_by_term():
    th = (0.1, 0.2, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0)
    x, y = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.7, 0.3]])
    by_hand = []
    for xi, yi in ((1.0, 0.7), (0.0, 0.3)):
        u, v = yi - 0.2, xi - 0.1
        by_hand.append(1.0 * u + 0.5 * 2.0 * u**2 + 3.0 * u**3 / 6 + 4.0 * v * u + 0.5 * 5.0 * v * u**2
                       + 0.5 * 6.0 * v**2 * u)
    assert torch.allclose(taylorglo_terms(x, y, th), torch.tensor([by_hand]), atol=1e-6)
    logits = torch.log(y)  # softmax(log y) = y
    assert math.isclose(float(taylorglo_loss(logits, torch.tensor([0]), th)), -sum(by_hand) / 2, rel_tol=1e-6)


def test_taylorglo_as_squared_error_has_the_mse_gradient():
    theta = (0, 0, 0, -2, 0, 2, 0, 0)  # -(1/n) sum(-y^2 + 2xy) = (1/n) sum (x - y)^2 - const
    logits = torch.randn(5, 10, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 3, 9, 2, 2])
    (g_taylor,) = torch.autograd.grad(taylorglo_loss(logits, labels, theta), logits)
    onehot = torch.nn.functional.one_hot(labels, 10).double()
    mse = torch.mean((torch.softmax(logits, -1) - onehot) ** 2)
    (g_mse,) = torch.autograd.grad(mse, logits)
    assert torch.allclose(g_taylor, g_mse, atol=1e-12)


def test_task_theta_default_is_cross_entropys_taylor_expansion():
    """The documented initial point: CE to third order at (1, 1) (CE itself is not a polynomial); the seed's
    Table 2 stays available by name."""
    from balancebench.losses_taylorglo import cross_entropy_theta
    from balancebench.tasks.multidigits import task as t

    assert t.DEFAULT_THETA == cross_entropy_theta(10) == (1.0, 1.0, 10.0, -10.0, 20.0, 10.0, -10.0, 0.0)
    assert get_task("multidigits").loss_settings({"loss": "taylorglo"}).theta == cross_entropy_theta(10)
    table2 = get_task("multidigits").loss_settings({"loss": "taylorglo", **{f"taylor_theta_{i}": v for i, v in
                                                                            enumerate(SEED_TABLE2_THETA)}})
    assert table2.theta == SEED_TABLE2_THETA


@pytest.mark.parametrize("architecture", ["mlp", "cnn"])
def test_cosmos_conditioning_changes_the_output_with_r(architecture):
    torch.manual_seed(0)
    net = TwoDigitNet(architecture, 12, 16, 4, preference_dim=2)
    x = DigitsInput(torch.rand(3, 12, 12))
    x.extras["preference"] = torch.tensor([0.9, 0.1], dtype=torch.float64)
    a = net(x)[0]
    x.extras["preference"] = torch.tensor([0.1, 0.9], dtype=torch.float64)
    b = net(x)[0]
    assert not torch.allclose(a, b)
    net.fix_preference([0.1, 0.9])
    assert torch.allclose(net(DigitsInput(x.images))[0], b)
    with pytest.raises(ValueError, match="none was given"):
        TwoDigitNet(architecture, 12, 16, 4, preference_dim=2)(DigitsInput(x.images))


def test_gradnorm_default_layer_is_the_last_shared_one():
    net = TwoDigitNet("mlp", 12, 16)
    assert [p for p in net.parameters() if p.ndim == 2][-1] is net.last_shared_parameter()


def test_mlp_learns_both_tasks_in_a_few_epochs(small, tmp_path):
    from balancebench.training import load_trained_model, train_model

    task = get_task("multidigits")
    result = train_model(small, {"architecture": "mlp", "hidden": 32, "input_size": 12},
                         {"max_epochs": 4, "batch_size": 32, "learning_rate": 3e-3}, "constant", {}, 1,
                         tmp_path / "m", task=task)
    assert result.status == "completed"
    model, hparams = load_trained_model(task, tmp_path / "m")
    values = task.evaluate(model, small, hparams, {})
    assert values["test_acc_left"][0] > 0.4 and values["test_acc_right"][0] > 0.4  # chance: 0.1
    assert set(values) == {m.name for m in task.metrics}
    ce = (values["test_loss_left"][0], values["test_loss_right"][0])
    assert math.isclose(values["test_hv"][0], (2 - ce[0]) * (2 - ce[1]), rel_tol=1e-9)


@pytest.mark.parametrize("method", ["constant", "mgda", "cosmos", "gradnorm"])
def test_seeds_trained_together_equal_each_seed_alone(small, tmp_path, method):
    """training.multiseed on the digits (one job per variant): every seed's weights and log equal its lone run's,
    bit for bit, single-objective methods (one summed backward) and gradient methods alike."""
    from balancebench.multiseed import train_seeds
    from balancebench.training import train_model

    task = get_task("multidigits")
    model = {"architecture": "mlp", "hidden": 16, "input_size": 12}
    training = {"max_epochs": 2, "batch_size": 64, "learning_rate": 3e-3}
    train_seeds(small, model, training, method, {}, [1, 2], [tmp_path / "m1", tmp_path / "m2"], task=task)
    for seed in (1, 2):
        train_model(small, model, training, method, {}, seed, tmp_path / f"a{seed}", task=task)
        together = torch.load(tmp_path / f"m{seed}" / "model.pt", weights_only=True)
        alone = torch.load(tmp_path / f"a{seed}" / "model.pt", weights_only=True)
        assert all(torch.equal(together[k], alone[k]) for k in alone), (method, seed)
        cols = lambda p: [line.split(",")[2:] for line in (p / "train_log.csv").read_text().splitlines()]  # noqa: E731
        assert cols(tmp_path / f"m{seed}") == cols(tmp_path / f"a{seed}")  # all but epoch and seconds


def _config(**section):
    config = yaml.safe_load(TINY.read_text())
    for key, value in section.items():
        config[key] = {**config.get(key, {}), **value}
    return config


@pytest.mark.parametrize(("change", "field"), [
    ({"multidigits": {"canvas": 8}}, r"multidigits\.canvas: 8 is too small"),
    ({"multidigits": {"n_test": 0}}, r"multidigits\.n_test: 0 is less than the minimum"),
    ({"multidigits": {"source_fractions": {"validation": 0.0, "test": 0.2}}},
     r"multidigits\.source_fractions\.validation: leaves 0 source images"),
    ({"multidigits": {"source_fractions": {"validation": 0.5, "test": 0.5}}},
     r"multidigits\.source_fractions: leaves [01] source images for the train"),
    ({"model": {"architecture": "resnet"}}, r"model\.architecture: 'resnet' is not one of"),
    ({"training": {"loss": "hinge"}}, r"training\.loss: 'hinge' is not one of"),
    ({"model": {"input_size": 16}}, r"model\.input_size: 16 is not multidigits\.canvas 12"),
])
def test_bad_config_is_refused_naming_the_field(change, field):
    with pytest.raises(ConfigError, match=field):
        validate_config(_config(**copy.deepcopy(change)))


@pytest.mark.parametrize(("key", "value"), [("population", 6), ("generations", 3), ("seed", 11),
                                            ("training", {"max_epochs": 2, "loss": "taylorglo"})])
def test_seed001_searches_must_share_budget_and_first_population(key, value):
    """Seed 001's comparison (claim seed001_search): a single-objective TaylorGLO search that differs from the NSDE
    search in budget, seed or candidate training is refused, naming the field."""
    config = yaml.safe_load((REPO / "tests" / "data" / "multidigits_search.yaml").read_text())
    config["balancing"]["searches"]["taylor_de"] = {**config["balancing"]["searches"]["taylor_de"], key: value}
    with pytest.raises(ConfigError, match=rf"balancing\.searches\.taylor_de\.{key}: .* differs from .* "
                                          r"'taylor_nsde'.*same initial population"):
        validate_config(config)
    space = copy.deepcopy(config["balancing"]["searches"]["taylor_nsde"]["space"])
    space["taylor_theta_0"]["high"] = 3.0
    config["balancing"]["searches"]["taylor_de"] = {**config["balancing"]["searches"]["taylor_nsde"],
                                                    "kind": "de", "objectives": ["val_error"], "space": space}
    with pytest.raises(ConfigError, match=r"balancing\.searches\.taylor_de\.space: "):
        validate_config(config)


def test_config_files_validate():
    for path in (TINY, REPO / "config" / "multidigits.yaml", REPO / "tests" / "data" / "multidigits_search.yaml"):
        config = validate_config(yaml.safe_load(path.read_text()))
        assert config["model"]["input_size"] == config["multidigits"]["canvas"]


@pytest.mark.e2e
def test_tiny_run_goes_through_train_evaluate_metrics_stats(tmp_path):
    results = tmp_path / "results"
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--nolock", "--cores", "2", "--configfile",
                           str(TINY.relative_to(REPO)), "--config", f"results_dir={results}"],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (results / "data" / "multidigits.npz").exists() and (results / "data" / "multidigits_samples.png").exists()
    # training.multiseed (the tiny config's, as the demo's): one train and one evaluate_model job per variant, each
    # seed's metrics file holds that seed's model's test metrics (Task.evaluate here); each seed's weights equal its
    # lone run's: test_seeds_trained_together_equal_each_seed_alone
    from balancebench.training import load_trained_model

    out = proc.stdout + proc.stderr
    assert out.count("rule train:") == 5 and out.count("rule evaluate_model:") == 5
    # the counted-work pass rebuilds every run from its hparams.json: t_ep is load-free (it failed on the TaylorGLO
    # settings' record, and t_ep fell back to the wall clock, which moved the ordering between two identical runs)
    works = sorted((results / "timing").glob("*/seed*.json"))
    assert len(works) == 5 * 2
    for work in works:
        assert json.loads(work.read_text())["status"] == "completed", (work, json.loads(work.read_text()))
    task, config = get_task("multidigits"), yaml.safe_load(TINY.read_text())
    dataset = task.read_dataset(results / "data" / "multidigits.npz")
    losses = []
    for seed in config["training"]["seeds"]:
        record = json.loads((results / "metrics" / "models" / "mgda" / f"seed{seed}.json").read_text())
        assert record["seed"] == seed
        model, hparams = load_trained_model(task, results / "models" / "mgda" / f"seed{seed}")
        expected = task.evaluate(model, dataset, hparams, config)
        assert {k: record["metrics"][k]["value"] for k in expected} == pytest.approx(
            {k: v[0] for k, v in expected.items()}, rel=1e-9)
        losses.append(record["metrics"]["test_loss_left"]["value"])
    assert losses[0] != losses[1]  # one model per seed (a continuous metric), not one file written twice
    table = pd.read_csv(results / "metrics" / "metrics.csv")
    ours = table[table["metric"].str.startswith("test_")]
    assert len(ours) == 6 * 5 * 2 and (ours["status"] == "completed").all()
    acc = ours[ours["metric"].isin(["test_acc_left", "test_acc_right"])]["value"]
    assert (acc > 0.1).all()
    ranking = pd.read_csv(results / "stats" / "ranking.csv")
    assert sorted(ranking["method"]) == ["constant", "cosmos", "cross_entropy", "mgda", "taylor_nsde"]
    assert {"accuracy", "loss"} <= set(pd.read_csv(results / "stats" / "verdict.csv")["concern"])
    # the claims table (issue 24): structure and statuses, not values
    from balancebench.claims import COLUMNS, VERDICTS

    claims = pd.read_csv(results / "claims.csv", keep_default_na=False).set_index("claim")
    assert list(claims.reset_index().columns) == COLUMNS
    transfer = [f"seed003_{a}_vs_{b}_narrow_to_wide" for a, b in
                (("ml2o", "mgda"), ("ml2o", "pcgrad"), ("ml2o", "adam"), ("gml2o", "dssmg"))]
    assert list(claims.index) == ["seed002_hv", "seed002_cost", "seed002_lambda", "seed001_taylorglo",
                                  "seed001_search", *transfer]
    for claim in ("seed002_hv", "seed002_cost"):  # the tiny config has COSMOS and a 2-point grid
        assert claims.loc[claim, "status"] == "checked" and claims.loc[claim, "verdict"] in VERDICTS, claim
        assert claims.loc[claim, "test"].startswith("Wilcoxon signed-rank") and claims.loc[claim, "p"] != ""
        assert "smallest p" in claims.loc[claim, "why"]  # two seeds: the test cannot reject
    assert claims.loc["seed002_lambda", "status"] == "not run" and "penalty" in claims.loc["seed002_lambda", "why"]
    # seed 001: the NSDE search against cross-entropy is checked (Student t-test; or failed, if the search selected
    # nothing); the search comparison is not run (no single-objective search in the tiny config)
    taylor = claims.loc["seed001_taylorglo"]
    assert taylor["status"] in ("checked", "failed"), taylor["why"]
    if taylor["status"] == "checked":
        assert taylor["verdict"] in VERDICTS and taylor["test"].startswith("Student's two-sample t-test")
    assert claims.loc["seed001_search", "status"] == "not run"
    assert "no single-objective TaylorGLO search" in claims.loc["seed001_search", "why"]
    # seed 003: the transfer rows are checked (2 seeds: the paired Wilcoxon cannot reject, the sentence says so)
    for claim in transfer:
        assert claims.loc[claim, "status"] == "checked" and claims.loc[claim, "verdict"] in VERDICTS, claim
        assert claims.loc[claim, "test"].startswith("Wilcoxon signed-rank") and "smallest p" in claims.loc[claim, "why"]
    assert (results / "l2o" / "transfer" / "narrow_to_wide.csv").exists()
    md = (results / "claims.md").read_text()
    assert md.startswith("# Seed claims checked on the task multidigits") and "| seed002_hv |" in md
    assert (results / "claims.html").exists()
    note = (results / "pareto" / "summary.md").read_text()
    assert "the task multidigits's" in note and "Beyond the reference point (HV 0):" in note
    # the report renders for a task that is not benzene (its description read atomistic settings before)
    report = subprocess.run([sys.executable, "-m", "snakemake", "--nolock", "--report", str(tmp_path / "report.html"),
                             "--configfile", str(TINY.relative_to(REPO)), "--config", f"results_dir={results}"],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stdout[-3000:] + report.stderr[-3000:]
    assert 'on the task <tt class=\\"docutils literal\\">multidigits</tt>' in (tmp_path / "report.html").read_text()


def test_training_with_the_taylorglo_loss_runs_and_validates_on_cross_entropy(small, tmp_path):
    from balancebench.training import train_model

    result = train_model(small, {"architecture": "mlp", "hidden": 16, "input_size": 12},
                         {"max_epochs": 1, "batch_size": 64, "loss": "taylorglo"}, "constant", {}, 1,
                         tmp_path / "t", task=get_task("multidigits"))
    log = pd.read_csv(tmp_path / "t" / "train_log.csv")
    assert result.status == "completed" and np.isfinite(log[["train_left", "val_left"]].to_numpy()).all()
    assert (log["val_left"] > 0).all()  # validation: cross-entropy (the Taylor loss itself may be negative)


def test_split_error_is_the_error_rate_of_both_heads(small, tmp_path):
    """Seed 001's objectives on this task: 1 - mean accuracy of the two heads on a split (search train_error /
    val_error), checked against an argmax count."""
    from balancebench.search.evaluate import split_errors
    from balancebench.search.space import SearchSpec, SearchVocabulary
    from balancebench.training import load_trained_model, train_model

    task = get_task("multidigits")
    train_model(small, {"architecture": "mlp", "hidden": 16, "input_size": 12},
                {"max_epochs": 2, "batch_size": 64}, "constant", {}, 1, tmp_path, task=task)
    spec = SearchSpec.from_config("s", {"kind": "nsde", "space": {"weight_right": {"low": 0.1, "high": 1.0}},
                                        "objectives": ["train_error", "val_error"]}, SearchVocabulary.from_task(task))
    got = split_errors(task, spec, tmp_path, small, task.loss_settings({}), {"left": 1.0, "right": 1.0})
    model, _ = load_trained_model(task, tmp_path)
    for name, split in (("train_error", "train"), ("val_error", "validation")):
        idx = small.split[split]
        with torch.no_grad():
            logits = model(DigitsInput(torch.as_tensor(small.images[idx], dtype=torch.float32)))
        correct = [(lg.argmax(-1).numpy() == small.labels[idx, j]).mean() for j, lg in enumerate(logits)]
        assert got[name] == pytest.approx(1.0 - 0.5 * (correct[0] + correct[1]), abs=1e-12)
    assert 0.0 < got["val_error"] < 0.9  # two epochs learn something (chance: 0.9)


@pytest.mark.e2e
@pytest.mark.long  # about 3.5 min: pytest -m long (the shared population is also checked in tests/test_search.py)
def test_seed_001_searches_share_their_first_population_through_the_workflow(tmp_path):
    """NSDE, DE and CMA-ES of one search seed: the same generation-0 candidates in their stored states, trained
    alike (the same objective values), the same number of trainings, and the selected TaylorGLO coefficients train
    the variant with the TaylorGLO loss."""
    from balancebench.fileio import read_checked_json

    results = tmp_path / "results"
    config = REPO / "tests" / "data" / "multidigits_search.yaml"
    variants = ("taylor_nsde", "taylor_de", "taylor_cmaes")
    targets = [str(results / "models" / v / "seed1" / "hparams.json") for v in variants]  # searches + one training
    proc = subprocess.run([sys.executable, "-m", "snakemake", *targets, "--nolock", "--cores", "2", "--configfile",
                           str(config.relative_to(REPO)), "--config", f"results_dir={results}"],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    first = {}
    for variant in variants:
        search = results / "search" / variant
        told = read_checked_json(search / "gen1" / "told.json")
        first[variant] = told["history"][0]["X"]
        assert json.loads((search / "cost.json").read_text())["trainings"] == 4 * 2
        candidates = pd.read_csv(search / "candidates.csv")
        assert [f"param_taylor_theta_{i}" for i in range(8)] == [c for c in candidates if c.startswith("param_")]
        selected = json.loads((search / "selected.json").read_text())
        assert selected["training"] == {"loss": "taylorglo"}
        hparams = json.loads((results / "models" / variant / "seed1" / "hparams.json").read_text())
        assert hparams["training"]["loss"] == "taylorglo"
        if selected["status"] == "selected":
            assert [hparams["training"][f"taylor_theta_{i}"] for i in range(8)] == pytest.approx(
                [selected["values"][f"taylor_theta_{i}"] for i in range(8)])
    assert first["taylor_nsde"] == first["taylor_de"] == first["taylor_cmaes"]
    # and the same trainings of it: the candidates' run seed is the search seed's, not the variant's
    gen0 = {v: pd.read_csv(results / "search" / v / "candidates.csv").query("generation == 0")["obj_val_error"]
            for v in variants}
    assert gen0["taylor_nsde"].tolist() == gen0["taylor_de"].tolist() == gen0["taylor_cmaes"].tolist()
    nsde = json.loads((results / "search" / "taylor_nsde" / "selected.json").read_text())
    assert "val_error" in nsde["rule"] and set(nsde.get("objectives", {})) <= {"train_error", "val_error"}
