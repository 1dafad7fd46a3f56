"""Seed 000's pre-screening hierarchy (Sec. 2.3): stability (CV_U, CV_T), validity (Delta U, mean T), structure
(d_KS or g(r) W1); thresholds documented in docs/metrics.md."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import pandas as pd

from balancebench.evaluation import COMPLETED, DIVERGED, _join
from balancebench.tasks.cg_benzene.thermodynamics import canonical_cv_t_target

#: Seed 000 Sec. 2.3 hierarchy; the numbers are documented in docs/metrics.md.
DEFAULT_THRESHOLDS: dict[str, Any] = {
    "cv_u_max": 0.10,  # CV_U; the atomistic U_A of 125 molecules has ~0.02 (estimate)
    "cv_t_max": None,  # CV_T; None: cv_t_canonical_factor * sqrt(2 / (3 N_beads - 3)), the CV_T target
    "cv_t_canonical_factor": 1.5,
    "delta_u_max": 10.0,  # %, Delta U
    "mean_t_rel_tol": 0.03,  # |mean_T - T_target| / T_target
    "structure_metric": "d_KS",  # or "gr_w1"
    "d_ks_max": 0.03,
    "gr_w1_max": 0.10,  # A
}
PRESCREEN_LEVELS = ("stability", "validity", "structure")


def prescreen_criteria(record: Mapping, thresholds: Mapping | None = None) -> list[dict]:
    """The ordered criteria (level, criterion, metric, limit) for one model record."""
    th = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
    unknown = set(th) - set(DEFAULT_THRESHOLDS)
    if unknown:
        raise ValueError(f"unknown pre-screening thresholds {sorted(unknown)}")
    cv_t_max = th["cv_t_max"]
    if cv_t_max is None:
        n = record.get("n_beads")
        cv_t_max = th["cv_t_canonical_factor"] * canonical_cv_t_target(int(n)) if n else None
    temperature = record["metrics"]["mean_T"]["target"]
    structure = th["structure_metric"]
    if structure not in ("d_KS", "gr_w1"):
        raise ValueError(f"structure_metric must be d_KS or gr_w1, not {structure!r}")
    return [
        {"level": "stability", "criterion": "CV_U", "metric": "CV_U", "limit": th["cv_u_max"]},
        {"level": "stability", "criterion": "CV_T", "metric": "CV_T", "limit": cv_t_max},
        {"level": "validity", "criterion": "delta_U", "metric": "delta_U", "limit": th["delta_u_max"]},
        {"level": "validity", "criterion": "mean_T", "metric": "mean_T",
         "limit": None if temperature is None else th["mean_t_rel_tol"] * abs(temperature), "target": temperature},
        {"level": "structure", "criterion": structure, "metric": structure,
         "limit": th["d_ks_max"] if structure == "d_KS" else th["gr_w1_max"]},
    ]


def prescreen(record: Mapping, thresholds: Mapping | None = None) -> dict:
    """Verdict of one model: ``pass``, ``fail`` (with the first failed criterion, in the order
    CV_U, CV_T -> delta_U, |mean_T - T| -> d_KS or gr_w1) or ``not_run`` (training diverged, CG
    run unstable or missing). A criterion whose metric is undefined counts as failed."""
    base = {"method": record["method"], "seed": int(record["seed"])}
    if record.get("training_status") == DIVERGED:
        return {**base, "verdict": "not_run", "level": None, "failed_criterion": None,
                "reason": _join("training diverged", record.get("training_reason"))}
    if record.get("simulation_status") != COMPLETED:
        return {**base, "verdict": "not_run", "level": None, "failed_criterion": None,
                "reason": _join(f"CG simulation {record.get('simulation_status')}", record.get("simulation_reason"))}
    for crit in prescreen_criteria(record, thresholds):
        m = record["metrics"][crit["metric"]]
        value = m["value"]
        fail = None
        if value is None:
            fail = f"{crit['metric']} undefined ({m['status']}: {m['reason']})"
        elif crit["limit"] is None:
            fail = f"no limit for {crit['criterion']} (missing bead count or target)"
        elif crit["criterion"] == "mean_T":
            dev = abs(value - crit["target"])
            if not dev <= crit["limit"]:
                fail = f"|mean_T - {crit['target']:g}| = {dev:.3g} K > {crit['limit']:.3g} K"
        elif not value <= crit["limit"]:
            fail = f"{crit['metric']} = {value:.6g} > {crit['limit']:.6g}"
        if fail:
            return {**base, "verdict": "fail", "level": crit["level"], "failed_criterion": crit["criterion"],
                    "reason": fail}
    return {**base, "verdict": "pass", "level": None, "failed_criterion": None, "reason": ""}


def prescreen_table(records: Iterable[Mapping], thresholds: Mapping | None = None) -> pd.DataFrame:
    """One row per model: method, seed, verdict, level, failed_criterion, reason."""
    return pd.DataFrame([prescreen(r, thresholds) for r in records],
                        columns=["method", "seed", "verdict", "level", "failed_criterion", "reason"])
