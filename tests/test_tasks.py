"""The task contract (balancebench.tasks): the core greps clean of the CG task, a toy task registered from a
test file goes through the whole workflow, and bad task configs are refused before any job runs."""

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from balancebench.config import ConfigError, validate_config
from balancebench.tasks.base import MetricSpec, Task, available_tasks, get_task, register_task

REPO = Path(__file__).resolve().parents[1]
TOY = REPO / "tests" / "tasks" / "toy_regression.py"
# what only the CG benzene task may say (its loss names, data and model classes, its simulation)
CG_WORDS = re.compile(r"\b(force|forces|energy|energies|CGDataset|CGSchNet|NVT|MSE_F|MSE_E)\b|Var\([FE]\)",
                      re.IGNORECASE)


def _core_files():
    for path in sorted((REPO / "src" / "balancebench").rglob("*.py")):
        if "tasks/cg_benzene" not in path.as_posix():
            yield path
    for folder in ("workflow/rules", "workflow/scripts", "workflow/schemas"):
        for path in sorted((REPO / folder).rglob("*")):
            if path.is_file() and "tasks/cg_benzene" not in path.as_posix():
                yield path
    yield REPO / "Snakefile"


def test_the_core_knows_no_cg_word():
    """Outside tasks/cg_benzene no module, rule or rule script names the CG task's losses, classes or its NVT
    (``force=True`` of logging.basicConfig is Python, not physics)."""
    hits = []
    for path in _core_files():
        for k, line in enumerate(path.read_text().splitlines(), 1):
            if CG_WORDS.search(line.replace("force=True", "")):
                hits.append(f"{path.relative_to(REPO)}:{k}: {line.strip()}")
    assert not hits, "\n".join(hits)


def test_the_grep_finds_what_it_must():
    assert CG_WORDS.search('losses = {"force": a}') and CG_WORDS.search("model = CGSchNet(cfg)")
    assert not CG_WORDS.search("forces_only") and not CG_WORDS.search("reinforce")


@pytest.mark.parametrize("name,training", [
    *((name, {}) for name in available_tasks()),  # every registered task at its defaults
    ("cg_benzene", {"force_loss": "taylorglo", "taylor_theta_3": 2.5, "energy_loss": "per_bead"}),
    ("multidigits", {"loss": "taylorglo", "taylor_theta_2": 3.5, "taylor_theta_7": -1.25})])
def test_the_recorded_loss_settings_rebuild_the_same_settings(name, training):
    """hparams.json records Task.loss_settings_record; a rebuilt run (the counted-work pass) reads it back through
    TrainingSettings and Task.loss_settings: the same settings, no key the core refuses."""
    from balancebench.training import TrainingSettings

    task = get_task(name)
    settings = task.loss_settings(training)
    record = task.loss_settings_record(settings)
    assert set(record) <= set(task.loss_setting_names), set(record) - set(task.loss_setting_names)
    assert task.loss_settings(record) == settings
    TrainingSettings.from_dict({"max_epochs": 3, **record}, task.loss_setting_names)  # refuses unknown keys


def test_a_task_needs_two_distinct_loss_names():
    with pytest.raises(ValueError, match="two or more distinct loss names"):
        @register_task("one_loss")
        class OneLoss(Task):
            loss_names = ("only",)
    with pytest.raises(ValueError, match="two or more distinct loss names"):
        @register_task("twice")
        class Twice(Task):
            loss_names = ("a", "a")
    assert "one_loss" not in available_tasks()


def test_unknown_task_is_named():
    with pytest.raises(KeyError, match="unknown task 'nope'.*cg_benzene"):
        get_task("nope")
    with pytest.raises(ConfigError, match="config error at task: unknown task 'nope'"):
        validate_config({"task": "nope"})


def test_cg_benzene_declares_its_losses_metrics_and_concerns():
    from balancebench.tasks.cg_benzene.metrics import METRICS

    task = get_task("cg_benzene")
    assert task.loss_names == ("force", "energy") and task.conditioning
    assert [m.name for m in task.metrics] == list(METRICS)
    assert all(isinstance(m, MetricSpec) and m.direction == METRICS[m.name].direction for m in task.metrics)
    named = {n for names in task.concerns.values() for n in names}
    assert named - {"failed_runs"} <= set(METRICS)


def toy_config(**changes) -> dict:
    config = yaml.safe_load((REPO / "tests" / "data" / "toy.yaml").read_text())
    config["task_modules"] = [str(TOY)]
    for key, value in changes.items():
        config[key] = value
    return config


def test_toy_config_validates_with_the_task_schema_defaults():
    config = validate_config(toy_config(toy_regression={}))
    assert config["toy_regression"] == {"n_samples": 120} and config["model"]["hidden"] == 8
    assert "atomistic" not in config  # the CG task's sections are not this task's


