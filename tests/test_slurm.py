"""profiles/slurm on a real single-node SLURM (scripts/local_slurm.sh): the tiny config end to end, a job
cancelled mid-run with scancel, and the rerun that completes the workflow.

The profile is used as users get it, with only what a GPU-less one-node test cluster needs changed in a
copy: no GPU requests, cores capped to the node's, no account (accounting is disabled), short status-check
intervals and no automatic retry (so the cancelled job shows as failed and the rerun has work to do).
Skips only where SLURM cannot be installed (not root, or no apt-get).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml

pytestmark = [pytest.mark.slurm, pytest.mark.e2e, pytest.mark.slow]

CANNOT_INSTALL = 3  # scripts/local_slurm.sh: not root / no apt-get


@pytest.fixture(scope="module")
def slurm(repo):
    proc = subprocess.run(["bash", str(repo / "scripts" / "local_slurm.sh"), "start"], capture_output=True,
                          text=True, timeout=900)
    if proc.returncode == CANNOT_INSTALL:
        pytest.skip(f"SLURM cannot be installed on this machine: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_profile_for_gpu_less_node(repo, tmp_path):
    """The test's profile changes only what the node lacks; every GPU request of the user profile is kept."""
    user = yaml.safe_load((repo / "profiles" / "slurm" / "config.yaml").read_text())
    test = yaml.safe_load(make_test_profile(repo, tmp_path).joinpath("config.yaml").read_text())
    gpu_rules = {rule for rule, res in user["set-resources"].items() if res.get("gpu")}
    assert {"train", "simulate", "search_candidate", "meta_train_l2o"} <= gpu_rules
    assert all(test["set-resources"][rule]["gpu"] == 0 for rule in gpu_rules)
    assert user["slurm-status-command"] == "squeue" and user["retries"] >= 1
    assert "attempt" in str(user["set-resources"]["train"]["runtime"])


def test_profile_runtime_scales_with_attempt(repo, tmp_path):
    """Snakemake evaluates the profile's runtime expressions per attempt (dry run, attempt 1)."""
    config = tiny_config(repo, tmp_path)
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--nolock", "--profile", "profiles/slurm",
                           "--configfile", str(config), "--slurm-no-account"],
                          cwd=repo, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    train = [b for b in out.split("\n\n") if "rule train:" in b]
    assert train and all("runtime=720" in b and "gpu=1" in b and "slurm_partition=gpu" in b for b in train)


CLUSTER_VARIANTS = ("constant", "softadapt")  # a grid search (search_candidate jobs) and a plain variant


def tiny_config(repo, tmp_path):
    """The tiny config with two of its variants: the cluster path runs the same rules for every variant
    (tests/test_workflow.py runs them all), and each job here pays SLURM's scheduling on top of its own cost."""
    config = yaml.safe_load((repo / "tests" / "data" / "tiny.yaml").read_text())
    config["results_dir"] = str(tmp_path / "results")
    balancing = config["balancing"]
    balancing["variants"] = {name: balancing["variants"][name] for name in CLUSTER_VARIANTS}
    used = {v.get("search") for v in balancing["variants"].values()}
    balancing["searches"] = {name: spec for name, spec in balancing["searches"].items() if name in used}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def make_test_profile(repo, tmp_path):
    """A copy of profiles/slurm for this node: gpu 0, cores <= the node's, no account, fast status checks."""
    profile = yaml.safe_load((repo / "profiles" / "slurm" / "config.yaml").read_text())
    cores = os.cpu_count() or 1
    for res in profile.get("set-resources", {}).values():
        if "gpu" in res:
            res["gpu"] = 0
        if "cpus_per_task" in res:
            res["cpus_per_task"] = min(int(res["cpus_per_task"]), cores)
    profile["set-threads"] = {rule: min(int(n), cores) for rule, n in profile.get("set-threads", {}).items()}
    profile["default-resources"].pop("slurm_account", None)
    profile.update({
        "slurm-no-account": True,
        "slurm-init-seconds-before-status-checks": 1,
        "seconds-between-status-checks": 1,
        "slurm-logdir": str(tmp_path / "slurm_logs"),
        "latency-wait": 10,
        "retries": 0,
        "slurm-keep-successful-logs": True,
    })
    folder = tmp_path / "profile"
    folder.mkdir(exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(profile))
    return folder


def squeue():
    """[(jobid, state, comment)] of every job SLURM still remembers."""
    out = subprocess.run(["squeue", "-h", "--states=all", "-o", "%i|%T|%k"], capture_output=True, text=True).stdout
    return [tuple(line.split("|", 2)) for line in out.splitlines() if line.count("|") >= 2]


