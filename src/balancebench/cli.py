"""The ``balancebench`` command line (console script).

Subcommands (argparse; add new ones in :func:`build_parser`):

    balancebench rank metrics.csv [--design independent|blocked] [--posthoc tukey|dunn|conover] [--alpha 0.1]
                      [--failed-values worst|exclude] [--bootstrap 200] [--out DIR]
                      [--concern NAME=metric,metric ...] [--quality NAME ...] [--cost NAME ...]
                      [--control VARIANT ...] [--main-control VARIANT] [--weight-preset paper|per_concern]
    balancebench synthetic-table metrics.csv [--seeds 5] [--fail METHOD:SEED:STATUS] [--demo-like]

``rank`` runs the evaluation scheme (docs/statistics.md) on any tidy metrics CSV
(method, seed, metric, value, status [, direction, target, reason]), prints
Tables 1-3 and writes them, the summary and the box plots under ``--out``.
Exit status: 0 success, 2 bad input (the message says what is wrong).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from balancebench.stats import (
    POSTHOCS,
    MetricsTableError,
    StatsError,
    StatsSettings,
    evaluate,
    load_metrics_table,
    parse_direction,
    synthetic_metrics_table,
)
from balancebench.stats.blocked import BLOCKED_POSTHOCS
from balancebench.stats.concerns import WEIGHT_PRESETS, parse_concern
from balancebench.stats.hypothesis import P_ADJUST

DEFAULT_OUT = "balancebench_stats"


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not in (0, 1)")
    return value


def _weight(text: str) -> tuple[str, float]:
    metric, sep, value = text.partition("=")
    try:
        weight = float(value)
    except ValueError:
        weight = float("nan")
    if not sep or not metric.strip() or not weight >= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected METRIC=WEIGHT with WEIGHT >= 0")
    return metric.strip(), weight


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="balancebench", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    rank = sub.add_parser("rank", help="Kruskal-Wallis, post-hoc tests and ranking of a tidy metrics CSV",
                          description="Run the evaluation scheme (docs/statistics.md) on a tidy metrics CSV.")
    rank.add_argument("metrics", type=Path, help="CSV with columns method, seed, metric, value, status "
                                                 "[, direction, target, reason]")
    rank.add_argument("--posthoc", choices=POSTHOCS, default="tukey", help="pairwise test (default: tukey, as the paper)")
    rank.add_argument("--alpha", type=_probability, default=0.1, help="Kruskal-Wallis significance level (default 0.1)")
    rank.add_argument("--screening", type=_probability, default=0.35,
                      help="run the post-hoc test on metrics with Kruskal-Wallis p <= this (default 0.35)")
    rank.add_argument("--posthoc-alpha", type=_probability, default=None,
                      help="level at which a pair is rejected (default: the screening level, as the paper)")
    rank.add_argument("--p-adjust", choices=P_ADJUST, default="holm", help="p adjustment of Dunn/Conover (default holm)")
    rank.add_argument("--direction", action="append", default=[], metavar="METRIC=lower|higher|target:VALUE",
                      help="better direction of a metric, overriding the CSV (repeatable; default lower)")
    rank.add_argument("--weight", action="append", default=[], type=_weight, metavar="METRIC=WEIGHT",
                      help="weight of a metric in the total score (repeatable; default 1)")
    rank.add_argument("--min-valid-runs", type=int, default=2,
                      help="a method with fewer valid runs of a metric is not tested on it and scored last (default 2)")
    rank.add_argument("--no-failure-metric", action="store_true",
                      help="do not report failed runs as the extra metric 'failed_runs' (weight 0 unless --weight)")
    rank.add_argument("--design", choices=("independent", "blocked"), default="independent",
                      help="independent: Kruskal-Wallis + --posthoc; blocked: Friedman with the seeds as blocks "
                           "(paired seeds) + --blocked-posthoc (default independent)")
    rank.add_argument("--blocked-posthoc", choices=BLOCKED_POSTHOCS, default="conover",
                      help="pairwise test of the blocked design (default conover, p adjusted with --p-adjust)")
    rank.add_argument("--failed-values", choices=("worst", "exclude"), default="worst",
                      help="failed runs enter the tests as the worst value (default) or are excluded")
    rank.add_argument("--bootstrap", type=int, default=200, metavar="N",
                      help="bootstrap resamples of the seeds for the rank stability (default 200; 0: none)")
    rank.add_argument("--bootstrap-seed", type=int, default=0, help="seed of the resampling (default 0)")
    rank.add_argument("--power", type=_probability, default=0.8,
                      help="power at which the seeds needed per verdict are computed (default 0.8)")
    rank.add_argument("--concern", action="append", default=[], metavar="NAME=metric,metric",
                      help="a group of metrics ranked on its own beside the total (repeatable; each metric in one "
                           "concern; failed_runs is the failure count)")
    rank.add_argument("--quality", action="append", default=[], metavar="NAME",
                      help="a concern averaged into the quality axis of physics_vs_cost (repeatable)")
    rank.add_argument("--cost", action="append", default=[], metavar="NAME",
                      help="a concern averaged into the cost axis of physics_vs_cost (repeatable)")
    rank.add_argument("--control", action="append", default=[], metavar="VARIANT",
                      help="a variant that is a control (baseline), marked in the verdict (repeatable)")
    rank.add_argument("--main-control", default=None, metavar="VARIANT",
                      help="the main-loss-only control: the report says whether any other variant beats it on the "
                           "quality axis (added to --control)")
    rank.add_argument("--weight-preset", choices=WEIGHT_PRESETS, default="paper",
                      help="paper: --weight or 1 per metric; per_concern: each --concern counts once in the total")
    rank.add_argument("--out", type=Path, default=Path(DEFAULT_OUT),
                      help=f"folder for the CSV tables, summary.md and figures (default ./{DEFAULT_OUT})")
    rank.add_argument("--no-figures", action="store_true", help="skip the box plots")
    rank.add_argument("--quiet", action="store_true", help="do not print the tables")
    rank.set_defaults(func=cmd_rank)

    synth = sub.add_parser("synthetic-table", help="write a synthetic metrics table (pipeline metrics and methods)")
    synth.add_argument("out", type=Path, help="CSV to write")
    synth.add_argument("--seeds", type=int, default=5, help="runs per method (default 5)")
    synth.add_argument("--seed", type=int, default=0, help="random seed of the generator (default 0)")
    synth.add_argument("--fail", action="append", default=[], metavar="METHOD:SEED:STATUS",
                       help="mark a run as failed (STATUS diverged or unstable); repeatable")
    synth.add_argument("--demo-like", action="store_true",
                       help="the table shaped like the benzene demo's (16 variants with three controls, 3 seeds; "
                            "balancebench.tasks.cg_benzene.synthetic.demo_like_metrics_table) instead")
    synth.set_defaults(func=cmd_synthetic)

    check = sub.add_parser("check-config", help="check config files (YAML syntax with line and column, schema, "
                                                 "methods and searches) as the workflow does before any job")
    check.add_argument("configs", type=Path, nargs="+", help="config YAML files, merged in order as snakemake does")
    check.set_defaults(func=cmd_check_config)
    return parser


def cmd_check_config(args: argparse.Namespace) -> int:
    """Snakemake reports a --configfile with a YAML syntax error only as 'not valid JSON or YAML': this names
    the file, line and column, then validates the merged config like workflow/rules/common.smk."""
    from balancebench.config import check_duplicate_keys, read_yaml, validate_config

    def merge(into: dict, new: dict, top: bool) -> dict:  # key by key, as snakemake; balancing taken whole
        for key, value in new.items():
            if isinstance(value, dict) and isinstance(into.get(key), dict) and not (top and key == "balancing"):
                merge(into[key], value, False)
            else:
                into[key] = value
        return into

    merged: dict = {}
    for path in args.configs:
        check_duplicate_keys(path)
        merge(merged, read_yaml(path) or {}, True)
    validate_config(merged)
    print(f"{', '.join(map(str, args.configs))}: valid")
    return 0


def cmd_rank(args: argparse.Namespace) -> int:
    from balancebench.report import (
        console_report,
        pairwise_name,
        plot_boxplots,
        plot_metric_correlation,
        plot_physics_vs_cost,
        write_tables,
    )

    directions = dict(parse_direction(spec) for spec in args.direction)
    table = load_metrics_table(args.metrics, directions=directions)
    if args.min_valid_runs < 2:
        raise MetricsTableError("--min-valid-runs must be at least 2")
    concerns = {}
    for spec in args.concern:
        name, metrics = parse_concern(spec)
        if name in concerns:
            raise MetricsTableError(f"--concern {spec!r}: concern {name!r} given twice")
        concerns[name] = metrics
    for flag, names in (("--quality", args.quality), ("--cost", args.cost)):
        unknown = [n for n in names if n not in concerns]
        if unknown:
            raise MetricsTableError(f"{flag} {', '.join(unknown)}: not a --concern "
                                    f"({', '.join(concerns) or 'none given'})")
    controls = tuple(dict.fromkeys([*args.control, *([args.main_control] if args.main_control else [])]))
    settings = StatsSettings(
        alpha=args.alpha, screening=args.screening,
        posthoc_alpha=args.screening if args.posthoc_alpha is None else args.posthoc_alpha,
        posthoc=args.posthoc, p_adjust=args.p_adjust, min_valid_runs=args.min_valid_runs,
        metric_weights=dict(args.weight), directions=directions, failures_as_metric=not args.no_failure_metric,
        design=args.design, blocked_posthoc=args.blocked_posthoc, failed_values=args.failed_values,
        bootstrap_replicates=args.bootstrap, bootstrap_seed=args.bootstrap_seed, power_target=args.power,
        concerns=concerns, quality_concerns=tuple(args.quality), cost_concerns=tuple(args.cost),
        controls=controls, main_control=args.main_control, weight_preset=args.weight_preset)
    if table.defaulted:
        print(f"Assumed direction 'lower' (not in the CSV or --direction) for: {', '.join(table.defaulted)}")
    evaluation = evaluate(table, settings)
    figures = []
    if not args.no_figures:
        png, svg = args.out / "figures" / "boxplots.png", args.out / "figures" / "boxplots.svg"
        plot_boxplots(table, evaluation.kruskal, evaluation.letters, png, [svg],
                      posthoc_label=f"{pairwise_name(settings)} at {settings.posthoc_alpha:g}")
        plot_metric_correlation(evaluation.correlation, args.out / "figures" / "metric_correlation.png",
                                metrics=list(table.metrics))
        figures = ["figures/boxplots.png", "figures/metric_correlation.png"]
        if evaluation.quality_cost is not None and len(evaluation.quality_cost):
            plot_physics_vs_cost(evaluation.quality_cost, args.out / "figures" / "physics_vs_cost.png",
                                 main_control=settings.main_control,
                                 quality_label="quality: " + " + ".join(settings.quality_concerns),
                                 cost_label=" + ".join(settings.cost_concerns))
            figures.insert(0, "figures/physics_vs_cost.png")
    paths = write_tables(evaluation, args.out, figures=figures)
    if not args.quiet:
        print(console_report(evaluation))
    print(f"Wrote {', '.join(p.name for p in paths.values())}" + (f" and {', '.join(figures)}" if figures else "")
          + f" to {args.out}")
    return 0


def cmd_synthetic(args: argparse.Namespace) -> int:
    failed = {}
    for spec in args.fail:
        parts = spec.split(":")
        if len(parts) != 3 or parts[2] not in ("diverged", "unstable") or not parts[1].isdigit():
            raise MetricsTableError(f"--fail {spec!r}: expected METHOD:SEED:diverged|unstable (SEED an index)")
        failed[(parts[0], int(parts[1]))] = parts[2]
    if args.demo_like:
        from balancebench.tasks.cg_benzene.synthetic import demo_like_metrics_table

        if failed:
            raise MetricsTableError("--fail is not available with --demo-like")
        table = demo_like_metrics_table(seed=args.seed)
    else:
        table = synthetic_metrics_table(n_seeds=args.seeds, failed_runs=failed, seed=args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    print(f"Wrote {len(table)} rows to {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (MetricsTableError, StatsError, ValueError) as err:
        print(f"balancebench {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
