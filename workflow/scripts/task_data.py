"""Rule task_data: the dataset of a task without rules of its own (Task.make_dataset)."""

from pathlib import Path

from balancebench.workflow_io import snakemake_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
with snakemake_job(smk) as job:
    Path(smk.output.dataset).parent.mkdir(parents=True, exist_ok=True)
    job.task.make_dataset(smk.params.config, smk.output.dataset)
    job.logger.info("dataset of task %s: %s", job.task.name, smk.output.dataset)
