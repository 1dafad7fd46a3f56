"""Rule stats_figures: box plots per metric and method (seed 000 Fig. 2) with the letters of stats_tables,
physics against cost per variant, the metrics' rank correlation."""


from balancebench.fileio import read_csv
from balancebench.report import pairwise_name, plot_boxplots, plot_metric_correlation, plot_physics_vs_cost
from balancebench.stats import StatsSettings, load_metrics_table
from balancebench.workflow_io import snakemake_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
with snakemake_job(smk) as job:
    task = job.task
    settings = StatsSettings.from_config(smk.params.stats, seed_design=smk.params.seed_design,
                                         task_concerns=task.concerns, task_axes=task.concern_axes)
    table = load_metrics_table(smk.input.metrics, directions=settings.directions)
    letters = read_csv(smk.input.letters, keep_default_na=False, na_values={"mean": [""], "median": [""]})
    plot_boxplots(table, read_csv(smk.input.kruskal), letters, smk.output.png, [smk.output.svg],
                  posthoc_label=f"{pairwise_name(settings)} at {settings.posthoc_alpha:g}")
    plot_physics_vs_cost(read_csv(smk.input.physics_vs_cost), smk.output.physics_vs_cost,
                         main_control=settings.main_control,
                         quality_label="quality: " + " + ".join(settings.quality_concerns),
                         cost_label=" + ".join(settings.cost_concerns) or "cost")
    plot_metric_correlation(read_csv(smk.input.metric_correlation), smk.output.metric_correlation,
                            metrics=list(table.metrics))