def test_a_task_section_with_an_unknown_key_is_named():
    with pytest.raises(ConfigError, match=r"config error at toy_regression: .*'n_sample'.*misspelt"):
        validate_config(toy_config(toy_regression={"n_sample": 10}))
    with pytest.raises(ConfigError, match=r"config error at model: .*'hidden_channels'"):
        validate_config(toy_config(model={"hidden_channels": 8}))


def test_a_method_the_task_cannot_serve_is_refused_before_any_job():
    config = toy_config()
    config["balancing"]["variants"]["cosmos"] = {"method": "cosmos"}
    with pytest.raises(ConfigError, match=r"balancing\.variants\.cosmos\.method: .*no conditioning input"):
        validate_config(config)


def test_a_search_objective_of_another_task_is_named():
    config = toy_config()
    config["balancing"]["searches"]["weights"]["objectives"] = ["val_force"]
    with pytest.raises(ConfigError, match=r"balancing\.searches\.weights\.objectives: unknown objective 'val_force'"
                                          r".*val_left, val_right"):
        validate_config(config)


def test_missing_task_module_is_named():
    with pytest.raises(ConfigError, match="config error at task_modules: .*missing.py does not exist"):
        validate_config({"task": "x", "task_modules": ["tests/tasks/missing.py"]})


def _write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_results_dir_names_the_task():
    config = validate_config(toy_config(results_dir="out/{task}"))
    assert config["results_dir"] == "out/toy_regression"
    del config["results_dir"]
    assert validate_config(toy_config())["results_dir"] == "results/toy_regression"  # the default tree


def test_task_runs_resolve_each_file_as_it_runs_alone(tmp_path):
    from balancebench.config import task_runs

    first = _write_yaml(tmp_path / "a.yaml", toy_config(results_dir=str(tmp_path / "a")))
    second = _write_yaml(tmp_path / "b.yaml", toy_config(results_dir=str(tmp_path / "b"), seed=4))
    runs = task_runs({"toy_a": str(first), "toy_b": str(second)}, REPO / "config" / "config.yaml")
    assert list(runs) == ["toy_a", "toy_b"]
    assert runs["toy_b"]["seed"] == 4 and runs["toy_a"]["task"] == "toy_regression"
    assert "atomistic" not in runs["toy_a"]  # another task's file brings its whole config, not the demo's
    # the demo's own file: the CG task with its defaults
    demo = task_runs({"cg": str(REPO / "config" / "config.yaml")}, REPO / "config" / "config.yaml")["cg"]
    assert demo["task"] == "cg_benzene" and demo["results_dir"] == "results/cg_benzene"


def test_bad_task_runs_are_named(tmp_path):
    from balancebench.config import task_runs

    default = REPO / "config" / "config.yaml"
    good = _write_yaml(tmp_path / "a.yaml", toy_config(results_dir=str(tmp_path / "a")))
    with pytest.raises(ConfigError, match=r"config error at tasks\.toy_b: .*missing\.yaml.* not a config file"):
        task_runs({"toy_a": str(good), "toy_b": str(tmp_path / "missing.yaml")}, default)
    with pytest.raises(ConfigError, match=r"config error at tasks\.Toy-A: a run name is lower case"):
        task_runs({"Toy-A": str(good)}, default)
    with pytest.raises(ConfigError, match=r"tasks\.toy_b: results_dir .* is also the one of tasks\.toy_a"):
        task_runs({"toy_a": str(good), "toy_b": str(good)}, default)
    bad = _write_yaml(tmp_path / "bad.yaml", toy_config(results_dir=str(tmp_path / "c"), toy_regression={"n_sample": 3}))
    with pytest.raises(ConfigError, match=r"config error at toy_regression: .*'n_sample'.*\(in .*bad\.yaml, listed "
                                          r"at tasks\.toy_c\)"):
        task_runs({"toy_a": str(good), "toy_c": str(bad)}, default)
    nested = _write_yaml(tmp_path / "nested.yaml", {**toy_config(results_dir=str(tmp_path / "n")),
                                                   "tasks": {"x": str(good)}})
    with pytest.raises(ConfigError, match=r"tasks\.n: .*lists tasks itself"):
        task_runs({"n": str(nested)}, default)
    with pytest.raises(ConfigError, match=r"config error at tasks: a mapping"):
        task_runs({}, default)


def test_a_bad_run_of_a_multi_task_config_stops_snakemake_before_any_job(tmp_path):
    good = _write_yaml(tmp_path / "a.yaml", toy_config(results_dir=str(tmp_path / "a")))
    bad = _write_yaml(tmp_path / "b.yaml", toy_config(results_dir=str(tmp_path / "b"), model={"hidden_channels": 8}))
    tasks = _write_yaml(tmp_path / "tasks.yaml", {"tasks": {"toy_a": str(good), "toy_b": str(bad)}})
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--nolock", "-n", "--configfile", str(tasks)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert re.search(r"config error at model: .*'hidden_channels'.*listed at tasks\.toy_b", proc.stdout + proc.stderr), proc.stdout[-2000:]
    assert not (tmp_path / "a").exists()


