"""Rule l2o_transfer: seed 003's transfer experiment for one pair (balancebench.l2o.transfer)."""

from pathlib import Path

from balancebench.l2o.transfer import run_transfer
from balancebench.workflow_io import snakemake_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
with snakemake_job(smk) as job:
    table = run_transfer(
        smk.wildcards.pair, smk.params.l2o, smk.params.model, smk.params.training, job.task,
        job.task.read_dataset(smk.input.dataset), Path(smk.output.table).parent, threads=smk.threads,
        progress=lambda row: job.logger.info("%s %s x%.3g seed %d: %s, test error %.4g", row["pair"], row["method"],
                                             row["step_factor"], row["seed"], row["status"], row["test_error"]))
    job.logger.info("%d trainings", len(table))
