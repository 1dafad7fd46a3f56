"""Kruskal-Wallis and the pairwise post-hoc tests (Tukey HSD, Dunn, Conover-Iman).

Every function takes ``groups``: an ordered mapping method -> 1-D array of the
tested values of that method's *valid* runs. Failed runs are removed before
this point (``balancebench.stats.scheme``); a NaN reaching these functions is a
bug and raises, because scipy's ``tukey_hsd`` and statsmodels turn one NaN into
all-NaN / never-reject without a word (REFERENCES.md sec. 3).

Pairs are always returned in the order of ``groups`` (a before b for a listed
before b) with ``mean_diff = mean(b) - mean(a)`` (R's ``TukeyHSD`` "b-a" and the
seed paper's Table 2); results of the libraries are aligned by group name,
never by position.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scikit_posthocs as sp
import scipy.stats as ss

POSTHOCS = ("tukey", "dunn", "conover")
P_ADJUST = ("holm", "bonferroni", "fdr_bh")


class StatsError(ValueError):
    """A statistical test cannot be computed on the given groups."""


@dataclass(frozen=True)
class KruskalResult:
    """H = (12 / (N (N+1)) sum_i R_i^2 / n_i - 3 (N+1)) / C, C = 1 - sum(t^3 - t) / (N^3 - N); df = k - 1."""

    statistic: float
    df: int
    pvalue: float
    note: str = ""


@dataclass(frozen=True)
class PairwiseResult:
    """One post-hoc test of one metric.

    ``pairs``: group_a, group_b, mean_a, mean_b, mean_diff (= mean_b - mean_a), pvalue
    (adjusted for the k (k-1) / 2 comparisons). ``location``: the per-group
    quantity that says which group of a rejected pair is larger: the mean for
    Tukey HSD, the mean rank (of the pooled sample) for the rank tests.
    """

    method: str
    pairs: pd.DataFrame
    location: dict[str, float]
    location_name: str


def _check_groups(groups: Mapping[str, np.ndarray], need: int = 2) -> dict[str, np.ndarray]:
    arrays = {str(name): np.asarray(vals, dtype=float).ravel() for name, vals in groups.items()}
    if len(arrays) < need:
        raise StatsError(f"need at least {need} groups, got {len(arrays)}")
    for name, vals in arrays.items():
        if vals.size == 0:
            raise StatsError(f"group {name!r} is empty")
        if not np.all(np.isfinite(vals)):
            raise StatsError(f"group {name!r} contains NaN or infinite values; remove failed runs before testing")
    return arrays


def kruskal_wallis(groups: Mapping[str, np.ndarray]) -> KruskalResult:
    """Tie-corrected Kruskal-Wallis H test (``scipy.stats.kruskal``), chi-squared p-value with k - 1 df.

    If every value of every group is identical the statistic is undefined
    (0/0 in the tie correction); this is reported as H = 0, p = 1 with a note,
    not as NaN.
    """
    arrays = _check_groups(groups)
    pooled = np.concatenate(list(arrays.values()))
    df = len(arrays) - 1
    if np.all(pooled == pooled[0]):
        return KruskalResult(0.0, df, 1.0, "all values identical: no difference to test")
    result = ss.kruskal(*arrays.values())
    return KruskalResult(float(result.statistic), df, float(result.pvalue))


def _pair_frame(arrays: dict[str, np.ndarray], pvalue) -> pd.DataFrame:
    rows = []
    for a, b in itertools.combinations(arrays, 2):
        mean_a, mean_b = float(arrays[a].mean()), float(arrays[b].mean())
        rows.append({"group_a": a, "group_b": b, "mean_a": mean_a, "mean_b": mean_b,
                     "mean_diff": mean_b - mean_a, "pvalue": float(pvalue(a, b))})
    frame = pd.DataFrame(rows)
    if frame["pvalue"].isna().any():
        bad = frame.loc[frame["pvalue"].isna(), ["group_a", "group_b"]].values.tolist()
        raise StatsError(f"post-hoc p-value is NaN for pair(s) {bad}")
    return frame


def tukey_hsd(groups: Mapping[str, np.ndarray]) -> PairwiseResult:
    """Tukey-Kramer HSD (``scipy.stats.tukey_hsd``): q = |mean_a - mean_b| / sqrt(MSE / 2 (1/n_a + 1/n_b)).

    p from the studentized range distribution with k groups and N - k df. If the
    pooled within-group variance MSE is 0 the statistic is 0/0 or x/0: pairs
    with equal means get p = 1 and pairs with different means p = 0 (any
    difference is infinitely many standard errors), instead of scipy's NaN.
    """
    arrays = _check_groups(groups)
    names = list(arrays)
    n_total = sum(v.size for v in arrays.values())
    if n_total - len(arrays) < 1:
        raise StatsError("Tukey HSD needs more observations than groups (N - k >= 1 error degrees of freedom)")
    within = sum(float(((v - v.mean()) ** 2).sum()) for v in arrays.values())
    if within == 0.0:
        def pvalue(a, b):
            return 1.0 if arrays[a].mean() == arrays[b].mean() else 0.0
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            matrix = ss.tukey_hsd(*arrays.values()).pvalue
        index = {name: i for i, name in enumerate(names)}

        def pvalue(a, b):
            return matrix[index[a], index[b]]
    location = {name: float(v.mean()) for name, v in arrays.items()}
    return PairwiseResult("tukey", _pair_frame(arrays, pvalue), location, "mean")


def adjust_pvalues(pvalues, method: str = "holm") -> np.ndarray:
    """Multiplicity-adjusted p-values of m tests (same results as ``statsmodels`` ``multipletests``).

    holm: p_(i) -> max_{j <= i} min(1, (m - j + 1) p_(j)) over the ascending p_(1..m);
    bonferroni: min(1, m p); fdr_bh: min_{j >= i} min(1, m p_(j) / j).
    (statsmodels' multipletests runs a full garbage collection on every call,
    84 ms each here: it was 70 % of the stage's time.)
    """
    p = np.asarray(pvalues, dtype=float)
    m = p.size
    if m == 0:
        return p
    if method == "bonferroni":
        return np.minimum(1.0, m * p)
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if method == "holm":
        adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * ranked))
    elif method == "fdr_bh":
        adjusted = np.minimum(1.0, np.minimum.accumulate((m / np.arange(1, m + 1) * ranked)[::-1])[::-1])
    else:
        raise StatsError(f"p_adjust {method!r} is not one of {', '.join(P_ADJUST)}")
    out = np.empty(m)
    out[order] = adjusted
    return out


def _rank_posthoc(groups: Mapping[str, np.ndarray], method: str, p_adjust: str) -> PairwiseResult:
    if p_adjust not in P_ADJUST:
        raise StatsError(f"p_adjust {p_adjust!r} is not one of {', '.join(P_ADJUST)}")
    arrays = _check_groups(groups)
    frame = pd.DataFrame({"value": np.concatenate(list(arrays.values())),
                          "group": np.repeat(list(arrays), [v.size for v in arrays.values()])})
    test = {"dunn": sp.posthoc_dunn, "conover": sp.posthoc_conover}[method]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        matrix = test(frame, val_col="value", group_col="group", p_adjust=None)
    ranks = ss.rankdata(frame["value"].to_numpy())
    location = {name: float(ranks[(frame["group"] == name).to_numpy()].mean()) for name in arrays}
    pairs = list(itertools.combinations(arrays, 2))
    within = sum(float(np.var(ranks[(frame["group"] == name).to_numpy()])) for name in arrays)
    if np.ptp(frame["value"].to_numpy()) == 0.0:
        adjusted = dict.fromkeys(pairs, 1.0)  # all values tied: both statistics are 0/0; no pair differs
    elif method == "conover" and within == 0.0:
        # every group's values tied within the group (e.g. a variant whose every run failed, scored as the
        # worst value): H = N - 1 and the Conover-Iman denominator is 0. Mean ranks that differ are then
        # infinitely many standard errors apart (p = 0), equal ones not at all (p = 1), as for Tukey HSD.
        adjusted = {(a, b): (1.0 if location[a] == location[b] else 0.0) for a, b in pairs}
    else:
        adjusted = dict(zip(pairs, adjust_pvalues([matrix.loc[a, b] for a, b in pairs], p_adjust)))
    return PairwiseResult(method, _pair_frame(arrays, lambda a, b: adjusted[(a, b)]), location, "mean rank")


def dunn(groups: Mapping[str, np.ndarray], p_adjust: str = "holm") -> PairwiseResult:
    """Dunn's test on the pooled ranks: z = |Rbar_a - Rbar_b| / sqrt((N (N+1) / 12 - T) (1/n_a + 1/n_b)),

    T = sum(t^3 - t) / (12 (N - 1)) the tie correction; two-sided normal p (``scikit_posthocs.posthoc_dunn``),
    then :func:`adjust_pvalues` (Holm by default) over the k (k-1) / 2 pairs.
    """
    return _rank_posthoc(groups, "dunn", p_adjust)


def conover(groups: Mapping[str, np.ndarray], p_adjust: str = "holm") -> PairwiseResult:
    """Conover-Iman test: t = |Rbar_a - Rbar_b| / sqrt(S^2 (N - 1 - H) / (N - k) (1/n_a + 1/n_b)), N - k df,

    S^2 the variance of the pooled ranks and H the Kruskal-Wallis statistic (``scikit_posthocs.posthoc_conover``);
    then :func:`adjust_pvalues` (Holm by default).
    """
    return _rank_posthoc(groups, "conover", p_adjust)


def posthoc(groups: Mapping[str, np.ndarray], method: str, p_adjust: str = "holm") -> PairwiseResult:
    """Dispatch to :func:`tukey_hsd`, :func:`dunn` or :func:`conover`."""
    if method == "tukey":
        return tukey_hsd(groups)
    if method in ("dunn", "conover"):
        return _rank_posthoc(groups, method, p_adjust)
    raise StatsError(f"post-hoc {method!r} is not one of {', '.join(POSTHOCS)}")
