"""Pareto fronts of a task's losses: test rays, non-dominated filter, hypervolume, front of a conditioned model.

Objectives (all minimised, dimensionless) of a model on the validation data, one per loss of the task (the
task contract, :mod:`balancebench.tasks.base`; two losses ``a`` and ``b`` below, m losses alike: points,
hypervolume and the reference point are m-dimensional; test rays and COSMOS fronts are defined for two)::

    f_a = val_a / ref_a        f_b = val_b / ref_b

with ``ref`` the task's references (cg_benzene: the variances of the targets over the training frames, the
same numbers as the trainer's). Each f is then a 1 - R^2: 0 is perfect, 1 is the constant predictor of the
mean, so one reference point serves every method and seed. Their sum is the trainer's method-independent
criterion C = f_a + f_b.

* Test rays (:func:`circle_points`): K preferences with angles evenly spaced in [0.1, pi/2 - 0.1],
  r = (cos t, sin t) / (cos t + sin t) (the reference code's ``circle_points`` and its
  normalisation; K = 25 in the seed), i.e. preference ratios rho = r_b / r_a = tan t in [0.1003, 9.97].
  :func:`log_ratio_rays` instead spaces the ratio evenly in its logarithm over a configured range
  [rho_lo, rho_hi]: rho_j = exp(ln rho_lo + j / (K - 1) (ln rho_hi - ln rho_lo)), r_j = (1, rho_j) / (1 + rho_j)
  (COSMOS's ``ratio_range``: a task whose useful trade-offs lie far from rho = 1 needs rays there).
  Ray 0 weights the first loss most in both.
* Hypervolume (:func:`hypervolume`): pymoo's ``HV`` indicator (minimisation) against a reference point
  fixed per task (:meth:`balancebench.tasks.base.Task.hypervolume_reference`: default 1 per objective, the
  mean predictor for variance references) or by ``pareto.reference_point`` in the config; never derived
  from the run's points, so HV values compare across runs. A point that does not strictly dominate the
  reference point encloses nothing: with ``outside="clip"`` (the workflow) it counts HV 0 and the tables
  count such points (``beyond_reference``), with ``outside="raise"`` it is an error naming
  ``pareto.reference_point``.
* Chosen preference (:func:`choose_preference`): the ray with the lowest C on the validation
  data, the rule that also picks the constant method's grid point. The COSMOS model is evaluated at
  that r (recorded as ``preference`` in hparams.json).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from balancebench.fileio import read_csv, read_json

DEFAULT_RAYS = 25
DEFAULT_REFERENCE_POINT = (1.0, 1.0)



# -- rays, dominance, hypervolume ------------------------------------------------------------
def circle_points(k: int = DEFAULT_RAYS, min_angle: float = 0.1, max_angle: float = math.pi / 2 - 0.1) -> np.ndarray:
    """(k, 2) preferences on the simplex from angles evenly spaced in [min_angle, max_angle] (radians)."""
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"pareto.rays must be an integer >= 1, got {k!r}")
    if not 0 <= min_angle <= max_angle <= math.pi / 2:
        raise ValueError(f"ray angles must satisfy 0 <= min_angle <= max_angle <= pi/2, got {min_angle}, {max_angle}")
    angles = np.linspace(min_angle, max_angle, int(k)) if k > 1 else np.array([(min_angle + max_angle) / 2])
    points = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return points / points.sum(axis=1, keepdims=True)


def check_ratio_range(ratio_range, name: str = "ratio_range") -> tuple[float, float]:
    """(rho_lo, rho_hi) with 0 < rho_lo <= rho_hi < inf, or a ValueError naming ``name``."""
    try:
        lo, hi = (float(x) for x in ratio_range)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be two numbers 0 < low <= high (preference ratios r_2 / r_1), "
                         f"got {ratio_range!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
        raise ValueError(f"{name} must be two finite numbers 0 < low <= high (preference ratios r_2 / r_1), "
                         f"got {ratio_range!r}")
    return lo, hi


def ratio_preference(rho) -> np.ndarray:
    """The preference(s) on the simplex with ratio r_2 / r_1 = rho: r = (1, rho) / (1 + rho); (..., 2)."""
    rho = np.asarray(rho, dtype=np.float64)
    return np.stack([1.0 / (1.0 + rho), rho / (1.0 + rho)], axis=-1)


def preference_ratio(preferences) -> np.ndarray:
    """rho = r_2 / r_1 of preferences (..., 2) (inf where r_1 = 0)."""
    r = np.asarray(preferences, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return r[..., 1] / r[..., 0]


def log_ratio_rays(k: int, ratio_range) -> np.ndarray:
    """(k, 2) preferences whose ratio rho = r_2 / r_1 is evenly spaced in ln rho over ``ratio_range``
    (k = 1: the geometric mean of the range). Ray 0 has the lowest ratio (weights the first loss most)."""
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"pareto.rays must be an integer >= 1, got {k!r}")
    lo, hi = check_ratio_range(ratio_range)
    logs = np.linspace(math.log(lo), math.log(hi), int(k)) if k > 1 else np.array([0.5 * math.log(lo * hi)])
    return ratio_preference(np.exp(logs))


def non_dominated(points) -> np.ndarray:
    """Boolean mask of the points no other point dominates (minimisation; equal points are all kept)."""
    f = np.asarray(points, dtype=np.float64)
    if f.ndim != 2:
        raise ValueError(f"points must have shape (n, m), got {f.shape}")
    keep = np.ones(len(f), dtype=bool)
    for i in range(len(f)):
        dominated = np.all(f <= f[i], axis=1) & np.any(f < f[i], axis=1)
        keep[i] = not dominated.any()
    return keep


def check_reference_point(reference_point, m: int = 2) -> np.ndarray:
    try:
        ref = np.asarray(reference_point, dtype=np.float64)
    except (TypeError, ValueError):
        ref = np.full(m + 1, np.nan)  # refused below, naming the setting
    if ref.shape != (m,) or not np.all(np.isfinite(ref)):
        raise ValueError(f"pareto.reference_point must be {m} finite numbers (one per loss), got {reference_point!r}")
    return ref


def resolve_reference_point(reference_point, m: int = 2) -> np.ndarray:
    """The hypervolume reference point of a run: the configured numbers, checked (m of them).

    Fixed by the task (:meth:`balancebench.tasks.base.Task.hypervolume_reference`) or the config before any
    model is trained; never derived from the run's points (a reference point taken from the run's worst
    variant would let one diverged model set every HV of the run).
    """
    if isinstance(reference_point, str):
        raise ValueError(f"pareto.reference_point must be {m} finite numbers (one per loss), got {reference_point!r}"
                         " (a reference point taken from the run's own points, 'nadir', is no longer offered: "
                         "it made every HV depend on the run's worst variant)")
    return check_reference_point(reference_point, m)


def beyond_reference(points, reference_point) -> int:
    """How many finite points (n, m) do not strictly dominate the reference point (they count HV 0)."""
    f = np.atleast_2d(np.asarray(points, dtype=np.float64))
    if not f.size:
        return 0
    finite = np.all(np.isfinite(f), axis=1)
    return int((finite & ~np.all(f < np.asarray(reference_point, dtype=np.float64), axis=1)).sum())


def hypervolume(points, reference_point=DEFAULT_REFERENCE_POINT, outside: str = "clip") -> float:
    """Hypervolume (minimisation) of ``points`` (n, m) w.r.t. ``reference_point`` with pymoo's HV indicator.

    Points that do not strictly dominate the reference point (some f_j >= ref_j) enclose no volume:
    ``outside="clip"`` drops them (0.0 if none is left), ``outside="raise"`` refuses them.
    Non-finite points (a diverged model) are dropped under ``clip`` as well.
    """
    from pymoo.indicators.hv import HV

    f = np.atleast_2d(np.asarray(points, dtype=np.float64))
    ref = check_reference_point(reference_point, f.shape[1])
    if outside not in ("clip", "raise"):
        raise ValueError(f"outside must be 'clip' or 'raise', got {outside!r}")
    inside = np.all(np.isfinite(f), axis=1) & np.all(f < ref, axis=1)
    if outside == "raise" and not inside.all():
        bad = f[~inside][0].tolist()
        raise ValueError(f"pareto.reference_point {ref.tolist()} is not dominated by the front point {bad}: "
                         "choose a larger reference point (or clip such points)")
    if not inside.any():
        return 0.0
    return float(HV(ref_point=ref)(f[inside]))


def hypervolume_2d(points, reference_point=DEFAULT_REFERENCE_POINT) -> float:
    """Exact 2-objective hypervolume by a sweep (an independent check of :func:`hypervolume`)."""
    ref = check_reference_point(reference_point, 2)
    f = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    f = f[np.all(np.isfinite(f), axis=1) & np.all(f < ref, axis=1)]
    f = f[non_dominated(f)] if len(f) else f
    f = f[np.argsort(f[:, 0])]
    volume, top = 0.0, ref[1]
    for x, y in f:
        if y < top:
            volume += (ref[0] - x) * (top - y)
            top = y
    return float(volume)


# -- objectives of models on a task's data ------------------------------------------------------
def front_columns(loss_names) -> list[str]:
    """The columns of ``front.csv`` for a task's losses: ray, ``pref_<name>``, ``mse_<name>``, ``f_<name>`` (each in
    loss order), criterion, non_dominated."""
    names = list(loss_names)
    return ["ray", *(f"pref_{n}" for n in names), *(f"mse_{n}" for n in names), *(f"f_{n}" for n in names),
            "criterion", "non_dominated"]


def model_errors(task, model, data, batch_size: int, loss_settings, preference=None) -> tuple[float, ...]:
    """Item-weighted plain errors per loss (``task.errors``, float64) of ``model`` on ``data`` at ``preference``
    (written into the batch's model input as ``extras["preference"]``)."""
    import torch

    total = np.zeros(len(task.loss_names))
    r = None if preference is None else torch.as_tensor(np.asarray(preference, dtype=np.float64))
    for start in range(0, len(data), batch_size):
        idx = range(start, min(len(data), start + batch_size))
        batch = data.batch(idx)
        if r is not None:
            task.model_input(batch).extras["preference"] = r
        errors = task.errors(task.predict(model, batch, training=False), batch, loss_settings)
        total += np.array([errors[n] for n in task.loss_names]) * len(idx)
    return tuple(float(x / len(data)) for x in total)


def evaluate_front(task, model, data, references: dict, batch_size: int = 8, loss_settings=None,
                   rays: int | np.ndarray = DEFAULT_RAYS) -> pd.DataFrame:
    """The front of a conditioned model: one row per test ray (columns :func:`front_columns`)."""
    names = list(task.loss_names)
    if len(names) != 2 and np.isscalar(rays):
        raise ValueError(f"test rays on the circle are defined for two losses, task {task.name!r} has {names}")
    r = circle_points(rays) if np.isscalar(rays) else np.asarray(rays, dtype=np.float64)
    was_training = model.training
    model.eval()
    rows = []
    for k, ray in enumerate(r):
        mse = model_errors(task, model, data, batch_size, loss_settings, ray)
        f = [m / references[n] for m, n in zip(mse, names)]
        criterion = f[0]
        for x in f[1:]:
            criterion = criterion + x
        rows.append({"ray": k, **{f"pref_{n}": ray[i] for i, n in enumerate(names)},
                     **{f"mse_{n}": mse[i] for i, n in enumerate(names)},
                     **{f"f_{n}": f[i] for i, n in enumerate(names)}, "criterion": criterion})
    model.train(was_training)
    front = pd.DataFrame(rows)
    objectives = [f"f_{n}" for n in names]
    finite = np.isfinite(front[objectives].to_numpy()).all(axis=1)
    mask = np.zeros(len(front), dtype=bool)
    mask[np.flatnonzero(finite)] = non_dominated(front.loc[finite, objectives].to_numpy())
    front["non_dominated"] = mask
    return front[front_columns(names)]


def choose_preference(front: pd.DataFrame) -> dict:
    """The ray with the lowest criterion C = sum_i f_i (the rule that selects the constant grid point)."""
    finite = front[np.isfinite(front["criterion"].to_numpy(dtype=float))]
    if finite.empty:
        raise ValueError("no test ray gave finite validation errors: no preference can be chosen")
    best = finite.loc[finite["criterion"].astype(float).idxmin()]
    prefs = [c for c in front.columns if c.startswith("pref_")]
    return {"preference": [float(best[c]) for c in prefs], "ray": int(best["ray"]),
            "criterion": float(best["criterion"]),
            "rule": "the test ray with the lowest validation criterion sum_i MSE_i / ref_i"}


def conditioned_outputs(trainer, out_dir, rays: int = DEFAULT_RAYS, fallback=None) -> dict:
    """After training a conditioned model: write ``front.csv`` into ``out_dir``, fix the chosen r on the model
    and return the hparams entries (``preference``, ``preference_choice``) that the task's evaluation reads.

    If no ray gives finite errors, ``fallback`` (the evaluation preference; default equal weights) is recorded
    with a note, so the run never crashes and its evaluation shows what that model does.
    """
    k = len(trainer.loss_names)
    fallback = (1.0 / k,) * k if fallback is None else fallback
    front = evaluate_front(trainer.task, trainer.model, trainer.val_data, trainer.references,
                           trainer.settings.batch_size, trainer.loss_settings, rays)
    front.to_csv(Path(out_dir) / "front.csv", index=False)
    try:
        choice = choose_preference(front)
    except ValueError as err:
        choice = {"preference": [float(x) for x in fallback], "ray": None, "criterion": None,
                  "rule": f"fallback to the evaluation preference: {err}"}
    trainer.model.fix_preference(choice["preference"])
    prefs = front[[c for c in front.columns if c.startswith("pref_")]].to_numpy(dtype=float)
    return {"preference": choice["preference"], "preference_choice": {**choice, "rays": len(front),
                                                                      "references": dict(trainer.references)},
            "test_preferences": prefs.tolist()}


# -- collecting the fronts and points of a workflow run ---------------------------------------
def objective_columns(table: pd.DataFrame) -> list[str]:
    """The objective columns ``f_<loss>`` of a fronts or points table, in loss order."""
    return [c for c in table.columns if c.startswith("f_")]


def point_from_log(model_dir, references: dict) -> dict:
    """``f_<loss>`` of a trained model for every loss of ``references`` (in its order) from its own log: the
    validation errors of its best epoch (the weights it kept) over the references; NaN for a run that did not
    complete."""
    model_dir = Path(model_dir)
    status = read_json(model_dir / "status.json")
    row = {"status": status["status"], **{f"f_{n}": float("nan") for n in references}}
    log_path = model_dir / "train_log.csv"
    if status["status"] != "completed" or not log_path.exists():
        return row
    log = read_csv(log_path)
    best = log[log["epoch"] == int(status.get("best_epoch", 0))]
    if best.empty:
        return {**row, "status": "missing"}
    return {**row, **{f"f_{n}": float(best[f"val_{n}"].iloc[0]) / ref for n, ref in references.items()}}


def candidate_ratio(params: dict, references: dict, aliases: dict | None = None) -> float | None:
    """The preference ratio rho = r_2 / r_1 (in the objectives' units) that a constant-weight training with the
    search parameters ``params`` minimises, or None if they set no loss weight.

    Weights w (a search parameter of ``aliases`` {name: loss index}, the task's ``search_weight_aliases()``,
    default ``weight_<loss>``, sets that loss's weight, the others 1; or ``weights`` = one per loss) minimise
    sum_i w_i L_i = sum_i (w_i ref_i) (L_i / ref_i), so in the objectives f_i = L_i / ref_i they are the
    preference r_i proportional to w_i ref_i: rho = (w_2 ref_2) / (w_1 ref_1). Two losses only.
    """
    names = list(references)
    if len(names) != 2:
        return None
    w = [1.0, 1.0]
    found = False
    if isinstance(params.get("weights"), (list, tuple)) and len(params["weights"]) == 2:
        w, found = [float(x) for x in params["weights"]], True
    aliases = {f"weight_{n}": i for i, n in enumerate(names)} if aliases is None else aliases
    for alias, i in aliases.items():
        if alias in params:
            w[int(i)], found = float(params[alias]), True
    if not found or w[0] <= 0:
        return None
    return (w[1] * float(references[names[1]])) / (w[0] * float(references[names[0]]))


def collect(references: dict, conditioned: dict, finals: dict, candidates: list[dict] | None = None,
            reference_point=DEFAULT_REFERENCE_POINT, weight_aliases: dict | None = None):
    """Everything the pareto rule writes, from the model directories of one workflow run.

    ``conditioned``: {(variant, seed): dir} of COSMOS models (their ``front.csv`` and ``hparams.json``);
    ``finals``: {(variant, seed): dir} of every other variant's trained models; ``candidates``: search
    trainings [{variant, label, dir, params}] (the constant grid points among them; ``params``, optional, give
    each one's preference ratio, :func:`candidate_ratio` with ``weight_aliases``). ``reference_point``: fixed
    numbers (the task's or the config's, :func:`resolve_reference_point`). Returns a dict of tables: fronts,
    chosen, points, candidates, hypervolume (tidy metric rows), hv_summary (with ``beyond_reference``: the points
    of each set that do not dominate the reference point and count HV 0), and the ``reference_point``.
    """
    names = list(references)
    objectives = [f"f_{n}" for n in names]
    reference_point = resolve_reference_point(reference_point, len(names))
    fronts, chosen = {}, []
    for (variant, seed), d in conditioned.items():
        d = Path(d)
        status = read_json(d / "status.json")
        if status["status"] != "completed" or not (d / "front.csv").exists():
            chosen.append({"variant": variant, "seed": int(seed), "status": status["status"]})
            continue
        fronts[(variant, int(seed))] = read_csv(d / "front.csv")
        hp = read_json(d / "hparams.json")
        pc = hp.get("preference_choice", {})
        chosen.append({"variant": variant, "seed": int(seed), "status": "completed",
                       **{f"pref_{n}": hp["preference"][i] for i, n in enumerate(names)},
                       "ray": pc.get("ray"), "criterion": pc.get("criterion"), "rule": pc.get("rule")})
    points = pd.DataFrame([{"method": v, "seed": int(s), "role": "final", "label": "", **point_from_log(d, references)}
                           for (v, s), d in finals.items()],
                          columns=["method", "seed", "role", "label", "status", *objectives])
    cand = pd.DataFrame([{"method": c["variant"], "seed": c.get("seed"), "role": "search", "label": c.get("label", ""),
                          "ratio": candidate_ratio(c.get("params") or {}, references, weight_aliases),
                          **point_from_log(c["dir"], references)} for c in candidates or []],
                        columns=["method", "seed", "role", "label", "ratio", "status", *objectives])
    failed = pd.DataFrame([{"method": c["variant"], "seed": c["seed"], "status": c["status"],
                            **{o: float("nan") for o in objectives}} for c in chosen if c["status"] != "completed"],
                          columns=["method", "seed", "status", *objectives])
    hv = hypervolume_rows(fronts, pd.concat([points, failed], ignore_index=True) if len(failed) else points,
                          reference_point)  # a failed conditioned run: its row says so, no value
    # the summary's per-front and per-model values are those rows (a failed model encloses 0)
    rows = hv[["method", "seed", "value"]].itertuples(index=False)
    hv_of = {(m, int(s)): 0.0 if np.isnan(x) else float(x) for m, s, x in rows}
    summary = [{"set": f"{v} front", "variant": v, "seed": s, "points": int(f["non_dominated"].sum()),
                "hypervolume": hv_of[(v, s)], "evaluated": len(f),
                "beyond_reference": beyond_reference(f[objectives].to_numpy(dtype=float), reference_point)}
               for (v, s), f in sorted(fronts.items(), key=lambda kv: (kv[0][0], kv[0][1]))]
    for variant, group in (cand.groupby("method", sort=True) if len(cand) else []):
        ok = group[group["status"] == "completed"]
        f = ok[objectives].to_numpy(dtype=float)
        summary.append({"set": f"{variant} search trainings", "variant": variant, "seed": None, "points": len(ok),
                        "hypervolume": hypervolume(f, reference_point) if len(ok) else 0.0, "evaluated": len(ok),
                        "beyond_reference": beyond_reference(f, reference_point)})
    for variant, group in (points.groupby("method", sort=True) if len(points) else []):
        for _, p in group.iterrows():
            done = p["status"] == "completed"
            summary.append({"set": f"{variant} model", "variant": variant, "seed": int(p["seed"]),
                            "points": int(done), "hypervolume": hv_of[(variant, int(p["seed"]))],
                            "evaluated": int(done),
                            "beyond_reference": beyond_reference([[p[o] for o in objectives]], reference_point)
                            if done else 0})
    columns = ["set", "variant", "seed", "points", "hypervolume", "evaluated", "beyond_reference"]
    return {"fronts": fronts, "chosen": pd.DataFrame(chosen), "points": points, "candidates": cand, "hypervolume": hv,
            "hv_summary": pd.DataFrame(summary, columns=columns), "reference_point": reference_point}


def closest_rays(fronts: dict, candidates: pd.DataFrame) -> pd.DataFrame:
    """Per search variant with preference ratios (a constant-weight grid): its best training (lowest sum of the
    objectives) and, per conditioned front, the test ray whose ratio r_2 / r_1 is closest to that training's
    in ln rho, with both points. Empty if there is no such pair."""
    cols = ["search", "label", "grid_ratio", "variant", "seed", "ray", "ray_ratio", "log10_gap"]
    if not fronts or candidates is None or not len(candidates) or "ratio" not in candidates:
        return pd.DataFrame(columns=cols)
    objectives = objective_columns(candidates)
    rows = []
    done = candidates[(candidates["status"] == "completed") & candidates["ratio"].notna()]
    for search, group in done.groupby("method", sort=True):
        best = group.loc[group[objectives].astype(float).sum(axis=1).idxmin()]
        rho = float(best["ratio"])
        for (variant, seed), front in sorted(fronts.items(), key=lambda kv: (str(kv[0][0]), int(kv[0][1]))):
            prefs = [c for c in front.columns if c.startswith("pref_")]
            if len(prefs) != 2:
                continue
            ratios = preference_ratio(front[prefs].to_numpy(dtype=float))
            gaps = np.abs(np.log10(ratios) - math.log10(rho))
            j = int(np.argmin(gaps))
            rows.append({"search": search, "label": best["label"], "grid_ratio": rho,
                         **{f"grid_{o}": float(best[o]) for o in objectives},
                         "variant": variant, "seed": int(seed), "ray": int(front["ray"].iloc[j]),
                         "ray_ratio": float(ratios[j]), "log10_gap": float(gaps[j]),
                         **{f"ray_{o}": float(front[o].iloc[j]) for o in objectives}})
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=cols)


