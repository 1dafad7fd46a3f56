"""The balancebench command line: rank any tidy metrics CSV, clear errors on bad input."""

import subprocess
import sys

import pandas as pd
import pytest

from balancebench.cli import main
from balancebench.report import TABLE_FILES
from balancebench.stats import synthetic_metrics_table


@pytest.fixture()
def user_table(tmp_path):
    """A user's table without direction/target columns (three methods, four seeds, two metrics)."""
    rows = []
    values = {"loss": {"adam": [1.0, 1.1, 0.9, 1.05], "sgd": [2.0, 2.1, 1.9, 2.05], "lion": [1.5, 1.4, 1.6, 1.45]},
              "temp": {"adam": [340.1, 339.9, 340.2, 339.8], "sgd": [350, 352, 348, 351],
                       "lion": [330, 329, 331, 332]}}
    for metric, groups in values.items():
        for method, vals in groups.items():
            for seed, v in enumerate(vals):
                rows.append({"method": method, "seed": seed, "metric": metric, "value": v, "status": "completed"})
    path = tmp_path / "user.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_rank_writes_tables_and_prints_them(user_table, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["rank", str(user_table), "--out", str(out), "--direction", "temp=target:340"]) == 0
    printed = capsys.readouterr().out
    assert "Assumed direction 'lower'" in printed and "loss" in printed.split("Assumed")[1].splitlines()[0]
    assert "Table 1: Kruskal-Wallis" in printed and "Final ordering: adam" in printed
    for filename in TABLE_FILES.values():
        assert (out / filename).exists()
    assert (out / "figures" / "boxplots.png").exists() and (out / "figures" / "boxplots.svg").exists()
    kruskal = pd.read_csv(out / "kruskal.csv").set_index("metric")
    assert kruskal.loc["temp", "tested"] == "|x - 340|"


@pytest.mark.parametrize("posthoc", ["tukey", "dunn", "conover"])
def test_posthoc_choice_is_used(user_table, tmp_path, posthoc):
    out = tmp_path / posthoc
    assert main(["rank", str(user_table), "--out", str(out), "--posthoc", posthoc, "--no-figures", "--quiet"]) == 0
    assert set(pd.read_csv(out / "posthoc.csv")["posthoc"]) == {posthoc}


def test_default_out_is_a_folder_in_the_current_directory(user_table, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["rank", str(user_table), "--no-figures", "--quiet"]) == 0
    assert (tmp_path / "balancebench_stats" / "ranking.csv").exists()


@pytest.mark.parametrize("content, message", [
    ("method,seed,metric,value\na,1,x,1\n", "missing required column(s): status"),
    ("method,seed,metric,value,status\na,1,x,1,completed\na,2,x,abc,completed\nb,1,x,2,completed\nb,2,x,3,completed\n",
     "non-numeric value(s): line 3 (method=a, seed=2, metric=x): value 'abc'"),
    ("method,seed,metric,value,status\na,1,x,1,completed\na,2,x,2,completed\nb,1,x,2,completed\n",
     "only one seed for method(s) b"),
    ("", "the file is empty"),
])
def test_bad_input_says_exactly_what_is_wrong(tmp_path, capsys, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    assert main(["rank", str(path), "--out", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_bad_options_are_refused(user_table, capsys):
    assert main(["rank", str(user_table), "--direction", "nope=higher"]) == 2
    assert "not in the table: nope" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["rank", str(user_table), "--alpha", "1.5"])
    with pytest.raises(SystemExit):
        main(["rank", str(user_table), "--posthoc", "mannwhitney"])


def test_console_script_runs_on_a_synthetic_table(tmp_path):
    table = tmp_path / "m.csv"
    proc = subprocess.run([sys.executable, "-m", "balancebench.cli", "synthetic-table", str(table),
                           "--fail", "ratio:2:unstable"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_csv(table)
    assert len(frame) == 5 * 5 * 10 and (frame["status"] == "unstable").sum() == 7
    assert (synthetic_metrics_table(failed_runs={("ratio", 2): "unstable"})["value"].astype(str) != "").any()
    proc = subprocess.run([sys.executable, "-m", "balancebench.cli", "rank", str(table), "--out", str(tmp_path / "o"),
                           "--no-figures"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Final ordering:" in proc.stdout


def test_rank_blocked_design_and_trust_tables(user_table, tmp_path):
    out = tmp_path / "blocked"
    assert main(["rank", str(user_table), "--out", str(out), "--design", "blocked", "--blocked-posthoc", "nemenyi",
                 "--bootstrap", "20", "--no-figures", "--quiet"]) == 0
    assert set(pd.read_csv(out / "kruskal.csv")["test"]) == {"friedman"}
    assert set(pd.read_csv(out / "posthoc.csv")["posthoc"]) <= {"nemenyi"}
    stability = pd.read_csv(out / "stability.csv")
    assert list(stability.columns[:3]) == ["method", "rank", "p_same_rank"] and (stability["replicates"] == 20).all()
    summary = (out / "summary.md").read_text()
    assert "Friedman" in summary and "Rank stability" in summary and "Seeds per variant" in summary
