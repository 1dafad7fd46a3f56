"""Rule cross_task: the verdict across the runs of a multi-task config (balancebench.stats.cross_task)."""

from balancebench.fileio import read_csv, rebuild_command
from balancebench.stats.cross_task import cross_task_verdict, plot_critical_difference, summary_markdown
from balancebench.workflow_io import snakemake_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
with snakemake_job(smk) as job:
    rankings = {run: read_csv(smk.input[run], "ranking table", rebuild=rebuild_command(smk.input[run]))
                for run in smk.params.runs}
    verdict = cross_task_verdict(rankings, alpha=smk.params.alpha, posthoc=smk.params.posthoc)
    verdict["blocks"].to_csv(smk.output.blocks)
    verdict["mean_ranks"].to_csv(smk.output.mean_ranks, index=False)
    verdict["friedman"].to_csv(smk.output.friedman, index=False)
    verdict["posthoc"].to_csv(smk.output.posthoc, index=False)
    with open(smk.output.summary, "w") as fh:
        fh.write(summary_markdown(verdict))
    plot_critical_difference(smk.output.figure, verdict)
    job.logger.info("%s", verdict["sentence"])