def fronts_table(fronts: dict) -> pd.DataFrame:
    """All fronts as one tidy table (variant, seed, then the fronts' columns, :func:`front_columns`)."""
    frames = [f.assign(variant=v, seed=int(s)) for (v, s), f in fronts.items()]
    if not frames:
        return pd.DataFrame(columns=["variant", "seed", "ray", "criterion", "non_dominated"])
    table = pd.concat(frames, ignore_index=True)
    return table[["variant", "seed", *[c for c in table.columns if c not in ("variant", "seed")]]]


def summary_note(tables: dict, cost: pd.DataFrame, reference_point, setting=None) -> str:
    """The closing note: mean COSMOS hypervolume vs each search's set of trainings, how many points lie beyond the
    reference point (HV 0), the COSMOS ray closest to the grid's best preference ratio, and the training-cost
    ratio. ``setting``: where the reference point came from (e.g. "the task's", "pareto.reference_point")."""
    hv = tables["hv_summary"]
    how = f", {setting}" if setting else ""
    lines = [(f"# Pareto fronts and cost (reference point {[round(float(x), 4) for x in reference_point]}{how}, "
             "fixed before the run; objectives: each loss's validation error over its reference, on the validation "
             "data)"), ""]
    if "beyond_reference" in hv and len(hv):
        models = hv[hv["set"].str.endswith(" model")]
        rays = hv[hv["set"].str.endswith(" front")]
        search = hv[hv["set"].str.endswith(" search trainings")]
        lines.append(f"Beyond the reference point (HV 0): {int(models['beyond_reference'].sum())} of "
                     f"{int(models['evaluated'].sum())} completed models, {int(search['beyond_reference'].sum())} of "
                     f"{int(search['evaluated'].sum())} search trainings, {int(rays['beyond_reference'].sum())} of "
                     f"{int(rays['evaluated'].sum())} conditioned-model ray points.")
        lines.append("")
    fronts = hv[hv["set"].str.endswith(" front")]
    for variant, group in fronts.groupby("variant", sort=True):
        values = group["hypervolume"].to_numpy(dtype=float)
        lines.append(f"- {variant}: HV per seed {', '.join(f'{x:.4f}' for x in values)} "
                     f"(mean {values.mean():.4f}, {len(values)} seeds)")
    for _, row in hv[hv["set"].str.endswith(" search trainings")].iterrows():
        lines.append(f"- {row['set']}: HV {row['hypervolume']:.4f} from {row['points']} completed trainings")
    if len(tables["chosen"]):
        for _, c in tables["chosen"].iterrows():
            if c.get("status") == "completed":
                prefs = ", ".join(f"{c[k]:.3f}" for k in tables["chosen"].columns if k.startswith("pref_"))
                lines.append(f"- {c['variant']} seed {c['seed']}: evaluated at r = ({prefs}) "
                             f"(ray {c['ray']}, criterion {c['criterion']:.4f})")
    close = closest_rays(tables["fronts"], tables.get("candidates"))
    if len(close):
        lines += ["", "The grid's best training as a preference ratio rho = r_2 / r_1 (weights times references) and "
                  "the test ray of each conditioned model closest to it in log rho:", ""]
        objectives = [c[5:] for c in close.columns if c.startswith("grid_f_")]
        for _, c in close.iterrows():
            grid = ", ".join(f"{c['grid_' + o]:.4f}" for o in objectives)
            ray = ", ".join(f"{c['ray_' + o]:.4f}" for o in objectives)
            lines.append(f"- {c['search']} best ({c['label']}): rho {c['grid_ratio']:.4g}, ({grid}); "
                         f"{c['variant']} seed {c['seed']} ray {c['ray']}: rho {c['ray_ratio']:.4g} "
                         f"({c['log10_gap']:.2f} decades away), ({ray})")
    if len(cost):
        lines += ["", "Training cost (seconds of training epochs; constant = grid + final trainings):", ""]
        for _, row in cost.iterrows():
            lines.append(f"- {row['variant']}: {row['seconds']:.1f} s in {row['trainings']} trainings "
                         f"({row['search_trainings']} search), x{row['ratio_to_cheapest']:.2f} the cheapest")
    return "\n".join(lines) + "\n"


