"""How much to trust a ranking: rank stability under resampled seeds, and seeds needed per verdict.

Rank stability (:func:`rank_stability`): B bootstrap tables, each drawing n runs per
variant with replacement from its n runs (``independent`` design: independently per
variant; ``blocked``: the same seeds for every variant, so blocks stay intact), each
evaluated with the same settings. Per variant: the fraction of replicates in which it
holds its observed rank (``p_same_rank``), the fraction in which it ranks at least as
well, the mean and the 5-95 % range of its bootstrap rank; and, for the table, the
fraction of replicates giving every variant its observed rank (``p_same_ranks``). Seeded by ``stats.bootstrap.seed``:
the same table and seed give the same figures.

Seeds needed per verdict (:func:`power_table`), a normal approximation for every pair of
every tested metric, at the level of one pair among m = k (k-1) / 2 (Bonferroni,
alpha' = posthoc_alpha / m, conservative for Tukey and Holm) and power P (``stats.power.target``)::

    independent: d = |mean_a - mean_b| / s_pooled,  n = f * 2 (z_{1-alpha'/2} + z_P)^2 / d^2
    blocked:     d = |mean(a - b)| / sd(a - b) over the blocks,  n = f * (z_{1-alpha'/2} + z_P)^2 / d^2

with the tested values (failed runs as worst values, |x - target| for target metrics) and f
the inverse asymptotic relative efficiency of the deciding test against the t test under
normality: 1 for Tukey HSD, pi/3 for Dunn and Conover-Iman (Wilcoxon-type rank tests, ARE
3/pi), pi (k+1) / (3 k) for the Friedman post-hocs. n is rounded up, at least 2; d = 0 gives
infinity (no number of seeds separates equal means). The screening omnibus test is not
modelled; metrics weighted 0 are skipped (they decide nothing). ``power_now`` is the approximate power of the pair at the present seeds.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pandas as pd
import scipy.stats as ss

from balancebench.stats.hypothesis import adjust_pvalues
from balancebench.stats.values import metric_long as _metric_long
from balancebench.stats.values import tested_values as _tested_values


def _tested_matrix(evaluation) -> list[dict]:
    """Per metric: direction and {method: {seed: tested value}} as the full evaluation tested them."""
    settings = evaluation.settings
    data, metrics, directions = _metric_long(evaluation.table, settings.failures_as_metric)
    out = []
    for metric in metrics:
        frame, _ = _tested_values(data[data["metric"] == metric], directions[metric], settings)
        values = {m: dict(zip(g["seed"], g["tested"].astype(float))) for m, g in frame.groupby("method", sort=False)}
        out.append({"metric": metric, "higher": directions[metric].higher_is_better, "values": values,
                    "weight": settings.weight(metric)})
    return out


@lru_cache(maxsize=256)
def _q_critical(alpha: float, k: int, df: float) -> float:
    return float(ss.studentized_range.ppf(1.0 - alpha, k, df))


def _rank_all(x: np.ndarray) -> np.ndarray:
    return ss.rankdata(x)


def _decisions(groups: list[np.ndarray], settings, paired: bool) -> tuple[float, list[tuple[int, int]], np.ndarray]:
    """(omnibus p, rejected pairs (i, j), location) for the deciding test; numpy only (the bootstrap's inner loop).

    The same formulas as :mod:`~balancebench.stats.hypothesis` and :mod:`~balancebench.stats.blocked`
    (tests check that both paths agree on the observed table).
    """
    k = len(groups)
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    if paired:
        x = np.column_stack(groups)
        n = x.shape[0]
        if all(np.ptp(row) == 0.0 for row in x):
            return 1.0, [], np.full(k, (k + 1) / 2.0)
        p = float(ss.friedmanchisquare(*x.T).pvalue)
        ranks = np.apply_along_axis(ss.rankdata, 1, x)
        location = ranks.mean(axis=0)
        if p > settings.screening:
            return p, [], location
        if settings.blocked_posthoc == "nemenyi":
            q = np.array([abs(location[i] - location[j]) for i, j in pairs]) / math.sqrt(k * (k + 1) / (6.0 * n))
            crit = _q_critical(settings.posthoc_alpha, k, math.inf)
            return p, [pr for pr, qq in zip(pairs, q) if qq * math.sqrt(2.0) >= crit], location
        rsum = ranks.sum(axis=0)
        a = float((ranks**2).sum())
        den2 = 2.0 * (n * a - float((rsum**2).sum())) / ((n - 1) * (k - 1))
        if den2 <= 1e-9 * max(1.0, n * a):
            return p, [(i, j) for i, j in pairs if location[i] != location[j]], location
        t = np.array([abs(rsum[i] - rsum[j]) for i, j in pairs]) / math.sqrt(den2)
        raw = 2.0 * ss.t.sf(t, (n - 1) * (k - 1))
        adj = adjust_pvalues(raw, settings.p_adjust)
        return p, [pr for pr, pv in zip(pairs, adj) if pv <= settings.posthoc_alpha], location
    pooled = np.concatenate(groups)
    sizes = np.array([g.size for g in groups])
    if np.ptp(pooled) == 0.0:
        return 1.0, [], np.array([g.mean() for g in groups])
    p = float(ss.kruskal(*groups).pvalue)
    test = settings.posthoc
    if test == "tukey":
        location = np.array([g.mean() for g in groups])
    else:
        ranks = _rank_all(pooled)
        bounds = np.cumsum(np.r_[0, sizes])
        location = np.array([ranks[bounds[i]:bounds[i + 1]].mean() for i in range(k)])
    if p > settings.screening:
        return p, [], location
    big_n = pooled.size
    if test == "tukey":
        within = sum(float(((g - g.mean()) ** 2).sum()) for g in groups)
        if within == 0.0:
            return p, [(i, j) for i, j in pairs if location[i] != location[j]], location
        mse = within / (big_n - k)
        crit = _q_critical(settings.posthoc_alpha, k, float(big_n - k))
        rejected = [(i, j) for i, j in pairs
                    if abs(location[i] - location[j]) / math.sqrt(mse / 2.0 * (1 / sizes[i] + 1 / sizes[j])) >= crit]
        return p, rejected, location
    _, counts = np.unique(pooled, return_counts=True)
    ties = float((counts**3 - counts).sum())
    inv = np.array([1 / sizes[i] + 1 / sizes[j] for i, j in pairs])
    diff = np.array([abs(location[i] - location[j]) for i, j in pairs])
    if test == "dunn":
        sigma2 = (big_n * (big_n + 1) / 12.0 - ties / (12.0 * (big_n - 1))) * inv
        raw = 2.0 * ss.norm.sf(diff / np.sqrt(sigma2))
    else:
        within_ranks = sum(float(np.var(ranks[bounds[i]:bounds[i + 1]])) for i in range(k))
        if within_ranks == 0.0:
            return p, [(i, j) for i, j in pairs if location[i] != location[j]], location
        h = float(ss.kruskal(*groups).statistic)
        s2 = (float((ranks**2).sum()) - big_n * (big_n + 1) ** 2 / 4.0) / (big_n - 1)
        raw = 2.0 * ss.t.sf(diff / np.sqrt(s2 * (big_n - 1 - h) / (big_n - k) * inv), big_n - k)
    adj = adjust_pvalues(raw, settings.p_adjust)
    return p, [pr for pr, pv in zip(pairs, adj) if pv <= settings.posthoc_alpha], location


def _replicate_scores(matrix: list[dict], methods: list[str], picks: dict[str, list], settings,
                      paired: bool) -> np.ndarray:
    """Per-metric scores (metrics x variants) of one bootstrap replicate (score rule of
    :mod:`~balancebench.stats.ranking`)."""
    k_all = len(methods)
    out = np.empty((len(matrix), k_all))
    for row, entry in enumerate(matrix):
        values = entry["values"]
        groups, testable = [], []
        for idx, m in enumerate(methods):
            have = values.get(m, {})
            if paired:
                g = np.array([have.get(s, np.nan) for s in picks[m]], dtype=float)
            else:
                g = np.array([have[s] for s in picks[m] if s in have], dtype=float)
            if np.isfinite(g).sum() >= settings.min_valid_runs:
                groups.append(g)
                testable.append(idx)
        score = np.full(k_all, float(k_all))
        if paired and len(testable) >= 2:
            x = np.column_stack(groups)
            keep = np.isfinite(x).all(axis=1)
            groups = [col[keep] for col in x.T]
            if keep.sum() < 2:
                testable = []
        if len(testable) >= 2:
            _, rejected, location = _decisions(groups, settings, paired)
            beaten = np.zeros(len(testable))
            for i, j in rejected:
                if location[i] == location[j]:
                    continue
                i_better = (location[i] > location[j]) if entry["higher"] else (location[i] < location[j])
                beaten[j if i_better else i] += 1
            score[testable] = 1.0 + beaten
        elif len(testable) == 1:
            score[testable] = 1.0
        out[row] = score
    return out


def _total_ranks(scores: np.ndarray, weights: list[float]) -> np.ndarray:
    """Competition ranks of the weighted total of one replicate's scores (metrics x variants)."""
    total = np.zeros(scores.shape[1])
    for w, score in zip(weights, scores):
        total += w * score
    total = np.round(total, 9)
    return ss.rankdata(total, method="min").astype(int)


def _replicate_ranks(matrix: list[dict], methods: list[str], picks: dict[str, list], settings,
                     paired: bool) -> np.ndarray:
    """Competition ranks of one bootstrap replicate (score rule of :mod:`~balancebench.stats.ranking`)."""
    return _total_ranks(_replicate_scores(matrix, methods, picks, settings, paired), [e["weight"] for e in matrix])


def bootstrap_scores(evaluation, replicates: int | None = None, seed: int | None = None
                     ) -> tuple[list[str], np.ndarray]:
    """(metric names, per-metric scores of every replicate: replicates x metrics x variants in table order).

    The resampling of :func:`rank_stability`: the same seed gives the same replicates, so the total's and the
    concerns' stability (balancebench.stats.concerns) are read from the same resampled tables.
    """
    settings = evaluation.settings
    replicates = settings.bootstrap_replicates if replicates is None else int(replicates)
    seed = settings.bootstrap_seed if seed is None else int(seed)
    if replicates < 1:
        raise ValueError("rank stability needs at least one bootstrap replicate (stats.bootstrap.replicates)")
    paired = settings.design == "blocked"
    rng = np.random.default_rng(seed)
    methods = list(evaluation.table.methods)
    runs = evaluation.table.runs
    seeds = {m: list(runs.loc[runs["method"] == m, "seed"]) for m in methods}
    matrix = _tested_matrix(evaluation)
    scores = np.empty((replicates, len(matrix), len(methods)))
    for b in range(replicates):
        scores[b] = _replicate_scores(matrix, methods, _draw(seeds, rng, paired), settings, paired)
    return [e["metric"] for e in matrix], scores


def _draw(seeds: dict[str, list], rng: np.random.Generator, paired: bool) -> dict[str, list]:
    if paired:
        common = sorted(set.intersection(*(set(s) for s in seeds.values())), key=str)
        draw = rng.integers(0, len(common), len(common))
        return {m: [common[i] for i in draw] for m in seeds}
    return {m: [s[i] for i in rng.integers(0, len(s), len(s))] for m, s in seeds.items()}


def rank_stability(evaluation, replicates: int | None = None, seed: int | None = None,
                   boot: tuple[list[str], np.ndarray] | None = None) -> pd.DataFrame:
    """Per variant: observed rank, p_same_rank, p_rank_or_better, mean_rank, rank_q05, rank_q95, p_same_ordering.

    Each replicate re-decides every metric from the resampled tested values (failed runs keep the worst value
    of the observed table) with the scheme's tests, scores and weights. ``boot``: the replicates'
    scores of :func:`bootstrap_scores` with the same replicates and seed (computed here when not given).
    """
    settings = evaluation.settings
    replicates = settings.bootstrap_replicates if replicates is None else int(replicates)
    seed = settings.bootstrap_seed if seed is None else int(seed)
    names, scores = boot if boot is not None else bootstrap_scores(evaluation, replicates, seed)
    methods = list(evaluation.table.methods)
    weights = [settings.weight(m) for m in names]
    observed = evaluation.ranking["rank"].reindex(methods).to_numpy()
    ranks = np.array([_total_ranks(s, weights) for s in scores], dtype=int).reshape(len(scores), len(methods))
    same_ordering = float(np.mean([np.array_equal(r, observed) for r in ranks]))
    frame = pd.DataFrame({
        "method": methods, "rank": observed,
        "p_same_rank": (ranks == observed).mean(axis=0),
        "p_rank_or_better": (ranks <= observed).mean(axis=0),
        "mean_rank": ranks.mean(axis=0),
        "rank_q05": np.quantile(ranks, 0.05, axis=0, method="lower"),
        "rank_q95": np.quantile(ranks, 0.95, axis=0, method="higher"),
        "p_same_ranks": same_ordering,
        "replicates": replicates, "seed": seed,
    })
    order = np.lexsort((np.arange(len(methods)), observed))
    return frame.iloc[order].reset_index(drop=True)


def efficiency_factor(test: str) -> float:
    """Inverse asymptotic relative efficiency of ``test`` against the t test under normality."""
    if test == "tukey":
        return 1.0
    if test in ("dunn", "conover"):
        return math.pi / 3.0
    raise ValueError(f"no efficiency factor for test {test!r}")


def seeds_needed(effect: float, alpha_pair: float, power: float, paired: bool, factor: float = 1.0) -> float:
    """Seeds per variant to detect a standardized effect at two-sided level alpha_pair with the given power."""
    if not np.isfinite(effect):
        return 2.0
    if effect == 0.0:
        return math.inf
    z = ss.norm.ppf(1.0 - alpha_pair / 2.0) + ss.norm.ppf(power)
    n = factor * (1.0 if paired else 2.0) * z**2 / effect**2
    return float(max(2, math.ceil(n - 1e-9)))


def approximate_power(effect: float, n: int, alpha_pair: float, paired: bool, factor: float = 1.0) -> float:
    """Approximate power of one pair at n seeds per variant (the inverse of :func:`seeds_needed`)."""
    if not np.isfinite(effect):
        return 1.0
    n_eff = n / factor / (1.0 if paired else 2.0)
    return float(ss.norm.cdf(abs(effect) * math.sqrt(n_eff) - ss.norm.ppf(1.0 - alpha_pair / 2.0)))


def power_table(evaluation, metrics: set[str] | None = None) -> pd.DataFrame:
    """One row per pair of every tested metric: effect, verdict, seeds now, seeds needed, approximate power now.

    ``metrics``: only these metrics, weighted or not (the concerns' verdicts); default every weighted metric.
    """
    settings = evaluation.settings
    paired = settings.design == "blocked"
    data, table_metrics, directions = _metric_long(evaluation.table, settings.failures_as_metric)
    rejected = {(r.metric, r.group_a, r.group_b): bool(r.reject) for r in evaluation.posthoc.itertuples(index=False)}
    testable = evaluation.letters.set_index(["metric", "method"])["testable"] if len(evaluation.letters) else None
    rows = []
    for metric in table_metrics:
        if metrics is None and settings.weight(metric) == 0:
            continue  # reported-only metrics decide nothing in the total
        if metrics is not None and metric not in metrics:
            continue
        frame, _ = _tested_values(data[data["metric"] == metric], directions[metric], settings)
        methods = [m for m in evaluation.table.methods if testable is None or bool(testable.get((metric, m), False))]
        k = len(methods)
        if k < 2:
            continue
        m_pairs = k * (k - 1) / 2
        alpha_pair = settings.posthoc_alpha / m_pairs
        factor = (math.pi * (k + 1) / (3.0 * k)) if paired else efficiency_factor(settings.posthoc)
        by = {m: frame[frame["method"] == m].set_index("seed")["tested"] for m in methods}
        for i, a in enumerate(methods):
            for b in methods[i + 1:]:
                if paired:
                    joined = pd.concat([by[a], by[b]], axis=1, join="inner").to_numpy(dtype=float)
                    diff = joined[:, 1] - joined[:, 0]
                    n_now = len(diff)
                    mean, sd = (float(diff.mean()), float(diff.std(ddof=1))) if n_now > 1 else (0.0, 0.0)
                else:
                    xa, xb = by[a].to_numpy(dtype=float), by[b].to_numpy(dtype=float)
                    n_now = int(min(xa.size, xb.size))
                    mean = float(xb.mean() - xa.mean())
                    dof = xa.size + xb.size - 2
                    sd = math.sqrt(((xa.size - 1) * xa.var(ddof=1) + (xb.size - 1) * xb.var(ddof=1)) / dof) \
                        if dof > 0 and xa.size > 1 and xb.size > 1 else 0.0
                if sd > 0:
                    effect = abs(mean) / sd
                else:
                    effect = math.inf if mean != 0 else 0.0
                rows.append({
                    "metric": metric, "group_a": a, "group_b": b, "effect": effect,
                    "reject": rejected.get((metric, a, b), False), "n_now": n_now,
                    "seeds_needed": seeds_needed(effect, alpha_pair, settings.power_target, paired, factor),
                    "power_now": approximate_power(effect, n_now, alpha_pair, paired, factor) if effect else alpha_pair,
                    "alpha_pair": alpha_pair, "power_target": settings.power_target,
                })
    return pd.DataFrame(rows, columns=["metric", "group_a", "group_b", "effect", "reject", "n_now", "seeds_needed",
                                       "power_now", "alpha_pair", "power_target"])
