"""Outputs of the statistics stage: CSV tables, a markdown summary, console tables, box plots.

:func:`write_tables` writes the tables of an :class:`~balancebench.stats.Evaluation`
under one folder with the fixed names of :data:`TABLE_FILES` (the results
contract, docs/ARCHITECTURE.md); :func:`plot_boxplots` draws the seed paper's
Fig. 2 equivalent from the metrics table and the ``kruskal`` and ``letters``
tables (in memory or read back from their CSV files).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from balancebench.stats import FAILED_RUNS_METRIC, Evaluation, MetricsTable

TABLE_FILES = {
    "kruskal": "kruskal.csv",
    "posthoc": "posthoc.csv",
    "posthoc_comparison": "posthoc_comparison.csv",
    "ranking": "ranking.csv",
    "letters": "letters.csv",
    "failures": "failures.csv",
    "stability": "stability.csv",
    "power": "power.csv",
    "concerns": "concerns.csv",
    "concern_stability": "concern_stability.csv",
    "physics_vs_cost": "physics_vs_cost.csv",
    "metric_correlation": "metric_correlation.csv",
    "verdict": "verdict.csv",
    "verdict_rst": "verdict.rst",
    "summary": "summary.md",
    "summary_html": "summary.html",
}
POSTHOC_NAMES = {"tukey": "Tukey HSD", "dunn": "Dunn", "conover": "Conover-Iman"}
BLOCKED_NAMES = {"conover": "Conover (Friedman)", "nemenyi": "Nemenyi"}


def pairwise_name(settings) -> str:
    if settings.design == "blocked":
        name = BLOCKED_NAMES[settings.blocked_posthoc]
        return name + (f" with {settings.p_adjust.capitalize()}" if settings.blocked_posthoc == "conover" else "")
    return POSTHOC_NAMES[settings.posthoc] + ("" if settings.posthoc == "tukey" else f" with {settings.p_adjust.capitalize()}")


def write_tables(evaluation: Evaluation, out_dir: str | Path, figures: Sequence[str] = ()) -> dict[str, Path]:
    """Write every table (CSV), summary.md and summary.html (tables only) under ``out_dir``; return name -> path.

    ``figures``: figure paths relative to ``out_dir`` to embed in summary.md.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / filename for name, filename in TABLE_FILES.items()}
    evaluation.kruskal.to_csv(paths["kruskal"], index=False)
    evaluation.posthoc.to_csv(paths["posthoc"], index=False)
    evaluation.posthoc_comparison.to_csv(paths["posthoc_comparison"], index=False)
    evaluation.ranking.reset_index().to_csv(paths["ranking"], index=False)
    evaluation.letters.to_csv(paths["letters"], index=False)
    evaluation.table.excluded_rows().to_csv(paths["failures"], index=False)
    stability = evaluation.stability if evaluation.stability is not None else pd.DataFrame(
        columns=["method", "rank", "p_same_rank", "p_rank_or_better", "mean_rank", "rank_q05", "rank_q95",
                 "p_same_ranks", "replicates", "seed"])
    stability.to_csv(paths["stability"], index=False)
    (evaluation.power if evaluation.power is not None else pd.DataFrame()).to_csv(paths["power"], index=False)
    for name, frame, columns in (
            ("concerns", evaluation.concern_ranking, ["concern", "method", "metrics", "score", "mean_score", "rank",
                                                      "letters"]),
            ("concern_stability", evaluation.concern_stability, ["concern", "method", "rank", "p_same_rank", "p_first",
                                                                 "p_rank_or_better", "mean_rank", "rank_q05",
                                                                 "rank_q95", "replicates"]),
            ("physics_vs_cost", evaluation.quality_cost, ["method", "quality", "quality_q05", "quality_q95", "cost",
                                                          "cost_q05", "cost_q95", "control"]),
            ("metric_correlation", evaluation.correlation, ["metric_a", "metric_b", "spearman", "n_runs"]),
            ("verdict", evaluation.verdict, ["concern", "metrics", "winner"])):
        (frame if frame is not None else pd.DataFrame(columns=columns)).to_csv(paths[name], index=False)
    paths["verdict_rst"].write_text(verdict_rst(evaluation))
    paths["summary"].write_text(summary_markdown(evaluation, figures))
    paths["summary_html"].write_text(summary_html(evaluation))
    return paths


