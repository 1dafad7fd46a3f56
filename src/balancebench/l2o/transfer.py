"""Seed 003's transfer experiment: ML2O meta-trained on one model, used on another (any task).

The seed claims that ML2O, meta-trained on one architecture, reaches a lower final training loss / higher
test accuracy than MGDA and PCGrad on a held-out architecture, and that GML2O never does worse than its
convergent fallback. One *pair* of the config section ``l2o.transfer.pairs`` is::

    {meta_model: {...overrides of model:...}, test_model: {...overrides of model:...}}

For a pair this module meta-trains the optimizer on short trainings of the task with ``meta_model`` (the
family ``task`` of :mod:`balancebench.l2o.task_family`, the run's ``l2o.meta`` settings otherwise), then
trains the task's model with ``test_model`` under each method of ``methods`` for every seed and every step
size factor of ``step_factors`` (x ``training.learning_rate``: the same small grid for every method, the
learned optimizer's update scale included), ``max_epochs`` epochs each, and records per training its status
and the task's split errors (:meth:`~balancebench.tasks.base.Task.split_error`: the error rate for a
classification task) on the training, validation and test splits. The step factor of a method is chosen by
its mean validation error over the seeds; the claim compares test (and training) errors at that factor.

Methods: ``ml2o``, ``gml2o`` (the pair's artifact), ``dssmg`` (GML2O's fallback alone), ``mgda``, ``pcgrad``
and ``adam`` (constant equal weights under the shared Adam: Adam on the equal-weight sum).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from balancebench.settings import settings_from_section

__all__ = ["TRANSFER_METHODS", "TransferSettings", "chosen_factors", "run_transfer"]

TRANSFER_METHODS = ("ml2o", "gml2o", "dssmg", "mgda", "pcgrad", "adam")


@dataclass
class TransferSettings:
    """Config ``l2o.transfer``."""

    pairs: dict = field(default_factory=dict)
    methods: list = field(default_factory=lambda: list(TRANSFER_METHODS))
    seeds: list = field(default_factory=lambda: [1, 2, 3])
    max_epochs: int = 5
    step_factors: list = field(default_factory=lambda: [1 / 3, 1.0, 3.0])
    meta: dict = field(default_factory=dict)  # overrides of l2o.meta for the pairs' meta-trainings (a budget)

    def __post_init__(self) -> None:
        if not isinstance(self.meta, dict):
            raise ValueError(f"l2o.transfer.meta must be a mapping of l2o.meta settings, got {self.meta!r}")
        if self.meta:
            from balancebench.l2o.meta import MetaSettings

            families = dict(self.meta.get("families") or {"task": {}})
            try:
                MetaSettings.from_dict({**self.meta, "families": families})
            except ValueError as err:
                raise ValueError(f"l2o.transfer.meta: {err}") from None
        if not isinstance(self.pairs, dict):
            raise ValueError("l2o.transfer.pairs must map pair names to {meta_model, test_model}")
        for name, pair in self.pairs.items():
            if not isinstance(pair, dict) or set(pair) - {"meta_model", "test_model"} or not all(
                    isinstance(pair.get(k, {}), dict) for k in ("meta_model", "test_model")):
                raise ValueError(f"l2o.transfer.pairs.{name} must be {{meta_model: {{...}}, test_model: {{...}}}}, "
                                 f"got {pair!r}")
        unknown = [m for m in self.methods if m not in TRANSFER_METHODS]
        if unknown or not self.methods:
            raise ValueError(f"l2o.transfer.methods: {unknown} unknown; choose from {list(TRANSFER_METHODS)}")
        if not self.seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in self.seeds):
            raise ValueError(f"l2o.transfer.seeds must be a non-empty list of integers, got {self.seeds!r}")
        if not isinstance(self.max_epochs, int) or self.max_epochs < 1:
            raise ValueError(f"l2o.transfer.max_epochs must be an integer >= 1, got {self.max_epochs!r}")
        if not self.step_factors or not all(isinstance(f, (int, float)) and f > 0 for f in self.step_factors):
            raise ValueError(f"l2o.transfer.step_factors must be positive numbers, got {self.step_factors!r}")

    @classmethod
    def from_dict(cls, d: dict) -> TransferSettings:
        return settings_from_section(cls, dict(d or {}), "l2o.transfer")

    def to_dict(self) -> dict:
        return asdict(self)


def _method(name: str, k: int, artifact: str) -> tuple[str, dict]:
    if name == "adam":
        return "constant", {"weights": [1.0] * k}
    if name in ("ml2o", "gml2o"):
        return name, {"optimizer_path": artifact}
    return name, {}


def run_transfer(pair_name: str, l2o_config: dict, model_config: dict, training: dict, task, dataset,
                 out_dir: str | Path, threads: int | None = None, progress=None) -> pd.DataFrame:
    """Meta-train on the pair's ``meta_model``, train every method on its ``test_model``; write
    ``<out_dir>/<pair>.csv`` (one row per method, step factor and seed), ``<out_dir>/<pair>/optimizer.pt`` and
    ``.json`` (the artifact and its record, with its held-out comparison) and return the table."""
    import torch

    from balancebench.l2o.meta import run_meta_training
    from balancebench.training import trainer_for

    if threads:
        torch.set_num_threads(int(threads))
    settings = TransferSettings.from_dict((l2o_config or {}).get("transfer", {}))
    if pair_name not in settings.pairs:
        raise ValueError(f"l2o.transfer.pairs has no pair {pair_name!r}; configured: {sorted(settings.pairs)}")
    pair = settings.pairs[pair_name]
    out = Path(out_dir)
    art_dir = out / pair_name
    meta = {**dict((l2o_config or {}).get("meta", {})), **{k: v for k, v in settings.meta.items() if k != "families"}}
    families = dict(meta.get("families") or {})
    if "task" in (settings.meta.get("families") or {}):
        families["task"] = {**dict(families.get("task") or {}), **dict(settings.meta["families"]["task"])}
    families["task"] = {**dict(families.get("task") or {}),
                        "model": {**dict((families.get("task") or {}).get("model") or {}),
                                  **dict(pair.get("meta_model") or {})}}
    meta["families"] = {"task": families["task"]}  # meta-trained on the pair's meta model only
    t0 = time.perf_counter()
    record = run_meta_training({**l2o_config, "meta": meta}, art_dir / "optimizer.pt", art_dir / "optimizer.json",
                               task=task, dataset=dataset, model_config=model_config, training=training)
    meta_seconds = time.perf_counter() - t0
    test_model = {**dict(model_config or {}), **dict(pair.get("test_model") or {})}
    k = len(task.loss_names)
    rows = []
    for name in settings.methods:
        method, params = _method(name, k, str(art_dir / "optimizer.pt"))
        for factor in settings.step_factors:
            for seed in settings.seeds:
                tr = {**dict(training), "max_epochs": settings.max_epochs, "patience": settings.max_epochs,
                      "learning_rate": float(training.get("learning_rate", 1e-3)) * float(factor)}
                trainer = trainer_for(dataset, test_model, tr, method, params, int(seed), task=task)
                start = time.perf_counter()
                result = trainer.run()
                row = {"pair": pair_name, "method": name, "step_factor": float(factor), "seed": int(seed),
                       "status": result.status, "reason": result.reason, "epochs": result.epoch,
                       "seconds": time.perf_counter() - start}
                for split, data in (("train", trainer.train_data), ("validation", trainer.val_data),
                                    ("test", task.training_data(dataset, "test", trainer.model_config,
                                                                trainer.device, trainer.dtype))):
                    err = task.split_error(trainer.model, data, trainer.loss_settings, trainer.references)
                    row[f"{split}_error"] = float(err) if math.isfinite(err) else math.nan
                rows.append(row)
                if progress is not None:
                    progress(row)
    table = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / f"{pair_name}.csv", index=False)
    summary = {"pair": pair_name, "settings": settings.to_dict(), "meta_model": pair.get("meta_model", {}),
               "test_model": pair.get("test_model", {}), "meta_training_seconds": meta_seconds,
               "heldout_task": record.get("heldout_task"), "chosen_step_factors": chosen_factors(table)}
    (out / f"{pair_name}.json").write_text(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
    return table


def chosen_factors(table: pd.DataFrame) -> dict[str, float]:
    """{method: the step factor with the lowest mean validation error over the seeds} (a failed or non-finite
    training counts as an infinite error)."""
    t = table.copy()
    bad = (t["status"] != "completed") | ~np.isfinite(t["validation_error"].astype(float))
    t.loc[bad, "validation_error"] = math.inf
    means = t.groupby(["method", "step_factor"])["validation_error"].mean().reset_index()
    return {m: float(g.sort_values(["validation_error", "step_factor"]).iloc[0]["step_factor"])
            for m, g in means.groupby("method")}


# -- seed 003's claims on the transfer tables (balancebench.claims) --------------------------------------------
#: GML2O "never does worse than its fallback": non-inferiority within this factor of DSSMG's error
NONINFERIORITY = 1.1


def _at_chosen(table: pd.DataFrame, method: str, column: str) -> np.ndarray:
    """Per-seed ``column`` of ``method`` at its chosen step factor; a failed training counts as inf."""
    factor = chosen_factors(table)[method]
    rows = table[(table["method"] == method) & (table["step_factor"] == factor)].sort_values("seed")
    values = rows[column].to_numpy(dtype=float)
    return np.where(rows["status"].to_numpy() == "completed", values, np.inf)


def transfer_claims(config: dict, source: str) -> list:
    """Seed 003's claims per configured pair: ML2O's test error below MGDA's, PCGrad's and Adam's (the equal-weight
    sum) on the held-out model, and GML2O's not above its fallback DSSMG's (within NONINFERIORITY); Wilcoxon
    signed-rank one-sided, paired by seed (every method starts from the seed's initialisation), at each method's
    step factor (chosen on the validation split); a failed training counts as worse than every completed one."""
    from balancebench.claims import Claim, ClaimResult, describe, mean_sd, one_sample, verdict

    transfer = ((config.get("l2o") or {}).get("transfer") or {})
    pairs = dict(transfer.get("pairs") or {})
    methods = list(transfer.get("methods") or TRANSFER_METHODS)
    if not pairs:
        return [Claim("seed003_ml2o_transfer", source,
                      "ML2O meta-trained on one architecture reaches a lower test error than MGDA and PCGrad on a "
                      "held-out architecture, and GML2O never does worse than its fallback.",
                      "qualitative (no number in the seed)", lambda inputs: None, (),
                      missing="not in this config: l2o.transfer.pairs (docs/ml2o.md, 'Transfer')")]

    def compare(pair: str, a: str, b: str, margin: float, statement_kind: str):
        def check(inputs) -> ClaimResult:
            table = inputs.csv(f"l2o/transfer/{pair}.csv")
            err_a, err_b = _at_chosen(table, a, "test_error"), _at_chosen(table, b, "test_error")
            tr_a, tr_b = _at_chosen(table, a, "train_error"), _at_chosen(table, b, "train_error")
            # paired by seed: every method starts from the seed's initialisation and item order
            if not (np.isfinite(err_a).any() or np.isfinite(err_b).any()):
                p, p_rev, note = None, None, "; every training failed"
            else:
                big = 10.0 * float(np.nanmax(np.where(np.isfinite(np.r_[err_a, err_b]), np.r_[err_a, err_b], 0.0)) + 1.0)
                fa, fb = np.where(np.isfinite(err_a), err_a, big), np.where(np.isfinite(err_b), err_b, big)
                p, _, note = one_sample(fa - margin * fb, 0.0, higher_is_claim=False)
                _, p_rev, note_rev = one_sample(fa - fb, 0.0, higher_is_claim=False)
                note = note or note_rev
            v = verdict(p, p_rev)
            diff = err_a - err_b if np.isfinite(err_a).all() and np.isfinite(err_b).all() else np.array([np.nan])
            mean, sd, n = mean_sd(diff)
            factors = chosen_factors(table)
            return ClaimResult(
                ours=f"test error {a} {describe(err_a)} vs {b} {describe(err_b)}; training error {a} "
                     f"{describe(tr_a)} vs {b} {describe(tr_b)} (step factors {factors[a]:.3g} / {factors[b]:.3g} "
                     f"x lr, chosen on the validation split)",
                mean=mean, spread=sd, n=n, p=p,
                test=("Wilcoxon signed-rank (scipy.stats.wilcoxon), one-sided, paired by seed (same initialisation "
                      "and item order), test error " + (f"{a} < {margin:g} x {b}" if margin != 1 else f"{a} < {b}")
                      + (f"; reverse ({a} > {b}) p = {p_rev:.3g}" if p_rev is not None else "")
                      + ("; MGDA and PCGrad directions are stepped by Adam, as every gradient method here"
                         if b in ("mgda", "pcgrad") else "")),
                verdict=v,
                why={"reproduced": f"{a}'s test error is significantly {statement_kind} {b}'s on the held-out model.",
                     "reversed": f"{a}'s test error is significantly above {b}'s: the claim is contradicted here.",
                     "not reproduced": f"{a}'s test error is not shown to be {statement_kind} {b}'s"}[v] + note)
        return check

    claims = []
    for pair, spec in pairs.items():
        where = (f"meta-trained on {spec.get('meta_model') or 'the run model'}, "
                 f"tested on {spec.get('test_model') or 'the run model'}")
        inputs = (f"l2o/transfer/{pair}.csv",)
        for base in ("mgda", "pcgrad", "adam"):
            lack = [m for m in ("ml2o", base) if m not in methods]
            claims.append(Claim(
                f"seed003_ml2o_vs_{base}_{pair}", source,
                f"ML2O ({where}) reaches a lower test error than "
                + {"mgda": "MGDA", "pcgrad": "PCGrad", "adam": "Adam on the equal-weight sum"}[base]
                + " on the held-out model.",
                "qualitative (no number in the seed)" if base != "adam" else "not a claim of the seed: our control",
                compare(pair, "ml2o", base, 1.0, "below"), inputs,
                missing=f"not in this config: l2o.transfer.methods lacks {lack}" if lack else ""))
        lack = [m for m in ("gml2o", "dssmg") if m not in methods]
        claims.append(Claim(
            f"seed003_gml2o_vs_dssmg_{pair}", source,
            f"GML2O ({where}) never does worse than its convergent fallback DSSMG (non-inferiority: test error "
            f"at most {NONINFERIORITY:g} x DSSMG's).",
            "Theorem 4.2 (convergence); qualitative", compare(pair, "gml2o", "dssmg", NONINFERIORITY,
                                                              f"at most {NONINFERIORITY:g} x"), inputs,
            missing=f"not in this config: l2o.transfer.methods lacks {lack}" if lack else ""))
    return claims
