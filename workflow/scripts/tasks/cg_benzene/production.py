"""Rule production: NVT production run written as an H5MD trajectory (LAMMPS)."""

import json

from balancebench.tasks.cg_benzene.atomistic.md import MDSettings, production
from balancebench.tasks.cg_benzene.trajectory import H5MDWriter
from balancebench.workflow_io import snakemake_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
with snakemake_job(smk) as job:
    settings = MDSettings.from_config(smk.params.md)
    record = json.dumps(job.provenance(), sort_keys=True, default=str)
    with H5MDWriter(smk.output.trajectory, creator="balancebench.tasks.cg_benzene.atomistic.md", provenance=record) as writer:
        summary = production(smk.input.data, writer, settings, lammps_log=smk.log.lammps,
                             threads=smk.threads, progress_every=max(1, int(settings.nvt_duration / settings.frame_interval) // 20))
    job.write_json(smk.output.summary, summary)
