"""Per-concern rankings, controls, metric redundancy and the verdict (issue 27; docs/statistics.md, "Concerns").

A task declares *concerns*: named groups of its metrics (``{concern: [metric, ...]}``, plain data like the
metric directions). The stats core knows no task: it takes the groups as given and

- ranks the variants per concern with the scheme's own per-metric scores (1 + number of variants
  significantly better; the same tests, levels and letters): concern score = sum of the scores of the
  concern's metrics (each weight 1), competition rank on it; the paper's weighted total is untouched;
- measures how often the bootstrap over seeds keeps each concern rank (:func:`concern_stability`, from the
  same resampled tables as the total's rank stability);
- places each variant on a quality axis (the mean over the quality concerns of the mean metric score) against
  a cost axis (the same over the cost concerns), with the 5-95 % range over the bootstrap replicates;
- reports the Spearman rank correlation of every pair of metrics over the runs (:func:`metric_correlation`):
  a pair at |rho| = 1 counts one observation twice in the total;
- says whether any balancing method beats the main-loss-only control on the quality axis.

Bad input raises :class:`ConcernError` naming the concern and the metric: an empty concern, a metric in two
concerns, a metric the table does not have (``strict``; a task's own declaration drops metrics absent from
the table with a note instead, so a table without e.g. gr_w1 still evaluates).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from balancebench.stats.table import MetricsTableError

WEIGHT_PRESETS = ("paper", "per_concern")


class ConcernError(MetricsTableError):
    """A concern declaration is malformed; the message names the concern and the metric."""


def parse_concern(spec: str) -> tuple[str, tuple[str, ...]]:
    """``NAME=metric,metric`` (the CLI's ``--concern``)."""
    name, sep, rhs = spec.partition("=")
    name = name.strip()
    metrics = tuple(m.strip() for m in rhs.split(",") if m.strip())
    if not sep or not name or not metrics:
        raise ConcernError(f"--concern {spec!r}: expected NAME=metric,metric (at least one metric)")
    return name, metrics


def resolve_concerns(concerns: Mapping[str, Sequence[str]] | None, metrics: Sequence[str], strict: bool = True,
                     source: str = "stats.concerns") -> tuple[dict[str, tuple[str, ...]], list[str]]:
    """Check ``concerns`` against the evaluated ``metrics``; return (concern -> metrics, notes).

    Errors (always): a concern without metrics, a metric listed twice or in two concerns. A metric not in
    ``metrics``: an error when ``strict``, else dropped with a note (a concern left empty is dropped too).
    """
    if not concerns:
        return {}, []
    known = list(metrics)
    owner: dict[str, str] = {}
    resolved: dict[str, tuple[str, ...]] = {}
    notes: list[str] = []
    for name, members in concerns.items():
        if isinstance(members, str) or not hasattr(members, "__iter__"):
            raise ConcernError(f"{source}: concern {name!r} must list metric names, got {members!r}")
        members = [str(m) for m in members]
        if not members:
            raise ConcernError(f"{source}: concern {name!r} lists no metric")
        kept = []
        for metric in members:
            if metric in owner:
                where = "twice in" if owner[metric] == name else f"in two concerns, {owner[metric]!r} and"
                raise ConcernError(f"{source}: metric {metric!r} is {where} {name!r}; each metric belongs to "
                                   "one concern")
            owner[metric] = name
            if metric not in known:
                if strict:
                    raise ConcernError(f"{source}: concern {name!r} names metric {metric!r}, which the table does "
                                       f"not have (metrics: {', '.join(known)})")
                notes.append(f"concern {name}: metric {metric} is not in the table, left out")
                continue
            kept.append(metric)
        if kept:
            resolved[str(name)] = tuple(kept)
        else:
            notes.append(f"concern {name}: none of its metrics is in the table, left out")
    outside = [m for m in known if m not in owner]
    if resolved and outside:
        notes.append(f"in no concern (only in the paper's total): {', '.join(outside)}")
    return resolved, notes


def per_concern_weights(concerns: Mapping[str, Sequence[str]], metrics: Sequence[str]) -> dict[str, float]:
    """The ``per_concern`` preset of stats.metric_weights: each concern weighs 1 in the total, split equally
    over its metrics; a metric in no concern weighs 0."""
    weights = {m: 0.0 for m in metrics}
    for members in concerns.values():
        for m in members:
            weights[m] = 1.0 / len(members)
    return weights


def _competition_rank(values: np.ndarray) -> np.ndarray:
    values = np.round(np.asarray(values, dtype=float), 9)
    return np.array([1 + int((values < v).sum()) for v in values])


def concern_table(evaluation, concerns: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """One row per (concern, variant), best first within a concern: metrics, score (sum of the metric scores),
    mean_score, rank (competition, 1 = best), letters (per metric, from letters.csv)."""
    ranking = evaluation.ranking
    methods = list(evaluation.table.methods)
    letters = {}
    if len(evaluation.letters):
        letters = {(r.metric, r.method): (r.letters or "-") for r in evaluation.letters.itertuples(index=False)}
    rows = []
    for name, members in concerns.items():
        scores = ranking.loc[methods, list(members)].astype(float)
        total = scores.sum(axis=1).to_numpy()
        ranks = _competition_rank(total)
        for k in np.lexsort((np.arange(len(methods)), ranks)):
            m = methods[k]
            rows.append({"concern": name, "method": m, "metrics": " ".join(members), "score": float(total[k]),
                         "mean_score": float(total[k]) / len(members), "rank": int(ranks[k]),
                         "letters": "; ".join(f"{x} {letters.get((x, m), '-')}" for x in members)})
    return pd.DataFrame(rows, columns=["concern", "method", "metrics", "score", "mean_score", "rank", "letters"])


def axis_scores(scores: np.ndarray, metric_index: Mapping[str, int], concerns: Mapping[str, Sequence[str]],
                names: Sequence[str]) -> np.ndarray:
    """Mean over the concerns ``names`` of each concern's mean metric score; ``scores``: (..., n_metrics, k)."""
    parts = [np.mean([scores[..., metric_index[m], :] for m in concerns[c]], axis=0) for c in names]
    return np.mean(parts, axis=0)


def concern_stability(evaluation, concerns: Mapping[str, Sequence[str]], boot_scores: np.ndarray,
                      metric_names: Sequence[str]) -> pd.DataFrame:
    """Per concern and variant: rank, p_same_rank, p_first (ranked 1), p_rank_or_better, mean_rank, 5-95 %
    range, from the per-metric scores of the bootstrap replicates (``boot_scores``: B x metrics x variants)."""
    observed = concern_table(evaluation, concerns)
    methods = list(evaluation.table.methods)
    index = {m: i for i, m in enumerate(metric_names)}
    rows = []
    for name, members in concerns.items():
        total = boot_scores[:, [index[m] for m in members], :].sum(axis=1)  # B x k
        ranks = np.array([_competition_rank(t) for t in total])
        obs = observed[observed["concern"] == name].set_index("method")["rank"].reindex(methods).to_numpy()
        for k in np.lexsort((np.arange(len(methods)), obs)):
            r = ranks[:, k]
            rows.append({"concern": name, "method": methods[k], "rank": int(obs[k]),
                         "p_same_rank": float((r == obs[k]).mean()), "p_first": float((r == 1).mean()),
                         "p_rank_or_better": float((r <= obs[k]).mean()), "mean_rank": float(r.mean()),
                         "rank_q05": int(np.quantile(r, 0.05, method="lower")),
                         "rank_q95": int(np.quantile(r, 0.95, method="higher")),
                         "replicates": int(len(boot_scores))})
    return pd.DataFrame(rows, columns=["concern", "method", "rank", "p_same_rank", "p_first", "p_rank_or_better",
                                       "mean_rank", "rank_q05", "rank_q95", "replicates"])


def quality_vs_cost(evaluation, concerns: Mapping[str, Sequence[str]], quality: Sequence[str], cost: Sequence[str],
                    boot_scores: np.ndarray | None = None, metric_names: Sequence[str] = ()) -> pd.DataFrame:
    """Per variant: quality and cost axis scores (1 = nobody significantly better on any metric) and their
    5-95 % range over the bootstrap replicates (NaN without a bootstrap)."""
    methods = list(evaluation.table.methods)
    quality = [c for c in quality if c in concerns]
    cost = [c for c in cost if c in concerns]
    cols = ["method", "quality", "quality_q05", "quality_q95", "cost", "cost_q05", "cost_q95", "control"]
    if not quality or not cost:
        return pd.DataFrame(columns=cols)
    metrics = sorted({m for c in (*quality, *cost) for m in concerns[c]})
    index = {m: i for i, m in enumerate(metrics)}
    observed = evaluation.ranking.loc[methods, metrics].to_numpy(dtype=float).T  # metrics x k
    frame = pd.DataFrame({"method": methods})
    controls = set(evaluation.settings.controls)
    for axis, names in (("quality", quality), ("cost", cost)):
        frame[axis] = axis_scores(observed, index, concerns, names)
        if boot_scores is not None and len(boot_scores):
            bindex = {m: i for i, m in enumerate(metric_names)}
            b = axis_scores(boot_scores, bindex, concerns, names)  # B x k
            frame[f"{axis}_q05"] = np.quantile(b, 0.05, axis=0)
            frame[f"{axis}_q95"] = np.quantile(b, 0.95, axis=0)
        else:
            frame[f"{axis}_q05"] = np.nan
            frame[f"{axis}_q95"] = np.nan
    frame["control"] = [m in controls for m in methods]
    return frame[cols]


def metric_correlation(table) -> pd.DataFrame:
    """Spearman rank correlation of every pair of metrics over the runs (completed and censored values,
    pairwise complete); one row per unordered pair: metric_a, metric_b, spearman, n_runs. A metric constant over
    the runs gives NaN (undefined)."""
    data = table.data[~table.data["excluded"]]
    wide = data.pivot_table(index=["method", "seed"], columns="metric", values="value", aggfunc="first")
    metrics = [m for m in table.metrics if m in wide.columns]
    wide = wide.reindex(columns=metrics)
    rows = []
    for i, a in enumerate(metrics):
        for b in metrics[i + 1:]:
            pair = wide[[a, b]].dropna()
            rho = np.nan
            if len(pair) >= 3 and pair[a].nunique() > 1 and pair[b].nunique() > 1:
                rho = float(pair[a].rank().corr(pair[b].rank()))
            rows.append({"metric_a": a, "metric_b": b, "spearman": rho, "n_runs": int(len(pair))})
    return pd.DataFrame(rows, columns=["metric_a", "metric_b", "spearman", "n_runs"])


def correlation_matrix(pairs: pd.DataFrame, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """The square matrix (diagonal 1) of :func:`metric_correlation`'s long table."""
    metrics = list(metrics) if metrics is not None else list(dict.fromkeys([*pairs["metric_a"], *pairs["metric_b"]]))
    matrix = pd.DataFrame(np.eye(len(metrics)), index=metrics, columns=metrics)
    for r in pairs.itertuples(index=False):
        if r.metric_a in matrix.index and r.metric_b in matrix.index:
            matrix.loc[r.metric_a, r.metric_b] = matrix.loc[r.metric_b, r.metric_a] = r.spearman
    return matrix


def _seeds_text(power: pd.DataFrame | None, winners: Sequence[str], members: Sequence[str]) -> tuple[str, str]:
    """(seeds the winners' significant wins need (max), seeds that would separate them from the variants they tie
    with (median)) over the pairs of the concern's metrics that involve a winner."""
    if power is None or not len(power):
        return "-", "-"
    rows = power[power["metric"].isin(members) & (power["group_a"].isin(winners) | power["group_b"].isin(winners))]
    if not len(rows):
        return "-", "-"
    sig, non = rows.loc[rows["reject"], "seeds_needed"], rows.loc[~rows["reject"], "seeds_needed"]

    def fmt(values, how):
        values = values[np.isfinite(values)]
        if not len(values):
            return "-"
        return str(int(np.ceil(values.max() if how == "max" else values.median())))

    return fmt(sig, "max"), fmt(non, "median")


def _listed(winners: Sequence[str], freq: Mapping[str, float] | None, controls: set, limit: int = 4) -> str:
    parts = [(f"{w} (control)" if w in controls else w) + (f" {100 * freq[w]:.0f} %" if freq is not None else "")
             for w in winners]
    more = len(parts) - limit
    return ", ".join(parts[:limit]) + (f" and {more} more tied" if more > 0 else "")


def verdict_table(evaluation) -> pd.DataFrame:
    """The first screen: one row per concern and one for the paper's total: the variants ranked 1 with the
    fraction of seed resamples that keep each first, the seeds their verdict needs, the full ordering.

    ``first``: the winners (at most four listed, then how many more tie) each with its bootstrap frequency.
    """
    from balancebench.stats.ranking import ordering_text

    rows = []
    concerns = evaluation.concerns or {}
    table = evaluation.concern_ranking
    stab = evaluation.concern_stability
    controls = set(evaluation.settings.controls)
    power = evaluation.concern_power

    def labelled(frame):
        frame = frame.copy()
        frame.index = [f"{m} (control)" if m in controls else m for m in frame.index]
        return ordering_text(frame)

    for name, members in concerns.items():
        part = table[table["concern"] == name].set_index("method")
        winners = list(part.index[part["rank"] == 1])
        freq = None
        if stab is not None and len(stab):
            freq = stab[stab["concern"] == name].set_index("method")["p_first"].to_dict()
        hold, separate = _seeds_text(power, winners, members)
        rows.append({"concern": name, "metrics": ", ".join(members), "n_first": len(winners),
                     "first (kept first by the bootstrap)": _listed(winners, freq, controls),
                     "seeds its wins need": hold, "seeds to separate its ties": separate,
                     "ordering": labelled(part)})
    ranking = evaluation.ranking
    winners = list(ranking.index[ranking["rank"] == 1])
    freq = None
    if evaluation.stability is not None and len(evaluation.stability):
        freq = evaluation.stability.set_index("method")["p_same_rank"].to_dict()
    weighted = [m for m in evaluation.metrics if evaluation.settings.weight(m) > 0]
    hold, separate = _seeds_text(evaluation.power, winners, weighted)
    rows.append({"concern": "paper's total", "metrics": "weighted sum of all", "n_first": len(winners),
                 "first (kept first by the bootstrap)": _listed(winners, freq, controls),
                 "seeds its wins need": hold, "seeds to separate its ties": separate,
                 "ordering": labelled(ranking)})
    return pd.DataFrame(rows)


def control_sentence(evaluation) -> str | None:
    """One sentence: does any balancing method (a variant that is not a control) beat the main-loss-only
    control on the quality axis? None without such a control in the table."""
    control = evaluation.settings.main_control
    axes = evaluation.quality_cost
    if not control or axes is None or not len(axes) or control not in set(axes["method"]):
        return None
    q = axes.set_index("method")["quality"]
    controls = set(evaluation.settings.controls) | {control}
    methods = [m for m in axes["method"] if m not in controls]
    better = [m for m in methods if round(q[m], 9) < round(q[control], 9)]
    quality = " + ".join(evaluation.settings.quality_concerns) or "quality"
    if not methods:
        return None
    if not better:
        ties = [m for m in methods if round(q[m], 9) == round(q[control], 9)]
        return (f"No balancing method beats the {control} control on quality ({quality}): its quality score is "
                f"{q[control]:.3g} (1 = no variant significantly better on any metric)"
                + (f"; {', '.join(ties)} tie with it." if ties else
                   f"; the best balancing method scores {min(q[m] for m in methods):.3g}."))
    best = sorted(better, key=lambda m: (q[m], methods.index(m)))
    return (f"{len(better)} of {len(methods)} balancing methods beat the {control} control on quality ({quality}; "
            f"quality score {q[control]:.3g}): " + ", ".join(f"{m} ({q[m]:.3g})" for m in best) + ".")
