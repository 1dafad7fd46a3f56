"""The claims table: which of the seed papers' claims hold on a task's results (issue 24; rule ``claims``).

A task declares the claims it checks (:attr:`balancebench.tasks.base.Task.claim_declarations`: names
``"module:function"`` of functions ``f(config) -> [Claim, ...]``); adding a claim is one such function. Each
:class:`Claim` names its source (the paper and where the number is), the claim in words, the paper's number,
the result files it reads (relative to the run's results directory: they are the rule's inputs) and a
``check(inputs) -> ClaimResult``. A claim whose experiment the run's config does not contain is declared with
``missing`` (status ``not run``, saying which); one whose code is not built yet with ``pending`` (status
``not built``), never with an invented number.

Per claim the table gives the paper's number, ours (mean and sample standard deviation over seeds, and n), the
test (a scipy.stats test, named) and its p, and a verdict:

* ``reproduced``: the test rejects, at ``ALPHA`` = 0.05 one-sided, the null hypothesis that the claim is false
  in the paper's direction;
* ``reversed``: the test in the opposite direction rejects (we measure the contrary of the claim);
* ``not reproduced``: neither (the difference the paper saw is not seen at this n; the sentence says when n is
  too small for the test to ever reject).

The helpers below are the tests the task declarations use: :func:`two_groups` (Mann-Whitney U, one-sided, on
independent seeds; scipy.stats.mannwhitneyu, exact for small samples), :func:`student_t` (Student's two-sample
t-test, one-sided, where a seed paper used it; scipy.stats.ttest_ind with equal variances), :func:`one_sample`
(Wilcoxon signed-rank of values against a fixed threshold; scipy.stats.wilcoxon) and :func:`trend` (Spearman's
rank correlation, one-sided; scipy.stats.spearmanr). :func:`verdict` turns the two one-sided p-values into the
verdict. A check whose runs failed (every training of a variant, or a search with no feasible candidate) raises
:class:`RunsFailed`: status ``failed`` with the reason, as any other exception of a check.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

ALPHA = 0.05
VERDICTS = ("reproduced", "not reproduced", "reversed")
CHECKED, NOT_RUN, NOT_BUILT, FAILED = "checked", "not run", "not built", "failed"
STATUSES = (CHECKED, NOT_RUN, NOT_BUILT, FAILED)
COLUMNS = ["claim", "source", "statement", "paper", "ours", "ours_mean", "ours_spread", "n", "test", "p",
           "verdict", "status", "why"]


@dataclass
class ClaimResult:
    """What a check measured: ``ours`` in words, its mean, spread (sample sd over seeds) and n, the test and its
    one-sided p (in the claim's direction), the verdict and one sentence why."""

    ours: str
    mean: float | None
    spread: float | None
    n: int
    test: str
    p: float | None
    verdict: str
    why: str

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")


@dataclass
class Claim:
    """One claim of a seed paper, checked on the run's results (see the module docstring)."""

    id: str
    source: str  # the paper and the place of the number, e.g. "seed 002, Table 1 (Multi-MNIST)"
    statement: str
    paper: str  # the paper's number in words
    check: Callable[[ClaimInputs], ClaimResult] | None = None
    inputs: tuple[str, ...] = ()  # result files it reads, relative to the results directory
    missing: str = ""  # the run has not the experiment: status "not run", this says which input
    pending: str = ""  # the claim's code is not built yet: status "not built", this says what is missing


class MissingInput(Exception):
    """A claim's input is absent or incomplete: the claim is ``not run`` and the message says which."""


class RunsFailed(Exception):
    """The claim's experiment ran but its runs failed (no completed training of a variant, a search that found no
    feasible candidate): the claim is ``failed`` and the message says which."""


@dataclass
class ClaimInputs:
    """The run's results directory and config, with readers that name a missing input."""

    results_dir: Path
    config: dict
    _cache: dict = field(default_factory=dict)

    def path(self, relative: str) -> Path:
        p = Path(self.results_dir) / relative
        if not p.exists():
            raise MissingInput(f"{relative} is missing from {self.results_dir}")
        return p

    def csv(self, relative: str) -> pd.DataFrame:
        if relative not in self._cache:
            from balancebench.fileio import read_csv

            self._cache[relative] = read_csv(self.path(relative))
        return self._cache[relative]

    def metric(self, variant: str, metric: str, failed_value: float | None = None) -> np.ndarray:
        """Per-seed values of ``metric`` for ``variant`` from ``metrics/metrics.csv`` (seed order). A row whose
        status is not ``completed`` is ``failed_value`` (e.g. inf for an error: a failed run ranks worst), or
        left out if that is None."""
        table = self.csv("metrics/metrics.csv")
        rows = table[(table["method"] == variant) & (table["metric"] == metric)].sort_values("seed")
        if rows.empty:
            raise MissingInput(f"metrics/metrics.csv has no {metric!r} rows of variant {variant!r}")
        done = rows["status"] == "completed"
        values = pd.to_numeric(rows["value"], errors="coerce").to_numpy(dtype=float)
        if failed_value is None:
            return values[done.to_numpy()]
        return np.where(done.to_numpy(), values, failed_value)


# -- declarations -----------------------------------------------------------------------------------------
def load_declarations(names, config: dict) -> list[Claim]:
    """The claims of the declaration functions ``names`` ("module:function"), in order."""
    claims: list[Claim] = []
    for name in names:
        module, _, attr = str(name).partition(":")
        if not attr:
            raise ValueError(f"a claim declaration is 'module:function', got {name!r}")
        made = getattr(importlib.import_module(module), attr)(config)
        claims.extend(made)
    ids = [c.id for c in claims]
    if len(set(ids)) != len(ids):
        raise ValueError(f"claim ids must be unique, got {ids}")
    return claims


def claim_inputs(claims: list[Claim]) -> list[str]:
    """Every result file the claims that will run read (relative to the results directory), once each, in order;
    a claim that is ``not run`` or ``not built`` reads nothing."""
    return list(dict.fromkeys(p for c in claims if not (c.missing or c.pending) for p in c.inputs))


# -- tests ---------------------------------------------------------------------------------------------------
def verdict(p_claim: float | None, p_reverse: float | None, alpha: float = ALPHA) -> str:
    """``reversed`` if the contrary is significant, else ``reproduced`` if the claim is, else ``not reproduced``
    (the contrary first: a result significant both ways, as a non-inferiority margin allows, does not match)."""
    if p_reverse is not None and p_reverse < alpha:
        return "reversed"
    if p_claim is not None and p_claim < alpha:
        return "reproduced"
    return "not reproduced"


def mean_sd(values) -> tuple[float | None, float | None, int]:
    """(mean, sample sd (ddof 1; 0 for one value), n) of the finite values; (None, None, 0) if none."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if not len(x):
        return None, None, 0
    return float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else 0.0, len(x)


def describe(values, digits: int = 3) -> str:
    """'mean +- sd (n = k)' of the finite values, with the count of non-finite ones (failed runs)."""
    x = np.asarray(values, dtype=float)
    mean, sd, n = mean_sd(x)
    bad = int((~np.isfinite(x)).sum())
    failed = f", {bad} failed" if bad else ""
    if mean is None:
        return f"no completed value (n = 0{failed})"
    return f"{mean:.{digits}g} +- {sd:.{digits}g} (n = {n}{failed})"


def two_groups(a, b, lower_is_better: bool = True, margin: float = 1.0) -> tuple[float | None, float | None, str]:
    """One-sided Mann-Whitney U tests (scipy.stats.mannwhitneyu, exact where scipy can) that ``a`` is better than
    ``margin`` x ``b`` (p_claim) and that ``a`` is worse than ``b`` (p_reverse), on independent samples (seeds).

    ``lower_is_better``: better = smaller. ``margin`` > 1 with lower_is_better is a non-inferiority margin (``a``
    at most ``margin`` x ``b``). Non-finite values (failed runs) rank worst. (None, None, why) if a group has
    fewer than 2 values.
    """
    from scipy import stats

    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    worst = np.inf if lower_is_better else -np.inf
    a = np.where(np.isfinite(a), a, worst)
    b = np.where(np.isfinite(b), b, worst)
    if len(a) < 2 or len(b) < 2:
        return None, None, f"too few values to test (n = {len(a)} and {len(b)})"
    better = "less" if lower_is_better else "greater"
    worse = "greater" if lower_is_better else "less"
    p_claim = float(stats.mannwhitneyu(a, b * margin, alternative=better).pvalue)
    p_reverse = float(stats.mannwhitneyu(a, b, alternative=worse).pvalue)
    floor = 1.0 / math.comb(len(a) + len(b), len(a))
    note = (f"; with n = {len(a)} and {len(b)} the smallest p the exact test can give is {floor:.3g}"
            if floor >= ALPHA else "")
    return p_claim, p_reverse, note


def student_t(a, b, higher_is_better: bool = True) -> tuple[float | None, float | None, str]:
    """One-sided Student's two-sample t-tests (scipy.stats.ttest_ind, equal variances, as seed 001's Table 1) that
    ``a`` is better than ``b`` (p_claim) and worse (p_reverse). Non-finite values (failed runs) are left out and
    counted in the note. (None, None, why) if a group has fewer than 2 values or both have no spread."""
    from scipy import stats

    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    dropped = int((~np.isfinite(a)).sum() + (~np.isfinite(b)).sum())
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    left_out = f"; {dropped} failed run(s) left out" if dropped else ""
    if len(a) < 2 or len(b) < 2:
        return None, None, f"too few values to test (n = {len(a)} and {len(b)}){left_out}"
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return None, None, f"; no spread in either group: the t statistic is undefined{left_out}"
    better = "greater" if higher_is_better else "less"
    worse = "less" if higher_is_better else "greater"
    p_claim = float(stats.ttest_ind(a, b, equal_var=True, alternative=better).pvalue)
    p_reverse = float(stats.ttest_ind(a, b, equal_var=True, alternative=worse).pvalue)
    return p_claim, p_reverse, left_out


def one_sample(values, threshold: float, higher_is_claim: bool = True) -> tuple[float | None, float | None, str]:
    """One-sided Wilcoxon signed-rank tests (scipy.stats.wilcoxon, exact for small n) of ``values - threshold``:
    p_claim for values above the threshold (``higher_is_claim``; below otherwise) and p_reverse for the other
    side. (None, None, why) with fewer than 2 finite values."""
    from scipy import stats

    d = np.asarray(values, dtype=float) - float(threshold)
    d = d[np.isfinite(d)]
    if len(d) < 2:
        return None, None, f"too few values to test (n = {len(d)})"
    if np.all(d == 0):
        return 1.0, 1.0, "; every value equals the threshold"
    up = float(stats.wilcoxon(d, alternative="greater").pvalue)
    down = float(stats.wilcoxon(d, alternative="less").pvalue)
    floor = 0.5 ** len(d)
    note = f"; with n = {len(d)} the smallest p the exact test can give is {floor:.3g}" if floor >= ALPHA else ""
    return (up, down, note) if higher_is_claim else (down, up, note)


def trend(x, y, increasing: bool = True) -> tuple[float | None, float | None, float | None, str]:
    """Spearman's rank correlation of ``y`` on ``x`` (scipy.stats.spearmanr) with one-sided p-values:
    (rho, p_claim (the trend in the claimed direction), p_reverse, note)."""
    from scipy import stats

    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 3 or len(np.unique(x)) < 2 or len(np.unique(y)) < 2:
        return None, None, None, f"too few distinct values to test (n = {len(x)})"
    up = stats.spearmanr(x, y, alternative="greater")
    down = stats.spearmanr(x, y, alternative="less")
    rho = float(up.statistic)
    return (rho, float(up.pvalue), float(down.pvalue), "") if increasing else \
        (rho, float(down.pvalue), float(up.pvalue), "")


# -- the table ---------------------------------------------------------------------------------------------
def evaluate(claims: list[Claim], results_dir, config: dict) -> pd.DataFrame:
    """One row per claim (columns :data:`COLUMNS`): its check's result, or its status (not run, not built,
    failed) with the reason."""
    inputs = ClaimInputs(Path(results_dir), config)
    rows = []
    for c in claims:
        row: dict[str, Any] = {"claim": c.id, "source": c.source, "statement": c.statement, "paper": c.paper,
                               "ours": "", "ours_mean": None, "ours_spread": None, "n": 0, "test": "", "p": None,
                               "verdict": "", "status": CHECKED, "why": ""}
        if c.pending:
            row.update(status=NOT_BUILT, why=c.pending)
        elif c.missing:
            row.update(status=NOT_RUN, why=c.missing)
        elif c.check is None:
            row.update(status=NOT_BUILT, why="the claim has no check")
        else:
            try:
                r = c.check(inputs)
            except MissingInput as err:
                row.update(status=NOT_RUN, why=str(err))
            except Exception as err:  # a broken check is a status with its reason, never a crashed table
                row.update(status=FAILED, why=f"{type(err).__name__}: {err}")
            else:
                row.update(ours=r.ours, ours_mean=r.mean, ours_spread=r.spread, n=r.n, test=r.test, p=r.p,
                           verdict=r.verdict, why=r.why)
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def elsewhere_links(configs, base_dir, here) -> list[dict]:
    """Other tasks' claims tables this task's report points to: one {task, config, table, exists} per config file
    (``results_dir`` of that config, default ``results/{task}``; ``table`` relative to ``here``, this table's folder)."""
    import os

    import yaml

    from balancebench.config import results_dir_of

    links = []
    for cfg in configs:
        path = Path(base_dir) / cfg
        if not path.exists():
            links.append({"task": "?", "config": str(cfg), "table": "", "exists": False})
            continue
        data = yaml.safe_load(path.read_text()) or {}
        task = data.get("task", "cg_benzene")
        results_dir = results_dir_of(data.get("results_dir", "results/{task}"), task)
        table = Path(base_dir) / results_dir / "claims.md"
        links.append({"task": task, "config": str(cfg),
                      "table": os.path.relpath(table, Path(here)), "exists": table.exists()})
    return links


def _fmt_p(p) -> str:
    return "" if p is None or (isinstance(p, float) and math.isnan(p)) else f"{p:.3g}"


def markdown(table: pd.DataFrame, task: str, links: list[dict] | None = None) -> str:
    """claims.md: the table (claim, paper, ours, test, p, verdict or status) and one paragraph per claim."""
    lines = [f"# Seed claims checked on the task {task}", ""]
    if len(table):
        lines += [f"Verdicts: `reproduced` = the one-sided test in the paper's direction rejects at {ALPHA}; "
                  "`reversed` = the test in the opposite direction does; `not reproduced` = neither. Status "
                  "`not run` = the run lacks the claim's experiment, `not built` = its code does not exist yet.", "",
                  "| claim | source | paper | ours | test | p | verdict / status |", "|---|---|---|---|---|---|---|"]
        for r in table.itertuples(index=False):
            outcome = r.verdict if r.status == CHECKED else f"*{r.status}*"
            cells = [r.claim, r.source, r.paper, r.ours, r.test, _fmt_p(r.p), outcome]
            lines.append("| " + " | ".join(str(x).replace("|", "\\|") for x in cells) + " |")
        lines.append("")
        for r in table.itertuples(index=False):
            outcome = r.verdict if r.status == CHECKED else r.status
            lines += [f"- **{r.claim}** ({outcome}): {r.statement} {r.why}".rstrip(), ""]
    else:
        lines += ["This task declares no claim of its own.", ""]
    if links:
        lines += ["The seed papers' claims on their own ground (the same methods' code, checked there):", ""]
        for link in links:
            state = "" if link["exists"] else " (not made yet)"
            lines.append(f"- {link['task']}: [{link['table']}]({link['table']}){state}, made by "
                         f"`snakemake --cores 2 --configfile {link['config']}`")
        lines.append("")
    return "\n".join(lines)


def html(markdown_text: str, table: pd.DataFrame) -> str:
    """claims.html for the Snakemake report: the table and the paragraphs (escaped)."""
    import html as _html

    out = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'><title>seed claims</title></head><body>"]
    body = [line for line in markdown_text.splitlines() if not line.startswith("|")]
    for line in body:
        if line.startswith("# "):
            out.append(f"<h1>{_html.escape(line[2:])}</h1>")
            if len(table):
                shown = table[["claim", "source", "paper", "ours", "test", "p", "verdict", "status"]]
                out.append(shown.to_html(index=False, escape=True, border=0, na_rep=""))
        elif line.strip():
            out.append(f"<p>{_html.escape(line)}</p>")
    out.append("</body></html>")
    return "\n".join(out)


def write(table: pd.DataFrame, out_dir, task: str, links: list[dict] | None = None) -> dict[str, Path]:
    """claims.csv, claims.md and claims.html under ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out_dir / "claims.csv", "md": out_dir / "claims.md", "html": out_dir / "claims.html"}
    table.to_csv(paths["csv"], index=False)
    text = markdown(table, task, links)
    paths["md"].write_text(text)
    paths["html"].write_text(html(text, table))
    return paths
