"""Rule evaluate_model: the metrics of trained models of a task without rules of its own (the training metrics
of balancebench.evaluation plus Task.evaluate), one JSON per model: one seed per job, or with training.multiseed
every seed of the variant in one job (the inputs and outputs are then lists in the order of params.seeds)."""

import json
from pathlib import Path

from balancebench.calibration import timing_record
from balancebench.evaluation import evaluate_trained_model, write_model_json
from balancebench.workflow_io import snakemake_job


def per_seed(files) -> list:
    return [files] if isinstance(files, str) else list(files)


smk = snakemake  # noqa: F821 (injected by Snakemake)
with snakemake_job(smk) as job:
    task = job.task
    calibration = json.loads(Path(smk.input.calibration).read_text())
    dataset = task.read_dataset(smk.input.dataset)
    for seed, model, work_path, out in zip(smk.params.seeds, per_seed(smk.input.model), per_seed(smk.input.work),
                                           per_seed(smk.output.metrics), strict=True):
        work = json.loads(Path(work_path).read_text())
        timing = timing_record(work, calibration) if work.get("status", "completed") == "completed" else None
        record = evaluate_trained_model(task, smk.wildcards.variant, int(seed), Path(model).parent, dataset,
                                        smk.params.config, timing)
        job.logger.info("%s seed %s: %s", smk.wildcards.variant, seed,
                        {k: v["value"] for k, v in record["metrics"].items()})
        write_model_json(out, record, provenance=job.provenance())
