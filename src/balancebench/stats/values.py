"""The values the scheme tests, shared by the scheme (:mod:`balancebench.stats.scheme`) and its bootstrap and
power analysis (:mod:`balancebench.stats.robustness`): the table's rows with the failure count as a metric,
and each metric's tested values (censored and failed runs placed as documented). A leaf of the two, so that
neither imports the other at module level."""

from __future__ import annotations

import numpy as np
import pandas as pd

from balancebench.stats.table import CENSORED, RUN_FAILURES, Direction, MetricsTable, MetricsTableError

FAILED_RUNS_METRIC = "failed_runs"


def metric_long(table: MetricsTable, include_failures: bool) -> tuple[pd.DataFrame, tuple[str, ...], dict[str, Direction]]:
    """The table's rows plus, optionally, the failed_runs metric (one 0/1 row per run)."""
    data = table.data
    metrics = tuple(table.metrics)
    directions = dict(table.directions)
    if include_failures:
        if FAILED_RUNS_METRIC in metrics:
            raise MetricsTableError(f"the table has a metric named {FAILED_RUNS_METRIC!r}, which the scheme reserves "
                                    "for its failure count; rename it or set stats.failures_as_metric: false")
        runs = table.runs
        extra = pd.DataFrame({"method": runs["method"], "seed": runs["seed"], "metric": FAILED_RUNS_METRIC,
                              "value": runs["failed"].astype(float), "status": "completed", "reason": "",
                              "excluded": False})
        data = pd.concat([data, extra], ignore_index=True)
        metrics = metrics + (FAILED_RUNS_METRIC,)
        directions[FAILED_RUNS_METRIC] = Direction("lower")
    return data, metrics, directions


IMPUTED = (*RUN_FAILURES, "invalid")  # statuses whose value enters the tests as the worst (failed_values: worst)


def tested_values(rows: pd.DataFrame, direction: Direction, settings) -> tuple[pd.DataFrame, list[str]]:
    """The rows that enter the tests, with ``tested`` = the value the tests compare, and notes.

    - completed: ``direction.tested(value)``;
    - censored (a lower bound): at least its value, entered tied with the metric's largest tested value
      (the worst end for lower-is-better; for N_ep the censored value is max_epochs, already the largest);
    - failed (diverged, unstable, invalid) with failed_values ``worst``: worse than every measured value,
      all failures tied: max + span (lower/target) or min - span (higher), span = range of the measured
      values (1 if they are all equal or there are none);
    - missing (and every failure under ``exclude``): not tested.
    """
    notes = []
    measured = rows[~rows["excluded"]].copy()
    measured["tested"] = direction.tested(measured["value"].to_numpy())
    censored = measured["status"] == CENSORED
    if censored.any():
        if direction.higher_is_better:
            raise MetricsTableError("censored values (lower bounds) are only meaningful for a metric where lower is "
                                    "better or that has a target")
        measured.loc[censored, "tested"] = float(measured["tested"].max())
        notes.append(f"{int(censored.sum())} censored value(s) (lower bounds) entered tied with the largest value")
    if settings.failed_values == "worst":
        failed = rows[rows["status"].isin(IMPUTED)].copy()
        if len(failed):
            vals = measured["tested"].to_numpy()
            span = float(np.ptp(vals)) if vals.size and np.ptp(vals) > 0 else 1.0
            if direction.higher_is_better:
                worst = (float(vals.min()) if vals.size else 0.0) - span
            else:
                worst = (float(vals.max()) if vals.size else 0.0) + span
            failed["tested"] = worst
            measured = pd.concat([measured, failed])
            notes.append(f"{len(failed)} failed value(s) entered as the worst value")
    return measured, notes