@pytest.fixture(scope="module")
def slurm_run(repo, tmp_path_factory, slurm):
    """The tiny config through the profile; the first training job seen running is cancelled (scancel), the
    run fails, and the same command is rerun to completion."""
    tmp = tmp_path_factory.mktemp("slurm_run")
    config_path = tiny_config(repo, tmp)
    results = tmp / "results"
    command = [sys.executable, "-m", "snakemake", "--nolock", "--profile", str(make_test_profile(repo, tmp)),
               "--configfile", str(config_path)]
    # the jobs start `python -m snakemake` with the plugin's job step: the same interpreter, found first on PATH
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ.get('PATH', '')}"}
    before = {job for job, _, _ in squeue()}
    start = time.monotonic()
    with open(tmp / "run1.log", "w") as log:
        run = subprocess.Popen(command, cwd=repo, stdout=log, stderr=subprocess.STDOUT, text=True, env=env)
        cancelled = None
        while run.poll() is None and cancelled is None and time.monotonic() - start < 600:
            for job, state, comment in squeue():
                if job not in before and state == "RUNNING" and comment.startswith("rule_train_wildcards"):
                    subprocess.run(["scancel", job], check=True)
                    cancelled = (job, comment)
                    break
            time.sleep(0.5)
        run.wait(timeout=900)
    first_seconds = time.monotonic() - start
    done_before = {p: p.stat().st_mtime_ns for p in results.glob("models/*/seed*/model.pt")}
    second = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=900, env=env)
    seconds = time.monotonic() - start
    print(f"\nSLURM: first run (one job cancelled) {first_seconds:.0f} s, with the rerun {seconds:.0f} s")
    return SimpleNamespace(config=yaml.safe_load(config_path.read_text()), config_path=config_path, results=results,
                           tmp=tmp, first=run, first_log=(tmp / "run1.log").read_text(), second=second,
                           cancelled=cancelled, done_before=done_before)


def test_a_cancelled_job_fails_the_run_and_the_rerun_completes_it(slurm_run):
    first = slurm_run.first_log
    assert slurm_run.cancelled is not None, "no training job was seen running in SLURM:\n" + first[-3000:]
    assert slurm_run.first.returncode != 0, "the cancelled job must fail the first run:\n" + first[-3000:]
    assert "CANCELLED" in first and slurm_run.cancelled[0] in first, first[-3000:]
    assert (slurm_run.results / "atomistic" / "trajectory.h5").exists(), "the jobs before it completed"
    second = slurm_run.second
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    for path, mtime in slurm_run.done_before.items():
        assert path.stat().st_mtime_ns == mtime, f"{path} was retrained although it was complete"


def test_results_of_every_stage(slurm_run):
    """Read against the config the run used (tests/data/tiny.yaml changes with the workflow)."""
    config, results = slurm_run.config, slurm_run.results
    assert slurm_run.second.returncode == 0
    seeds = config["training"]["seeds"]
    models = sorted(p.parent for p in results.glob("models/*/seed*/status.json") if "constant_grid" not in str(p))
    variants = sorted({p.parent.name for p in models})
    assert len(models) == len(variants) * len(seeds) >= 2
    for model in models:
        status = json.loads((model / "status.json").read_text())
        assert status["status"] == "completed", (model, status)
        assert 1 <= len(pd.read_csv(model / "train_log.csv")) <= config["training"]["max_epochs"]
    table = pd.read_csv(results / "metrics" / "metrics.csv")
    assert sorted(set(table["method"])) == variants
    # N_ep of a run stopped by max_epochs is censored (a lower bound); everything else completed
    assert table["value"].notna().all() and (table["status"] == table["metric"].map(
        lambda m: "censored" if m == "N_ep" else "completed")).all()
    for name in ("kruskal.csv", "ranking.csv", "summary.md", "figures/boxplots.png"):
        assert (results / "stats" / name).stat().st_size > 0, name


def test_jobs_ran_in_slurm_and_local_rules_did_not(slurm_run):
    ran = {p.name for p in (slurm_run.tmp / "slurm_logs").iterdir()}
    assert {"rule_build_system", "rule_equilibrate", "rule_train", "rule_simulate"} <= ran, ran
    assert not ran & {"rule_collect_metrics", "rule_stats_tables", "rule_stats_figures", "rule_all"}, ran


def test_rule_logs_show_progress(slurm_run):
    """A training log has a line per epoch with an ETA; an NVT log reaches 100 % in steps of at most 10 %."""
    results = slurm_run.results
    train_logs = [p for p in results.glob("logs/models/*/seed*.log")]
    assert train_logs
    for path in train_logs:
        model = results / "models" / path.parent.name / path.stem
        epochs = len(pd.read_csv(model / "train_log.csv"))
        lines = [line for line in path.read_text().splitlines() if "training: epoch" in line]
        assert len(lines) == epochs and all("ETA" in line for line in lines), path.read_text()[-2000:]
    nvt_logs = list(results.glob("logs/simulations/*/seed*.log"))
    assert nvt_logs
    for path in nvt_logs:
        percents = [int(m) for m in re.findall(r"NVT: \d+/\d+ steps \((\d+) %\)", path.read_text())]
        gaps = np.diff([0] + percents)
        assert percents and percents[-1] == 100 and gaps.max() <= 10, (path, percents)


def test_report_of_the_slurm_run_renders_in_chromium(repo, slurm_run, tmp_path):
    """snakemake --report of the whole tiny run: the workflow description and every figure, in a browser."""
    if not any(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")):
        pytest.skip("no Chromium on PATH (Debian: apt-get install chromium); the report check needs a browser")
    assert slurm_run.second.returncode == 0
    proc = subprocess.run([sys.executable, str(repo / "scripts" / "check_stats_report.py"), "--out", str(tmp_path),
                           "--run-config", str(slurm_run.config_path)],
                          cwd=repo, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "every table and figure present" in proc.stdout