def hypervolume_rows(fronts: dict, points: pd.DataFrame, reference_point) -> pd.DataFrame:
    """Tidy metric rows (metrics.TIDY_COLUMNS) of the hypervolume per variant and seed.

    ``fronts``: {(variant, seed): front DataFrame} of conditioned models (their non-dominated points);
    ``points``: one row per other trained model (method, seed, status, ``f_<loss>``): its HV is the box its single
    point encloses (0 for a point beyond the reference point, said in ``reason``). A failed training gets status
    'diverged' and no value.
    """
    objectives = objective_columns(points)
    rows = []
    for (variant, seed), front in fronts.items():
        f = front.loc[front["non_dominated"].astype(bool), objective_columns(front)].to_numpy(dtype=float)
        beyond = beyond_reference(front[objective_columns(front)].to_numpy(dtype=float), reference_point)
        rows.append({"method": variant, "seed": int(seed), "value": hypervolume(f, reference_point),
                     "status": "completed",
                     "reason": f"{beyond} of {len(front)} ray points beyond the reference point" if beyond else ""})
    for _, p in points.iterrows():
        if p["status"] != "completed":
            rows.append({"method": p["method"], "seed": int(p["seed"]), "value": float("nan"), "status": "diverged",
                         "reason": f"training {p['status']}"})
            continue
        point = [[p[o] for o in objectives]]
        beyond = beyond_reference(point, reference_point) > 0
        rows.append({"method": p["method"], "seed": int(p["seed"]), "value": hypervolume(point, reference_point),
                     "status": "completed",
                     "reason": "beyond the reference point: HV 0" if beyond else ""})
    table = pd.DataFrame(rows, columns=["method", "seed", "value", "status", "reason"])
    table.insert(2, "metric", "hypervolume")
    table["direction"], table["target"] = "higher", ""
    return table[["method", "seed", "metric", "value", "status", "direction", "target", "reason"]]


