"""Rule evaluate_model: the metrics of one trained model of a task without rules of its own (the training
metrics of balancebench.evaluation plus Task.evaluate), as one JSON."""

import json
from pathlib import Path

from balancebench.calibration import timing_record
from balancebench.evaluation import evaluate_trained_model, write_model_json
from balancebench.workflow_io import snakemake_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
with snakemake_job(smk) as job:
    task = job.task
    work = json.loads(Path(smk.input.work).read_text())
    timing = (timing_record(work, json.loads(Path(smk.input.calibration).read_text()))
              if work.get("status", "completed") == "completed" else None)
    record = evaluate_trained_model(task, smk.wildcards.variant, int(smk.wildcards.seed),
                                    Path(smk.input.model).parent, task.read_dataset(smk.input.dataset),
                                    smk.params.config, timing)
    job.logger.info("%s seed %s: %s", smk.wildcards.variant, smk.wildcards.seed,
                    {k: v["value"] for k, v in record["metrics"].items()})
    write_model_json(smk.output.metrics, record, provenance=job.provenance())
