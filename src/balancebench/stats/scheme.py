"""The evaluation scheme of seed 000 Sec. 2.5 / 3.2 on a validated metrics table.

Per metric: Kruskal-Wallis over the methods with enough valid runs (Table 1);
if p <= ``screening`` the chosen post-hoc test (Tukey HSD in the paper) decides
every pair at ``posthoc_alpha`` (Table 2); significant pairs and the metric's
direction give scores, a compact letter display and the weighted total
(Table 3). All three post-hoc tests are run on every screened metric so the
report can say where the choice changes a verdict.

Failed runs (docs/statistics.md): a row whose status is not ``completed`` is
excluded from its metric's tests and counted (``n_failed``) per method and
metric in every table; a run that diverged or became unstable counts against
its method through the ``failed_runs`` metric (per run: 1 failed, 0 completed;
tested and scored like any other metric, lower is better). A method left with
fewer than ``min_valid_runs`` valid values for a metric is not tested on it
and gets the worst score, k, with a note.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from balancebench.stats.blocked import BLOCKED_POSTHOCS, blocked_posthoc, complete_blocks, friedman
from balancebench.stats.concerns import WEIGHT_PRESETS, per_concern_weights, resolve_concerns
from balancebench.stats.hypothesis import P_ADJUST, POSTHOCS, kruskal_wallis, posthoc
from balancebench.stats.ranking import compact_letter_display, metric_scores, ordering_text, rank_methods
from balancebench.stats.table import (
    Direction,
    MetricsTable,
    direction_from_config,
)
from balancebench.stats.values import FAILED_RUNS_METRIC, IMPUTED  # noqa: F401 (re-exported: balancebench.stats)
from balancebench.stats.values import metric_long as _metric_long
from balancebench.stats.values import tested_values as _tested_values

DESIGNS = ("independent", "blocked")
FAILED_VALUES = ("worst", "exclude")
#: metrics reported but weighted 0 in the total unless stats.metric_weights names them: the extras beside
#: the paper's ten (the g(r) Wasserstein distance, epochs-to-target, the failure count, the two-loss
#: hypervolume of rule pareto)
REPORTED_ONLY = ("gr_w1", "N_target", FAILED_RUNS_METRIC, "hypervolume")


@dataclass(frozen=True)
class StatsSettings:
    """Levels and choices of the scheme (config key ``stats``; defaults = the seed paper's levels).

    design: ``independent`` (Kruskal-Wallis + ``posthoc``) or ``blocked`` (Friedman over the seeds as blocks
    + ``blocked_posthoc``); the config's ``auto`` resolves to blocked when ``training.seed_design`` is paired.
    failed_values: ``worst`` (a failed run's value enters the tests as worse than every measured value) or
    ``exclude`` (dropped from its metric's tests). bootstrap_replicates: seed resamples of the rank stability
    (0: none). power_target: the power at which the seeds needed per verdict are computed.
    """

    alpha: float = 0.1
    screening: float = 0.35
    posthoc_alpha: float = 0.35
    posthoc: str = "tukey"
    p_adjust: str = "holm"
    min_valid_runs: int = 2
    metric_weights: dict[str, float] = field(default_factory=dict)
    directions: dict[str, Direction] = field(default_factory=dict)
    failures_as_metric: bool = True
    design: str = "independent"
    blocked_posthoc: str = "conover"
    failed_values: str = "worst"
    bootstrap_replicates: int = 0
    bootstrap_seed: int = 0
    power_target: float = 0.8
    concerns: dict[str, tuple[str, ...]] = field(default_factory=dict)
    concerns_strict: bool = True
    quality_concerns: tuple[str, ...] = ()
    cost_concerns: tuple[str, ...] = ()
    controls: tuple[str, ...] = ()
    main_control: str | None = None
    weight_preset: str = "paper"

    def __post_init__(self):
        for name in ("alpha", "screening", "posthoc_alpha", "power_target"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ValueError(f"stats.{name} must be in (0, 1), got {value}")
        if self.posthoc not in POSTHOCS:
            raise ValueError(f"stats.posthoc {self.posthoc!r} is not one of {', '.join(POSTHOCS)}")
        if self.p_adjust not in P_ADJUST:
            raise ValueError(f"stats.p_adjust {self.p_adjust!r} is not one of {', '.join(P_ADJUST)}")
        if self.min_valid_runs < 2:
            raise ValueError(f"stats.min_valid_runs must be >= 2, got {self.min_valid_runs}")
        if self.design not in DESIGNS:
            raise ValueError(f"stats.design {self.design!r} is not one of {', '.join(DESIGNS)} (or auto in the config)")
        if self.blocked_posthoc not in BLOCKED_POSTHOCS:
            raise ValueError(f"stats.blocked_posthoc {self.blocked_posthoc!r} is not one of "
                             f"{', '.join(BLOCKED_POSTHOCS)}")
        if self.failed_values not in FAILED_VALUES:
            raise ValueError(f"stats.failed_values {self.failed_values!r} is not one of {', '.join(FAILED_VALUES)}")
        if self.bootstrap_replicates < 0:
            raise ValueError(f"stats.bootstrap.replicates must be >= 0, got {self.bootstrap_replicates}")
        if self.weight_preset not in WEIGHT_PRESETS:
            raise ValueError(f"stats.metric_weights preset {self.weight_preset!r} is not one of "
                             f"{', '.join(WEIGHT_PRESETS)} (or a mapping metric -> weight)")
        if self.weight_preset == "per_concern" and not self.concerns:
            raise ValueError("stats.metric_weights: per_concern needs concerns (stats.concerns or the task's)")
        for name in (*self.quality_concerns, *self.cost_concerns):
            if self.concerns and name not in self.concerns:
                raise ValueError(f"stats.concern_axes names concern {name!r}, which is not declared "
                                 f"(concerns: {', '.join(self.concerns)})")
        if self.main_control is not None and self.main_control not in self.controls:
            raise ValueError(f"stats.controls.main_loss_only {self.main_control!r} is not in stats.controls.variants "
                             f"({', '.join(self.controls) or 'none'})")

    @property
    def pairwise(self) -> str:
        """The post-hoc test that decides the ranking under the chosen design."""
        return self.blocked_posthoc if self.design == "blocked" else self.posthoc

    def weight(self, metric: str) -> float:
        """w_m: the configured weight, else 0 for :data:`REPORTED_ONLY` metrics (failed_runs: 1 when failed values
        are excluded, the only place they then count) and 1 for the rest."""
        if metric in self.metric_weights:
            return float(self.metric_weights[metric])
        if metric == FAILED_RUNS_METRIC and self.failed_values == "exclude":
            return 1.0  # excluded failures count only through this metric
        return 0.0 if metric in REPORTED_ONLY else 1.0

    @classmethod
    def from_config(cls, stats: dict, seed_design: str | None = None, task_concerns: dict | None = None,
                    task_axes: dict | None = None) -> "StatsSettings":
        """From the validated ``stats`` block of the workflow config; ``seed_design`` = training.seed_design.

        ``task_concerns`` / ``task_axes`` (``{"quality": [...], "cost": [...]}``): the task's declaration, used
        when ``stats.concerns`` / ``stats.concern_axes`` are null; metrics of a task's concern that the table
        lacks are left out with a note, while a configured concern must name metrics of the table.
        """
        design = stats.get("design", "auto")
        if design == "auto":
            design = "blocked" if seed_design == "paired" else "independent"
        boot = dict(stats.get("bootstrap") or {})
        power = dict(stats.get("power") or {})
        configured = stats.get("concerns")
        declared = (configured if configured is not None else task_concerns) or {}
        concerns = {str(k): tuple(v) for k, v in declared.items()}
        axes = stats.get("concern_axes") or task_axes or {}
        controls = dict(stats.get("controls") or {})
        weights = stats["metric_weights"]
        preset = weights if isinstance(weights, str) else "paper"
        return cls(alpha=stats["alpha"], screening=stats["screening"], posthoc_alpha=stats["posthoc_alpha"],
                   posthoc=stats["posthoc"], p_adjust=stats["p_adjust"], min_valid_runs=stats["min_valid_runs"],
                   metric_weights={} if isinstance(weights, str) else dict(weights),
                   concerns=concerns, concerns_strict=configured is not None or not task_concerns,
                   quality_concerns=tuple(c for c in axes.get("quality", ()) if c in concerns),
                   cost_concerns=tuple(c for c in axes.get("cost", ()) if c in concerns),
                   controls=tuple(controls.get("variants") or ()), main_control=controls.get("main_loss_only"),
                   weight_preset=preset,
                   directions={m: direction_from_config(e) for m, e in stats["directions"].items()},
                   failures_as_metric=stats["failures_as_metric"], design=design,
                   blocked_posthoc=stats.get("blocked_posthoc", "conover"),
                   failed_values=stats.get("failed_values", "worst"),
                   bootstrap_replicates=int(boot.get("replicates", 200)), bootstrap_seed=int(boot.get("seed", 0)),
                   power_target=float(power.get("target", 0.8)))

    def as_dict(self) -> dict:
        return {"alpha": self.alpha, "screening": self.screening, "posthoc_alpha": self.posthoc_alpha,
                "posthoc": self.posthoc, "p_adjust": self.p_adjust, "min_valid_runs": self.min_valid_runs,
                "metric_weights": dict(self.metric_weights),
                "directions": {m: d.spec() for m, d in self.directions.items()},
                "failures_as_metric": self.failures_as_metric, "design": self.design,
                "blocked_posthoc": self.blocked_posthoc, "failed_values": self.failed_values,
                "bootstrap": {"replicates": self.bootstrap_replicates, "seed": self.bootstrap_seed},
                "power": {"target": self.power_target},
                "concerns": {c: list(m) for c, m in self.concerns.items()},
                "concern_axes": {"quality": list(self.quality_concerns), "cost": list(self.cost_concerns)},
                "controls": {"variants": list(self.controls), "main_loss_only": self.main_control},
                "weight_preset": self.weight_preset}


@dataclass
class Evaluation:
    """Every table of the scheme.

    kruskal: one row per metric (Table 1). posthoc: the chosen test's pairs of
    the screened metrics (Table 2). posthoc_comparison: all three tests side by
    side. letters: one row per (metric, method): counts, mean, median, score,
    letters. ranking: methods x metric scores + total + rank (Table 3).
    """

    settings: StatsSettings
    table: MetricsTable
    metrics: tuple[str, ...]
    directions: dict[str, Direction]
    kruskal: pd.DataFrame
    posthoc: pd.DataFrame
    posthoc_comparison: pd.DataFrame
    letters: pd.DataFrame
    ranking: pd.DataFrame
    ordering: str
    notes: list[str]
    stability: pd.DataFrame | None = None
    power: pd.DataFrame | None = None
    concerns: dict[str, tuple[str, ...]] = field(default_factory=dict)
    concern_ranking: pd.DataFrame | None = None
    concern_stability: pd.DataFrame | None = None
    concern_power: pd.DataFrame | None = None
    quality_cost: pd.DataFrame | None = None
    correlation: pd.DataFrame | None = None
    verdict: pd.DataFrame | None = None
    control_note: str | None = None

    def summary(self) -> dict:
        """A JSON-serialisable digest (settings, ordering, ranks, notes)."""
        return {
            "settings": self.settings.as_dict(),
            "methods": list(self.table.methods),
            "metrics": list(self.metrics),
            "directions": {m: d.spec() for m, d in self.directions.items()},
            "directions_defaulted": list(self.table.defaulted),
            "ordering": self.ordering,
            "rank": {m: int(r) for m, r in self.ranking["rank"].items()},
            "total": {m: float(t) for m, t in self.ranking["total"].items()},
            "screened_metrics": self.kruskal.loc[self.kruskal["screened"], "metric"].tolist(),
            "failed_runs": self.table.failed_runs().to_dict(orient="records"),
            "notes": list(self.notes),
            "stability": None if self.stability is None else self.stability.to_dict(orient="records"),
            "seeds_needed": None if self.power is None else _power_digest(self.power),
            "verdict": None if self.verdict is None else self.verdict.to_dict(orient="records"),
            "control_note": self.control_note,
        }


def _power_digest(power: pd.DataFrame) -> dict:
    """Per metric: the largest finite seeds-per-variant needed by a significant verdict and by a non-significant one."""
    out = {}
    for metric, rows in power.groupby("metric", sort=False):
        entry = {}
        for label, mask in (("significant", rows["reject"]), ("not_significant", ~rows["reject"])):
            need = rows.loc[mask, "seeds_needed"]
            finite = need[np.isfinite(need)]
            entry[label] = None if finite.empty else int(finite.max())
        out[str(metric)] = entry
    return out


def evaluate(table: MetricsTable, settings: StatsSettings | None = None, lean: bool = False) -> Evaluation:
    """Run the whole scheme on a validated table.

    ``lean``: only the deciding post-hoc test, no letters, no stability or power (the bootstrap's inner loop).
    """
    settings = settings or StatsSettings()
    data, metrics, directions = _metric_long(table, settings.failures_as_metric)
    concerns, concern_notes = resolve_concerns(settings.concerns, metrics, strict=settings.concerns_strict)
    if settings.weight_preset == "per_concern":
        settings = replace(settings, metric_weights=per_concern_weights(concerns, metrics))
    methods = list(table.methods)
    blocked = settings.design == "blocked"
    runs_per_method = table.runs.groupby("method", sort=False).size()
    notes: list[str] = []
    if table.defaulted and not lean:
        notes.append(f"direction not given, assumed 'lower is better' for: {', '.join(table.defaulted)}")
    if not lean:
        notes.extend(concern_notes)
        absent = [c for c in settings.controls if c not in methods]
        if absent:
            notes.append(f"control(s) not in the table: {', '.join(absent)}")
    tests = BLOCKED_POSTHOCS if blocked else POSTHOCS
    chosen_name = settings.pairwise

    kruskal_rows, posthoc_rows, comparison_rows, letter_rows = [], [], [], []
    scores = pd.DataFrame(index=pd.Index(methods, name="method"), columns=list(metrics), dtype=int)
    by_metric = dict(tuple(data.groupby("metric", sort=False)))
    for metric in metrics:
        direction = directions[metric]
        rows = by_metric[metric]
        tested_rows, metric_notes = _tested_values(rows, direction, settings)
        tested_rows = tested_rows[tested_rows["method"].isin(methods)]
        groups_all = {m: tested_rows.loc[tested_rows["method"] == m, "tested"].to_numpy(dtype=float) for m in methods}
        valid = rows[~rows["excluded"]]
        raw = {m: valid.loc[valid["method"] == m, "value"].to_numpy() for m in methods}
        n_failed = {m: int((rows["excluded"] & (rows["method"] == m)).sum()) for m in methods}
        n_missing = {m: int(runs_per_method[m] - (rows["method"] == m).sum()) for m in methods}
        untestable = [m for m in methods if groups_all[m].size < settings.min_valid_runs]
        testable = [m for m in methods if m not in untestable]
        metric_notes = [] if lean else metric_notes
        if untestable:
            metric_notes.append(f"untestable (fewer than {settings.min_valid_runs} values), scored last: "
                                + ", ".join(f"{m} ({groups_all[m].size} valid)" for m in untestable))
        if any(n_missing.values()):
            metric_notes.append("rows missing (no row at all for a run of the method): "
                                + ", ".join(f"{m} ({n})" for m, n in n_missing.items() if n))
        blocks = None
        if blocked and len(testable) >= 2:
            wide = tested_rows[tested_rows["method"].isin(testable)].pivot_table(
                index="seed", columns="method", values="tested", aggfunc="first")
            wide = wide.reindex(columns=testable)
            blocks, dropped = complete_blocks(wide)
            if dropped:
                metric_notes.append(f"incomplete blocks (seeds) left out of the blocked test: {', '.join(dropped)}")
            if len(blocks) < 2:
                metric_notes.append("not tested: fewer than two complete blocks (seeds)")
                untestable, testable, blocks = methods[:], [], None
            groups = {m: blocks[m].to_numpy() for m in testable} if blocks is not None else {}
        else:
            groups = {m: groups_all[m] for m in testable}

        statistic = pvalue = np.nan
        dof = len(testable) - 1
        screened = significant = False
        better: list[tuple[str, str]] = []
        different: list[tuple[str, str]] = []
        location = {m: float(groups[m].mean()) for m in testable}
        if len(testable) >= 2:
            omnibus = friedman(blocks) if blocked else kruskal_wallis(groups)
            statistic, pvalue, dof = omnibus.statistic, omnibus.pvalue, omnibus.df
            if omnibus.note:
                metric_notes.append(omnibus.note)
            significant = pvalue <= settings.alpha
            screened = pvalue <= settings.screening
        else:
            metric_notes.append("not tested: fewer than two methods with enough values")

        if screened:
            names = (chosen_name,) if lean else tests
            if blocked:
                results = {name: blocked_posthoc(blocks, name, settings.p_adjust) for name in names}
            else:
                results = {name: posthoc(groups, name, settings.p_adjust) for name in names}
            chosen = results[chosen_name]
            location = chosen.location
            for name, result in results.items():
                result.pairs["reject"] = result.pairs["pvalue"] <= settings.posthoc_alpha
            for pair in chosen.pairs.itertuples(index=False):
                a, b = pair.group_a, pair.group_b
                winner = ""
                if pair.reject:
                    different.append((a, b))
                    la, lb = location[a], location[b]
                    if la != lb:
                        a_better = (la > lb) if direction.higher_is_better else (la < lb)
                        winner = a if a_better else b
                        better.append((winner, b if a_better else a))
                if not lean:
                    posthoc_rows.append({
                        "metric": metric, "posthoc": chosen.method, "group_a": a, "group_b": b,
                        "mean_a": pair.mean_a, "mean_b": pair.mean_b, "mean_diff": pair.mean_diff,
                        "p_adj": pair.pvalue, "reject": bool(pair.reject), "better": winner,
                        "n_a": groups[a].size, "n_b": groups[b].size, "failed_a": n_failed[a], "failed_b": n_failed[b],
                        "tested": direction.tested_label,
                    })
            if not lean:
                merged = None
                for name, result in results.items():
                    part = result.pairs[["group_a", "group_b", "pvalue", "reject"]].rename(
                        columns={"pvalue": f"p_{name}", "reject": f"reject_{name}"})
                    merged = part if merged is None else merged.merge(part, on=["group_a", "group_b"], how="left",
                                                                          validate="one_to_one")
                merged.insert(0, "metric", metric)
                verdicts = merged[[f"reject_{n}" for n in tests]]
                merged["verdicts_agree"] = verdicts.eq(verdicts.iloc[:, 0], axis=0).all(axis=1)
                comparison_rows.extend(merged.to_dict(orient="records"))

        metric_score = metric_scores(methods, better, untestable)
        scores[metric] = pd.Series(metric_score)
        if not lean:
            best_first = sorted(testable, key=lambda m: (-location[m] if direction.higher_is_better else location[m],
                                                         methods.index(m)))
            letters = compact_letter_display(best_first, different)
            for m in methods:
                tested_vals = groups_all[m]
                letter_rows.append({
                    "metric": metric, "method": m, "letters": letters.get(m, ""), "score": metric_score[m],
                    "n_valid": int(raw[m].size), "n_failed": n_failed[m], "n_missing": n_missing[m],
                    "mean": float(raw[m].mean()) if raw[m].size else np.nan,
                    "median": float(np.median(raw[m])) if raw[m].size else np.nan,
                    "tested_mean": float(tested_vals.mean()) if tested_vals.size else np.nan,
                    "testable": m in testable,
                })
        kruskal_rows.append({
            "metric": metric, "test": "friedman" if blocked else "kruskal-wallis",
            "direction": direction.describe(), "tested": direction.tested_label,
            "statistic": statistic, "df": dof, "pvalue": pvalue, "significant": bool(significant),
            "screened": bool(screened), "n_methods": len(testable),
            "n_valid": int(sum(raw[m].size for m in methods)), "n_failed": int(sum(n_failed.values())),
            "weight": settings.weight(metric), "note": "; ".join(metric_notes),
        })
        notes.extend(f"{metric}: {n}" for n in metric_notes if not n.startswith(("all values identical", "every block")))

    kruskal = pd.DataFrame(kruskal_rows)
    posthoc_table = pd.DataFrame(posthoc_rows, columns=[
        "metric", "posthoc", "group_a", "group_b", "mean_a", "mean_b", "mean_diff", "p_adj", "reject", "better",
        "n_a", "n_b", "failed_a", "failed_b", "tested"])
    comparison = pd.DataFrame(comparison_rows, columns=["metric", "group_a", "group_b"]
                              + [f"{c}_{n}" for n in tests for c in ("p", "reject")] + ["verdicts_agree"])
    letters_table = pd.DataFrame(letter_rows)
    weights = {**{m: settings.weight(m) for m in metrics}, **settings.metric_weights}  # unknown names raise
    ranked = rank_methods(scores.astype(int), weights)
    failed_counts = table.runs.groupby("method", sort=False)["failed"].sum()
    ranked.insert(len(ranked.columns) - 2, "n_runs", [int(runs_per_method[m]) for m in ranked.index])
    ranked.insert(len(ranked.columns) - 2, "n_failed_runs", [int(failed_counts[m]) for m in ranked.index])
    evaluation = Evaluation(settings=settings, table=table, metrics=metrics, directions=directions, kruskal=kruskal,
                            posthoc=posthoc_table, posthoc_comparison=comparison, letters=letters_table,
                            ranking=ranked, ordering=ordering_text(ranked), notes=notes)
    if not lean:
        from balancebench.stats import concerns as cc
        from balancebench.stats.robustness import bootstrap_scores, power_table, rank_stability

        boot = bootstrap_scores(evaluation) if settings.bootstrap_replicates > 0 else None
        if boot is not None:
            evaluation.stability = rank_stability(evaluation, boot=boot)
        evaluation.power = power_table(evaluation)
        evaluation.concerns = concerns
        evaluation.correlation = cc.metric_correlation(table)
        if concerns:
            evaluation.concern_ranking = cc.concern_table(evaluation, concerns)
            evaluation.concern_power = power_table(evaluation, metrics={m for ms in concerns.values() for m in ms})
            if boot is not None:
                evaluation.concern_stability = cc.concern_stability(evaluation, concerns, boot[1], boot[0])
            names, scores = boot if boot is not None else ((), None)
            evaluation.quality_cost = cc.quality_vs_cost(evaluation, concerns, settings.quality_concerns,
                                                         settings.cost_concerns, scores, names)
            evaluation.verdict = cc.verdict_table(evaluation)
            evaluation.control_note = cc.control_sentence(evaluation)
    return evaluation
