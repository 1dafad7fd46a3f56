"""The blocked (paired) design: Friedman's test and its post-hoc tests (Nemenyi, Conover).

When every variant is trained with the *same* seeds (``training.seed_design: paired``:
same initial weights, batch order and thermostat noise for seed s of every variant),
the runs of one seed form a block and the groups are not independent, which
Kruskal-Wallis assumes. The blocked analysis ranks the k variants *within* each of
the n blocks (seeds) and compares the rank sums.

``blocks``: a DataFrame, one row per block (seed), one column per group (variant),
no missing cell (:func:`complete_blocks` drops incomplete blocks first).

Friedman (R ``friedman.test``, ``scipy.stats.friedmanchisquare``, tie-corrected)::

    Q = (12 / (n k (k+1)) sum_j R_j^2 - 3 n (k+1)) / (1 - sum_blocks sum_ties (t^3 - t) / (n k (k^2 - 1)))

with R_j the rank sum of group j; chi-squared with k - 1 df.

Nemenyi (Demsar 2006): q = |Rbar_i - Rbar_j| / sqrt(k (k+1) / (6 n)), p from the studentized
range with k groups and infinite df at q sqrt(2) (``scikit_posthocs.posthoc_nemenyi_friedman``;
already adjusted for the k (k-1) / 2 comparisons).

Conover (1999) for blocked ranks: t = |R_i - R_j| / sqrt(2 (n A - sum_j R_j^2) / ((n-1)(k-1))),
A = sum of the squared within-block ranks, Student t with (n-1)(k-1) df
(``scikit_posthocs.posthoc_conover_friedman``), then Holm (``p_adjust``).
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import scikit_posthocs as sp
import scipy.stats as ss

from balancebench.stats.hypothesis import (
    P_ADJUST,
    KruskalResult,
    PairwiseResult,
    StatsError,
    _pair_frame,
    adjust_pvalues,
)

BLOCKED_POSTHOCS = ("nemenyi", "conover")


def complete_blocks(values: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Keep the blocks (rows) with a finite value for every group; return (blocks, dropped block labels)."""
    ok = np.isfinite(values.to_numpy(dtype=float)).all(axis=1)
    return values[ok].astype(float), [str(b) for b in values.index[~ok]]


def _check_blocks(blocks: pd.DataFrame) -> np.ndarray:
    x = np.asarray(blocks.to_numpy(dtype=float))
    if x.ndim != 2 or x.shape[1] < 2:
        raise StatsError(f"the blocked design needs at least 2 groups, got {x.shape[1] if x.ndim == 2 else 0}")
    if x.shape[0] < 2:
        raise StatsError(f"the blocked design needs at least 2 complete blocks (seeds), got {x.shape[0]}")
    if not np.all(np.isfinite(x)):
        raise StatsError("blocks contain NaN or infinite values; keep only complete blocks (complete_blocks)")
    return x


def _within_ranks(x: np.ndarray) -> np.ndarray:
    return np.apply_along_axis(ss.rankdata, 1, x)


def friedman(blocks: pd.DataFrame) -> KruskalResult:
    """Tie-corrected Friedman test over the complete blocks (rows) of ``blocks``.

    If every block is tied throughout (no within-block ordering at all) Q is 0/0:
    reported as Q = 0, p = 1 with a note, never NaN.
    """
    x = _check_blocks(blocks)
    df = x.shape[1] - 1
    if all(np.ptp(row) == 0.0 for row in x):
        return KruskalResult(0.0, df, 1.0, "every block tied: no within-block difference to test")
    if x.shape[1] == 2:  # scipy wants k >= 3: the formula above, tie-corrected, chi-squared with 1 df
        n, k = x.shape
        ranks = _within_ranks(x)
        ties = sum(float((c**3 - c).sum()) for c in (np.unique(row, return_counts=True)[1] for row in x))
        q = (12.0 / (n * k * (k + 1)) * float((ranks.sum(axis=0) ** 2).sum()) - 3.0 * n * (k + 1))
        q /= 1.0 - ties / (n * k * (k * k - 1))
        return KruskalResult(float(q), df, float(ss.chi2.sf(q, df)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = ss.friedmanchisquare(*x.T)
    return KruskalResult(float(result.statistic), df, float(result.pvalue))


def blocked_posthoc(blocks: pd.DataFrame, method: str = "conover", p_adjust: str = "holm") -> PairwiseResult:
    """Nemenyi or Conover pairwise tests on the within-block ranks; location = mean within-block rank."""
    if method not in BLOCKED_POSTHOCS:
        raise StatsError(f"blocked post-hoc {method!r} is not one of {', '.join(BLOCKED_POSTHOCS)}")
    if p_adjust not in P_ADJUST:
        raise StatsError(f"p_adjust {p_adjust!r} is not one of {', '.join(P_ADJUST)}")
    x = _check_blocks(blocks)
    names = [str(c) for c in blocks.columns]
    ranks = _within_ranks(x)
    location = {name: float(ranks[:, j].mean()) for j, name in enumerate(names)}
    arrays = {name: x[:, j] for j, name in enumerate(names)}
    pairs = list(itertools.combinations(names, 2))
    index = {name: j for j, name in enumerate(names)}
    n, k = x.shape
    no_spread = all(np.ptp(row) == 0.0 for row in x)
    # Conover's denominator n A - sum R_j^2 is 0 when every block ranks the groups identically
    perfect = float(n * (ranks**2).sum() - (ranks.sum(axis=0) ** 2).sum()) <= 1e-9 * max(1.0, n * (ranks**2).sum())
    if no_spread:
        adjusted = dict.fromkeys(pairs, 1.0)
    elif method == "conover" and perfect:
        adjusted = {(a, b): (1.0 if location[a] == location[b] else 0.0) for a, b in pairs}
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            if method == "nemenyi":
                matrix = np.asarray(sp.posthoc_nemenyi_friedman(x), dtype=float)
                adjusted = {(a, b): float(min(1.0, matrix[index[a], index[b]])) for a, b in pairs}
            else:
                matrix = np.asarray(sp.posthoc_conover_friedman(x, p_adjust=None), dtype=float)
                raw = [matrix[index[a], index[b]] for a, b in pairs]
                adjusted = dict(zip(pairs, adjust_pvalues(raw, p_adjust)))
    return PairwiseResult(method, _pair_frame(arrays, lambda a, b: adjusted[(a, b)]), location, "mean block rank")
