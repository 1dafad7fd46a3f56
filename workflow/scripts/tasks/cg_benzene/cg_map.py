"""Rule cg_map: atomistic H5MD -> CG dataset with a seeded train/validation/test split."""

import json

from balancebench.tasks.cg_benzene import cg
from balancebench.workflow_io import snakemake_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
with snakemake_job(smk) as job:
    p = smk.params.cg
    dataset = cg.map_trajectory(smk.input.trajectory, stride=p["stride"])
    dataset.split = cg.split_frames(dataset.n_frames, p["test_fraction"], p["validation_fraction"], smk.params.seed)
    cg.write_dataset(dataset, smk.output.dataset, provenance=json.dumps(job.provenance(), default=str))
    summary = cg.mapping_summary(dataset)
    job.logger.info("mapped: %s", summary)
    job.write_json(smk.output.summary, summary)
