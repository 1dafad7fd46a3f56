"""Rule meta_train_l2o: meta-train the learned multi-gradient optimizer, write the artifact and its record."""

from balancebench.l2o.meta import run_meta_training
from balancebench.workflow_io import snakemake_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
with snakemake_job(smk) as job:
    dataset = job.task.read_dataset(smk.input.dataset) if "dataset" in smk.input.keys() else None
    record = run_meta_training(
        smk.params.l2o, smk.output.optimizer, smk.output.record, checkpoint=smk.params.checkpoint,
        threads=smk.threads, provenance=job.provenance(), task=job.task, dataset=dataset,
        model_config=smk.params.model, training=smk.params.training, curve_path=smk.output.curve,
        plot_path=smk.output.plot,
        progress=lambda episode, row: job.logger.info("episode %d (%s): meta-loss %.4g", episode, row["family"],
                                                      row["meta_loss"]))
    job.logger.info("meta-training %.1f s; held-out quadratics: %s; held-out task trainings: %s",
                    record["meta_training_seconds"], record["heldout_quadratic"], record["heldout_task"])
