"""Rule stats_figures: box plots per metric and method (seed 000 Fig. 2) with the letters of stats_tables."""


from balancebench.fileio import read_csv
from balancebench.report import pairwise_name, plot_boxplots
from balancebench.stats import StatsSettings, load_metrics_table
from balancebench.workflow_io import snakemake_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
with snakemake_job(smk):
    settings = StatsSettings.from_config(smk.params.stats, seed_design=smk.params.seed_design)
    table = load_metrics_table(smk.input.metrics, directions=settings.directions)
    letters = read_csv(smk.input.letters, keep_default_na=False, na_values={"mean": [""], "median": [""]})
    plot_boxplots(table, read_csv(smk.input.kruskal), letters, smk.output.png, [smk.output.svg],
                  posthoc_label=f"{pairwise_name(settings)} at {settings.posthoc_alpha:g}")
