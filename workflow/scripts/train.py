"""Rules train / train_constant_grid: one CG SchNet under one balancing method and seed."""

import json

from balancebench.cg import read_dataset
from balancebench.progress import EpochProgress
from balancebench.training import train_model
from balancebench.workflow_io import snakemake_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
with snakemake_job(smk) as job:
    params = dict(smk.params.method_params)
    if "selected" in smk.input.keys():  # constant: the grid-search winner for every seed
        params["weights"] = json.loads(open(smk.input.selected).read())["weights"]
        job.logger.info("constant weights from the grid search: %s", params["weights"])
    result = train_model(
        read_dataset(smk.input.dataset), smk.params.model, smk.params.training, smk.params.method, params,
        smk.params.seed, out_dir=smk.output.model.rsplit("/", 1)[0], checkpoint=smk.params.checkpoint,
        threads=smk.threads, provenance=job.provenance(method=smk.params.method, method_params=params),
        progress=EpochProgress(job.logger, max_epochs=smk.params.training["max_epochs"]))
    job.logger.info("training %s: %s", result.status, result.reason)
