"""A candidate's objectives from its training files (and, optionally, the task's evaluation of its model).

Validation objectives use the trainer's method-independent criterion (balancebench.training):
``val_<loss> = validation error / reference`` of every loss of the task at the best epoch (the references:
the task's, e.g. the variances of the training targets), so ``criterion = sum_i val_<loss_i>``. They are
the plain errors whatever loss shape the candidate trained with, so candidates compare on one scale.
Objectives named after the task's metrics come from its evaluation of the candidate
(:meth:`balancebench.tasks.base.Task.candidate_evaluation`).

A candidate is *failed* (infeasible, objectives = the search's ``failure_penalty``) when its training
did not complete, its evaluation (metric objectives) did not complete, or an objective is not finite.
"""

from __future__ import annotations

import math

from balancebench.search.space import SearchSpec


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
    metric_objectives = [o for o in spec.objectives if o not in spec.validation_objectives]
    if state == "completed" and metric_objectives:
        if physics is None:
            state, reason = "invalid", "objectives of the task's metrics need the candidate's evaluation"
        elif physics.get("status") != "completed":
            state, reason = "evaluation_" + str(physics.get("status")), physics.get("reason", "")
        else:
            for name in metric_objectives:
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
