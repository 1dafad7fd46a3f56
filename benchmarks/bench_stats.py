"""Statistics stage speed on the synthetic table (5 methods x 5 seeds x 10 metrics, two failed runs).

Measured in one process, best of ``--repeat``:

  reference   a plain ``scipy.stats.kruskal`` loop over the metrics of the tidy table
              (groupby + one test per metric: the least any evaluation has to do)
  validate    reading and validating the CSV (:func:`balancebench.stats.load_metrics_table`)
  evaluate    the whole scheme: Kruskal-Wallis, all three post-hoc tests, scores, letters, ranking
  tables      writing every CSV, summary.md and summary.html
  figures     the box-plot figure, PNG + SVG

Figures of merit: evaluate / reference (the cost of the full scheme relative to the
bare omnibus tests) and the absolute seconds of the whole stage (target: seconds).

    .venv/bin/python benchmarks/bench_stats.py [--repeat 5] [--seeds 5]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd
import scipy.stats as ss

from balancebench.report import plot_boxplots, write_tables
from balancebench.stats import StatsSettings, evaluate, load_metrics_table, synthetic_metrics_table


def best_of(repeat: int, func) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def reference_kruskal(frame: pd.DataFrame) -> None:
    done = frame[frame["status"] == "completed"]
    for _, rows in done.groupby("metric", sort=False):
        ss.kruskal(*[g["value"].to_numpy(float) for _, g in rows.groupby("method", sort=False)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    failed = {("softadapt_normalized", 1): "unstable", ("ratio", 3): "diverged"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        csv = tmp / "metrics.csv"
        synthetic_metrics_table(n_seeds=args.seeds, failed_runs=failed).to_csv(csv, index=False)
        frame = pd.read_csv(csv)
        table = load_metrics_table(csv)
        settings = StatsSettings()
        evaluation = evaluate(table, settings)
        plot_boxplots(table, evaluation.kruskal, evaluation.letters, tmp / "warm.png")  # warm matplotlib up
        t = {
            "reference": best_of(args.repeat, lambda: reference_kruskal(frame)),
            "validate": best_of(args.repeat, lambda: load_metrics_table(csv)),
            "evaluate": best_of(args.repeat, lambda: evaluate(table, settings)),
            "tables": best_of(args.repeat, lambda: write_tables(evaluation, tmp / "out")),
            "figures": best_of(args.repeat, lambda: plot_boxplots(
                table, evaluation.kruskal, evaluation.letters, tmp / "b.png", [tmp / "b.svg"])),
        }
    stage = t["validate"] + t["evaluate"] + t["tables"] + t["figures"]
    result = {
        "table": f"{len(table.methods)} methods x {args.seeds} seeds x {len(table.metrics)} metrics",
        "seconds": {k: round(v, 4) for k, v in t.items()},
        "stage_seconds": round(stage, 3),
        "evaluate_over_reference": round(t["evaluate"] / t["reference"], 1),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
