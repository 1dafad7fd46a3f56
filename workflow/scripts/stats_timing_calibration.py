"""Rule timing_calibration: the FLOP rate of one reference training step on this machine (balancebench.timing)."""

from balancebench.timing import (
    calibrate,
    pinned_calibration,
    trainer_from_run,
    write_json,
)
from balancebench.workflow_io import snakemake_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
with snakemake_job(smk) as job:
    timing = smk.params.timing
    if timing.get("flop_rate"):
        calibration = pinned_calibration(timing["flop_rate"])
    else:
        import torch

        torch.set_num_threads(smk.threads)
        task = job.task
        hparams = {"task": task.name, "model": smk.params.model, "training": smk.params.training,
                   "method": "constant", "method_params": {}, "seed": smk.params.seed}
        trainer = trainer_from_run(task.read_dataset(smk.input.dataset), hparams, None, device=smk.params.device)
        calibration = calibrate(trainer, repeats=timing["calibration_repeats"])
    job.logger.info("FLOP rate %.4g FLOP/s on %s", calibration.flop_rate, calibration.machine)
    write_json(smk.output.calibration, {**calibration.to_dict(), "provenance": job.provenance()})
