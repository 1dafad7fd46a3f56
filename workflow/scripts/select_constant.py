"""Rule select_constant: the constant-coefficient grid point with the lowest validation criterion."""

from balancebench.training import select_grid_point
from balancebench.workflow_io import snakemake_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
with snakemake_job(smk) as job:
    table, selected = select_grid_point(list(smk.input.statuses), list(smk.input.hparams))
    table.to_csv(smk.output.table, index=False)
    job.logger.info("grid:\n%s", table.to_string(index=False))
    job.write_json(smk.output.selected, selected)
