"""Rule train: one CG SchNet of one variant (method + parameters, a search's selection applied) and seed."""

import json

from balancebench.cg import read_dataset
from balancebench.progress import EpochProgress
from balancebench.search.space import apply_parameters
from balancebench.training import train_model
from balancebench.workflow_io import snakemake_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
with snakemake_job(smk) as job:
    params, training = dict(smk.params.method_params), dict(smk.params.training)
    if "selected" in smk.input.keys():  # a variant with a search: its selection for every seed
        selected = json.loads(open(smk.input.selected).read())
        params, overrides = apply_parameters(selected["values"], smk.params.method, params)
        training.update(overrides)
        job.logger.info("search %s: %s -> params %s, training %s", selected["status"], selected["values"], params,
                        overrides)
    result = train_model(
        read_dataset(smk.input.dataset), smk.params.model, training, smk.params.method, params,
        smk.params.seed, out_dir=smk.output.model.rsplit("/", 1)[0], checkpoint=smk.params.checkpoint,
        threads=smk.threads, variant=smk.params.variant,
        provenance=job.provenance(variant=smk.params.variant, method=smk.params.method, method_params=params,
                                  replicate_seed=smk.params.replicate, run_seed=smk.params.seed,
                                  seed_design=smk.params.seed_design),
        progress=EpochProgress(job.logger, max_epochs=training["max_epochs"]))
    job.logger.info("training %s: %s", result.status, result.reason)