def _fmt(value, digits: int = 4) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            return "-"
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.{digits - 1}e}"
        return f"{value:.{digits}g}"
    return str(value)


def markdown_table(frame: pd.DataFrame, headers: Sequence[str] | None = None) -> str:
    """A GitHub-flavoured markdown table of ``frame`` (numbers to 4 significant digits)."""
    headers = list(headers or frame.columns)
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_fmt(v).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines)


def _table1(ev: Evaluation) -> pd.DataFrame:
    k = ev.kruskal
    return pd.DataFrame({
        "metric": k["metric"], "better": k["direction"], "tested": k["tested"],
        ("Q" if ev.settings.design == "blocked" else "H"): k["statistic"],
        "df": k["df"], "p": k["pvalue"], f"p <= {ev.settings.alpha:g}": k["significant"],
        f"post-hoc (p <= {ev.settings.screening:g})": k["screened"], "valid runs": k["n_valid"],
        "failed runs": k["n_failed"], "weight": k["weight"], "note": k["note"],
    })


def _table2(ev: Evaluation) -> pd.DataFrame:
    p = ev.posthoc
    return pd.DataFrame({
        "metric": p["metric"], "A": p["group_a"], "B": p["group_b"], "mean diff (B - A)": p["mean_diff"],
        "p adj": p["p_adj"], "reject": p["reject"], "better": p["better"], "n A/B": p["n_a"].astype(str) + "/" +
        p["n_b"].astype(str), "failed A/B": p["failed_a"].astype(str) + "/" + p["failed_b"].astype(str),
    })


def _letters_wide(ev: Evaluation) -> pd.DataFrame:
    wide = ev.letters.pivot(index="method", columns="metric", values="letters")
    wide = wide.reindex(index=list(ev.table.methods), columns=list(ev.metrics))
    wide = wide.map(lambda s: s if s else "untested")
    return wide.reset_index()


def disagreements(ev: Evaluation) -> pd.DataFrame:
    """Pairs whose reject verdict depends on the post-hoc test."""
    c = ev.posthoc_comparison
    return c[~c["verdicts_agree"]].reset_index(drop=True) if len(c) else c


def _summary_blocks(ev: Evaluation, figures: Sequence[str] = ()) -> list[tuple[str, object]]:
    """The summary as blocks (kind, content), kind in h1, h2, p, ul, table, img; rendered as markdown or HTML."""
    s = ev.settings
    name = pairwise_name(s)
    omnibus = "Friedman (seeds as blocks)" if s.design == "blocked" else "Kruskal-Wallis"
    weights = ", ".join(f"{m} = {s.weight(m):g}" for m in ev.metrics)
    blocks: list[tuple[str, object]] = [("h1", "balancebench: statistics of the methods")]
    blocks += verdict_blocks(ev)
    blocks += [
        ("h2", "The paper's scheme (seed 000): settings"),
        ("p", f"Final ordering (lower total score is better): {ev.ordering}"),
        ("ul", [
            f"{len(ev.table.methods)} methods, {len(ev.table.runs)} runs ({int(ev.table.runs['failed'].sum())} "
            f"failed), {len(ev.table.metrics)} metrics",
            f"design: {s.design}; {omnibus} significance level: {s.alpha:g}; post-hoc screening: p <= {s.screening:g}",
            f"failed values: {'entered as the worst value of each metric' if s.failed_values == 'worst' else 'excluded'}",
            f"post-hoc: {name}, pairs rejected at p <= {s.posthoc_alpha:g}",
            f"a method needs >= {s.min_valid_runs} completed values of a metric to be tested on it; "
            f"metric weights: {weights}",
            "score of a method on a metric = 1 + number of methods significantly better; total = weighted sum",
        ]),
        ("h2", f"Table 1: {omnibus} test per metric"),
        ("table", _table1(ev)),
        ("h2", f"Table 2: pairwise {name} for the screened metrics"),
        ("table", _table2(ev)) if len(ev.posthoc) else ("p", "No metric passed the screening level."),
        ("h2", "Table 3: scores per metric (1 = best), total and rank"),
        ("table", ev.ranking.reset_index()),
        ("h2", "Compact letter display"),
        ("p", "Per metric, methods sharing a letter are not significantly different; a marks the group of the "
              "best method."),
        ("table", _letters_wide(ev)),
        ("h2", "Where the post-hoc choice changes a verdict"),
    ]
    diff = disagreements(ev)
    if len(diff):
        cols = [c for c in diff.columns if c != "verdicts_agree"]
        blocks.append(("table", diff[cols]))
    else:
        blocks.append(("p", "The post-hoc tests agree on every pair of every screened metric."))
    blocks += _trust_blocks(ev)
    blocks.append(("h2", "Failed runs"))
    failed = ev.table.failed_runs()
    if len(failed):
        policy = ("enter each metric's tests as the worst value" if s.failed_values == "worst"
                  else "are excluded from the tests")
        blocks += [("p", f"Values of failed runs {policy}; they are counted in Tables 1-3 and reported by the "
                         f"{FAILED_RUNS_METRIC} metric (weight {s.weight(FAILED_RUNS_METRIC):g}; docs/statistics.md)."),
                   ("table", failed[["method", "seed", "status", "reason"]])]
    else:
        blocks.append(("p", "None: every run completed."))
    if ev.notes:
        blocks += [("h2", "Notes"), ("ul", list(ev.notes))]
    if figures:
        blocks += [("h2", "Figures")] + [("img", f) for f in figures]
    return blocks


