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
        code=code_hash("stats", "report.py"),
    script:
        "../scripts/stats_tables.py"


rule stats_figures:
    input:
        metrics=STATS_METRICS_TABLE,
        kruskal=rules.stats_tables.output.kruskal,
        letters=rules.stats_tables.output.letters,
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
    log:
        log_path("stats/stats_figures"),
    benchmark:
        bench_path("stats/stats_figures")
    conda:
        "../../envs/stats.yaml"
    params:
        stats=config["stats"],
        seed_design=config["training"].get("seed_design", "independent"),
        code=code_hash("stats", "report.py"),
    script:
        "../scripts/stats_figures.py"


rule stats:
    input:
        rules.stats_tables.output,
        rules.stats_figures.output,
