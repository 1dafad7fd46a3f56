# Statistics: Kruskal-Wallis, post-hoc tests, ranking, box plots (seed 000 Sec. 2.5, 3.2).
# Reads the tidy metrics table (config stats.metrics_table, or the pipeline's
# metrics/metrics.csv) and writes results/stats/. docs/statistics.md has the rules.
# `rules.stats.input` lists every output of the stage (target: `snakemake stats`).

STATS_METRICS_TABLE = config["stats"]["metrics_table"] or result("metrics/metrics.csv")


rule stats_tables:
    input:
        metrics=STATS_METRICS_TABLE,
    output:
        kruskal=report(
            result("stats/kruskal.csv"),
            caption="../report/stats_kruskal.rst",
            category="Evaluation scheme",
            subcategory="Tables",
            labels={"table": "1 Kruskal-Wallis"},
        ),
        posthoc=report(
            result("stats/posthoc.csv"),
            caption="../report/stats_posthoc.rst",
            category="Evaluation scheme",
            subcategory="Tables",
            labels={"table": "2 post-hoc pairs"},
        ),
        posthoc_comparison=report(
            result("stats/posthoc_comparison.csv"),
            caption="../report/stats_posthoc_comparison.rst",
            category="Evaluation scheme",
            subcategory="Tables",
            labels={"table": "2b post-hoc tests compared"},
        ),
        ranking=report(
            result("stats/ranking.csv"),
            caption="../report/stats_ranking.rst",
            category="Evaluation scheme",
            subcategory="Tables",
            labels={"table": "3 ranking"},
        ),
        letters=report(
            result("stats/letters.csv"),
            caption="../report/stats_letters.rst",
            category="Evaluation scheme",
            subcategory="Tables",
            labels={"table": "3b letters and scores"},
        ),
        failures=report(
            result("stats/failures.csv"),
            caption="../report/stats_failures.rst",
            category="Evaluation scheme",
            subcategory="Tables",
            labels={"table": "failed values"},
        ),
        stability=report(
            result("stats/stability.csv"),
            caption="../report/stats_stability.rst",
            category="Evaluation scheme",
            subcategory="Tables",
            labels={"table": "4 rank stability"},
        ),
        power=report(
            result("stats/power.csv"),
            caption="../report/stats_power.rst",
            category="Evaluation scheme",
            subcategory="Tables",
            labels={"table": "5 seeds needed per verdict"},
        ),
        concerns=report(
            result("stats/concerns.csv"),
            caption="../report/stats_concerns.rst",
            category="Evaluation scheme",
            subcategory="Tables",
            labels={"table": "6 ranking per concern"},
        ),
        concern_stability=report(
            result("stats/concern_stability.csv"),
            caption="../report/stats_concern_stability.rst",
            category="Evaluation scheme",
            subcategory="Tables",
            labels={"table": "6b concern rank stability"},
        ),
        physics_vs_cost=result("stats/physics_vs_cost.csv"),
        metric_correlation=report(
            result("stats/metric_correlation.csv"),
            caption="../report/stats_metric_correlation.rst",
            category="Evaluation scheme",
            subcategory="Tables",
            labels={"table": "7 metric correlation"},
        ),
        verdict=report(
            result("stats/verdict.csv"),
            caption="../report/stats_verdict.rst",
            category="Evaluation scheme",
            subcategory="Tables",
            labels={"table": "0 verdict per concern"},
        ),
        verdict_rst=report(
            result("stats/verdict.rst"),
            caption="../report/stats_verdict.rst",
            category="Evaluation scheme",
            subcategory="Tables",
            labels={"table": "0 verdict (the report's first screen)"},
        ),
        summary=result("stats/summary.md"),
        summary_html=report(
            result("stats/summary.html"),
            caption="../report/stats_summary.rst",
            category="Evaluation scheme",
            subcategory="Tables",
            labels={"table": "0 summary: Tables 1-3, letters, failed runs"},
        ),
        evaluation=result("stats/evaluation.json"),
    log:
        log_path("stats/stats_tables"),
    benchmark:
        bench_path("stats/stats_tables")
    conda:
        "../../envs/stats.yaml"
    params:
        stats=config["stats"],
        seed_design=config["training"].get("seed_design", "independent"),
        task=TASK,
        concerns=lambda wc: {k: list(v) for k, v in TASK_OBJ.concerns.items()},
        code=code_hash("stats", "report.py"),
    script:
        "../scripts/stats_tables.py"


rule stats_figures:
    input:
        metrics=STATS_METRICS_TABLE,
        kruskal=rules.stats_tables.output.kruskal,
        letters=rules.stats_tables.output.letters,
        physics_vs_cost=rules.stats_tables.output.physics_vs_cost,
        metric_correlation=rules.stats_tables.output.metric_correlation,
    output:
        png=report(
            result("stats/figures/boxplots.png"),
            caption="../report/stats_boxplots.rst",
            category="Evaluation scheme",
            subcategory="Figures",
            labels={"figure": "box plots (PNG)"},
        ),
        svg=report(
            result("stats/figures/boxplots.svg"),
            caption="../report/stats_boxplots.rst",
            category="Evaluation scheme",
            subcategory="Figures",
            labels={"figure": "box plots (SVG)"},
        ),
        physics_vs_cost=report(
            result("stats/figures/physics_vs_cost.png"),
            caption="../report/stats_physics_vs_cost.rst",
            category="Evaluation scheme",
            subcategory="Figures",
            labels={"figure": "physics vs cost"},
        ),
        metric_correlation=report(
            result("stats/figures/metric_correlation.png"),
            caption="../report/stats_metric_correlation_figure.rst",
            category="Evaluation scheme",
            subcategory="Figures",
            labels={"figure": "metric correlation"},
        ),
    log:
        log_path("stats/stats_figures"),
    benchmark:
        bench_path("stats/stats_figures")
    conda:
        "../../envs/stats.yaml"
    params:
        stats=config["stats"],
        seed_design=config["training"].get("seed_design", "independent"),
        task=TASK,
        concerns=lambda wc: {k: list(v) for k, v in TASK_OBJ.concerns.items()},
        code=code_hash("stats", "report.py", "plotstyle.py"),
    script:
        "../scripts/stats_figures.py"


rule stats:
    input:
        rules.stats_tables.output,
        rules.stats_figures.output,
