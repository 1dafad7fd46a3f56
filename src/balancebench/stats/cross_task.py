"""The cross-task verdict: does any method win across application boundaries (seed 000's conclusion)?

Each run of a multi-task config (a task, or a PINN problem) ranks its variants with the evaluation scheme
(``stats/ranking.csv``: the paper's weighted total of scores, lower is better). Across runs the question is
Demsar's (2006) comparison of k methods over N data sets: every run is a *block*, the methods that ran in
every run are the *treatments* (matched by variant name; a method missing from one run is left out and
listed), and the value of a method in a block is its rank by the run's total among those methods (average
ranks for ties).

* Friedman's test (:func:`balancebench.stats.blocked.friedman`, tie-corrected) on the N x k ranks;
* Nemenyi's post-hoc test (or Conover's), the mean rank R_j of each method, and the critical difference
  of the Nemenyi test (Demsar 2006, Eq. in sec. 3.2.2)::

      CD = q_alpha / sqrt(2) * sqrt(k (k + 1) / (6 N))

  with q_alpha the studentized range quantile for k groups and infinite df (k = 4, alpha = 0.05:
  q_alpha / sqrt(2) = 2.569); two methods whose mean ranks differ by less than CD are not told apart;
* a sentence: which method has the best mean rank, and whether it is distinguishable from the others.

With N blocks the smallest Friedman p-value is bounded below (N = 2, k = 2: p >= 0.157): a verdict
over two or three runs can only say "not shown", which the sentence says.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import scipy.stats as ss

from balancebench.stats.blocked import BLOCKED_POSTHOCS, blocked_posthoc, friedman
from balancebench.stats.hypothesis import StatsError
from balancebench.stats.robustness import _q_critical  # the studentized range quantile (cached)

TOTAL = "total"  # the column of ranking.csv the blocks rank (lower is better)


def cross_task_blocks(rankings: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """(blocks, left out): ``blocks`` has one row per run and one column per method present in every run,
    the method's rank within the run by its total (1 = best, average ranks for ties); ``left out`` maps each
    method missing from some run to the runs that lack it."""
    if len(rankings) < 2:
        raise StatsError(f"the cross-task verdict needs at least 2 runs, got {len(rankings)}")
    methods_of = {}
    for run, table in rankings.items():
        missing = {"method", TOTAL} - set(table.columns)
        if missing:
            raise StatsError(f"ranking of run {run!r} lacks the columns {sorted(missing)}")
        methods_of[run] = [str(m) for m in table["method"]]
    everywhere = [m for m in methods_of[next(iter(rankings))] if all(m in ms for ms in methods_of.values())]
    somewhere = {m for ms in methods_of.values() for m in ms}
    left_out = {m: [run for run, ms in methods_of.items() if m not in ms] for m in somewhere - set(everywhere)}
    if len(everywhere) < 2:
        raise StatsError(f"fewer than 2 methods ran in every run ({everywhere}); methods are matched by variant name")
    rows = {}
    for run, table in rankings.items():
        totals = table.set_index(table["method"].astype(str))[TOTAL].astype(float).reindex(everywhere)
        if not np.all(np.isfinite(totals.to_numpy())):
            raise StatsError(f"run {run!r} has a non-finite total for {list(totals[~np.isfinite(totals)].index)}")
        rows[run] = ss.rankdata(totals.to_numpy())
    blocks = pd.DataFrame.from_dict(rows, orient="index", columns=everywhere)
    blocks.index.name = "run"
    return blocks, dict(sorted(left_out.items()))


def critical_difference(k: int, n: int, alpha: float = 0.05) -> float:
    """Nemenyi's critical difference of mean ranks for k methods over n blocks (Demsar 2006)."""
    if k < 2 or n < 1:
        raise StatsError(f"the critical difference needs k >= 2 methods and n >= 1 blocks, got k={k}, n={n}")
    q = _q_critical(alpha, k, math.inf) / math.sqrt(2.0)
    return q * math.sqrt(k * (k + 1) / (6.0 * n))


