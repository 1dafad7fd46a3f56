"""Rule time_training: counted work per epoch of one trained configuration -> t_ep, sigma_ep (balancebench.timing).

A failure is recorded as a status with its reason (model_metrics then falls back to the wall-clock times).
"""

import json

import torch

from balancebench.cg import read_dataset
from balancebench.timing import Calibration, time_run, write_json
from balancebench.workflow_io import snakemake_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
with snakemake_job(smk) as job:
    torch.set_num_threads(smk.threads)
    timing = smk.params.timing
    calibration = json.loads(open(smk.input.calibration).read())
    calibration = Calibration(**{k: calibration[k] for k in Calibration.__dataclass_fields__})
    hparams = json.loads(open(smk.input.hparams).read())
    try:
        record = time_run(read_dataset(smk.input.dataset), hparams, torch.load(smk.input.model),
                          calibration, epochs=timing["epochs"], max_steps=timing["max_steps"],
                          device=smk.params.device)
        record["status"] = "completed"
        job.logger.info("counted work %.4g FLOP/epoch: t_ep %.4g s, sigma_ep %.4g s",
                        record["flops_ep"], record["t_ep"], record["sigma_ep"])
    except Exception as err:  # recorded, never a crash of the DAG
        record = {"status": "failed", "reason": f"{type(err).__name__}: {err}"}
        job.logger.warning("timing pass failed: %s", record["reason"])
    write_json(smk.output.timing, {**record, "provenance": job.provenance()})