def _trust_blocks(ev: Evaluation) -> list[tuple[str, object]]:
    """Rank stability (bootstrap over seeds) and seeds needed per verdict (docs/statistics.md)."""
    out: list[tuple[str, object]] = [("h2", "How much to trust the ranking")]
    st = ev.stability
    if st is not None and len(st):
        out += [("p", f"Rank stability: {int(st['replicates'].iloc[0])} bootstrap resamples of the seeds (seed "
                      f"{int(st['seed'].iloc[0])}); p_same_rank = fraction in which the variant holds its rank; "
                      f"every variant keeps its rank in {100 * float(st['p_same_ranks'].iloc[0]):.1f} % of them."),
                ("table", st.drop(columns=["p_same_ranks", "replicates", "seed"]))]
    else:
        out.append(("p", "Rank stability not computed (stats.bootstrap.replicates: 0)."))
    cs = ev.concern_stability
    if cs is not None and len(cs):
        out += [("p", "Per concern, from the same resamples: p_first = fraction in which the variant ranks first "
                      "on the concern (concern_stability.csv)."),
                ("table", cs.drop(columns=["replicates"]))]
    out.append(("p", ACROSS_MACHINES))
    pw = ev.power
    if pw is not None and len(pw):
        def need(values, how):
            if not len(values):
                return "-"
            value = float(values.max() if how == "max" else values.median())
            return "never (equal means)" if math.isinf(value) else str(int(math.ceil(value)))

        rows = []
        for metric, g in pw.groupby("metric", sort=False):
            sig, non = g[g["reject"]], g[~g["reject"]]
            rows.append({"metric": metric, "seeds now": int(g["n_now"].max()),
                         "significant pairs": len(sig),
                         "seeds for all significant (max)": need(sig["seeds_needed"], "max"),
                         "non-significant pairs": len(non),
                         "seeds for non-significant (median)": need(non["seeds_needed"], "median"),
                         "min power now (significant)": sig["power_now"].min() if len(sig) else np.nan})
        out += [("p", f"Seeds per variant each verdict would need at power {ev.settings.power_target:g} "
                      f"(normal approximation from the observed effect sizes, per-pair level posthoc_alpha / "
                      f"number of pairs; infinite: equal means; power.csv has every pair)."),
                ("table", pd.DataFrame(rows))]
    return out


ACROSS_MACHINES = (
    "Across machines: the same CPU model gives the same full ordering run to run, but two fresh-clone demos on "
    "two CPU models gave the same top group and different middle orders: the fused pair kernels are compiled "
    "with -march=native, so the trainings differ by rounding and 12 epochs carry that into every metric. "
    "For numbers that must match on any x86-64 machine run with BALANCEBENCH_PAIR_KERNELS_ARCH=portable "
    "(the reproducibility mode, docs/training.md); read the middle of an ordering together with its stability.")


VERDICT_COLUMNS = ["concern", "first (kept first by the bootstrap)", "seeds its wins need",
                   "seeds to separate its ties"]


