"""A candidate's objectives from its training (and optional short NVT) files.

Validation objectives use the trainer's method-independent criterion (balancebench.training):
``val_force = MSE_F / Var(F)`` and ``val_energy = MSE_E / Var(E)`` on the validation frames at the
best epoch, with the variances of the training targets (so ``criterion = val_force + val_energy``).
They are MSEs whatever force loss shape the candidate trained with, so candidates compare on one scale.
Physics objectives are metrics of balancebench.tasks.cg_benzene.metrics (d_KS, gr_w1, delta_U) of a short CG NVT.

A candidate is *failed* (infeasible, objectives = the search's ``failure_penalty``) when its training
did not complete, its simulation (physics objectives) did not complete, or an objective is not finite.
"""

from __future__ import annotations

import math

from balancebench.search.space import PHYSICS_OBJECTIVES, SearchSpec


def evaluate_candidate(spec: SearchSpec, status: dict, log, references: dict[str, float],
                       physics: dict | None = None, seconds: float = 0.0) -> dict:
    """``{"status", "reason", "feasible", "objectives", "criterion", "seconds"}`` of one candidate.

    ``log``: the training log (a DataFrame with epoch and ``val_<loss>`` per loss); ``references``: the task's
    reference of each loss (objective ``val_<loss>`` = validation error / reference, ``criterion`` their sum);
    ``physics``: the metrics record of the task's evaluation (needed when an objective is one of its metrics).
    """
    values: dict[str, float] = {}
    reason = ""
    criterion = math.nan
    if status.get("status") != "completed":
        state, reason = "training_" + str(status.get("status")), str(status.get("reason", ""))
    else:
        state = "completed"
        best = log[log["epoch"] == status["best_epoch"]]
        if best.empty:
            state, reason = "invalid", f"no log row for the best epoch {status['best_epoch']}"
        else:
            row = best.iloc[0]
            terms = [float(row[f"val_{name}"]) / ref for name, ref in references.items()]
            for name, term in zip(references, terms):
                values[f"val_{name}"] = term
            criterion = terms[0]
            for term in terms[1:]:
                criterion = criterion + term
            values["criterion"] = criterion
    if state == "completed" and any(o in PHYSICS_OBJECTIVES for o in spec.objectives):
        if physics is None:
            state, reason = "invalid", "physics objectives need the candidate's NVT metrics"
        elif physics.get("simulation_status") != "completed":
            state, reason = "simulation_" + str(physics.get("simulation_status")), physics.get("simulation_reason", "")
        else:
            for name in PHYSICS_OBJECTIVES:
                metric = physics["metrics"].get(name, {})
                values[name] = math.nan if metric.get("value") is None else float(metric["value"])
    objectives = {o: values.get(o, math.nan) for o in spec.objectives}
    if state == "completed" and not all(math.isfinite(v) for v in objectives.values()):
        bad = [o for o, v in objectives.items() if not math.isfinite(v)]
        state, reason = "invalid", f"non-finite objective(s) {bad}"
    feasible = state == "completed"
    if not feasible:
        objectives = {o: float(spec.failure_penalty) for o in spec.objectives}
    return {"status": state, "reason": reason, "feasible": feasible, "objectives": objectives,
            "criterion": criterion if math.isfinite(criterion) else None, "seconds": float(seconds)}
