"""Metrics of one trained model that every task shares, and the tidy table of all models.

Every task's evaluation writes one JSON per model: ``{"method", "seed", "training_status", "training_reason",
"metrics": {name: {"value", "status", "reason", "unit", "direction", "target"}}, "details": {...}}``; the rule
collect_metrics turns them into the tidy ``metrics.csv`` (:data:`TIDY_COLUMNS`) that the statistics read.
The training metrics come from the training log and the counted work (:mod:`balancebench.timing`) whatever
the task: N_ep, t_ep, sigma_ep (seed 000 Sec. 2.3) and N_target.

Status convention (never a silent NaN): each metric value is either a finite float or ``None``. ``status ==
"completed"`` implies a finite value; ``censored`` is a measured lower bound (N_ep of a run stopped by
max_epochs). ``None`` comes with ``diverged`` (the training diverged), ``unstable`` (a task's evaluation, e.g.
a simulation, stopped early), ``missing`` (an input is absent) or ``invalid`` (the metric is undefined on the
data); ``reason`` says why. Training metrics of a diverged training keep their values with status
``diverged`` (counted up to the divergence), so a consumer can tell them apart from completed runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from balancebench.fileio import read_csv, read_json
from balancebench.provenance import json_default
from balancebench.tasks.base import LOWER, MetricSpec

COMPLETED, DIVERGED, UNSTABLE, MISSING, INVALID = "completed", "diverged", "unstable", "missing", "invalid"
CENSORED = "censored"  # a measured lower bound (N_ep of a run stopped by max_epochs)
METRIC_STATUSES = (COMPLETED, CENSORED, DIVERGED, UNSTABLE, MISSING, INVALID)
TIDY_COLUMNS = ["method", "seed", "metric", "value", "status", "direction", "target", "reason"]
TRAINING_METRIC_NAMES = ("N_ep", "t_ep", "sigma_ep", "N_target")
#: the training metrics of every task (units: epochs, s, s, epochs), all in the concern ``cost``
TRAINING_UNITS = {"N_ep": "epochs", "t_ep": "s", "sigma_ep": "s", "N_target": "epochs"}
TRAINING_METRICS = tuple(MetricSpec(name, LOWER, "cost", TRAINING_UNITS[name]) for name in TRAINING_METRIC_NAMES)


@dataclass
class TrainingRun:
    """status.json contents (``status``, ``reason``, ``epoch``) and the per-epoch log (None if absent)."""

    status: dict
    log: pd.DataFrame | None = None


def training_metrics(seconds: Iterable[float]) -> dict[str, float]:
    """N_ep (epochs), t_ep (s) and sigma_ep (s, population std) from the per-epoch wall times.

    Every epoch that was trained counts, the early-stopping patience epochs after the best
    one included (the paper's "number of training epochs").
    """
    s = np.asarray(list(seconds), dtype=np.float64)
    if s.size == 0:
        raise ValueError("no epochs in the training log")
    if not np.all(np.isfinite(s)) or np.any(s < 0):
        raise ValueError("non-finite or negative epoch durations in the training log")
    return {"N_ep": float(s.size), "t_ep": float(s.mean()), "sigma_ep": float(s.std())}


def epochs_to_target(criterion: Iterable[float], tolerance: float = 0.05) -> float:
    """N_target: the first epoch (1-based) whose validation criterion is <= (1 + tolerance) x the run's best.

    Free of the patience epochs after the best one and of the max_epochs cap (a run that improves until the
    cap still reached 95 % of its final quality at some epoch), so it compares convergence speed where N_ep
    is censored.
    """
    c = np.asarray(list(criterion), dtype=np.float64)
    if c.size == 0 or not np.any(np.isfinite(c)):
        raise ValueError("no finite validation criterion in the training log")
    if not tolerance >= 0:
        raise ValueError(f"metrics.target_tolerance must be >= 0, got {tolerance}")
    best = np.nanmin(np.where(np.isfinite(c), c, np.nan))
    reached = np.flatnonzero(np.isfinite(c) & (c <= best + tolerance * abs(best)))
    return float(reached[0] + 1)


def training_metric_results(training: TrainingRun | None, timing: Mapping | None = None,
                            target_tolerance: float = 0.05) -> tuple[str, str, dict, dict]:
    """(training status, its reason, {name: (value, status, reason)} of :data:`TRAINING_METRIC_NAMES`, details).

    ``timing``: the counted-work record (t_ep, sigma_ep at this machine's calibration); without it t_ep and
    sigma_ep are the wall-clock values of the log (said in ``details["timing"]``).
    """
    results: dict[str, tuple[float | None, str, str]] = {}
    details: dict[str, Any] = {}
    t_status = _status_of(training.status if training else None)
    t_reason = str((training.status or {}).get("reason", "")) if training else "no training status.json"
    if training is None or training.log is None:
        for name in TRAINING_METRIC_NAMES:
            results[name] = (None, MISSING, "no training log")
    else:
        try:
            wall = training_metrics(training.log["seconds"])
            details["t_ep_wall"], details["sigma_ep_wall"] = wall["t_ep"], wall["sigma_ep"]
            values = {"N_ep": wall["N_ep"]}
            if timing is not None:  # counted work (balancebench.timing): load-free
                values.update(t_ep=float(timing["t_ep"]), sigma_ep=float(timing["sigma_ep"]))
                details["timing"] = {k: timing[k] for k in ("epoch_flops", "flops_ep", "calibration") if k in timing}
            else:
                values.update(t_ep=wall["t_ep"], sigma_ep=wall["sigma_ep"])
                details["timing"] = "wall clock (no counted-work timing given)"
            try:
                values["N_target"] = epochs_to_target(training.log["criterion"], target_tolerance)
            except (KeyError, ValueError) as err:
                values["N_target"] = None
                details["N_target_error"] = str(err)
            status, reason = COMPLETED, ""
            if t_status == DIVERGED:
                status, reason = DIVERGED, _join("training diverged", t_reason) + "; counted up to the divergence"
            elif t_status != COMPLETED:  # e.g. no status.json: keep the values, flag them
                status, reason = MISSING if t_status == MISSING else INVALID, f"training status {t_status!r}"
            for name in TRAINING_METRIC_NAMES:
                results[name] = (values[name], status, reason if values[name] is not None or status != COMPLETED
                                 else f"training log: {details.get('N_target_error', '')}")
            if status == COMPLETED and "max_epochs" in t_reason:
                results["N_ep"] = (values["N_ep"], CENSORED, "stopped by max_epochs: N_ep is a lower bound")
        except (KeyError, ValueError) as err:
            for name in TRAINING_METRIC_NAMES:
                results[name] = (None, INVALID, f"training log: {err}")
    return t_status, t_reason, results, details


def metric_order(task) -> list[str]:
    """The rows of ``metrics.csv`` per model: the training metrics the task does not list itself, then the
    task's metrics in its order (:attr:`balancebench.tasks.base.Task.metrics`)."""
    names = [m.name for m in task.metrics]
    return [n for n in TRAINING_METRIC_NAMES if n not in names] + names


def tidy_table(records: Iterable[Mapping], names: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per model x metric: method, seed, metric, value, status, direction, target, reason.

    ``value`` and ``target`` are float columns; a missing value (status not completed) or a
    metric without a numeric target is empty, never a NaN that came from a computation. ``names``: the metrics
    in their order (default: each record's own order).
    """
    rows = []
    for rec in records:
        for name in (rec["metrics"] if names is None else names):
            m = rec["metrics"][name]
            rows.append({"method": rec["method"], "seed": int(rec["seed"]), "metric": name, "value": m["value"],
                         "status": m["status"], "direction": m["direction"], "target": m["target"],
                         "reason": m["reason"]})
    df = pd.DataFrame(rows, columns=TIDY_COLUMNS)
    df["value"] = df["value"].astype(float)
    df["target"] = df["target"].astype(float)
    return df


def timing_table(records: Iterable[Mapping]) -> pd.DataFrame:
    """Provenance of t_ep / sigma_ep, one row per model: counted work, calibration, and the wall-clock values."""
    rows = []
    for rec in records:
        d = rec.get("details", {})
        timing = d.get("timing")
        counted = isinstance(timing, Mapping)
        cal = (timing or {}).get("calibration", {}) if counted else {}
        rows.append({"method": rec["method"], "seed": int(rec["seed"]),
                     "t_ep": rec["metrics"]["t_ep"]["value"], "sigma_ep": rec["metrics"]["sigma_ep"]["value"],
                     "source": "counted work" if counted else "wall clock",
                     "flops_ep": timing.get("flops_ep") if counted else None,
                     "flop_rate": cal.get("flop_rate"), "machine": cal.get("machine"),
                     "t_ep_wall": d.get("t_ep_wall"), "sigma_ep_wall": d.get("sigma_ep_wall")})
    return pd.DataFrame(rows, columns=["method", "seed", "t_ep", "sigma_ep", "source", "flops_ep", "flop_rate",
                                       "machine", "t_ep_wall", "sigma_ep_wall"])


def write_model_json(path: str | Path, record: Mapping, **extra) -> None:
    """The per-model JSON (``record`` from :func:`compute_model_metrics`, plus ``extra`` keys)."""
    payload = dict(record)
    payload.update(extra)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(payload, indent=2, sort_keys=True, default=json_default) + "\n")


def read_model_json(path: str | Path) -> dict:
    return read_json(path)


def write_tidy_csv(path: str | Path, records_or_table: Iterable[Mapping] | pd.DataFrame,
                   names: Iterable[str] | None = None) -> pd.DataFrame:
    """Write the tidy table of all models (empty cells for None); returns the table."""
    table = records_or_table if isinstance(records_or_table, pd.DataFrame) else tidy_table(records_or_table, names)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    return table


def read_status(path: str | Path) -> dict:
    """status.json as a dict; a missing file reads as {"status": "missing", "reason": ...}."""
    path = Path(path)
    if not path.exists():
        return {"status": MISSING, "reason": f"{path} does not exist"}
    return read_json(path)


def read_training_run(directory: str | Path) -> TrainingRun:
    """``status.json`` and ``train_log.csv`` of ``results/models/{method}/seed{seed}``."""
    directory = Path(directory)
    log = directory / "train_log.csv"
    return TrainingRun(status=read_status(directory / "status.json"),
                       log=read_csv(log) if log.exists() and log.stat().st_size else None)


def _join(head: str, reason: str | None) -> str:
    return f"{head}: {reason}" if reason else head


def _status_of(status: Mapping | None) -> str:
    if not status:
        return MISSING
    return str(status.get("status", MISSING))


def evaluate_trained_model(task, method: str, seed: int, model_dir: str | Path, dataset, config: dict,
                           timing: Mapping | None = None) -> dict:
    """The metrics record of one trained model of ``task`` (a task without an evaluation stage of its own):
    the training metrics (:func:`training_metric_results`) and, for a completed training, the task's own
    (:meth:`balancebench.tasks.base.Task.evaluate` of the model rebuilt from ``model_dir``). A failure of the
    evaluation is recorded per metric (status ``invalid`` with the error), never raised; a diverged training
    gives every task metric status ``diverged``."""
    from balancebench.training import load_trained_model

    training = read_training_run(model_dir)
    tolerance = float(((config or {}).get("metrics") or {}).get("target_tolerance", 0.05))
    t_status, t_reason, results, details = training_metric_results(training, timing, tolerance)
    specs = {m.name: m for m in (*TRAINING_METRICS, *task.metrics)}
    task_names = [m.name for m in task.metrics if m.name not in TRAINING_METRIC_NAMES]
    e_status, e_reason = COMPLETED, ""
    if t_status == COMPLETED:
        try:
            model, hparams = load_trained_model(task, model_dir)
            values = dict(task.evaluate(model, dataset, hparams, config))
        except Exception as err:  # noqa: BLE001 - a failed evaluation is a status, never a crash of the DAG
            e_status, e_reason = INVALID, f"evaluation failed: {type(err).__name__}: {err}"
            values = {}
        for name in task_names:
            results[name] = values.get(name, (None, INVALID if e_reason else MISSING,
                                              e_reason or "not given by the task's evaluation"))
    else:
        e_status = DIVERGED if t_status == DIVERGED else MISSING if t_status == MISSING else INVALID
        e_reason = _join(f"training {t_status}", t_reason)
        for name in task_names:
            results[name] = (None, e_status, e_reason)
    metrics = {}
    for name in metric_order(task):
        value, status, reason = results[name]
        if value is not None and not np.isfinite(value):  # the invariant: never a silent NaN
            value, status, reason = None, INVALID, f"non-finite value ({value})"
        if value is None and status in (COMPLETED, CENSORED):
            status = INVALID
        spec = specs[name]
        metrics[name] = {"value": None if value is None else float(value), "status": status, "reason": reason,
                         "unit": spec.unit, "direction": spec.direction, "target": spec.target}
    return {"method": str(method), "seed": int(seed), "training_status": t_status, "training_reason": t_reason,
            "evaluation_status": e_status, "evaluation_reason": e_reason, "metrics": metrics, "details": details}