def total_sentence(ev: Evaluation) -> str:
    """The paper's total ordering with how often the bootstrap keeps it."""
    text = f"The paper's total (seed 000's weighted sum, the reproduction): {ev.verdict['ordering'].iloc[-1]}."
    st = ev.stability
    if st is not None and len(st):
        top = st[st["rank"] == 1]
        text += (f" The bootstrap keeps the whole ordering in {100 * float(st['p_same_ranks'].iloc[0]):.0f} % of "
                 f"the resamples and the first place ({', '.join(top['method'])}) in "
                 f"{', '.join(f'{100 * p:.0f} %' for p in top['p_same_rank'])}.")
    return text


def verdict_blocks(ev: Evaluation) -> list[tuple[str, object]]:
    """The first screen: winners per concern and the paper's total, their bootstrap frequency, the seeds they
    need, the control sentence, then the pointers to the figures (docs/statistics.md, "Concerns")."""
    if ev.verdict is None or not len(ev.verdict):
        return [("p", f"Final ordering (the paper's weighted total, lower is better): {ev.ordering}")]
    s = ev.settings
    out: list[tuple[str, object]] = [
        ("h2", "The verdict"),
        ("p", "Rank 1 per concern (concern score = sum of the metric scores, 1 + variants significantly better, "
              "over the concern's metrics) and in the paper's weighted total; kept by the bootstrap = fraction of "
              f"seed resamples in which the winner is still first; seeds: per variant, at power {s.power_target:g}, "
              "for the winner's significant wins (max) and to separate it from the variants it ties with "
              "(median); '-' none."),
        ("table", ev.verdict[VERDICT_COLUMNS]),
        ("p", total_sentence(ev)),
    ]
    if ev.control_note:
        out.append(("p", ev.control_note))
    if s.controls:
        out.append(("p", f"Controls (baselines that anchor the scale): {', '.join(s.controls)}"
                         + (f"; main-loss-only control: {s.main_control}" if s.main_control else "") + "."))
    if s.weight_preset == "per_concern":
        out.append(("p", "Weights: per_concern preset, each concern counts once in the total."))
    out.append(("p", "Figures: physics_vs_cost.png (each variant's quality score (the task's quality concerns) against its cost score, 5-95 % over "
                     "the seed resamples), metric_correlation.png (Spearman correlation of the metrics over the "
                     "runs), boxplots.png (every metric per variant)."))
    return out


def _rst_escape(text: str) -> str:
    for ch in ("\\", "*", "`", "_", "|"):
        text = text.replace(ch, "\\" + ch)
    return text


def verdict_rst(ev: Evaluation) -> str:
    """The verdict as reStructuredText for the report's landing page (workflow/report/workflow.rst includes it)."""
    lines = ["The verdict", "-----------", ""]
    if ev.verdict is None or not len(ev.verdict):
        lines += [_rst_escape(f"Final ordering (the paper's weighted total): {ev.ordering}"), ""]
        return "\n".join(lines)
    lines += [".. list-table::", "   :header-rows: 1", "   :widths: 14 50 12 12", ""]
    lines.append("   * - " + "\n     - ".join(VERDICT_COLUMNS))
    for r in ev.verdict[VERDICT_COLUMNS].itertuples(index=False):
        # a lone "-" in a list-table cell would be an empty bullet list
        lines.append("   * - " + "\n     - ".join("none" if str(c) == "-" else _rst_escape(str(c)) for c in r))
    lines += ["", _rst_escape(total_sentence(ev)), ""]
    if ev.control_note:
        lines += [_rst_escape(ev.control_note), ""]
    lines += [_rst_escape("Concerns: " + "; ".join(f"{c} = {', '.join(m)}" for c, m in ev.concerns.items())
                          + ". Seeds: per variant at power "
                          + f"{ev.settings.power_target:g}, for the winner's significant wins and to separate its "
                          "ties. The figures (quality vs cost, metric correlation, box plots) are under Evaluation "
                          "scheme / Figures; summary.html has every table, the stability of every rank and why the "
                          "middle of an ordering can differ between CPU models."), ""]
    return "\n".join(lines)


def summary_markdown(ev: Evaluation, figures: Sequence[str] = ()) -> str:
    """The human-readable report: settings, Tables 1-3, letters, verdict changes, failed runs, notes."""
    out: list[str] = []
    for kind, content in _summary_blocks(ev, figures):
        if kind == "h1":
            out.append(f"# {content}")
        elif kind == "h2":
            out.append(f"## {content}")
        elif kind == "p":
            out.append(str(content))
        elif kind == "ul":
            out.append("\n".join(f"- {item}" for item in content))
        elif kind == "table":
            out.append(markdown_table(content))
        elif kind == "img":
            out.append(f"![{Path(content).stem}]({content})")
        out.append("")
    return "\n".join(out)