def cross_task_verdict(rankings: dict[str, pd.DataFrame], alpha: float = 0.05, posthoc: str = "nemenyi") -> dict:
    """Friedman over runs as blocks, the post-hoc test, mean ranks, the critical difference and a sentence.

    Returns {"blocks", "mean_ranks", "friedman", "posthoc", "critical_difference", "left_out", "sentence"}.
    """
    if posthoc not in BLOCKED_POSTHOCS:
        raise StatsError(f"cross-task post-hoc {posthoc!r} is not one of {', '.join(BLOCKED_POSTHOCS)}")
    blocks, left_out = cross_task_blocks(rankings)
    n, k = blocks.shape
    test = friedman(blocks)
    pairs = blocked_posthoc(blocks, posthoc).pairs
    cd = critical_difference(k, n, alpha)
    mean = blocks.mean(axis=0).sort_values(kind="stable")
    best = str(mean.index[0])
    tied_with_best = []
    for other in mean.index[1:]:
        row = pairs[((pairs["group_a"] == best) & (pairs["group_b"] == other))
                    | ((pairs["group_a"] == other) & (pairs["group_b"] == best))]
        if test.pvalue >= alpha or float(row["pvalue"].iloc[0]) >= alpha:
            tied_with_best.append(str(other))
    mean_ranks = pd.DataFrame({"method": mean.index, "mean_rank": mean.to_numpy(),
                               "runs": n, "within_cd_of_best": (mean - mean.iloc[0]).to_numpy() < cd})
    label = {"nemenyi": "Nemenyi", "conover": "Conover"}[posthoc]
    if test.pvalue >= alpha:
        sentence = (f"No method wins across the {n} runs ({', '.join(blocks.index)}): Friedman over the {k} methods "
                    f"that ran in all of them gives p = {test.pvalue:.3g} >= {alpha:g}; {best} has the best mean rank "
                    f"({mean.iloc[0]:.2f} of {k}) but is not shown better than the others.")
    elif not tied_with_best:
        sentence = (f"{best} wins across the {n} runs: Friedman p = {test.pvalue:.3g}, and {label} finds it better than "
                    f"each of the other {k - 1} methods at alpha = {alpha:g} (mean rank {mean.iloc[0]:.2f}).")
    else:
        sentence = (f"The methods differ across the {n} runs (Friedman p = {test.pvalue:.3g}), but no single one wins: "
                    f"{best} has the best mean rank ({mean.iloc[0]:.2f}) and {label} does not tell it apart from "
                    f"{', '.join(tied_with_best)} at alpha = {alpha:g}.")
    if left_out:
        sentence += f" Left out (not in every run): {', '.join(left_out)}."
    friedman_row = pd.DataFrame([{"test": "friedman", "statistic": test.statistic, "df": test.df, "p": test.pvalue,
                                  "blocks": n, "methods": k, "alpha": alpha, "posthoc": posthoc,
                                  "critical_difference": cd, "note": test.note or ""}])
    return {"blocks": blocks, "mean_ranks": mean_ranks, "friedman": friedman_row, "posthoc": pairs,
            "critical_difference": cd, "left_out": left_out, "sentence": sentence}


def summary_markdown(verdict: dict) -> str:
    blocks, means = verdict["blocks"], verdict["mean_ranks"]
    f = verdict["friedman"].iloc[0]
    lines = ["# Across tasks: one verdict over every run", "", verdict["sentence"], "",
             f"Friedman: Q = {f['statistic']:.3f}, df = {int(f['df'])}, p = {f['p']:.3g} over {int(f['blocks'])} runs "
             f"(blocks) and {int(f['methods'])} methods; {f['posthoc']} critical difference of mean ranks "
             f"{verdict['critical_difference']:.2f} at alpha = {f['alpha']:g}.", "",
             "| method | mean rank | within CD of the best |", "|---|---|---|"]
    lines += [f"| {r.method} | {r.mean_rank:.2f} | {'yes' if r.within_cd_of_best else 'no'} |"
              for r in means.itertuples(index=False)]
    lines += ["", "Ranks within each run (by the run's total, among these methods):", "",
              "| run | " + " | ".join(blocks.columns) + " |", "|---" * (len(blocks.columns) + 1) + "|"]
    lines += [f"| {run} | " + " | ".join(f"{v:g}" for v in row) + " |" for run, row in blocks.iterrows()]
    if verdict["left_out"]:
        lines += ["", "Left out: " + "; ".join(f"{m} (missing in {', '.join(runs)})"
                                              for m, runs in verdict["left_out"].items())]
    return "\n".join(lines) + "\n"


def plot_critical_difference(path, verdict: dict) -> None:
    """Demsar's critical-difference diagram: methods on the mean-rank axis (1 = best at the left), a bar of
    length CD, and thick lines joining methods whose mean ranks are within CD of each other."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    means = verdict["mean_ranks"].set_index("method")["mean_rank"]
    k, cd = len(means), verdict["critical_difference"]
    fig, ax = plt.subplots(figsize=(8, 1.6 + 0.32 * k))
    ax.set_xlim(0.5, k + 2.0)
    ax.set_ylim(-(k + 0.8), 2)
    ax.hlines(0, 1, k, color="black", lw=1)
    for r in range(1, k + 1):
        ax.vlines(r, -0.15, 0.15, color="black", lw=1)
        ax.text(r, 0.35, str(r), ha="center", fontsize=8)
    ax.hlines(1.3, 1, min(k, 1 + cd), color="tab:red", lw=2)
    ax.text(1, 1.55, f"CD = {cd:.2f}", fontsize=8, color="tab:red")
    for i, (method, rank) in enumerate(means.items()):
        y = -(i + 1)
        ax.plot([rank, rank, k + 0.3], [0, y, y], color="0.4", lw=0.8)
        ax.plot([rank], [0], "o", color="black", ms=3)
        ax.text(k + 0.35, y, f"{method} ({rank:.2f})", va="center", ha="left", fontsize=8)
    # cliques: maximal runs of consecutive methods (by mean rank) within CD of each other
    values, drawn, level = means.to_numpy(), [], 0
    for i in range(k):
        j = i
        while j + 1 < k and values[j + 1] - values[i] < cd:
            j += 1
        if j > i and not any(a <= i and j <= b for a, b in drawn):
            drawn.append((i, j))
            ax.hlines(-0.45 - 0.25 * level, values[i] - 0.05, values[j] + 0.05, color="black", lw=3)
            level += 1
    ax.axis("off")
    f = verdict["friedman"].iloc[0]
    ax.set_title(f"Mean rank across {int(f['blocks'])} runs (Friedman p = {f['p']:.3g}); joined: within CD",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