def cost_table(entries: list[dict]) -> pd.DataFrame:
    """Training seconds per variant: entries {variant, role ('grid' | 'final' | 'meta'), seconds, epochs} -> one row
    each.

    A variant with a search (the constant grid, NSGA-II, DE) = every search training ('grid') + its final trainings;
    a variant whose method reads a meta-trained artifact (ML2O) = the meta-training ('meta', charged in full to each
    variant that uses it) + its trainings; every other variant = its own trainings.
    ``ratio_to_cheapest`` divides by the cheapest variant's total.
    """
    df = pd.DataFrame(entries, columns=["variant", "role", "seconds", "epochs"])
    if df.empty:
        return pd.DataFrame(columns=["variant", "trainings", "search_trainings", "final_trainings",
                                     "meta_training_seconds", "epochs", "seconds", "ratio_to_cheapest"])
    df["meta_seconds"] = df["seconds"].where(df["role"] == "meta", 0.0)
    out = df.groupby("variant", sort=False).agg(
        trainings=("role", lambda r: int((r != "meta").sum())),
        search_trainings=("role", lambda r: int((r == "grid").sum())),
        final_trainings=("role", lambda r: int((r == "final").sum())),
        meta_training_seconds=("meta_seconds", "sum"),
        epochs=("epochs", "sum"), seconds=("seconds", "sum")).reset_index()
    cheapest = out["seconds"].min()
    out["ratio_to_cheapest"] = out["seconds"] / cheapest if cheapest > 0 else float("nan")
    return out


