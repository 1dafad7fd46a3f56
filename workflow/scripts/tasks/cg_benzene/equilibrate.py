"""Rule equilibrate: compression, NPT, rescale to the mean NPT density (LAMMPS)."""

from balancebench.tasks.cg_benzene.atomistic.md import MDSettings, equilibrate
from balancebench.workflow_io import snakemake_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
with snakemake_job(smk) as job:
    summary = equilibrate(
        smk.input.data, smk.output.data, smk.output.trace, MDSettings.from_config(smk.params.md),
        seed=smk.params.seed, lammps_log=smk.log.lammps, threads=smk.threads,
    )
    job.write_json(smk.output.summary, summary)
