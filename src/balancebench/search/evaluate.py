"""A candidate's objectives from its training files (and, optionally, the task's evaluation of its model).

Validation objectives use the trainer's method-independent criterion (balancebench.training):
``val_<loss> = validation error / reference`` of every loss of the task at the best epoch (the references:
the task's, e.g. the variances of the training targets), so ``criterion = sum_i val_<loss_i>``. They are
the plain errors whatever loss shape the candidate trained with, so candidates compare on one scale.
``train_error`` and ``val_error`` (seed 001's pair) are the task's error of the candidate's best-epoch model on
its training and validation split (:func:`split_errors`, :meth:`balancebench.tasks.base.Task.split_error`).
Objectives named after the task's metrics come from its evaluation of the candidate
(:meth:`balancebench.tasks.base.Task.candidate_evaluation`).

A candidate is *failed* (infeasible, objectives = the search's ``failure_penalty``) when its training
did not complete, its evaluation (metric objectives) did not complete, or an objective is not finite.
"""

from __future__ import annotations

import math

from balancebench.search.space import SPLIT_OBJECTIVES, SearchSpec


def split_errors(task, spec: SearchSpec, model_dir, dataset, loss_settings, references: dict[str, float],
                 batch_size: int = 64) -> dict[str, float]:
    """``{train_error, val_error}`` (those the search optimises) of the trained model in ``model_dir``: the task's
    :meth:`~balancebench.tasks.base.Task.split_error` on each split, in the model's dtype, on the CPU."""
    from balancebench.training import load_trained_model

    model, hparams = load_trained_model(task, model_dir)
    dtype = next(model.parameters()).dtype
    model_settings = task.model_settings(hparams["model"])
    out = {}
    for name in spec.split_objectives:
        data = task.training_data(dataset, SPLIT_OBJECTIVES[name], model_settings, "cpu", dtype)
        out[name] = float(task.split_error(model, data, loss_settings, references, batch_size))
    return out


def evaluate_candidate(spec: SearchSpec, status: dict, log, references: dict[str, float],
                       physics: dict | None = None, seconds: float = 0.0, split: dict | None = None) -> dict:
    """``{"status", "reason", "feasible", "objectives", "criterion", "seconds"}`` of one candidate.

    ``log``: the training log (a DataFrame with epoch and ``val_<loss>`` per loss); ``references``: the task's
    reference of each loss (objective ``val_<loss>`` = validation error / reference, ``criterion`` their sum);
    ``physics``: the metrics record of the task's evaluation (needed when an objective is one of its metrics);
    ``split``: :func:`split_errors` (needed when an objective is ``train_error`` or ``val_error``).
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
    if state == "completed" and spec.split_objectives:
        if split is None or any(o not in split for o in spec.split_objectives):
            state, reason = "invalid", "train_error / val_error need the candidate's errors on its splits"
        else:
            values.update({o: float(split[o]) for o in spec.split_objectives})
    metric_objectives = spec.metric_objectives
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
