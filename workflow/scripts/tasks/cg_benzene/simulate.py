"""Rule simulate: CG NVT (ASE) of one trained model from a held-out frame; unstable runs are recorded, not raised."""

import json
from pathlib import Path

import torch

from balancebench.tasks.cg_benzene.cg import read_dataset
from balancebench.tasks.cg_benzene.simulation import simulate_model
from balancebench.workflow_io import snakemake_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
with snakemake_job(smk) as job:
    torch.set_num_threads(smk.threads)
    status = simulate_model(
        Path(smk.input.model).parent, read_dataset(smk.input.dataset), smk.params.simulation,
        smk.params.temperature, smk.params.seed, Path(smk.output.status).parent,
        provenance=json.dumps(job.provenance(), default=str), log=job.logger)
    job.logger.info("simulation %s: %s", status["status"], status.get("reason", ""))
