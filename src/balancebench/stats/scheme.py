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

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from balancebench.stats.hypothesis import P_ADJUST, POSTHOCS, kruskal_wallis, posthoc
from balancebench.stats.ranking import compact_letter_display, metric_scores, ordering_text, rank_methods
from balancebench.stats.table import Direction, MetricsTable, MetricsTableError, direction_from_config

FAILED_RUNS_METRIC = "failed_runs"


@dataclass(frozen=True)
class StatsSettings:
    """Levels and choices of the scheme (config key ``stats``; defaults = the seed paper)."""

    alpha: float = 0.1
    screening: float = 0.35
    posthoc_alpha: float = 0.35
    posthoc: str = "tukey"
    p_adjust: str = "holm"
    min_valid_runs: int = 2
    metric_weights: dict[str, float] = field(default_factory=dict)
    directions: dict[str, Direction] = field(default_factory=dict)
    failures_as_metric: bool = True

    def __post_init__(self):
        for name in ("alpha", "screening", "posthoc_alpha"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ValueError(f"stats.{name} must be in (0, 1), got {value}")
        if self.posthoc not in POSTHOCS:
            raise ValueError(f"stats.posthoc {self.posthoc!r} is not one of {', '.join(POSTHOCS)}")
        if self.p_adjust not in P_ADJUST:
            raise ValueError(f"stats.p_adjust {self.p_adjust!r} is not one of {', '.join(P_ADJUST)}")
        if self.min_valid_runs < 2:
            raise ValueError(f"stats.min_valid_runs must be >= 2, got {self.min_valid_runs}")

    @classmethod
    def from_config(cls, stats: dict) -> "StatsSettings":
        """From the validated ``stats`` block of the workflow config."""
        return cls(alpha=stats["alpha"], screening=stats["screening"], posthoc_alpha=stats["posthoc_alpha"],
                   posthoc=stats["posthoc"], p_adjust=stats["p_adjust"], min_valid_runs=stats["min_valid_runs"],
                   metric_weights=dict(stats["metric_weights"]),
                   directions={m: direction_from_config(e) for m, e in stats["directions"].items()},
                   failures_as_metric=stats["failures_as_metric"])

    def as_dict(self) -> dict:
        return {"alpha": self.alpha, "screening": self.screening, "posthoc_alpha": self.posthoc_alpha,
                "posthoc": self.posthoc, "p_adjust": self.p_adjust, "min_valid_runs": self.min_valid_runs,
                "metric_weights": dict(self.metric_weights),
                "directions": {m: d.spec() for m, d in self.directions.items()},
                "failures_as_metric": self.failures_as_metric}


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
        }


def _metric_long(table: MetricsTable, include_failures: bool) -> tuple[pd.DataFrame, tuple[str, ...], dict[str, Direction]]:
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


