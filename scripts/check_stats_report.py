#!/usr/bin/env python
"""Check that the Snakemake report of the statistics stage opens in a browser with every table and figure.

1. writes a synthetic metrics table (5 methods x 5 seeds x 10 metrics, two failed runs);
2. runs the statistics stage alone on it (``stats.metrics_table``) and ``snakemake --report``;
3. opens the report in headless Chromium three times, each time with a small script
   appended that switches the report app to a view: the list of tables, the list of
   figures, the summary page; dumps the rendered DOM and takes a screenshot;
4. checks that every result file is embedded in the report, that the table and figure
   lists show every label, that the summary page is rendered and that the landing page
   shows the workflow description (workflow/report/workflow.rst, rendered).

    .venv/bin/python scripts/check_stats_report.py [--out /tmp/balancebench_report_check]

With ``--run-config CONFIG`` it reports an existing run of the whole workflow instead (the
config that run used): every figure under its results directory must be embedded, and the
description and one figure per category must render.

Exit status: 0 all present, 1 something missing, 77 no Chromium found (skip).
Screenshots: OUT/screenshot_{tables,figures,summary}.png.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CATEGORY = "Evaluation scheme"
EXPECTED_TABLE_LABELS = ["0 verdict per concern", "0 summary", "1 Kruskal-Wallis", "2 post-hoc pairs",
                         "2b post-hoc tests compared",
                         "3 ranking", "3b letters and scores", "4 rank stability", "5 seeds needed per verdict",
                         "failed values", "6 ranking per concern", "6b concern rank stability",
                         "7 metric correlation"]
EXPECTED_FIGURE_LABELS = ["box plots (PNG)", "box plots (SVG)", "physics vs cost", "metric correlation"]
EXPECTED_FILES = ["kruskal.csv", "posthoc.csv", "posthoc_comparison.csv", "ranking.csv", "letters.csv",
                  "failures.csv", "stability.csv", "power.csv", "summary.html", "boxplots.png", "boxplots.svg",
                  "verdict.csv", "verdict.rst", "concerns.csv", "concern_stability.csv", "metric_correlation.csv",
                  "physics_vs_cost.png", "metric_correlation.png"]
# the first screen (issue 27): the verdict, rendered from results/stats/verdict.rst above the description
VERDICT_MARKERS = ["The verdict", "structure", "dynamics", "thermodynamics", "training cost", "paper's total",
                   "kept first by the bootstrap"]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1500,1000", "--virtual-time-budget=8000"]
SKIP = 77
# the rendered title and a rendered emphasis of workflow/report/workflow.rst (raw RST would not match)
DESCRIPTION_MARKERS = ['<h1 class="title">balancebench: which loss-balancing method should you use?',
                       "<strong>Training</strong>"]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def build_report(out: Path) -> Path:
    """Synthetic table -> statistics stage -> report.html under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    table = out / "metrics.csv"
    python = sys.executable
    subprocess.run([python, "-m", "balancebench.cli", "synthetic-table", str(table), "--demo-like"], check=True)
    config = out / "config.yaml"
    config.write_text(yaml.safe_dump({"results_dir": str(out / "results"), "stats": {"metrics_table": str(table)}}))
    snakemake = [python, "-m", "snakemake", "stats", "--cores", "1", "--configfile", str(config)]
    subprocess.run(snakemake, cwd=REPO, check=True, capture_output=True, text=True)
    report = out / "report.html"
    subprocess.run(snakemake + ["--report", str(report)], cwd=REPO, check=True, capture_output=True, text=True)
    return report


def _view_script(view: dict) -> str:
    """JS appended to the report: switch the app to ``view`` and record the embedded results in the DOM."""
    return f"""
<script>
window.addEventListener('load', function () {{
  setTimeout(function () {{
    var view = {json.dumps(view)};
    if (view.show) {{  // display a result as its eye button would: 'img' or 'html' content
      var key = Object.keys(results).find(function (k) {{ return k.endsWith(view.show); }});
      view = Object.assign({{}}, view, {{contentPath: results[key].data_uri, resultPath: key}});
      delete view.show;
    }}
    app.setView(view);
    document.body.setAttribute('data-embedded-results', JSON.stringify(Object.keys(results)));
  }}, 500);
}});
</script>
"""


