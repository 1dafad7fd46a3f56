"""Rule train: one CG SchNet of one variant (method + parameters, a search's selection applied) and seed,
then the counted work of its first epochs (balancebench.timing: machine-free; t_ep comes in model_metrics)."""

from balancebench.progress import EpochProgress
from balancebench.timing import write_counted_work
from balancebench.training import train_model
from balancebench.workflow_io import snakemake_job, train_job_inputs

smk = snakemake  # noqa: F821 (injected by Snakemake)
with snakemake_job(smk) as job:
    params, training, dataset = train_job_inputs(job)
    out_dir = smk.output.model.rsplit("/", 1)[0]
    result = train_model(
        dataset, smk.params.model, training, smk.params.method, params,
        smk.params.seed, out_dir=out_dir, checkpoint=smk.params.checkpoint,
        threads=smk.threads, variant=smk.params.variant,
        provenance=job.provenance(variant=smk.params.variant, method=smk.params.method, method_params=params,
                                  replicate_seed=smk.params.replicate, run_seed=smk.params.seed,
                                  seed_design=smk.params.seed_design),
        progress=EpochProgress(job.logger, max_epochs=training["max_epochs"]))
    job.logger.info("training %s: %s", result.status, result.reason)
    write_counted_work(smk.output.work, dataset, out_dir, smk.params.work_counting, training["device"], job.logger,
                       job.provenance())