def evaluate(table: MetricsTable, settings: StatsSettings | None = None) -> Evaluation:
    """Run the whole scheme on a validated table."""
    settings = settings or StatsSettings()
    data, metrics, directions = _metric_long(table, settings.failures_as_metric)
    methods = list(table.methods)
    k = len(methods)
    runs_per_method = table.runs.groupby("method", sort=False).size()
    notes: list[str] = []
    if table.defaulted:
        notes.append(f"direction not given, assumed 'lower is better' for: {', '.join(table.defaulted)}")

    kruskal_rows, posthoc_rows, comparison_rows, letter_rows = [], [], [], []
    scores = pd.DataFrame(index=pd.Index(methods, name="method"), columns=list(metrics), dtype=int)
    by_metric = dict(tuple(data.groupby("metric", sort=False)))
    for metric in metrics:
        direction = directions[metric]
        rows = by_metric[metric]
        valid = rows[~rows["excluded"]]
        groups_all = {m: direction.tested(valid.loc[valid["method"] == m, "value"].to_numpy()) for m in methods}
        raw = {m: valid.loc[valid["method"] == m, "value"].to_numpy() for m in methods}
        n_failed = {m: int((rows["excluded"] & (rows["method"] == m)).sum()) for m in methods}
        n_missing = {m: int(runs_per_method[m] - (rows["method"] == m).sum()) for m in methods}
        untestable = [m for m in methods if groups_all[m].size < settings.min_valid_runs]
        testable = [m for m in methods if m not in untestable]
        groups = {m: groups_all[m] for m in testable}
        metric_notes = []
        if untestable:
            metric_notes.append(f"untestable (fewer than {settings.min_valid_runs} valid runs), scored last: "
                                + ", ".join(f"{m} ({groups_all[m].size} valid)" for m in untestable))
        if any(n_missing.values()):
            metric_notes.append("rows missing (no row at all for a run of the method): "
                                + ", ".join(f"{m} ({n})" for m, n in n_missing.items() if n))

        statistic = pvalue = np.nan
        dof = len(testable) - 1
        screened = significant = False
        better: list[tuple[str, str]] = []
        different: list[tuple[str, str]] = []
        location = {m: float(groups[m].mean()) for m in testable}
        if len(testable) >= 2:
            kw = kruskal_wallis(groups)
            statistic, pvalue, dof = kw.statistic, kw.pvalue, kw.df
            if kw.note:
                metric_notes.append(kw.note)
            significant = pvalue <= settings.alpha
            screened = pvalue <= settings.screening
        else:
            metric_notes.append("not tested: fewer than two methods with enough valid runs")

        if screened:
            results = {name: posthoc(groups, name, settings.p_adjust) for name in POSTHOCS}
            chosen = results[settings.posthoc]
            location = chosen.location
            for name, result in results.items():
                result.pairs["reject"] = result.pairs["pvalue"] <= settings.posthoc_alpha
            for _, pair in chosen.pairs.iterrows():
                a, b = pair["group_a"], pair["group_b"]
                winner = ""
                if pair["reject"]:
                    different.append((a, b))
                    la, lb = location[a], location[b]
                    if la != lb:
                        a_better = (la > lb) if direction.higher_is_better else (la < lb)
                        winner = a if a_better else b
                        better.append((winner, b if a_better else a))
                posthoc_rows.append({
                    "metric": metric, "posthoc": chosen.method, "group_a": a, "group_b": b,
                    "mean_a": pair["mean_a"], "mean_b": pair["mean_b"], "mean_diff": pair["mean_diff"],
                    "p_adj": pair["pvalue"], "reject": bool(pair["reject"]), "better": winner,
                    "n_a": groups[a].size, "n_b": groups[b].size, "failed_a": n_failed[a], "failed_b": n_failed[b],
                    "tested": direction.tested_label,
                })
            merged = None
            for name, result in results.items():
                part = result.pairs[["group_a", "group_b", "pvalue", "reject"]].rename(
                    columns={"pvalue": f"p_{name}", "reject": f"reject_{name}"})
                merged = part if merged is None else merged.merge(part, on=["group_a", "group_b"], how="left",
                                                                      validate="one_to_one")
            merged.insert(0, "metric", metric)
            verdicts = merged[[f"reject_{n}" for n in POSTHOCS]]
            merged["verdicts_agree"] = verdicts.eq(verdicts.iloc[:, 0], axis=0).all(axis=1)
            comparison_rows.extend(merged.to_dict(orient="records"))

        metric_score = metric_scores(methods, better, untestable)
        scores[metric] = pd.Series(metric_score)
        best_first = sorted(testable, key=lambda m: (-location[m] if direction.higher_is_better else location[m],
                                                     methods.index(m)))
        letters = compact_letter_display(best_first, different)
        for m in methods:
            tested_vals = groups_all[m]
            letter_rows.append({
                "metric": metric, "method": m, "letters": letters.get(m, ""), "score": metric_score[m],
                "n_valid": int(tested_vals.size), "n_failed": n_failed[m], "n_missing": n_missing[m],
                "mean": float(raw[m].mean()) if raw[m].size else np.nan,
                "median": float(np.median(raw[m])) if raw[m].size else np.nan,
                "tested_mean": float(tested_vals.mean()) if tested_vals.size else np.nan,
                "testable": m in testable,
            })
        kruskal_rows.append({
            "metric": metric, "direction": direction.describe(), "tested": direction.tested_label,
            "statistic": statistic, "df": dof, "pvalue": pvalue, "significant": bool(significant),
            "screened": bool(screened), "n_methods": len(testable),
            "n_valid": int(sum(groups_all[m].size for m in methods)), "n_failed": int(sum(n_failed.values())),
            "note": "; ".join(metric_notes),
        })
        notes.extend(f"{metric}: {n}" for n in metric_notes if not n.startswith("all values identical"))

    kruskal = pd.DataFrame(kruskal_rows)
    posthoc_table = pd.DataFrame(posthoc_rows, columns=[
        "metric", "posthoc", "group_a", "group_b", "mean_a", "mean_b", "mean_diff", "p_adj", "reject", "better",
        "n_a", "n_b", "failed_a", "failed_b", "tested"])
    comparison = pd.DataFrame(comparison_rows, columns=["metric", "group_a", "group_b"]
                              + [f"{c}_{n}" for n in POSTHOCS for c in ("p", "reject")] + ["verdicts_agree"])
    letters_table = pd.DataFrame(letter_rows)
    ranked = rank_methods(scores.astype(int), settings.metric_weights)
    failed_counts = table.runs.groupby("method", sort=False)["failed"].sum()
    ranked.insert(len(ranked.columns) - 2, "n_runs", [int(runs_per_method[m]) for m in ranked.index])
    ranked.insert(len(ranked.columns) - 2, "n_failed_runs", [int(failed_counts[m]) for m in ranked.index])
    return Evaluation(settings=settings, table=table, metrics=metrics, directions=directions, kruskal=kruskal,
                      posthoc=posthoc_table, posthoc_comparison=comparison, letters=letters_table,
                      ranking=ranked, ordering=ordering_text(ranked), notes=notes)