def test_the_shipped_multi_task_config_plans_every_task():
    """config/tasks.yaml (every demo in one run): every run validated and planned, rules named by run."""
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--nolock", "-n", "--configfile", "config/tasks.yaml"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = yaml.safe_load((REPO / "config" / "tasks.yaml").read_text())["tasks"]
    for run in runs:
        assert re.search(rf"^{run}_train\s+\d+", proc.stdout, re.MULTILINE), run
        assert re.search(rf"^{run}_collect_metrics\s+1$", proc.stdout, re.MULTILINE), run


@pytest.mark.e2e
@pytest.mark.long  # about 2 min; the multi-task path also runs in tests/test_pinn.py's tiny two-problem run: pytest -m long
def test_toy_task_goes_through_train_evaluate_metrics_stats(tmp_path):
    """A task registered from a test file, no rules of its own, trains, is evaluated, and is ranked through
    Snakemake with no change to the core (issue 23's proof); here as two runs of one multi-task config
    (config key tasks), each ranked on its own, and each planned as done when its file is then run alone."""
    results, other = tmp_path / "results", tmp_path / "other"
    first = _write_yaml(tmp_path / "toy.yaml", toy_config(results_dir=str(results)))
    second_config = toy_config(results_dir=str(other), seed=5)
    second_config["training"]["seeds"] = [1, 2]
    second_config["balancing"] = {"variants": {"constant": {"method": "constant"}, "mgda": {"method": "mgda"}}}
    second_config["stats"] = {"controls": {"variants": ["constant"]}}
    second = _write_yaml(tmp_path / "toy_other.yaml", second_config)
    cross = tmp_path / "cross_task"
    tasks = _write_yaml(tmp_path / "tasks.yaml", {"tasks": {"toy": str(first), "toy_other": str(second)},
                                                  "cross_task": {"results_dir": str(cross)}})
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--nolock", "--cores", "2", "--configfile",
                           str(tasks)], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    config = yaml.safe_load(first.read_text())
    variants, seeds = list(config["balancing"]["variants"]), config["training"]["seeds"]
    for v in variants:
        for s in seeds:
            assert (results / "models" / v / f"seed{s}" / "model.pt").exists()
            log = pd.read_csv(results / "models" / v / f"seed{s}" / "train_log.csv")
            assert {"train_left", "train_right", "val_left", "val_right", "coef_left", "coef_right"} <= set(log)
    table = pd.read_csv(results / "metrics" / "metrics.csv")
    toy = table[table["metric"].isin(["test_mse_left", "test_mse_right"])]
    assert len(toy) == 2 * len(variants) * len(seeds)
    assert (toy["status"] == "completed").all() and toy["value"].notna().all()
    assert set(table["metric"]) == {"N_ep", "t_ep", "sigma_ep", "N_target", "test_mse_left", "test_mse_right",
                                    "hypervolume"}
    ranking = pd.read_csv(results / "stats" / "ranking.csv")
    assert sorted(ranking["method"]) == sorted(variants)
    verdict = pd.read_csv(results / "stats" / "verdict.csv")
    assert "accuracy" in set(verdict["concern"])
    selected = yaml.safe_load((results / "search" / "grid" / "selected.json").read_text())
    assert set(selected["values"]) == {"weight_right"}
    assert not (results / "atomistic").exists() and not (results / "cg").exists()
    # the second run: its own variants and seeds, ranked in its own tree
    assert sorted(pd.read_csv(other / "stats" / "ranking.csv")["method"]) == ["constant", "mgda"]
    assert sorted(p.name for p in (other / "models" / "mgda").iterdir()) == ["seed1", "seed2"]
    # the verdict across the two runs: the methods that ran in both, each run a block
    blocks = pd.read_csv(cross / "blocks.csv", index_col="run")
    assert list(blocks.index) == ["toy", "toy_other"] and sorted(blocks.columns) == ["constant", "mgda"]
    assert (cross / "critical_difference.png").stat().st_size > 0
    assert "Left out (not in every run): grid, softadapt, unitfree." in (cross / "summary.md").read_text()
    # each file alone plans nothing: same files, parameters and code as in the multi-task run
    for path in (first, second):
        alone = subprocess.run([sys.executable, "-m", "snakemake", "--nolock", "-n", "--configfile", str(path)],
                               cwd=REPO, capture_output=True, text=True, timeout=300)
        assert alone.returncode == 0 and "Nothing to be done" in alone.stdout + alone.stderr, alone.stdout[-2000:]