def training_seconds(model_dir) -> tuple[float, int]:
    """(total training seconds, epochs) from a model's train_log.csv (sum of the per-epoch seconds)."""
    path = Path(model_dir) / "train_log.csv"
    log = read_csv(path) if path.exists() and path.stat().st_size else pd.DataFrame(columns=["seconds"])
    return float(pd.to_numeric(log["seconds"], errors="coerce").fillna(0.0).sum()), len(log)


# -- the figure ------------------------------------------------------------------------------
def number_candidates(grid: pd.DataFrame | None) -> pd.DataFrame:
    """The completed search trainings numbered 1..n (variant, then the order of the table): number, method, label,
    the objectives ``f_<loss>``. The figure marks each with its number; pareto/search_candidates.csv lists them."""
    if grid is None or not len(grid):
        return pd.DataFrame(columns=["number", "method", "label"])
    cols = ["number", "method", "label", *objective_columns(grid)]
    done = grid[grid["status"] == "completed"].copy()
    done = done.sort_values("method", kind="stable").reset_index(drop=True)
    done.insert(0, "number", np.arange(1, len(done) + 1))
    if "label" not in done.columns:
        done["label"] = ""
    return done[cols]


def plot_fronts(path, fronts: dict, points: pd.DataFrame, reference_point=DEFAULT_REFERENCE_POINT,
                grid: pd.DataFrame | None = None, axis_labels: tuple[str, str] | None = None) -> pd.DataFrame:
    """COSMOS fronts (one line per seed) with every other trained model and each search training (the constant
    grid points; ``grid``: method, label, status and the two objectives ``f_<loss>``) as markers.
    ``axis_labels``: the task's words for the two objectives (default ``val_<loss> / ref``).

    Every variant has its own colour/marker pair (balancebench.plotstyle); the search trainings are small grey
    markers with a number, listed in the returned table (:func:`number_candidates`); the legend sits outside
    the axes so that it hides no point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from balancebench.plotstyle import style

    columns = objective_columns(points)
    fx, fy = columns[:2]
    lx, ly = axis_labels or (f"val_{fx[2:]} / reference (validation)", f"val_{fy[2:]} / reference (validation)")
    fig, ax = plt.subplots(figsize=(9.5, 5.4))
    done = points[points["status"] == "completed"] if len(points) else points
    variants = sorted({str(v) for v, _ in fronts} | (set(done["method"].astype(str)) if len(done) else set()))
    styles = {v: style(i) for i, v in enumerate(variants)}
    dashes = ["-", "--", ":", "-."]
    for (variant, seed), front in sorted(fronts.items(), key=lambda kv: (str(kv[0][0]), int(kv[0][1]))):
        colour = styles[str(variant)][0]
        nd = front[front["non_dominated"].astype(bool)].sort_values(fx)
        ax.plot(nd[fx], nd[fy], dashes[(int(seed) - 1) % len(dashes)], color=colour, lw=1.2,
                label=f"{variant} front, seed {seed}")
        dom = front[~front["non_dominated"].astype(bool)]
        ax.plot(dom[fx], dom[fy], ".", color=colour, alpha=0.35)
    for variant, group in (done.groupby("method", sort=True) if len(done) else []):
        colour, marker = styles[str(variant)]
        ax.plot(group[fx], group[fy], marker, color=colour, ms=7, mec="black", mew=0.5,
                alpha=0.9, label=str(variant), zorder=3)
    numbered = number_candidates(grid)
    if len(numbered):
        ax.plot(numbered[fx], numbered[fy], "x", color="0.45", ms=5, zorder=2,
                label=f"search trainings 1-{len(numbered)} (search_candidates.csv)")
        for row in numbered.itertuples(index=False):
            ax.annotate(str(row.number), (getattr(row, fx), getattr(row, fy)), fontsize=6.5, color="0.35",
                        xytext=(2, 2), textcoords="offset points")
    ref = check_reference_point(reference_point, len(columns) or 2)
    ax.axvline(ref[0], color="0.6", lw=0.8, ls=":")
    ax.axhline(ref[1], color="0.6", lw=0.8, ls=":")
    ax.set_xlabel(lx)
    ax.set_ylabel(ly)
    ax.set_xscale("log")
    ax.set_yscale("log")
    from matplotlib.ticker import FuncFormatter, NullFormatter

    plain = FuncFormatter(lambda v, _: f"{v:.4g}")
    for axis, lo_hi in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
        axis.set_major_formatter(plain)  # 0.95, not 9.5 x 10^-1: the validation ratios span less than a decade
        axis.set_minor_formatter(plain if lo_hi[1] / lo_hi[0] < 30 else NullFormatter())
    ax.tick_params(axis="both", which="both", labelsize=8)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, borderaxespad=0.0)
    shown = f"{fx[2:]}/{fy[2:]} trade-off"
    if len(columns) > 2:  # m > 2 losses: the projection on the first two (hypervolume is m-dimensional)
        shown += f" (projection; {len(columns)} objectives: {', '.join(c[2:] for c in columns)})"
    ax.set_title(f"{shown}; dotted: hypervolume reference point", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return numbered
