"""Rule train with training.multiseed: every seed of one variant in one process (balancebench.multiseed),
then each seed's counted work, as the one-seed rule writes them."""

from pathlib import Path

from balancebench.multiseed import train_seeds
from balancebench.progress import EpochProgress
from balancebench.timing import write_counted_work
from balancebench.workflow_io import snakemake_job, train_job_inputs

smk = snakemake  # noqa: F821 (injected by Snakemake)
with snakemake_job(smk) as job:
    params, training, dataset = train_job_inputs(job)
    out_dirs = [Path(path).parent for path in smk.output.model]
    seeds, replicates = list(smk.params.seeds), list(smk.params.replicates)
    progress = {seed: EpochProgress(job.logger, max_epochs=training["max_epochs"], label=f"training seed {replicate}")
                for seed, replicate in zip(seeds, replicates)}
    results = train_seeds(
        dataset, smk.params.model, training, smk.params.method, params, seeds, out_dirs, threads=smk.threads,
        variant=smk.params.variant,
        provenance=[job.provenance(variant=smk.params.variant, method=smk.params.method, method_params=params,
                                   replicate_seed=replicate, run_seed=seed, seed_design=smk.params.seed_design,
                                   multiseed=True)
                    for seed, replicate in zip(seeds, replicates)],
        progress=lambda seed, row: progress[seed](row))
    for replicate, out_dir, result, work_path in zip(replicates, out_dirs, results, smk.output.work):
        job.logger.info("seed %s: training %s: %s", replicate, result.status, result.reason)
        write_counted_work(work_path, dataset, out_dir, smk.params.work_counting, training["device"], job.logger,
                           job.provenance(), label=f"seed {replicate}: ")
