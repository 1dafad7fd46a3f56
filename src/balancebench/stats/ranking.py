"""From pairwise decisions to scores, a ranking and a compact letter display.

Score rule (docs/statistics.md), per metric m and method i::

    score_m(i) = 1 + #{ j : j is significantly better than i on m }

so statistically equivalent methods share a score, 1 is best, and the
non-transitive case A ~ B, B ~ C, A better than C gives A = 1, B = 1, C = 2.
A method that cannot be tested on m (too few valid runs) gets the worst score,
k (the number of methods). The total is sum_m w_m score_m(i) with metric
weights w_m (default 1); methods are ranked by total, lower is better, equal
totals share a rank (competition ranking 1, 2, 2, 4).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_TIE_DECIMALS = 9


def metric_scores(methods: Sequence[str], better: Iterable[tuple[str, str]],
                  untestable: Iterable[str] = ()) -> dict[str, int]:
    """Scores of one metric from the (winner, loser) pairs of significant differences.

    score(i) = 1 + number of winners over i; an untestable method scores len(methods).
    """
    untestable = set(untestable)
    unknown = untestable - set(methods)
    if unknown:
        raise ValueError(f"untestable methods not in the method list: {sorted(unknown)}")
    beaten_by = {m: set() for m in methods}
    for winner, loser in better:
        if winner not in beaten_by or loser not in beaten_by:
            raise ValueError(f"pair ({winner}, {loser}) names a method not in {list(methods)}")
        if winner in untestable or loser in untestable:
            raise ValueError(f"pair ({winner}, {loser}) involves an untestable method")
        beaten_by[loser].add(winner)
    return {m: (len(methods) if m in untestable else 1 + len(beaten_by[m])) for m in methods}


def rank_methods(scores: pd.DataFrame, weights: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Weighted totals and competition ranks.

    ``scores``: index = methods (in display order), columns = metrics. Returns
    a frame with the scores, ``total`` = sum_m w_m score_m and ``rank`` (1 =
    best; equal totals, compared after rounding to 1e-9, share the smaller
    rank), sorted by rank and then by the input order.
    """
    weights = dict(weights or {})
    unknown = sorted(set(weights) - set(scores.columns))
    if unknown:
        raise ValueError(f"metric weight(s) for metric(s) not in the table: {', '.join(unknown)} "
                         f"(metrics: {', '.join(scores.columns)})")
    negative = sorted(m for m, w in weights.items() if not (np.isfinite(w) and w >= 0))
    if negative:
        raise ValueError(f"metric weights must be finite and >= 0: {', '.join(negative)}")
    w = np.array([float(weights.get(m, 1.0)) for m in scores.columns])
    table = scores.copy()
    table["total"] = np.round(scores.to_numpy(dtype=float) @ w, _TIE_DECIMALS)
    table["rank"] = table["total"].rank(method="min").astype(int)
    order = np.lexsort((np.arange(len(table)), table["rank"].to_numpy()))
    return table.iloc[order]


def ordering_text(ranked: pd.DataFrame) -> str:
    """The final ordering, e.g. ``A > B = C > D`` (``>`` better than, ``=`` tied total)."""
    parts: list[str] = []
    previous = None
    for method, rank in zip(ranked.index, ranked["rank"]):
        if previous is not None:
            parts.append("=" if rank == previous else ">")
        parts.append(str(method))
        previous = rank
    return " ".join(parts)


def compact_letter_display(order: Sequence[str], different: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Piepho (2004) insert-absorb with a sweep: letters such that two methods share a letter
    if and only if they are *not* significantly different.

    ``order``: methods best first (letter ``a`` goes to the column holding the
    best method); ``different``: the significantly different pairs.

    Insert: start with one column holding every method; for each different pair
    (i, j), every column holding both is split into a copy without i and a copy
    without j. Absorb: drop a column contained in another. Sweep: remove a
    method from a column when every equivalence it expresses there is expressed
    by another column, then absorb again. Columns are lettered by their best member.
    """
    order = list(order)
    position = {m: i for i, m in enumerate(order)}
    pairs = []
    for a, b in different:
        if a not in position or b not in position:
            raise ValueError(f"pair ({a}, {b}) names a method not in {order}")
        if a != b:
            pairs.append(tuple(sorted((position[a], position[b]))))
    pairs = sorted(set(pairs))
    columns: list[frozenset[int]] = [frozenset(range(len(order)))] if order else []
    for i, j in pairs:
        new: list[frozenset[int]] = []
        for col in columns:
            if i in col and j in col:
                new.extend([col - {i}, col - {j}])
            else:
                new.append(col)
        columns = _absorb(new)
    columns = _sweep(columns)
    columns.sort(key=lambda c: (min(c), sorted(c)))
    if len(columns) > len(_LETTERS):
        raise ValueError(f"{len(columns)} letter groups needed; only {len(_LETTERS)} letters available")
    return {m: "".join(_LETTERS[k] for k, col in enumerate(columns) if position[m] in col) for m in order}


def _absorb(columns: list[frozenset[int]]) -> list[frozenset[int]]:
    unique = sorted(set(c for c in columns if c), key=lambda c: (-len(c), sorted(c)))
    kept: list[frozenset[int]] = []
    for col in unique:
        if not any(col <= other for other in kept):
            kept.append(col)
    return kept


def _sweep(columns: list[frozenset[int]]) -> list[frozenset[int]]:
    columns = list(columns)
    for k in range(len(columns)):
        for member in sorted(columns[k]):
            col = columns[k]
            others = [c for idx, c in enumerate(columns) if idx != k]
            # every partner of `member` in this column must share another column with it
            if all(any(member in c and partner in c for c in others) for partner in col if partner != member):
                if len(col) > 1 or any(member in c for c in others):
                    columns[k] = col - {member}
    return _absorb(columns)