_HTML_STYLE = """
body { font-family: sans-serif; font-size: 14px; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
th { background: #eef; } tr:nth-child(even) td { background: #fafafa; }
h2 { margin-top: 1.5em; border-bottom: 1px solid #ddd; }
"""


def summary_html(ev: Evaluation, figures: Sequence[str] = ()) -> str:
    """The same content as :func:`summary_markdown` as one self-contained HTML page (for the Snakemake report)."""
    import html

    out = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'><title>balancebench statistics</title>",
           f"<style>{_HTML_STYLE}</style></head><body>"]
    for kind, content in _summary_blocks(ev, figures):
        if kind in ("h1", "h2", "p"):
            out.append(f"<{kind}>{html.escape(str(content))}</{kind}>")
        elif kind == "ul":
            out.append("<ul>" + "".join(f"<li>{html.escape(str(i))}</li>" for i in content) + "</ul>")
        elif kind == "table":
            formatted = content.map(_fmt)
            out.append(formatted.to_html(index=False, escape=True, border=0))
        elif kind == "img":
            out.append(f"<img src='{html.escape(str(content))}' style='max-width: 100%'>")
    out.append("</body></html>")
    return "\n".join(out)


def console_report(ev: Evaluation) -> str:
    """Plain-text Tables 1-3 for the terminal."""
    with pd.option_context("display.width", 200, "display.max_columns", 50, "display.max_colwidth", 60,
                           "display.float_format", lambda v: f"{v:.4g}"):
        parts = []
        if ev.verdict is not None and len(ev.verdict):
            parts += ["The verdict (rank 1 per concern, kept first by the bootstrap)",
                      ev.verdict[VERDICT_COLUMNS].to_string(index=False), total_sentence(ev)]
            parts += [ev.control_note] if ev.control_note else []
            parts.append("")
        parts += [
            f"Table 1: {'Friedman' if ev.settings.design == 'blocked' else 'Kruskal-Wallis'}", _table1(ev).drop(columns=["note"]).to_string(index=False), "",
            f"Table 2: pairwise {pairwise_name(ev.settings)} (screened metrics)",
            _table2(ev).to_string(index=False) if len(ev.posthoc) else "(no metric passed the screening level)", "",
            "Table 3: scores (1 = best), total, rank", ev.ranking.to_string(), "",
            "Compact letter display", _letters_wide(ev).to_string(index=False), "",
            f"Final ordering: {ev.ordering}",
        ]
        if ev.stability is not None and len(ev.stability):
            parts += ["", "Rank stability (bootstrap over seeds)",
                      ev.stability.drop(columns=["replicates", "seed"]).to_string(index=False)]
    diff = disagreements(ev)
    if len(diff):
        parts.append(f"Post-hoc choice changes {len(diff)} verdict(s): see posthoc_comparison.csv")
    parts += [f"Note: {n}" for n in ev.notes]
    return "\n".join(parts)


_ARROWS = {"lower": "lower is better", "higher": "higher is better"}


