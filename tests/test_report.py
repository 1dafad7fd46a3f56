"""Outputs of the statistics stage: tables, summary, box plots, the Snakemake rules and the report in a browser."""

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pandas as pd
import pytest
import yaml

from balancebench.report import TABLE_FILES, plot_boxplots, summary_markdown, write_tables
from balancebench.stats import (
    FAILED_RUNS_METRIC,
    StatsSettings,
    evaluate,
    synthetic_metrics_table,
    validate_metrics_table,
)

FAILED = {("softadapt_normalized", 1): "unstable", ("ratio", 3): "diverged"}


@pytest.fixture(scope="module")
def evaluation():
    table = validate_metrics_table(synthetic_metrics_table(failed_runs=FAILED))
    return evaluate(table, StatsSettings())


def test_synthetic_table_runs_the_whole_stage_with_plots(evaluation, tmp_path):
    """5 methods x 5 seeds x 10 metrics: every table, the summary and both figure formats."""
    assert len(evaluation.table.methods) == 5 and len(evaluation.table.metrics) == 10
    paths = write_tables(evaluation, tmp_path, figures=["figures/boxplots.png"])
    png, svg = tmp_path / "figures" / "boxplots.png", tmp_path / "figures" / "boxplots.svg"
    plot_boxplots(evaluation.table, evaluation.kruskal, evaluation.letters, png, [svg])
    assert set(paths) == set(TABLE_FILES)
    assert all(p.exists() and p.stat().st_size > 0 for p in paths.values())
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 50_000
    assert ET.parse(svg).getroot().tag.endswith("svg")

    kruskal = pd.read_csv(paths["kruskal"])
    assert list(kruskal["metric"]) == list(evaluation.metrics)
    assert kruskal["pvalue"].notna().all()
    ranking = pd.read_csv(paths["ranking"])
    assert sorted(ranking["rank"]) == sorted(evaluation.ranking["rank"])
    assert set(ranking.columns) >= set(evaluation.metrics) | {"method", "total", "rank", "n_failed_runs"}
    posthoc = pd.read_csv(paths["posthoc"])
    assert set(posthoc["metric"]) == set(kruskal.loc[kruskal["screened"], "metric"])
    failures = pd.read_csv(paths["failures"])
    assert set(failures["status"]) == {"unstable", "diverged"}


def test_summary_shows_every_table_the_ordering_and_the_failures(evaluation):
    text = summary_markdown(evaluation, figures=["figures/boxplots.png"])
    for heading in ("Table 1", "Table 2", "Table 3", "Compact letter display", "post-hoc choice", "Failed runs"):
        assert heading in text
    assert evaluation.ordering in text
    for metric in evaluation.metrics:
        assert f"| {metric} |" in text
    assert "| ratio | 3 | diverged |" in text and "| softadapt_normalized | 1 | unstable |" in text
    assert "\\|x - 340\\|" in text  # escaped pipes keep the markdown table intact
    assert "![boxplots](figures/boxplots.png)" in text


def test_summary_opens_with_the_verdict_per_concern():
    """Issue 27: the first screen of summary.md states the winners per concern and the total's ordering with their
    bootstrap frequencies, before the paper's tables."""
    from balancebench.tasks.cg_benzene.metrics import CONCERNS, COST_CONCERNS, PHYSICS_CONCERNS

    table = validate_metrics_table(synthetic_metrics_table(failed_runs=FAILED))
    ev = evaluate(table, StatsSettings(bootstrap_replicates=20, concerns=CONCERNS, concerns_strict=False,
                                       quality_concerns=PHYSICS_CONCERNS, cost_concerns=COST_CONCERNS,
                                       controls=("constant",), main_control="constant"))
    text = summary_markdown(ev)
    first = text[:text.index("Table 1")]
    for concern in ("structure", "dynamics", "thermodynamics", "training cost", "paper's total"):
        assert f"| {concern} |" in first
    assert "kept first by the bootstrap" in first and " %" in first
    assert f"The paper's total (seed 000's weighted sum, the reproduction): {ev.verdict['ordering'].iloc[-1]}" in first
    assert "The bootstrap keeps the whole ordering in" in first
    assert "the constant control on quality" in first
    assert "Across machines" in text and "BALANCEBENCH_PAIR_KERNELS_ARCH=portable" in text


def test_ranking_table_counts_failed_runs(evaluation):
    assert evaluation.ranking.loc["ratio", "n_failed_runs"] == 1
    assert evaluation.ranking.loc["constant", "n_failed_runs"] == 0
    assert FAILED_RUNS_METRIC in evaluation.ranking.columns


def test_plot_reads_the_tables_back_from_csv(evaluation, tmp_path):
    paths = write_tables(evaluation, tmp_path)
    letters = pd.read_csv(paths["letters"], keep_default_na=False, na_values={"mean": [""], "median": [""]})
    plot_boxplots(evaluation.table, pd.read_csv(paths["kruskal"]), letters, tmp_path / "b.png")
    assert (tmp_path / "b.png").stat().st_size > 50_000


@pytest.fixture(scope="module")
def stats_workflow(repo, tmp_path_factory):
    """The statistics rules alone on a synthetic table, in a temporary results folder."""
    out = tmp_path_factory.mktemp("stats_workflow")
    table = out / "metrics.csv"
    synthetic_metrics_table(failed_runs=FAILED).to_csv(table, index=False)
    config = out / "config.yaml"
    config.write_text(yaml.safe_dump({"results_dir": str(out / "results"), "stats": {"metrics_table": str(table)}}))
    command = [sys.executable, "-m", "snakemake", "stats", "--cores", "1", "--configfile", str(config)]
    proc = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, command


@pytest.mark.e2e
def test_stats_rules_write_the_results_layout(stats_workflow):
    out, _ = stats_workflow
    stats = out / "results" / "stats"
    for filename in list(TABLE_FILES.values()) + ["evaluation.json", "figures/boxplots.png", "figures/boxplots.svg",
                                                  "figures/physics_vs_cost.png", "figures/metric_correlation.png"]:
        assert (stats / filename).exists(), filename
    for rule in ("stats_tables", "stats_figures"):
        assert (out / "results" / "logs" / "stats" / f"{rule}.log").exists()
        assert (out / "results" / "benchmarks" / "stats" / f"{rule}.tsv").exists()


@pytest.mark.e2e
@pytest.mark.slow
def test_report_opens_in_a_browser_with_every_table_and_figure(repo, tmp_path):
    """scripts/check_stats_report.py: snakemake --report, headless Chromium, DOM checks and screenshots."""
    if not any(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")):
        pytest.skip("no Chromium on PATH (Debian: apt-get install chromium); the report check needs a browser")
    proc = subprocess.run([sys.executable, str(repo / "scripts" / "check_stats_report.py"), "--out", str(tmp_path)],
                          cwd=repo, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "every table and figure present" in proc.stdout
    # issue 27: the first screen (the verdict above the description), the new figures and a demo-sized Pareto figure
    for view in ("tables", "figures", "summary", "description", "physics_vs_cost", "metric_correlation", "pareto"):
        assert (tmp_path / f"screenshot_{view}.png").stat().st_size > 5000