def render(chromium: str, report: Path, view: dict, name: str, out: Path) -> tuple[str, Path]:
    """Open ``report`` switched to ``view``; return the rendered DOM and the screenshot path."""
    page = out / f"report_{name}.html"
    text = report.read_text()
    head, sep, tail = text.rpartition("</body>")  # the last one: the report's scripts contain the string too
    page.write_text(head + _view_script(view) + sep + tail if sep else text + _view_script(view))
    shot = out / f"screenshot_{name}.png"
    with tempfile.TemporaryDirectory() as profile:
        flags = CHROMIUM_FLAGS + [f"--user-data-dir={profile}"]
        dom = subprocess.run([chromium, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                             timeout=180).stdout
        subprocess.run([chromium, *flags, f"--screenshot={shot}", page.as_uri()], capture_output=True, text=True,
                       timeout=180)
    return dom, shot


def check_description(chromium: str, report: Path, out: Path, verdict: bool = True) -> list[str]:
    """The landing page shows the verdict (the first screen) and the rendered workflow description."""
    dom, shot = render(chromium, report, {}, "description", out)
    markers = DESCRIPTION_MARKERS + (VERDICT_MARKERS if verdict else [])
    problems = [f"description: {marker!r} is not rendered" for marker in markers if marker not in dom]
    if verdict and "The verdict" in dom and dom.index("The verdict") > dom.index("<strong>Training</strong>"):
        problems.append("description: the verdict is not above the workflow description")
    if not shot.exists() or shot.stat().st_size < 5000:
        problems.append(f"description: no screenshot ({shot})")
    return problems


def check_run(config: Path, out: Path, chromium: str) -> list[str]:
    """The report of an existing run (``config``): description rendered, every figure embedded and shown."""
    out.mkdir(parents=True, exist_ok=True)
    results = Path(yaml.safe_load(config.read_text())["results_dir"])
    figures = sorted(p for ext in ("png", "svg") for p in results.rglob(f"*.{ext}"))
    report = out / "report.html"
    subprocess.run([sys.executable, "-m", "snakemake", "--nolock", "--configfile", str(config), "--report", str(report)],
                   cwd=REPO, check=True, capture_output=True, text=True)
    problems = check_description(chromium, report, out) if figures else ["no figures under " + str(results)]
    for figure in figures:
        name = figure.name if figure.suffix == ".png" else None
        view = {"content": "img", "show": str(figure.relative_to(results))} if name else {}
        dom, _ = render(chromium, report, view, f"figure_{len(problems)}", out)
        match = re.search(r'data-embedded-results="([^"]*)"', dom)
        embedded = json.loads(match.group(1).replace("&quot;", '"')) if match else []
        if not any(path.endswith(str(figure.relative_to(results))) for path in embedded):
            problems.append(f"{figure} is not embedded in the report")
        elif name and not re.search(rf"<img[^>]+src=\"data:image/png;[^\"]*filename={re.escape(name)};base64,", dom):
            problems.append(f"{figure} is not displayed")
        else:
            print(f"figure in the report: {figure.relative_to(results)}")
    return problems


def check(out: Path, chromium: str) -> list[str]:
    """Build the report, render its views; return the list of problems (empty: all present)."""
    report = build_report(out)
    problems = check_description(chromium, report, out)
    views = {
        "tables": ({"navbarMode": "subcategory", "category": CATEGORY, "subcategory": "Tables"}, EXPECTED_TABLE_LABELS),
        "figures": ({"navbarMode": "subcategory", "category": CATEGORY, "subcategory": "Figures",
                     "content": "img", "show": "boxplots.png"}, EXPECTED_FIGURE_LABELS),
        "physics_vs_cost": ({"content": "img", "show": "physics_vs_cost.png"}, []),
        "metric_correlation": ({"content": "img", "show": "metric_correlation.png"}, []),
        "summary": ({"content": "html", "show": "summary.html"}, []),
    }
    for name, (view, labels) in views.items():
        dom, shot = render(chromium, report, view, name, out)
        if not dom.strip():
            problems.append(f"{name}: Chromium returned an empty DOM")
            continue
        match = re.search(r'data-embedded-results="([^"]*)"', dom)
        embedded = json.loads(match.group(1).replace("&quot;", '"')) if match else []
        for filename in EXPECTED_FILES:
            if not any(path.endswith(filename) for path in embedded):
                problems.append(f"{name}: {filename} is not embedded in the report")
        for label in labels:
            if label not in dom:
                problems.append(f"{name}: the list does not show {label!r}")
        if name == "summary" and "<iframe" not in dom:
            problems.append("summary: the summary page is not displayed")
        if name == "figures" and not re.search(r"<img[^>]+src=\"data:image/png;[^\"]*filename=boxplots\.png;base64,", dom):
            problems.append("figures: the box plot PNG is not displayed")
        if name in ("physics_vs_cost", "metric_correlation") and not re.search(
                rf"<img[^>]+src=\"data:image/png;[^\"]*filename={name}\.png;base64,", dom):
            problems.append(f"{name}: the figure is not displayed")
        if not shot.exists() or shot.stat().st_size < 5000:
            problems.append(f"{name}: no screenshot ({shot})")
        else:
            print(f"screenshot: {shot}")
    problems += check_pareto(chromium, out)
    return problems


def check_pareto(chromium: str, out: Path) -> list[str]:
    """The Pareto figure of a demo-sized run (16 variants, 3 COSMOS seeds, 36 search trainings; constructed
    points, no training) at the report's width: rendered in Chromium as an image page and screenshot."""
    sys.path.insert(0, str(REPO / "src"))
    from balancebench.pareto import plot_fronts
    from balancebench.tasks.cg_benzene.synthetic import demo_like_front_inputs

    png = out / "pareto_front.png"
    numbered = plot_fronts(png, *demo_like_front_inputs())
    page = out / "pareto_page.html"
    page.write_text(f"<html><body style='margin:0'><img src='{png.name}' style='max-width:100%'></body></html>")
    shot = out / "screenshot_pareto.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}",
                        page.as_uri()], capture_output=True, text=True, timeout=180)
    if not shot.exists() or shot.stat().st_size < 5000:
        return [f"pareto: no screenshot ({shot})"]
    print(f"screenshot: {shot} ({len(numbered)} numbered search trainings)")
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "balancebench_report_check")
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM") or find_chromium())
    parser.add_argument("--run-config", type=Path, help="report this finished run (its config) instead")
    args = parser.parse_args(argv)
    if not args.chromium:
        print("SKIP: no chromium/google-chrome on PATH (Debian: apt-get install chromium)")
        return SKIP
    problems = check_run(args.run_config, args.out, args.chromium) if args.run_config else check(args.out, args.chromium)
    for problem in problems:
        print(f"MISSING: {problem}")
    print("report OK: every table and figure present" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