def plot_boxplots(table: MetricsTable, kruskal: pd.DataFrame, letters: pd.DataFrame, path: str | Path,
                  extra_paths: Sequence[str | Path] = (), posthoc_label: str = "") -> None:
    """Box plots (median, quartiles, 1.5 IQR whiskers) of every metric per method, with each run as a dot.

    Valid (completed) values only; a method's failed values are counted in red under its box.
    Titles give the better direction and the Kruskal-Wallis p; letters above
    the boxes are the compact letter display. Target metrics show the target as
    a dashed line (the tests compare |x - target|). Saved to ``path`` and
    every ``extra_paths`` (e.g. an SVG next to the PNG).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.transforms import blended_transform_factory

    methods = list(table.methods)
    metrics = list(table.metrics)
    kw = kruskal.set_index("metric")
    letter_of = {(r.metric, r.method): ("" if pd.isna(r.letters) else str(r.letters))
                 for r in letters.itertuples(index=False)}
    colours = plt.get_cmap("tab10")(np.arange(len(methods)) % 10)
    many = len(methods) > 8  # the demo's 16 variants: wider panels, upright labels, letters on their side
    ncols = min(4 if many else 5, len(metrics))  # the report shows a figure taller than its window cut off at the top
    nrows = math.ceil(len(metrics) / ncols)
    label_len = max(len(m) for m in methods)
    width = max(3.3, 0.25 * len(methods)) if many else 3.3
    label_height = (0.085 if many else 0.075) * label_len
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, (3.0 + label_height + (0.35 if many else 0)) * nrows
                                                    + 0.6), squeeze=False)
    rng = np.random.default_rng(0)
    data = table.data
    for ax, metric in zip(axes.flat, metrics):
        rows = data[data["metric"] == metric]
        valid = rows[~rows["excluded"]]
        values = [valid.loc[valid["method"] == m, "value"].to_numpy() for m in methods]
        positions = np.arange(1, len(methods) + 1)
        plotted = [(p, v) for p, v in zip(positions, values) if v.size]
        if plotted:
            box = ax.boxplot([v for _, v in plotted], positions=[p for p, _ in plotted], widths=0.6,
                             patch_artist=True, showfliers=False, medianprops={"color": "black", "linewidth": 1.5})
            for patch, (p, _) in zip(box["boxes"], plotted):
                patch.set_facecolor(colours[p - 1])
                patch.set_alpha(0.45)
            for p, v in plotted:
                ax.plot(p + rng.uniform(-0.12, 0.12, v.size), v, "o", ms=3.5, color=colours[p - 1],
                        markeredgecolor="black", markeredgewidth=0.4, zorder=3)
        direction = table.directions[metric]
        if direction.kind == "target":
            ax.axhline(direction.target, color="0.3", linestyle="--", linewidth=1.0, zorder=1)
            better = f"closest to {direction.target:g} (dashed)"
        else:
            better = _ARROWS[direction.kind]
        if metric in kw.index and np.isfinite(kw.loc[metric, "pvalue"]):
            p = kw.loc[metric, "pvalue"]
            verdict = f"KW p = {p:.2g}" + (" *" if bool(kw.loc[metric, "significant"]) else "")
        else:
            verdict = "not tested"
        ax.set_title(f"{metric}\n{better}; {verdict}", fontsize=9.5)
        ax.set_xticks(positions)
        ax.set_xticklabels(methods, rotation=90 if many else 35, ha="center" if many else "right", fontsize=8.5)
        ax.tick_params(axis="y", labelsize=8.5)
        ax.grid(axis="y", alpha=0.3)
        ax.margins(y=0.30 if many else 0.18)
        trans = blended_transform_factory(ax.transData, ax.transAxes)
        for p, m in zip(positions, methods):
            ax.text(p, 0.975, letter_of.get((metric, m), ""), transform=trans, ha="center", va="top",
                    fontsize=8.5 if many else 9, fontweight="bold", rotation=90 if many else 0)
            n_failed = int(rows.loc[rows["method"] == m, "excluded"].sum())
            if n_failed:
                ax.text(p, 0.02, f"{n_failed} failed", transform=trans, ha="center", va="bottom",
                        fontsize=7.5, color="tab:red", rotation=90 if many else 0)
        ax.set_xlim(0.4, len(methods) + 0.6)
    for ax in axes.flat[len(metrics):]:
        ax.set_visible(False)
    fig.suptitle("Metrics per method over seeds (dots: runs; letters: groups not significantly different"
                 + (f", {posthoc_label}" if posthoc_label else "") + "; * KW significant)", fontsize=10.5)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    for target in (path, *extra_paths):
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(target, dpi=100 if many else 130)
    plt.close(fig)


def _dodge(x: np.ndarray, y: np.ndarray, dx: float, dy: float) -> tuple[np.ndarray, np.ndarray]:
    """Points with equal (x, y) spread on a small circle (radius dx, dy) so that none hides another."""
    x, y = np.asarray(x, float).copy(), np.asarray(y, float).copy()
    keys = [(round(a, 6), round(b, 6)) for a, b in zip(x, y)]
    for key in dict.fromkeys(keys):
        idx = [i for i, k in enumerate(keys) if k == key]
        if len(idx) > 1:
            for j, i in enumerate(idx):
                angle = 2 * math.pi * j / len(idx) + math.pi / 2
                x[i] += dx * math.cos(angle)
                y[i] += dy * math.sin(angle)
    return x, y


def plot_physics_vs_cost(frame: pd.DataFrame, path: str | Path, extra_paths: Sequence[str | Path] = (),
                         quality_label: str = "quality", cost_label: str = "cost",
                         main_control: str | None = None) -> None:
    """Each variant's quality score against its cost score (physics_vs_cost.csv), lower is better on
    both; bars: 5-95 % over the seed resamples; variants with equal scores are spread on a small circle;
    every variant has its own colour/marker pair, numbered, and the legend sits outside the axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from balancebench.plotstyle import style

    fig, ax = plt.subplots(figsize=(9.5, 5.6))
    if not len(frame):
        ax.text(0.5, 0.5, "no quality or cost concern in this table", ha="center", va="center", transform=ax.transAxes)
    else:
        span_x = max(float(np.nanmax(frame[["cost", "cost_q95"]].to_numpy(dtype=float))) - 1.0, 0.5)
        span_y = max(float(np.nanmax(frame[["quality", "quality_q95"]].to_numpy(dtype=float))) - 1.0, 0.5)
        x, y = _dodge(frame["cost"].to_numpy(float), frame["quality"].to_numpy(float), 0.025 * span_x, 0.025 * span_y)
        controls = frame["control"].astype(str).str.lower().isin(["true", "1"]).to_numpy()
        for i, row in enumerate(frame.itertuples(index=False)):
            colour, marker = style(i)
            has_range = np.isfinite(row.cost_q05) and np.isfinite(row.quality_q05)
            if has_range:
                ax.errorbar(x[i], y[i], xerr=[[max(row.cost - row.cost_q05, 0)], [max(row.cost_q95 - row.cost, 0)]],
                            yerr=[[max(row.quality - row.quality_q05, 0)], [max(row.quality_q95 - row.quality, 0)]],
                            fmt="none", ecolor=colour, alpha=0.45, lw=1.0, capsize=2, zorder=2)
            ax.plot(x[i], y[i], marker, color=colour, ms=9, mec="black", mew=1.6 if controls[i] else 0.5,
                    mfc="white" if controls[i] else colour, zorder=3,
                    label=f"{i + 1}  {row.method}" + ("  (control)" if controls[i] else ""))
            ax.annotate(str(i + 1), (x[i], y[i]), xytext=(5, 4), textcoords="offset points", fontsize=8, zorder=4)
        if main_control and main_control in set(frame["method"]):
            row = frame.set_index("method").loc[main_control]
            ax.axhline(row["quality"], color="0.4", ls="--", lw=0.9, zorder=1,
                       label=f"{main_control}'s quality score")
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8.5, frameon=False, borderaxespad=0.0,
                  title="variant (open: control)", title_fontsize=8.5)
    ax.set_xlabel(f"{cost_label} score (mean metric score; 1 = no variant significantly better)", fontsize=9.5)
    ax.set_ylabel(f"{quality_label}\nscore (mean over its concerns; 1 = best)", fontsize=9.5)
    ax.set_title("Quality against cost per variant (lower-left is better; bars: 5-95 % over seed resamples)",
                 fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    for target in (path, *extra_paths):
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(target, dpi=130)
    plt.close(fig)


def plot_metric_correlation(pairs: pd.DataFrame, path: str | Path, metrics: Sequence[str] | None = None) -> None:
    """Heat map of the Spearman rank correlation of every pair of metrics over the runs (metric_correlation.csv);
    each cell printed, blank where undefined (a metric constant over the runs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from balancebench.stats.concerns import correlation_matrix

    matrix = correlation_matrix(pairs, metrics)
    n = len(matrix)
    fig, ax = plt.subplots(figsize=(max(4.5, 0.55 * n + 2.2), max(3.8, 0.5 * n + 1.6)))
    values = matrix.to_numpy(dtype=float)
    image = ax.imshow(np.ma.masked_invalid(values), cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(n))
    ax.set_xticklabels(matrix.columns, rotation=45, ha="right", fontsize=8.5)
    ax.set_yticks(range(n))
    ax.set_yticklabels(matrix.index, fontsize=8.5)
    for i in range(n):
        for j in range(n):
            if np.isfinite(values[i, j]) and i != j:
                ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if abs(values[i, j]) > 0.6 else "black")
    fig.colorbar(image, ax=ax, shrink=0.8, label="Spearman rho over the runs")
    ax.set_title("Rank correlation of the metrics (|rho| = 1: one observation counted twice)", fontsize=9.5)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
